"""A fast decode of the commonest /forecast body: series of `{id, values}` and the request's options. More:
docs/design.md#appprotocolsrestfastdecode.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

from app.forecast_jobs import ForecastJob, SeriesInput

ForecastJobSpec = tuple[str | None, ForecastJob]  # the model asked for, and the job for its service


class _Series(Struct, forbid_unknown_fields=True):
    # As rest.schemas.SeriesIn (id and values only): floats refuse bools and strings, ints are read as floats,
    # and a number beyond float64 is refused; JSON itself has no NaN or Infinity.
    id: Annotated[str, Meta(min_length=1, max_length=256)]
    values: Annotated[list[float], Meta(min_length=1)]


class _Request(Struct, forbid_unknown_fields=True):
    series: Annotated[list[_Series], Meta(min_length=1)]
    model: Annotated[str, Meta(max_length=300)] | None = None
    # Bools and floats refused, as pydantic's strict int. UNSET tells an absent key from a null one: pydantic
    # refuses both aliases present, even as nulls.
    horizon: int | None | UnsetType = UNSET
    h: int | None | UnsetType = UNSET
    level: Annotated[list[float], Meta(max_length=20)] = []
    quantiles: Annotated[list[float], Meta(max_length=20)] = []


_DECODER = msgspec.json.Decoder(_Request)


def decode_common(body: bytes) -> ForecastJobSpec | None:
    """The body's model and job when it is of the common shape and valid; None sends it to pydantic
    (`ForecastRequest.model_validate_json`), which answers it or writes the error message."""
    try:
        fast = _DECODER.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    if fast.horizon is not UNSET and fast.h is not UNSET:
        return None  # both aliases: pydantic writes the error
    horizon = fast.h if isinstance(fast.horizon, UnsetType) else fast.horizon
    horizon = None if isinstance(horizon, UnsetType) else horizon
    series = [SeriesInput(s.id, s.values) for s in fast.series]
    return fast.model, ForecastJob(series, horizon, fast.level, fast.quantiles)
