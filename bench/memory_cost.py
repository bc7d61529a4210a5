"""Measures what the memory admission (app/admission.py) estimates: peak resident memory per decoded JSON value,
per JSON object, per CSV row, per binary byte, and per answered value and timestamp, each case in a fresh
process (the peak of its resident set, less the same process's peak just before). Prints each measurement
beside the constant the server uses, and onnxruntime's time per series and kept memory by batch size; writes
docs/benchmarks/memory_cost.json and docs/benchmarks/memory.md.

  python -m bench.memory_cost        (make bench-memory)

A constant at or above every measurement means the admission over-estimates, which is the safe side.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from harness import machine

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "benchmarks" / "memory_cost.json"
PAGE = ROOT / "docs" / "benchmarks" / "memory.md"


def _peak_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _json_body(series: int, values: int, token: str) -> bytes:
    one = "[" + ",".join([token] * values) + "]"
    items = ",".join(f'{{"id":"s{i}","values":{one}}}' for i in range(series))
    return f'{{"series":[{items}]}}'.encode()


def _csv_body(series: int, rows: int) -> bytes:
    import pandas as pd

    stamps = pd.date_range("2024-01-01", periods=rows, freq="h")
    frames = [pd.DataFrame({"unique_id": f"sensor-{i}", "ds": stamps, "y": 20.25}) for i in range(series)]
    return pd.concat(frames).to_csv(index=False).encode()


def _result(series: int, horizon: int, levels: int, stamps: bool):  # type: ignore[no-untyped-def]
    import numpy as np
    import pandas as pd

    from app.forecast_jobs import ForecastResult

    rng = np.random.default_rng(0)
    mean = rng.normal(size=(series, horizon)) * 10 + 20
    future = pd.date_range("2024-01-01", periods=horizon, freq="h") if stamps else None
    return ForecastResult(
        "m",
        "1",
        horizon,
        [float(10 + 10 * i) for i in range(levels)],
        [f"s{i}" for i in range(series)],
        mean,
        np.ones(series),
        {float(10 + 10 * i): (mean - 1.0, mean + 1.0) for i in range(levels)},
        [future] * series,
    )


def _in_thread(work):  # type: ignore[no-untyped-def]
    """As the server decodes large bodies: in a worker thread (its own malloc arena)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(work).result()


def case(name: str, body_file: str) -> dict[str, float]:
    """Run one case in this process on a body read from a file (so no freed heap from building it is reused);
    returns its units and the peak growth in bytes."""

    from app.protocols.oip import codec as oip
    from app.protocols.rest.forecast import decode_csv, decode_json, render_csv, render_json

    if name.startswith("request"):
        return _whole_request(Path(body_file))
    body = Path(body_file).read_bytes() if body_file else b""
    if name.startswith("json"):
        series, values, _ = JSON_CASES[name]
        before = _peak_bytes()
        decoded = _in_thread(lambda: decode_json(body))
        return {"values": series * values, "objects": series + 1, "body": len(body), "peak": _peak_bytes() - before}
    if name == "csv":
        before = _peak_bytes()
        decoded = _in_thread(lambda: decode_csv(body, None, None, []))
        return {"rows": body.count(b"\n") - 1, "body": len(body), "peak": _peak_bytes() - before}
    if name == "binary":
        head_length = int.from_bytes(body[:4], "little")
        body = body[4:]
        before = _peak_bytes()
        request, blobs = oip.decode(body, str(head_length))
        decoded = oip.input_array(request.inputs[0], blobs)
        rows = [row for row in decoded]  # the route's per-series views
        return {"body": len(body), "peak": _peak_bytes() - before, "rows": len(rows)}
    series, horizon, levels, stamps, kind = {
        "answer-json": (20_000, 24, 3, False, "json"),
        "answer-json-stamps": (20_000, 24, 0, True, "json"),
        "answer-csv": (20_000, 24, 3, True, "csv"),
    }[name]
    result = _result(series, horizon, levels, stamps)
    before = _peak_bytes()
    content = render_json(result) if kind == "json" else render_csv(result).encode()
    return {
        "values": series * horizon * (1 + 2 * levels),
        "stamps": series * horizon if stamps else 0,
        "body": len(content),
        "peak": _peak_bytes() - before,
    }


def _whole_request(body_file: Path) -> dict[str, float]:
    """A /forecast JSON request as the server runs it, models loaded and warmed: read the body, decode it in a
    thread, forecast, render. Returns the peak growth and what the admission charges for the same request."""
    import asyncio

    from app import admission, forecasting
    from app.main import create_app
    from app.protocols.rest.forecast import decode_json, render_json
    from app.settings import Settings

    async def run() -> dict[str, float]:
        app = create_app(Settings(model_repository=ROOT / "models", memory_budget_mb=100_000, log_level="warning"))
        async with app.router.lifespan_context(app):
            before = _peak_bytes()
            body = body_file.read_bytes()
            ticket = app.state.memory_budget.ticket()
            ticket.charge(admission.REQUEST_BYTES + admission.BODY_COPIES * len(body), "body")
            ticket.charge(admission.decode_cost(body, "application/json"), "decode")
            admission.current_ticket.set(ticket)
            model, job = await asyncio.to_thread(decode_json, body)
            result = await forecasting.forecast(app.state.repository.resolve(model), job)
            content = render_json(result)
            peak = _peak_bytes() - before
            return {"body": len(body), "answer": len(content), "peak": peak, "charged": ticket.held}

    return asyncio.run(run())


REQUEST_CASES = {  # (series, values per series): the 9.5 MB body, and one at the 16 MiB body limit
    "request-9500x168": (9_500, 168),
    "request-10000x262": (10_000, 262),
}
JSON_CASES = {
    "json-long-series": (40, 20_000, "20.25"),
    "json-short-tokens": (40, 20_000, "1"),
    "json-tiny-series": (100_000, 2, "20.25"),
}
CASES = [*JSON_CASES, "csv", "binary", "answer-json", "answer-json-stamps", "answer-csv", *REQUEST_CASES]


def _body(name: str) -> bytes:
    import numpy as np

    if name in JSON_CASES:
        return _json_body(*JSON_CASES[name])
    if name in REQUEST_CASES:
        series, values = REQUEST_CASES[name]
        return _json_body(series, values, "20.25").replace(b'{"series"', b'{"model":"etth1-lstm","series"', 1)
    if name == "csv":
        return _csv_body(100, 2_000)
    if name == "binary":
        n = 2_000_000
        spec = {"name": "values", "shape": [4, n // 4], "datatype": "FP32", "parameters": {"binary_data_size": 4 * n}}
        head = json.dumps({"inputs": [spec]}).encode()
        return len(head).to_bytes(4, "little") + head + np.zeros(n, np.float32).tobytes()
    return b""


BATCHES = (1, 8, 32, 64, 128, 256)


def batch_curve(model: str) -> list[dict[str, float]]:
    """One onnxruntime session (one thread, as a worker per core runs it): median milliseconds per series and
    the resident memory the session keeps after its first run at each batch size (its memory arena)."""
    import time

    import numpy as np
    import onnxruntime as ort

    from contract.card import ModelCard
    from contract.windows import probe_batch

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(str(ROOT / "models" / model / "1" / "model.onnx"), options)
    card = ModelCard.from_props(dict(session.get_modelmeta().custom_metadata_map))
    rows = []
    for batch in BATCHES:
        x = probe_batch(batch, card.trained_window)
        before = _resident_bytes()
        session.run(None, {"values": x})
        grown = _resident_bytes() - before
        times = []
        for _ in range(max(5, 1000 // batch)):
            started = time.perf_counter()
            session.run(None, {"values": x})
            times.append(time.perf_counter() - started)
        rows.append({"batch": batch, "ms_per_series": float(np.median(times)) * 1e3 / batch, "arena_growth": grown})
    return rows


def _resident_bytes() -> int:
    import os

    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def run_curve(model: str) -> list[dict[str, float]]:
    code = f"import json, bench.memory_cost as m; print(json.dumps(m.batch_curve({model!r})))"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def run_case(name: str, work: Path) -> dict[str, float]:
    body_file = work / f"{name}.body"
    body_file.write_bytes(_body(name))
    code = f"import json, bench.memory_cost as m; print(json.dumps(m.case({name!r}, {str(body_file)!r})))"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    from app import admission as A

    with tempfile.TemporaryDirectory() as work:
        measured = {name: run_case(name, Path(work)) for name in CASES}
    per_value = max(measured[n]["peak"] / measured[n]["values"] for n in ("json-long-series", "json-short-tokens"))
    tiny = measured["json-tiny-series"]
    per_object = (tiny["peak"] - per_value * tiny["values"]) / tiny["objects"]
    per_row = measured["csv"]["peak"] / measured["csv"]["rows"]
    binary = measured["binary"]["peak"] / measured["binary"]["body"]
    answer_value = max(measured[n]["peak"] / measured[n]["values"] for n in ("answer-json", "answer-csv"))
    plain = measured["answer-json"]["peak"] / measured["answer-json"]["values"]
    stamped = measured["answer-json-stamps"]
    answer_stamp = (stamped["peak"] - plain * stamped["values"]) / stamped["stamps"]
    rows = [
        ("decoded JSON value", per_value, A.JSON_VALUE_BYTES),
        ("decoded JSON object (series)", per_object, A.JSON_OBJECT_BYTES),
        ("decoded CSV row", per_row, A.CSV_ROW_BYTES),
        ("binary tensor body byte", binary, A.BINARY_BYTE_COST),
        ("answered value (JSON or CSV)", answer_value, A.ANSWER_VALUE_BYTES),
        ("answered timestamp", answer_stamp, A.ANSWER_STAMP_BYTES),
    ]
    print(f"{'what':32} {'measured bytes':>15} {'admission uses':>15} {'ratio':>7}")
    for what, got, used in rows:
        print(f"{what:32} {got:15.1f} {used:15.1f} {used / got:7.2f}")
    whole = []
    print(f"\n{'whole request (etth1-lstm)':32} {'body MiB':>9} {'peak MiB':>9} {'charged MiB':>12} {'ratio':>7}")
    for name in REQUEST_CASES:
        m = measured[name]
        whole.append({"case": name, **m, "ratio": round(m["charged"] / m["peak"], 2)})
        print(
            f"{name:32} {m['body'] / 2**20:9.1f} {m['peak'] / 2**20:9.1f} {m['charged'] / 2**20:12.1f} "
            f"{m['charged'] / m['peak']:7.2f}"
        )
    curves = {model: run_curve(model) for model in ("etth1-lstm", "etth1-gru", "m4-hourly-gru", "vix-gru")}
    print(f"\n{'onnxruntime run':16}" + "".join(f"{'b=' + str(b):>16}" for b in BATCHES))
    for model, curve in curves.items():
        print(
            f"{model:16}"
            + "".join(f"{r['ms_per_series']:7.3f} ms {r['arena_growth'] / 2**20:+4.0f} MiB" for r in curve)
        )
    OUT.write_text(
        json.dumps(
            {
                "machine": machine.describe(),
                "cases": measured,
                "per_unit": [{"what": w, "measured": round(g, 1), "admission": u} for w, g, u in rows],
                "whole_requests": whole,
                "batch_curves": curves,
            },
            indent=2,
        )
        + "\n"
    )
    render(json.loads(OUT.read_text()))
    print(f"-> {OUT}, {PAGE}")


def render(measured: dict[str, Any]) -> None:
    """docs/benchmarks/memory.md from the JSON this script wrote."""
    lines = [
        "# Memory: what a request costs, and what onnxruntime keeps",
        "",
        f"Generated by `python -m bench.memory_cost` (`make bench-memory`) on {machine.named(measured['machine'])}. "
        "Each figure is "
        "the growth of a fresh process's peak resident memory; the server's memory admission (app/admission.py) "
        "charges the right-hand column.",
        "",
        "| per | measured bytes | charged bytes | charged / measured |",
        "|---|---|---|---|",
        *[
            f"| {u['what']} | {u['measured']:.1f} | {u['admission']:g} | {u['admission'] / u['measured']:.2f} |"
            for u in measured["per_unit"]
        ],
        "",
        "Whole `/forecast` requests (`etth1-lstm`), as the server runs them (models loaded and warmed, the body "
        "decoded in a thread, forecast, answer rendered):",
        "",
        "| request | body MiB | peak MiB | charged MiB | charged / peak |",
        "|---|---|---|---|---|",
        *[
            f"| {w['case']} | {w['body'] / 2**20:.1f} | {w['peak'] / 2**20:.1f} | {w['charged'] / 2**20:.1f} | "
            f"{w['ratio']:.2f} |"
            for w in measured["whole_requests"]
        ],
        "",
        "## onnxruntime by batch size",
        "",
        "One session, one thread: milliseconds per series (median), and the resident memory the session kept "
        "after its first run at that batch size (its memory arena keeps what the largest run needed). This is "
        "why GATECAST_MAX_BATCH_SERIES defaults to 64 and each session is warmed up at it before a worker sizes "
        "its memory budget.",
        "",
        "| model | " + " | ".join(f"batch {b}" for b in BATCHES) + " |",
        "|---|" + "---|" * len(BATCHES),
    ]
    for model, curve in measured["batch_curves"].items():
        cells = [f"{r['ms_per_series']:.3f} ms, {r['arena_growth'] / 2**20:+.0f} MiB" for r in curve]
        lines.append(f"| `{model}` | " + " | ".join(cells) + " |")
    PAGE.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
