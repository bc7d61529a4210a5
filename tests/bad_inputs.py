"""The table of hostile and malformed inputs: each case, what it sends, and the status and message expected.

Used by tests/test_bad_inputs.py (in-process, committed models) and bench/reliability.py (live server,
writes docs/reliability.md). Model etth1-lstm: window 168, minimum 48, horizon 24.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass, field

GOOD = [round(20 + (i % 24) * 0.25, 2) for i in range(168)]


@dataclass(frozen=True)
class Case:
    id: str
    what: str
    body: bytes
    status: int
    fragment: str  # a piece of the message a user needs to fix it
    headers: dict[str, str] = field(default_factory=lambda: {"content-type": "application/json"})


def js(payload: object) -> bytes:
    return json.dumps(payload).encode()


def req(**overrides: object) -> bytes:
    payload: dict[str, object] = {"model": "etth1-lstm", "series": [{"id": "a", "values": GOOD}]}
    payload.update(overrides)
    return js(payload)


def one(**series: object) -> bytes:
    return req(series=[{"id": "a", "values": GOOD, **series}])


def raw_values(token: str) -> bytes:
    return ('{"model": "etth1-lstm", "series": [{"id": "a", "values": [1.0, ' + token + "] }]}").encode()


CASES = [
    Case("nan", "NaN inside values", raw_values("NaN"), 422, "finite number"),
    Case("infinity", "Infinity inside values", raw_values("Infinity"), 422, "finite number"),
    Case("null", "null inside values", one(values=[1.0, None] * 84), 422, "series.0.values.1"),
    Case("string", "a string inside values", one(values=[1.0, "2.0"] * 84), 422, "series.0.values.1"),
    Case("empty-series", "empty `series`", req(series=[]), 422, "series: List should have at least 1 item"),
    Case("empty-values", "empty `values`", one(values=[]), 422, "values: List should have at least 1 item"),
    Case("one-value", "one value", one(values=[1.0]), 422, "has 1 values; this model needs at least 48"),
    Case("constant", "a constant series", one(values=[5.0] * 168), 200, ""),
    Case("near-1e308", "values near 1e308", one(values=[1e308] * 168), 422, "rescale the series"),
    Case(
        "million-points",
        "a million points in one series",
        one(values=[1.0] * 1_000_000),
        413,
        "GATECAST_MAX_POINTS_PER_SERIES",
    ),
    Case(
        "ten-thousand-series",
        "ten thousand series",
        req(series=[{"id": str(i), "values": GOOD[:48]} for i in range(10_000)]),
        200,
        "",
    ),
    Case(
        "too-many-series",
        "10,001 series",
        req(series=[{"id": str(i), "values": [1.0]} for i in range(10_001)]),
        413,
        "GATECAST_MAX_SERIES_PER_REQUEST",
    ),
    Case(
        "duplicate-ids",
        "duplicate ids",
        req(series=[{"id": "a", "values": GOOD}, {"id": "a", "values": GOOD}]),
        422,
        "appears more than once",
    ),
    Case("horizon-0", "horizon 0", req(horizon=0), 422, "forecasts 1 to 24 steps"),
    Case("horizon-negative", "horizon -3", req(horizon=-3), 422, "forecasts 1 to 24 steps"),
    Case("horizon-float", "horizon 2.5", req(horizon=2.5), 422, "horizon: Input should be a valid integer"),
    Case("horizon-over", "horizon over the model's maximum", req(horizon=25), 422, "forecasts 1 to 24 steps"),
    Case("level-0", "level 0", req(level=[0]), 422, "strictly between 0 and 100"),
    Case("level-100", "level 100", req(level=[100]), 422, "strictly between 0 and 100"),
    Case("level-negative", "level -80", req(level=[-80]), 422, "strictly between 0 and 100"),
    Case("level-duplicate", "level [80, 80]", req(level=[80, 80]), 422, "repeats a value"),
    Case("unknown-model", "unknown model", req(model="nope"), 404, "is not loaded; loaded models"),
    Case("unknown-version", "unknown version", req(model="etth1-lstm@9"), 404, "has no version '9'"),
    Case("malformed-json", "malformed JSON", b'{"series": [', 400, "not valid JSON"),
    Case(
        "wrong-content-type",
        "wrong content type",
        b"hello",
        415,
        "send application/json or text/csv",
        {"content-type": "text/plain"},
    ),
    Case(
        "timestamps-length",
        "timestamps and values of different lengths",
        one(timestamps=["2024-01-01T00:00:00"] * 3),
        422,
        "give one timestamp per value",
    ),
    Case(
        "timestamps-unsorted",
        "unsorted timestamps",
        one(values=GOOD[:3] * 20, timestamps=[f"2024-01-{d:02d}T00:00:00" for d in [2, 1, *range(3, 31)]] * 2),
        422,
        "strictly ascending",
    ),
    Case(
        "timestamps-duplicate",
        "duplicate timestamps",
        one(values=GOOD[:60], timestamps=["2024-01-01T00:00:00"] * 60),
        422,
        "strictly ascending",
    ),
    Case(
        "unknown-freq",
        "an unknown frequency",
        one(start="2024-01-01T00:00:00", freq="fortnightly"),
        422,
        "not a pandas offset alias",
    ),
    Case("deep-nesting", "deeply nested JSON", b"[" * 100_000 + b"]" * 100_000, 400, "not valid JSON"),
    Case(
        "gzip-bomb",
        "a gzip body that expands to 50 MB",
        gzip.compress(b"[" * 50_000_000),
        415,
        "send the body uncompressed",
        {"content-type": "application/json", "content-encoding": "gzip"},
    ),
    Case("body-too-large", "a body over 16 MiB", b"[" + b"1.0," * 4_500_000 + b"1.0]", 413, "GATECAST_MAX_BODY_BYTES"),
    Case(
        "csv-gap",
        "CSV with a gap in the timestamps",
        b"unique_id,ds,y\na,2024-01-01 00:00,1\na,2024-01-01 01:00,2\na,2024-01-01 03:00,3\n",
        422,
        "timestamps have gaps",
        {"content-type": "text/csv"},
    ),
    Case(
        "csv-missing-column",
        "CSV without the y column",
        b"unique_id,ds\na,2024-01-01\n",
        422,
        "columns ['y'] are missing",
        {"content-type": "text/csv"},
    ),
]
