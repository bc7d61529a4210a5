"""The TimeGPT API's bodies, as nixtla 0.9's client sends them (nixtla/_payloads.py)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, Strict


class TimeGPTError(BaseModel):
    detail: str = Field(..., description="what is wrong and how to fix it (the nixtla client shows it)")
    error: str = Field(..., description="machine-readable reason, e.g. invalid_input")


Number = Annotated[float, Strict()]
# The model_parameters forecast reads (each a string, passed to the model service, which checks its value);
# any other key, and any key on the other routes, is refused by name.
FORECAST_PARAMETERS = frozenset({"calibration"})


class TimeGPTSeries(BaseModel):
    model_config = ConfigDict(extra="forbid")

    y: list[Number | None] = Field(..., description="the series' values, one after another")
    sizes: list[Annotated[int, Strict(), Field(ge=0, le=2**31 - 1)]] = Field(
        ..., min_length=1, description="values per series"
    )
    X: list[list[Number | None]] | None = Field(None, description="covariate columns aligned with y")
    X_future: list[list[Number | None]] | None = Field(None, description="future covariate columns, h per series")
    start_datetime: list[str] | None = Field(None, description="ISO 8601 time of each series' first value")
    categorical_exog: list[int] | None = None


class TimeGPTRequest(BaseModel):
    """One body for the four POST routes; each reads its own options and refuses what it cannot use."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    series: TimeGPTSeries
    model: str = Field("timegpt-2.1", max_length=300)
    h: Annotated[int, Strict(), Field(ge=1)] | None = None
    freq: str | None = Field(None, max_length=32)
    level: list[Number] | Number | None = None
    clean_ex_first: bool = True
    finetune_steps: Annotated[int, Strict(), Field(ge=0)] = 0
    finetune_depth: int = 1
    finetune_loss: str = "default"
    finetuned_model_id: str | None = None
    feature_contributions: bool = False
    feature_contributions_type: str | None = None
    multivariate: bool = False
    model_parameters: dict[str, Any] | None = Field(
        None,
        description='forecast reads {"calibration": "auto"} (the default: intervals calibrated on the history sent '
        'where it is long enough, as on /forecast), "history" (refused when too short) or "model" (the model\'s own '
        "table); other keys, and any on the other routes, are refused",
    )
    n_windows: Annotated[int, Strict(), Field(ge=1)] | None = None
    step_size: Annotated[int, Strict(), Field(ge=1)] | None = None
    hist_exog: list[int] | None = None
    refit: bool = False  # re-fine-tune per window: cross-validation takes a fine-tuned model, not finetune_steps
    full_history: bool = False
    detection_size: Annotated[int, Strict(), Field(ge=1)] | None = None
    threshold_method: str | None = None


class FinetuneRequest(BaseModel):
    """The nixtla client's `finetune` body (nixtla/_payloads.prepare_finetune_payload)."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    series: TimeGPTSeries
    model: str = Field("timegpt-2.1", max_length=300)
    freq: str | None = Field(None, max_length=32)
    finetune_steps: Annotated[int, Strict(), Field(ge=1)] = 10
    finetune_depth: Literal[1, 2, 3, 4, 5] = 1
    finetune_loss: str = Field("default", max_length=32)
    output_model_id: str | None = Field(None, max_length=128)
    finetuned_model_id: str | None = Field(None, max_length=128)
