"""The fast decode of /forecast bodies (app.protocols.rest.fastdecode) accepts only what pydantic's ForecastRequest
accepts, and reads it the same: generated bodies, the edge cases of JSON numbers, and the common body taking the fast
path."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from app.protocols.rest.fastdecode import decode_common
from app.protocols.rest.forecast import decode_json
from app.protocols.rest.schemas import ForecastRequest

# Values of every JSON type, biased to the ones the fields take.
_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=4),
)
_numbers = st.lists(st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.integers(-1000, 1000)), max_size=6)
_anything = st.recursive(_scalar, lambda inner: st.lists(inner, max_size=3), max_leaves=5)
_odd_series = st.dictionaries(
    st.sampled_from(["id", "values", "freq", "other"]),
    st.one_of(st.text(max_size=3), _numbers, _anything),
    max_size=3,
)
_valid_series = st.fixed_dictionaries({"id": st.text(min_size=1, max_size=4), "values": _numbers.filter(bool)})
_series = st.one_of(_valid_series, _valid_series, _valid_series, _odd_series)
_body = st.fixed_dictionaries(
    {"series": st.lists(_series, max_size=3)},
    optional={
        "model": st.one_of(st.none(), st.text(max_size=5), st.integers()),
        "horizon": st.one_of(
            st.none(), st.integers(-5, 50), st.integers(-5, 50), st.booleans(), st.floats(), st.text()
        ),
        "h": st.one_of(st.none(), st.integers(-5, 50), st.booleans()),
        "level": st.one_of(_numbers, _numbers, st.lists(st.booleans(), max_size=2), st.none()),
        "quantiles": st.one_of(_numbers, _numbers, st.none()),
        "extra": _anything,
    },
)


def _pydantic(body: bytes) -> ForecastRequest | None:
    try:
        return ForecastRequest.model_validate_json(body)
    except ValidationError:
        return None


def _same(body: bytes) -> None:
    fast = decode_common(body)
    if fast is None:
        return  # pydantic decides
    slow = _pydantic(body)
    assert slow is not None, f"the fast path accepted what pydantic refuses: {body!r}"
    model, job = fast
    assert model == slow.model
    assert job.horizon == slow.horizon
    assert list(job.levels) == slow.level and list(job.quantiles) == slow.quantiles
    assert [(s.id, list(s.values)) for s in job.series] == [(s.id, s.values) for s in slow.series]
    assert all(type(v) is float for s in job.series for v in s.values)  # ints read as floats, as pydantic does


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_body)
def test_fast_path_agrees_with_pydantic(body: dict[str, Any]) -> None:
    _same(json.dumps(body).encode())


@pytest.mark.parametrize(
    "body",
    [
        b'{"series":[{"id":"a","values":[true]}]}',
        b'{"series":[{"id":"a","values":["1"]}]}',
        b'{"series":[{"id":"a","values":[1e400]}]}',
        b'{"series":[{"id":"a","values":[NaN]}]}',
        b'{"series":[{"id":"a","values":[Infinity]}]}',
        b'{"series":[{"id":"a","values":[1]}],"horizon":1.0}',
        b'{"series":[{"id":"a","values":[1]}],"horizon":true}',
        b'{"series":[{"id":"a","values":[1]}],"horizon":"3"}',
        b'{"series":[{"id":"a","values":[1]}],"level":null}',
        b'{"series":[{"id":"","values":[1]}]}',
        b'{"series":[{"id":"a","values":[]}]}',
        b'{"series":[]}',
        b'{"series":[{"id":"a","values":[1]}],"horizon":3,"h":4}',
        b'{"series":[{"id":"a","values":[1]}],"horizon":null,"h":null}',
        b'{"series":[{"id":"a","values":[1],"timestamps":["2024-01-01"]}]}',
        b'\xef\xbb\xbf{"series":[{"id":"a","values":[1]}]}',
        b'{"series":[{"id":"a","values":[1]}]} trailing',
    ],
)
def test_bodies_the_fast_path_leaves_to_pydantic(body: bytes) -> None:
    """Each is refused by the fast path (or, both horizon and h, left to pydantic's alias rule); what the route
    answers is then pydantic's own decision and message."""
    assert decode_common(body) is None
    slow = _pydantic(body)
    if slow is None:
        with pytest.raises(ValidationError):
            decode_json(body)
    else:
        assert decode_json(body)[1].horizon == slow.horizon


def test_the_common_body_takes_the_fast_path() -> None:
    body = json.dumps(
        {
            "model": "etth1-lstm@1",
            "h": 12,
            "level": [80, 95.5],
            "quantiles": [0.1, 0.9],
            "series": [{"id": str(i), "values": [1, 2.5, -3e300, 0.0]} for i in range(3)],
        }
    ).encode()
    fast = decode_common(body)
    assert fast is not None
    model, job = fast
    assert model == "etth1-lstm@1" and job.horizon == 12
    assert list(job.levels) == [80.0, 95.5] and list(job.quantiles) == [0.1, 0.9]
    assert [s.values for s in job.series] == [[1.0, 2.5, -3e300, 0.0]] * 3
    _same(body)
