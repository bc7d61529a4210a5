"""The cost table: requests whose bytes say little about the work they cause, one class of issue 32 each, on
every route and protocol that can meet it, with the status and message expected. A job's cost (model windows,
time steps, memory) is computed from counts before anything is built for it (app.cost, app.forecasting), so
each of these is answered without the work it asks for: test_cost.py checks the answers in-process and that
refusing the largest ones allocates next to nothing; test_memory_limit.py fires the admitted worst cases at a
live server inside a memory limit. Model etth1-lstm: window 168, minimum 48, horizon 24.
"""

from __future__ import annotations

import gzip

import numpy as np
import zstandard

from harness.bad_inputs import JSON, Case, js

MODEL = "etth1-lstm"
BIG = 10**9  # a count that no history fits and no server could expand


def values(n: int, seed: int = 0) -> list[float]:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return (20 + 3 * np.sin(2 * np.pi * t / 24) + rng.normal(0, 0.3, n).cumsum() * 0.05).round(3).tolist()


LONG = values(10_100)


def series(n: int = 168, **extra: object) -> dict[str, object]:
    return {"id": "a", "values": values(n), **extra}


def body(**payload: object) -> bytes:
    return js({"model": MODEL, **payload})


def timegpt(n: int = 300, ids: int = 1, **options: object) -> bytes:
    """A body as the nixtla client sends it (columnar series, sizes per id)."""
    return js(
        {
            "model": MODEL,
            "freq": "h",
            "series": {"sizes": [n] * ids, "y": values(n * ids)},
            **options,
        }
    )


COVARIATE_NAMES = ("OPEN", "HIGH", "LOW")  # vix-gru-cov's, with the calendar


def one_short(n: int = 300) -> dict[str, object]:
    """A series for vix-gru-cov whose first covariate has one value fewer than the series."""
    covariates = {name: values(n, i) for i, name in enumerate(COVARIATE_NAMES)}
    covariates["OPEN"] = covariates["OPEN"][:-1]
    return series(n, covariates=covariates, start="2024-01-01T00:00:00", freq="B")


def gzip_members(payload: bytes) -> bytes:
    half = len(payload) // 2
    return gzip.compress(payload[:half]) + gzip.compress(payload[half:])


FORECAST = body(series=[series()])
TINY = "tiny request, huge window count"
COPIED = "work per window"
COVARIATES = "covariates"
BODIES = "bodies"
STREAMS = "streams and time"

CASES = [
    # A count of windows no history can fit: refused from the numbers, before a window list exists.
    Case(
        "cv-billion-windows",
        TINY,
        "n_windows 1e9",
        body(series=[series(300)], n_windows=BIG),
        422,
        "need ",
        path="/cross_validation",
    ),
    Case(
        "cv-billion-step",
        TINY,
        "step_size 1e9",
        body(series=[series(300)], n_windows=2, step_size=BIG),
        422,
        "send a longer history or ask for fewer windows",
        path="/cross_validation",
    ),
    Case(
        "cv-over-window-limit",
        TINY,
        "10,001 windows that fit the history",
        body(series=[{"id": "a", "values": LONG}], n_windows=10_001, step_size=1, h=1),
        413,
        "GATECAST_MAX_WINDOWS_PER_REQUEST",
        path="/cross_validation",
    ),
    Case(
        "anomalies-billion",
        TINY,
        "detection_size 1e9",
        body(series=[series(300)], detection_size=BIG),
        422,
        "score fewer",
        path="/anomalies",
    ),
    Case(
        "anomalies-over-window-limit",
        TINY,
        "10,052 values scored, each its own window",
        body(series=[{"id": "a", "values": LONG}], detection_size=10_052),
        413,
        "GATECAST_MAX_WINDOWS_PER_REQUEST",
        path="/anomalies",
    ),
    Case(
        "timegpt-cv-billion",
        TINY,
        "n_windows 1e9 (TimeGPT)",
        timegpt(h=24, n_windows=BIG),
        422,
        "need ",
        path="/v2/cross_validation",
    ),
    Case(
        "timegpt-online-billion",
        TINY,
        "detection_size 1e9 (TimeGPT)",
        timegpt(h=24, level=[99], detection_size=BIG),
        422,
        "score fewer",
        path="/v2/online_anomaly_detection",
    ),
    Case(
        "calibration-over-window-limit",
        TINY,
        'calibration "history" on 12 series of 1,100 values (12 x 1,024 past forecasts)',
        body(series=[{"id": str(i), "values": values(1100, i)} for i in range(12)], level=[80], calibration="history"),
        413,
        "GATECAST_MAX_WINDOWS_PER_REQUEST",
    ),
    # Admitted at the limit: the windows are views of the series, so these are answered (memory: test_cost).
    Case(
        "cv-at-window-limit",
        COPIED,
        "10,000 one-step windows of a 10,100-value series",
        body(series=[{"id": "a", "values": LONG}], n_windows=10_000, step_size=1, h=1),
        200,
        "",
        path="/cross_validation",
    ),
    Case(
        "anomalies-at-window-limit",
        COPIED,
        "10,000 values scored",
        body(series=[{"id": "a", "values": LONG}], detection_size=10_000),
        200,
        "",
        path="/anomalies",
    ),
    Case(
        "calibration-at-window-limit",
        COPIED,
        'calibration "history" on 9 series of 1,100 values',
        body(series=[{"id": str(i), "values": values(1100, i)} for i in range(9)], level=[80], calibration="history"),
        200,
        "",
    ),
    # One rule for covariates beside the values, on every route; names echoed truncated.
    Case(
        "cv-covariate-one-short",
        COVARIATES,
        "a covariate one value shorter than its series (cross-validation)",
        js({"model": "vix-gru-cov", "series": [one_short()], "n_windows": 2}),
        422,
        "send one covariate value per value",
        path="/cross_validation",
    ),
    Case(
        "anomalies-covariate-one-short",
        COVARIATES,
        "a covariate one value shorter than its series (anomalies)",
        js({"model": "vix-gru-cov", "series": [one_short()]}),
        422,
        "send one covariate value per value",
        path="/anomalies",
    ),
    Case(
        "forecast-covariate-one-short",
        COVARIATES,
        "a covariate one value shorter than its series (forecast)",
        js({"model": "vix-gru-cov", "series": [one_short()]}),
        422,
        "send one covariate value per value",
    ),
    Case(
        "huge-covariate-name",
        COVARIATES,
        "a 5,000-character unknown covariate name",
        body(series=[series(covariates={"x" * 5000: values(168)})]),
        422,
        "chars)",
    ),
    # Bodies: every encoding undone whole, nothing after it ignored.
    Case(
        "gzip-two-members",
        BODIES,
        "a gzip body of two members",
        gzip_members(FORECAST),
        200,
        "",
        headers={**JSON, "content-encoding": "gzip"},
    ),
    Case(
        "gzip-trailing-garbage",
        BODIES,
        "bytes after the gzip member",
        gzip.compress(FORECAST) + b"garbage",
        400,
        "bytes after its last member",
        headers={**JSON, "content-encoding": "gzip"},
    ),
    Case(
        "zstd-trailing-garbage",
        BODIES,
        "bytes after the zstd frame",
        zstandard.ZstdCompressor().compress(FORECAST) + b"garbage",
        400,
        "not valid zstd",
        headers={**JSON, "content-encoding": "zstd"},
    ),
    Case(
        "stacked-encodings",
        BODIES,
        "gzip, then zstd",
        zstandard.ZstdCompressor().compress(gzip.compress(FORECAST)),
        200,
        "",
        headers={**JSON, "content-encoding": "gzip, zstd"},
    ),
    Case(
        "stacked-unknown",
        BODIES,
        "gzip, then br",
        gzip.compress(FORECAST),
        415,
        "Content-Encoding 'br' is not read here",
        headers={**JSON, "content-encoding": "gzip, br"},
    ),
    Case(
        "two-credentials",
        BODIES,
        "an Authorization and an X-API-Key header",
        FORECAST,
        400,
        "send exactly one",
        headers={**JSON, "authorization": "Bearer a", "x-api-key": "b"},
    ),
    # Streams: ids and time axes refused where they are set.
    Case(
        "stream-id-newline",
        STREAMS,
        "a stream id ending in a newline",
        js({}),
        422,
        "stream id",
        path="/streams/a%0A",
        method="PUT",
    ),
    Case(
        "stream-absurd-freq",
        STREAMS,
        "a frequency of 10^8 days",
        js({"model": MODEL, "freq": "100000000D"}),
        422,
        "cannot be placed",
        path="/streams/absurd",
        method="PUT",
    ),
    Case(
        "stream-start-at-the-end-of-time",
        STREAMS,
        "a start no reading can follow",
        js({"model": MODEL, "start": "2262-04-11T23:00:00"}),
        422,
        "2262-04-11",
        path="/streams/late",
        method="PUT",
    ),
]
