"""The table of hostile and malformed inputs: each case, the route it goes to, what it sends, and the status
and message expected. Every class of fault has its own cases on every route that can meet it: JSON and CSV
bodies on /forecast, JSON and binary-tensor bodies on the Open Inference Protocol route, and routes that do
not exist. (Memory, HTTP-level abuse and model-repository faults need a real process or a changed folder:
tests/live/test_memory_limit.py, tests/live/test_http_limits.py, tests/app/test_registry.py.)

Used by tests/app/test_bad_inputs.py (in-process, committed models) and bench/reliability.py (live server,
writes docs/reliability.md). Model etth1-lstm: window 168, minimum 48, horizon 24.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np

GOOD = [round(20 + (i % 24) * 0.25, 2) for i in range(168)]
INFER = "/v2/models/etth1-lstm/infer"
JSON = {"content-type": "application/json"}
CSV = {"content-type": "text/csv"}


@dataclass(frozen=True)
class Case:
    id: str
    kind: str  # the class of fault: values, limits, horizon and levels, time, protocol, routes, ...
    what: str
    body: bytes
    status: int
    fragment: str  # a piece of the message a user needs to fix it
    headers: dict[str, str] = field(default_factory=lambda: dict(JSON))
    path: str = "/forecast"
    method: str = "POST"

    @property
    def route(self) -> str:
        if self.path.startswith("/v2/") and self.method == "POST":
            binary = "inference-header-content-length" in self.headers
            return f"{self.method} {self.path}" + (" (binary)" if binary else " (JSON)")
        csv = self.headers.get("content-type") == "text/csv"
        return f"{self.method} {self.path.split('?')[0]}" + (" (CSV)" if csv else "")


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


def stamps(start: str, n: int = 168) -> list[str]:
    """Hourly ISO timestamps with the standard library: pandas itself cannot hold some of the ones tested."""
    first = datetime.fromisoformat(start)
    return [(first + timedelta(hours=i)).isoformat() for i in range(n)]


def csv_rows(ids: list[str], start: str = "2024-01-01T00:00:00", n: int = 60, y: str = "") -> bytes:
    lines = ["unique_id,ds,y"]
    for uid in ids:
        for i, t in enumerate(stamps(start, n)):
            lines.append(f"{uid},{t.replace('T', ' ')},{y or 20 + i % 24}")
    return ("\n".join(lines) + "\n").encode()


def infer(inputs: list[dict[str, object]] | object, **extra: object) -> bytes:
    return js({"inputs": inputs, **extra})


def tensor(shape: list[int], data: object, datatype: str = "FP32", **extra: object) -> dict[str, object]:
    return {"name": "values", "shape": shape, "datatype": datatype, "data": data, **extra}


def binary(array: np.ndarray, datatype: str = "FP32", size: object = None) -> tuple[bytes, dict[str, str]]:
    """Triton's binary tensor extension: JSON header, then the raw little-endian tensor."""
    raw = array.tobytes()
    spec = {"name": "values", "shape": list(array.shape), "datatype": datatype}
    spec["parameters"] = {"binary_data_size": len(raw) if size is None else size}
    head = json.dumps({"inputs": [spec]}).encode()
    return head + raw, {"inference-header-content-length": str(len(head)), "content-type": "application/octet-stream"}


def binary_case(id: str, what: str, array: np.ndarray, status: int, fragment: str, **kw: object) -> Case:
    body, headers = binary(array, **kw)  # type: ignore[arg-type]
    return Case(id, "protocol", what, body, status, fragment, headers, INFER)


WINDOW = np.asarray([GOOD], dtype=np.float32)


CASES = [
    Case("nan", "values", "NaN inside values", raw_values("NaN"), 422, "finite number"),
    Case("infinity", "values", "Infinity inside values", raw_values("Infinity"), 422, "finite number"),
    Case("null", "values", "null inside values", one(values=[1.0, None] * 84), 422, "series.0.values.1"),
    Case("string", "values", "a string inside values", one(values=[1.0, "2.0"] * 84), 422, "series.0.values.1"),
    Case("empty-series", "values", "empty `series`", req(series=[]), 422, "series: List should have at least 1 item"),
    Case("empty-values", "values", "empty `values`", one(values=[]), 422, "values: List should have at least 1 item"),
    Case("one-value", "values", "one value", one(values=[1.0]), 422, "has 1 value; this model needs at least 48"),
    Case("constant", "values", "a constant series", one(values=[5.0] * 168), 200, ""),
    Case("near-1e308", "values", "values near 1e308", one(values=[1e308] * 168), 422, "rescale the series"),
    Case(
        "million-points",
        "limits",
        "a million points in one series",
        one(values=[1.0] * 1_000_000),
        413,
        "GATECAST_MAX_POINTS_PER_SERIES",
    ),
    Case(
        "ten-thousand-series",
        "limits",
        "ten thousand series",
        req(series=[{"id": str(i), "values": GOOD[:48]} for i in range(10_000)]),
        200,
        "",
    ),
    Case(
        "too-many-series",
        "limits",
        "10,001 series",
        req(series=[{"id": str(i), "values": [1.0]} for i in range(10_001)]),
        413,
        "GATECAST_MAX_SERIES_PER_REQUEST",
    ),
    Case(
        "duplicate-ids",
        "values",
        "duplicate ids",
        req(series=[{"id": "a", "values": GOOD}, {"id": "a", "values": GOOD}]),
        422,
        "appears more than once",
    ),
    Case("horizon-0", "horizon and levels", "horizon 0", req(horizon=0), 422, "forecasts 1 to 24 steps"),
    Case("horizon-negative", "horizon and levels", "horizon -3", req(horizon=-3), 422, "forecasts 1 to 24 steps"),
    Case(
        "horizon-float",
        "horizon and levels",
        "horizon 2.5",
        req(horizon=2.5),
        422,
        "horizon: Input should be a valid integer",
    ),
    Case(
        "horizon-over",
        "horizon and levels",
        "horizon over the model's maximum",
        req(horizon=25),
        422,
        "forecasts 1 to 24 steps",
    ),
    Case("level-0", "horizon and levels", "level 0", req(level=[0]), 422, "strictly between 0 and 100"),
    Case("level-100", "horizon and levels", "level 100", req(level=[100]), 422, "strictly between 0 and 100"),
    Case("level-negative", "horizon and levels", "level -80", req(level=[-80]), 422, "strictly between 0 and 100"),
    Case("level-duplicate", "horizon and levels", "level [80, 80]", req(level=[80, 80]), 422, "repeats a value"),
    Case("unknown-model", "routes", "unknown model", req(model="nope"), 404, "is not loaded; loaded models"),
    Case("unknown-version", "routes", "unknown version", req(model="etth1-lstm@9"), 404, "has no version '9'"),
    Case("malformed-json", "encoding", "malformed JSON", b'{"series": [', 400, "not valid JSON"),
    Case(
        "wrong-content-type",
        "encoding",
        "wrong content type",
        b"hello",
        415,
        "send application/json or text/csv",
        {"content-type": "text/plain"},
    ),
    Case(
        "timestamps-length",
        "time",
        "timestamps and values of different lengths",
        one(timestamps=["2024-01-01T00:00:00"] * 3),
        422,
        "give one timestamp per value",
    ),
    Case(
        "timestamps-unsorted",
        "time",
        "unsorted timestamps",
        one(values=GOOD[:3] * 20, timestamps=[f"2024-01-{d:02d}T00:00:00" for d in [2, 1, *range(3, 31)]] * 2),
        422,
        "strictly ascending",
    ),
    Case(
        "timestamps-duplicate",
        "time",
        "duplicate timestamps",
        one(values=GOOD[:60], timestamps=["2024-01-01T00:00:00"] * 60),
        422,
        "strictly ascending",
    ),
    Case(
        "unknown-freq",
        "time",
        "an unknown frequency",
        one(start="2024-01-01T00:00:00", freq="fortnightly"),
        422,
        "not a pandas offset alias",
    ),
    Case("deep-nesting", "encoding", "deeply nested JSON", b"[" * 100_000 + b"]" * 100_000, 400, "not valid JSON"),
    Case(
        "gzip-bomb",
        "encoding",
        "a gzip body that expands to 50 MB: inflation stops at the body limit",
        gzip.compress(b"[" * 50_000_000),
        413,
        "inflates to more than",
        {"content-type": "application/json", "content-encoding": "gzip"},
    ),
    Case(
        "body-too-large",
        "limits",
        "a body over 16 MiB",
        b"[" + b"1.0," * 4_500_000 + b"1.0]",
        413,
        "GATECAST_MAX_BODY_BYTES",
    ),
    Case(
        "csv-gap",
        "time",
        "CSV with a gap in the timestamps",
        b"unique_id,ds,y\na,2024-01-01 00:00,1\na,2024-01-01 01:00,2\na,2024-01-01 03:00,3\n",
        422,
        "timestamps have gaps",
        CSV,
    ),
    Case(
        "csv-missing-column",
        "encoding",
        "CSV without the y column",
        b"unique_id,ds\na,2024-01-01\n",
        422,
        "columns ['y'] are missing",
        CSV,
    ),
]

# --- time that pandas cannot hold (was a 500 on JSON bodies) ---------------------------------------------
RANGE = "between 1677-09-22 and 2262-04-11"
CASES += [
    Case("start-1600", "time", "`start` before 1677", one(start="1600-01-01T00:00:00"), 422, RANGE),
    Case("start-near-2262", "time", "forecast steps past 2262", one(start="2262-04-08T00:00:00", freq="h"), 422, RANGE),
    Case("start-year-9999", "time", "`start` in 9999", one(start="9999-01-01T00:00:00", freq="D"), 422, RANGE),
    Case(
        "timestamps-1600", "time", "timestamps before 1677", one(timestamps=stamps("1600-01-01T00:00:00")), 422, RANGE
    ),
    Case(
        "timestamps-mixed-tz",
        "time",
        "time-zone-aware and naive timestamps mixed",
        one(timestamps=[t + ("Z" if i % 2 else "") for i, t in enumerate(stamps("2024-01-01T00:00:00"))]),
        422,
        "one time zone",
    ),
    Case(
        "timestamps-skip-a-step",
        "time",
        "timestamps that skip an hour",
        one(timestamps=stamps("2024-01-01T00:00:00", 169)[:100] + stamps("2024-01-01T00:00:00", 169)[101:]),
        422,
        "send consecutive values",
    ),
    Case("freq-zero", "time", "freq 0h", one(start="2024-01-01T00:00:00", freq="0h"), 422, "does not step forward"),
    Case(
        "freq-negative", "time", "freq -1h", one(start="2024-01-01T00:00:00", freq="-1h"), 422, "does not step forward"
    ),
    Case(
        "freq-absurd",
        "time",
        "freq of 100 million days",
        one(start="2024-01-01T00:00:00", freq="100000000D"),
        422,
        RANGE,
    ),
    Case("csv-ds-1600", "time", "CSV timestamps before 1677", csv_rows(["a"], "1600-01-01T00:00:00"), 422, RANGE, CSV),
    Case(
        "csv-mixed-tz",
        "time",
        "CSV timestamps in two time zones",
        b"unique_id,ds,y\n"
        + b"".join(b"a,2024-01-01T%02d:00:00%s,1\n" % (i, b"+01:00" if i % 2 else b"") for i in range(60)),
        422,
        "time zone",
        CSV,
    ),
]

# --- the CSV route: the same checks as JSON, reached through the long format ------------------------------
CASES += [
    Case(
        "csv-too-short",
        "values",
        "CSV series shorter than the window",
        csv_rows(["a"], n=10),
        422,
        "needs at least 48",
        CSV,
        path="/forecast?model=etth1-lstm",  # the default, the base model, reads any series from 8 values
    ),
    Case("csv-na-y", "values", "CSV with y = NA", csv_rows(["a"], y="NA"), 422, "finite number", CSV),
    Case(
        "csv-empty-id", "values", "CSV with an empty unique_id", csv_rows([""]), 422, "unique_id: row 0 is empty", CSV
    ),
    Case(
        "csv-unknown-model",
        "routes",
        "CSV for an unknown model",
        csv_rows(["a"]),
        404,
        "is not loaded",
        CSV,
        "/forecast?model=nope",
    ),
    Case(
        "csv-horizon-over",
        "horizon and levels",
        "CSV h over the maximum",
        csv_rows(["a"]),
        422,
        "1 to 24",
        CSV,
        "/forecast?model=etth1-lstm&h=99",
    ),
    Case(
        "csv-level-100",
        "horizon and levels",
        "CSV level 100",
        csv_rows(["a"]),
        422,
        "between 0 and 100",
        CSV,
        "/forecast?model=etth1-lstm&level=100",
    ),
    Case(
        "csv-h-text",
        "horizon and levels",
        "CSV h that is not a number",
        csv_rows(["a"]),
        422,
        "could not be read",
        CSV,
        "/forecast?h=ten",
    ),
]

# --- the Open Inference Protocol route: strict decoding, the same limits and window rules -----------------
CASES += [
    Case("oip-malformed", "protocol", "malformed JSON", b'{"inputs": [', 400, "not valid JSON", JSON, INFER),
    Case(
        "oip-deep-nesting",
        "protocol",
        "deeply nested data",
        infer([tensor([1, 1], [[[[[[[[[[[[1.0]]]]]]]]]]]] * 1)]).replace(b"[1.0]", b"[" * 3000 + b"1.0" + b"]" * 3000),
        400,
        "not valid JSON",
        JSON,
        INFER,
    ),
    Case("oip-no-inputs", "protocol", "no inputs", infer([]), 422, "inputs", JSON, INFER),
    Case(
        "oip-unknown-field",
        "protocol",
        "an unknown field",
        infer([tensor([1, 168], GOOD)], priority_level=1),
        422,
        "Extra inputs are not permitted",
        JSON,
        INFER,
    ),
    Case(
        "oip-parameters-list",
        "protocol",
        "`parameters` that is a list",
        infer([tensor([1, 168], GOOD)], parameters=[1]),
        422,
        "parameters",
        JSON,
        INFER,
    ),
    Case(
        "oip-input-parameters-text",
        "protocol",
        "input `parameters` that is a string",
        infer([tensor([1, 168], GOOD, parameters="x")]),
        422,
        "parameters",
        JSON,
        INFER,
    ),
    Case(
        "oip-unknown-parameter",
        "protocol",
        "a parameter gatecast does not read",
        infer([tensor([1, 168], GOOD)], parameters={"priority": 1}),
        422,
        "not supported",
        JSON,
        INFER,
    ),
    Case(
        "oip-wrong-input",
        "protocol",
        "an input with another name",
        infer([{**tensor([1, 168], GOOD), "name": "x"}]),
        422,
        "takes exactly the inputs ['values']",
        JSON,
        INFER,
    ),
    Case(
        "oip-two-inputs",
        "protocol",
        "two inputs",
        infer([tensor([1, 168], GOOD), tensor([1, 168], GOOD)]),
        422,
        "each once",
        JSON,
        INFER,
    ),
    Case("oip-3d", "protocol", "a 3-D tensor", infer([tensor([1, 1, 168], [GOOD])]), 422, "[batch, time]", JSON, INFER),
    Case(
        "oip-bytes",
        "protocol",
        "datatype BYTES",
        infer([tensor([1, 2], ["a", "b"], "BYTES")]),
        422,
        "datatype 'BYTES'",
        JSON,
        INFER,
    ),
    Case(
        "oip-shape-mismatch",
        "protocol",
        "data that does not fill the shape",
        infer([tensor([2, 168], GOOD)]),
        422,
        "needs 336 numbers",
        JSON,
        INFER,
    ),
    Case(
        "oip-ragged",
        "protocol",
        "ragged nested data",
        infer([tensor([2, 3], [[1, 2, 3], [4, 5]])]),
        422,
        "flat or nested list",
        JSON,
        INFER,
    ),
    Case(
        "oip-strings",
        "protocol",
        "strings as data",
        infer([tensor([1, 2], ["1", "2"])]),
        422,
        "numbers only",
        JSON,
        INFER,
    ),
    Case(
        "oip-int32-overflow",
        "protocol",
        "an INT32 beyond 2**31",
        infer([tensor([1, 168], [2**40] * 168, "INT32")]),
        422,
        "INT32 holds whole numbers",
        JSON,
        INFER,
    ),
    Case(
        "oip-int64-overflow",
        "protocol",
        "an integer beyond 64 bits",
        infer([tensor([1, 168], [2**70] * 168, "INT64")]),
        422,
        "numbers only",
        JSON,
        INFER,
    ),
    Case(
        "oip-beyond-fp32",
        "protocol",
        "a number beyond float32",
        infer([tensor([1, 168], [1e39] * 168)]),
        422,
        "exceeds FP32's range",
        JSON,
        INFER,
    ),
    Case(
        "oip-beyond-float",
        "protocol",
        "a number beyond float range (1e400)",
        infer([tensor([1, 168], GOOD)]).replace(b"[20.0,", b"[1e400,", 1),
        422,
        "NaN or Infinity",
        JSON,
        INFER,
    ),
    Case(
        "oip-too-short",
        "values",
        "fewer steps than the minimum window",
        infer([tensor([1, 5], [1.0] * 5)]),
        422,
        "needs at least 48",
        JSON,
        INFER,
    ),
    Case(
        "oip-empty-batch",
        "values",
        "a batch of zero series",
        infer([tensor([0, 168], [])]),
        422,
        "no series",
        JSON,
        INFER,
    ),
    Case(
        "oip-near-1e308",
        "values",
        "values near float32's maximum",
        infer([tensor([1, 168], [3e38] * 168)]),
        422,
        "rescale the series",
        JSON,
        INFER,
    ),
    Case(
        "oip-unknown-model",
        "routes",
        "an unknown model",
        infer([tensor([1, 168], GOOD)]),
        404,
        "is not loaded",
        JSON,
        "/v2/models/nope/infer",
    ),
    Case(
        "oip-unknown-output",
        "protocol",
        "an unknown output",
        infer([tensor([1, 168], GOOD)], outputs=[{"name": "x"}]),
        422,
        "output 'x' is unknown",
        JSON,
        INFER,
    ),
    binary_case("oip-binary-ok", "binary tensors, FP32", WINDOW, 200, ""),
    binary_case("oip-binary-nan", "NaN in binary data", np.full((1, 168), np.nan, np.float32), 422, "NaN or Infinity"),
    binary_case("oip-binary-size-float", "binary_data_size 1e400", WINDOW, 422, "whole number of bytes", size=1e400),
    binary_case("oip-binary-size-negative", "binary_data_size -4", WINDOW, 422, "whole number of bytes", size=-4),
    binary_case(
        "oip-binary-size-wrong",
        "binary_data_size that disagrees with the bytes sent",
        WINDOW,
        422,
        "follow the header",
        size=100,
    ),
    binary_case(
        "oip-binary-long",
        "one series of 2,000,000 points (8 MB)",
        np.zeros((1, 2_000_000), np.float32),
        413,
        "GATECAST_MAX_POINTS_PER_SERIES",
    ),
    binary_case(
        "oip-binary-many", "10,001 series", np.zeros((10_001, 48), np.float32), 413, "GATECAST_MAX_SERIES_PER_REQUEST"
    ),
    binary_case(
        "oip-binary-fp16-inf",
        "FP16 infinity",
        np.full((1, 168), np.inf, np.float16),
        422,
        "NaN or Infinity",
        datatype="FP16",
    ),
    Case(
        "oip-header-length-text",
        "protocol",
        "Inference-Header-Content-Length that is not a number",
        infer([tensor([1, 168], GOOD)]),
        400,
        "length in bytes",
        {"inference-header-content-length": "abc"},
        INFER,
    ),
    Case(
        "oip-header-length-over",
        "protocol",
        "Inference-Header-Content-Length beyond the body",
        infer([tensor([1, 168], GOOD)]),
        400,
        "does not fit",
        {"inference-header-content-length": "99999999"},
        INFER,
    ),
]

# --- routes and methods that do not exist: the documented error shape, never {"detail": ...} ---------------
CASES += [
    Case(
        "route-unknown", "routes", "a route that does not exist", b"{}", 404, "no route POST /predict", JSON, "/predict"
    ),
    Case("route-method", "routes", "GET on a POST route", b"", 405, "does not answer GET", JSON, "/forecast", "GET"),
    Case(
        "oip-route-unknown",
        "routes",
        "an OIP route gatecast does not serve",
        b"",
        404,
        "no route GET",
        JSON,
        "/v2/models/etth1-lstm/trace/setting",
        "GET",
    ),
    Case(
        "oip-route-method",
        "routes",
        "DELETE on the infer route",
        b"",
        405,
        "does not answer DELETE",
        JSON,
        INFER,
        "DELETE",
    ),
]

# --- training jobs: a config the server cannot read is refused before any job exists ------------------------
TOML = {"content-type": "application/toml"}
CASES += [
    Case("jobs-toml", "training", "a config that is not TOML", b"name = [", 422, "not valid TOML", TOML, "/jobs"),
    Case(
        "jobs-no-name", "training", "a config without a name", b'dataset = "a.csv"', 422, "sets no name", TOML, "/jobs"
    ),
    Case(
        "jobs-name-escape",
        "training",
        "a model name that leaves the repository",
        b'name = "../up"\ndataset = "a.csv"',
        422,
        "is not valid",
        TOML,
        "/jobs",
    ),
    Case("jobs-no-data", "training", "a config with no data", b'name = "x"', 422, "no data", TOML, "/jobs"),
    Case("jobs-json", "training", "a JSON body", b"{}", 415, "multipart/form-data", JSON, "/jobs"),
    Case("jobs-unknown", "training", "a job that does not exist", b"", 404, "GET /jobs", JSON, "/jobs/train-x", "GET"),
]
