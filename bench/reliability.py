"""Writes docs/reliability.md from live runs, every figure measured by this script or the tests it runs:

- the bad-input table (harness/bad_inputs.py) and the cost table (harness/cost_cases.py) against a real
  `gatecast serve`, case by case, on every route;
- memory admission: the real server inside a memory cgroup, hit by concurrent bodies at the request limits;
- HTTP limits: the probes of tests/http_abuse.py against a real server;
- overload: beyond capacity, then recovery;
- faults of the model repository and the processes, and the property-based tests: run by pytest here, their
  outcomes read from its JUnit report;
- the soak, from docs/benchmarks/soak.json (bench/soak.py, 10 minutes), with the commit it was measured on.

  python -m bench.reliability    (make reliability)
"""

from __future__ import annotations

import ast
import asyncio
import collections
import json
import platform
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import httpx

from harness import cost_cases, http_abuse
from harness.bad_inputs import CASES, Case
from harness.cgroup import memory_cgroup
from harness.live import running_server
from harness.load import ONE, hammer, rss_kb, storm_body, wave

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "reliability.md"
MiB = 2**20

# Faults that need a changed folder, a signal or a killed process: (fault, what happens, pytest node id).
FAULT_TESTS = [
    (
        "every heavy job kind at once (10,000-window backtests, anomaly scoring and calibration, 10,000-series "
        "bodies on JSON, OIP binary and gRPC, 1,000-reading appends), twice each, 2 workers under 1 GiB",
        "each answered 200, or 413/422/503 saying why; no worker killed; small calls served after",
        "tests/live/test_memory_limit.py::test_two_workers_with_every_committed_model_take_every_worst_case_job_at_once"
        "_under_1_gib",
    ),
    (
        "more workers than the memory limit holds (2 workers with the committed models under 400 MiB)",
        "the start stops with the reason and how many workers fit; `gatecast serve` exits non-zero",
        "tests/live/test_memory_limit.py::test_more_workers_than_the_limit_holds_stop_the_start_and_say_how_many_fit",
    ),
    (
        "a model file rewritten in place while a request holds the old copy",
        "the request is answered by the copy that replaced it, never refused",
        "tests/app/test_registry.py::test_a_request_that_resolved_a_copy_rewritten_meanwhile_is_answered_by_the_new_one",
    ),
    (
        "the embedded stream store's file deleted while serving",
        "the writes after it, and the streams before it, are written to a new file that a restart reads",
        "tests/app/streams/test_store.py::test_a_write_after_the_file_was_deleted_is_written_to_a_file_that_survives_a"
        "_restart",
    ),
    (
        "gRPC messages that are not protobuf, 50 in a row, with and without a key; two credentials",
        "UNAUTHENTICATED before the message is read; then INVALID_ARGUMENT naming the message type; no traceback "
        "in the log; two credentials INVALID_ARGUMENT whatever their order",
        "tests/app/protocols/oip/test_grpc_server.py::test_a_message_that_is_not_protobuf_is_invalid_argument_after_the_key_and_logs_no"
        "_traceback",
    ),
    (
        "corrupt, truncated, wrong-signature or metadata-less model file",
        "refused at load with the reason (log, `/v2/health/ready` `failed`, "
        "`gatecast_model_load_failures_total`); the other models serve",
        "tests/app/test_middleware.py::test_bad_model_files_are_refused_and_the_others_keep_serving",
    ),
    (
        "a graph that breaks its card: a fixed time axis, a failure at the minimum window, rows that depend on "
        "their batch",
        "refused at load: the signature check and the warm-up over the declared window range and batch sizes",
        "tests/app/test_registry.py::test_a_graph_that_breaks_its_cards_promises_is_refused_at_load",
    ),
    (
        "a model file that takes long to read",
        "read and loaded in the loader thread; requests are answered meanwhile",
        "tests/app/test_registry.py::test_a_model_file_that_reads_slowly_never_stalls_requests",
    ),
    (
        "a model file over GATECAST_MAX_MODEL_BYTES (2 GiB sparse)",
        "refused by its size, never read",
        "tests/app/test_registry.py::test_a_file_over_the_size_limit_is_refused_without_reading_it",
    ),
    (
        "reloading to a bad file",
        "the old version keeps serving; the load call answers 422 and says why",
        "tests/app/protocols/rest/test_api.py::test_reload_swaps_to_a_new_version_and_keeps_the_old_on_a_bad_file",
    ),
    (
        "a version or a whole model deleted from the folder",
        "unloaded at the next poll (GATECAST_REPOSITORY_POLL_S) or SIGHUP",
        "tests/app/test_registry.py::test_deleted_versions_and_models_are_unloaded",
    ),
    (
        "a model deleted under 2 workers, then a worker killed and replaced",
        "every worker answers 404 for it, before and after the restart",
        "tests/app/test_registry.py::test_every_worker_drops_a_deleted_model_also_after_a_worker_restart",
    ),
    (
        "a shared onnxruntime run fails",
        "each request of the batch is retried alone: only the one the model cannot take fails (500 "
        "`inference_failed`, logged)",
        "tests/app/test_batcher.py::test_one_request_the_model_cannot_take_does_not_fail_its_batch_neighbours",
    ),
    (
        "a symlink out of the repository",
        "refused (`resolves outside the model repository`)",
        "tests/app/test_middleware.py::test_symlink_out_of_the_repository_is_refused",
    ),
    (
        "a worker killed (SIGKILL) under load, 2 workers",
        "replaced by uvicorn; no 5xx; at most the requests in flight on it fail; its live gauges are dropped",
        "tests/live/test_live_server.py::test_a_killed_worker_is_replaced_and_the_others_keep_answering",
    ),
    (
        "SIGTERM with a request in flight",
        "the request completes (200), then the process exits",
        "tests/live/test_overload.py::test_sigterm_drains_in_flight_requests",
    ),
    (
        "SIGHUP",
        "the worker re-reads the model folder; the server never dies of it",
        "tests/app/test_registry.py::test_sighup_reloads_the_repository_and_never_kills_the_server",
    ),
    (
        "a request past GATECAST_REQUEST_TIMEOUT_S",
        "503 with `Retry-After`",
        "tests/app/test_middleware.py::test_requests_past_the_time_limit_get_503_with_retry_after",
    ),
]
PROPERTY_TESTS = [
    "tests/app/test_properties.py::test_every_valid_request_gets_finite_ordered_forecasts",
    "tests/app/test_properties.py::test_no_input_makes_a_server_error",
    "tests/app/test_properties.py::test_no_inference_protocol_body_makes_a_server_error",
    "tests/app/test_properties.py::test_no_binary_tensor_body_makes_a_server_error",
    "tests/app/test_properties.py::test_schemathesis_finds_no_server_error_and_no_schema_violation",
]


def message_of(case: Case, r: httpx.Response) -> str:
    try:
        body = r.json()
    except ValueError:
        return r.text[:160]
    if r.status_code == 200:
        return "answered"
    return str(body.get("message") or body.get("detail") or body.get("error", ""))


TABLE = [*CASES, *cost_cases.CASES]  # the bad-input table, then the cost table


def cases_section(url: str) -> list[str]:
    rows, by_group = [], collections.defaultdict(lambda: [0, 0])
    matched = server_errors = 0
    with httpx.Client(base_url=url, timeout=60) as client:
        for case in TABLE:
            r = client.request(case.method, case.path, content=case.body, headers=case.headers)
            message = message_of(case, r)
            ok = r.status_code == case.status and (case.status == 200 or case.fragment in message)
            matched += ok
            server_errors += r.status_code >= 500
            group = by_group[(case.kind, case.route)]
            group[0] += 1
            group[1] += ok
            cell = message.replace("|", "\\|").replace("\n", " ")[:150]
            rows.append(
                f"| {case.what} | `{case.route}` | {case.status} | {r.status_code} | {'yes' if ok else '**no**'} "
                f"| {cell} |"
            )
            assert client.get("/v2/health/ready").status_code == 200
    summary = [f"| {kind} | `{route}` | {n} | {ok} |" for (kind, route), (n, ok) in sorted(by_group.items())]
    routes = len({case.route for case in TABLE})
    return [
        f"## Bad input and cost: {len(TABLE)} cases on {routes} routes, {matched} answered as specified, "
        f"{server_errors} server errors",
        "",
        "Each case was sent to a real server on the route it names; after each one the server was checked ready. "
        "The same tables run in CI in-process (tests/app/test_bad_inputs.py, tests/app/test_cost.py). "
        "By class and route:",
        "",
        "| class | route | cases | as specified |",
        "|---|---|---|---|",
        *summary,
        "",
        "| case | route | expected | got | as specified | message |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
    ]


def memory_section(repo: Path) -> list[str]:
    lines = [
        "## Memory admission under a real memory limit",
        "",
        "The server runs inside a memory cgroup (one worker, its memory budget derived from the cgroup's limit); "
        "clients send JSON bodies at the request limits, six at once, in waves. (tests/live/test_memory_limit.py)",
        "",
        "| limit | body | series | at once x waves | outcomes | cgroup peak | OOM kills | server alive after |",
        "|---|---|---|---|---|---|---|---|",
    ]
    scenarios = [(1024, 10_000, 262, 3), (400, 9_500, 168, 1)]
    for limit_mb, series, values, waves in scenarios:
        payload = storm_body(series, values)
        with memory_cgroup(limit_mb * MiB) as group:
            if group is None:
                return [*lines[:2], "Not run here: no writable memory cgroup (needs root and a memory controller).", ""]
            with running_server(repo, cgroup_procs=group.procs, GATECAST_LOG_LEVEL="warning") as (url, proc):
                outcomes: collections.Counter[str] = collections.Counter()
                for _ in range(waves):
                    for status, response in asyncio.run(wave(url, payload, 6)):
                        reason = response.json().get("error") if response is not None and status != 200 else None
                        outcomes[f"{status}" + (f" {reason}" if reason else "")] += 1
                alive = proc.poll() is None and httpx.get(f"{url}/v2/health/ready").status_code == 200
            shown = ", ".join(f"{n} x {k}" for k, n in sorted(outcomes.items()))
            lines.append(
                f"| {limit_mb} MiB | {len(payload) / MiB:.1f} MiB | {series} | 6 x {waves} | {shown} | "
                f"{group.peak_bytes() / MiB:.0f} MiB | {group.oom_kills()} | {'yes' if alive else '**no**'} |"
            )
    cost = ROOT / "docs" / "benchmarks" / "memory_cost.json"
    if cost.exists():
        measured = json.loads(cost.read_text())
        lines += [
            "",
            f"What the admission charges, beside what `python -m bench.memory_cost` measured ({measured['machine']}):",
            "",
            "| per | measured bytes | charged bytes |",
            "|---|---|---|",
            *[f"| {u['what']} | {u['measured']:.1f} | {u['admission']:g} |" for u in measured["per_unit"]],
            *[
                f"| whole request {w['case']} | {w['peak'] / MiB:.1f} MiB | {w['charged'] / MiB:.1f} MiB |"
                for w in measured["whole_requests"]
            ],
        ]
    return [*lines, ""]


def http_section(repo: Path) -> list[str]:
    with running_server(repo, **http_abuse.ABUSE_SETTINGS) as (url, proc):
        port = int(url.rsplit(":", 1)[1])
        outcomes = [probe(port, proc.pid) for probe in http_abuse.RAW_PROBES]
        outcomes.append(http_abuse.early_answer(url))
        serving = http_abuse.serving(url)
    rows = []
    for o in outcomes:
        got = f"{o.status}: {o.message}" if o.status else "closed without an answer"
        if "open" in o.detail:
            got = (
                f"{o.detail['open']} of {o.detail['opened']} left open (cap 20); newest kept: {o.detail['newest_open']}"
            )
        if "next_request_status" in o.detail:
            got += f"; the same connection's next request: {o.detail['next_request_status']}"
        if "sent" in o.detail:
            got += f" (the client got {int(o.detail['sent']) / MiB:.1f} MiB out before the connection closed)"  # type: ignore[call-overload]
        rows.append(f"| {o.what} | {got} | {o.seconds:.2f} s | {o.rss_growth_kb / 1024:+.1f} MiB |")
    return [
        "## HTTP limits",
        "",
        "A real server with `GATECAST_HEADER_TIMEOUT_S=1.5` and `GATECAST_MAX_IDLE_CONNECTIONS=20` (the other limits "
        "at their defaults: 16 KiB of request line and headers, 100 headers). (tests/live/test_http_limits.py)",
        "",
        "| abuse | what the client got | time to answer | server memory |",
        "|---|---|---|---|",
        *rows,
        "",
        f"Serving normal requests after all of them: {'yes' if serving else '**no**'}.",
        "",
    ]


def overload_section(repo: Path) -> list[str]:
    env = {"GATECAST_MAX_QUEUE_SERIES": "128", "GATECAST_MAX_BATCH_SERIES": "64", "GATECAST_LOG_LEVEL": "warning"}
    with running_server(repo, **env) as (url, proc):
        start_rss = rss_kb(proc.pid)
        started = time.monotonic()
        outcomes = asyncio.run(hammer(url, seconds=20, concurrency=32))
        took = time.monotonic() - started
        after = [httpx.post(f"{url}/forecast", json=ONE, timeout=5).status_code for _ in range(50)]
        end_rss = rss_kb(proc.pid)
    total = sum(outcomes.values())
    return [
        "## Overload",
        "",
        f"32 clients sending 64 series per request for {took:.0f} s to one worker with a queue of 128 series "
        f"(tests/live/test_overload.py runs the same for 15 s): {total} requests, "
        f"{outcomes.get('200', 0)} answered 200, {outcomes.get('503', 0)} shed with 503 + `Retry-After: 1`, "
        f"{total - outcomes.get('200', 0) - outcomes.get('503', 0)} other outcomes. "
        f"Right after the load: {after.count(200)} of 50 requests answered 200. "
        f"Server RSS {start_rss / 1024:.0f} MB before, {end_rss / 1024:.0f} MB after.",
        "",
    ]


def run_tests(node_ids: list[str]) -> dict[str, tuple[str, float, int]]:
    """Run pytest on `node_ids`; per id: outcome, seconds and the number of parametrised cases."""
    with tempfile.TemporaryDirectory() as work:
        report = Path(work) / "report.xml"
        subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}", *node_ids],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=1800,
        )
        results: dict[str, list[tuple[str, float]]] = collections.defaultdict(list)
        for case in ET.parse(report).iter("testcase"):
            module = case.get("classname", "").replace(".", "/") + ".py"
            name = case.get("name", "").split("[")[0]
            outcome = "passed"
            for child in case:
                if child.tag in ("failure", "error"):
                    outcome = "**failed**"
                elif child.tag == "skipped" and outcome == "passed":
                    outcome = "skipped: " + (child.get("message") or "")[:100]
            results[f"{module}::{name}"].append((outcome, float(case.get("time", 0))))
    summary = {}
    for node, runs in results.items():
        outcomes = {o for o, _ in runs}
        outcome = "**failed**" if "**failed**" in outcomes else sorted(outcomes)[0]
        summary[node] = (outcome, sum(t for _, t in runs), len(runs))
    return summary


def generated_examples(path: Path) -> dict[str, int]:
    """Each hypothesis test's `max_examples`, read from its `@settings(...)` in the test's source (bench/ reads
    tests' files, it does not import them)."""
    examples = {}
    for node in ast.parse(path.read_text()).body:
        if not isinstance(node, ast.FunctionDef):
            continue
        for decorator in node.decorator_list:
            if isinstance(decorator, ast.Call) and getattr(decorator.func, "id", "") == "settings":
                for keyword in decorator.keywords:
                    if keyword.arg == "max_examples" and isinstance(keyword.value, ast.Constant):
                        examples[node.name] = int(keyword.value.value)
    return examples


def faults_section() -> list[str]:
    results = run_tests([node for _, _, node in FAULT_TESTS] + PROPERTY_TESTS)
    rows = []
    for fault, what, node in FAULT_TESTS:
        outcome, seconds, count = results.get(node, ("**not run**", 0.0, 0))
        cases = f" ({count} cases)" if count > 1 else ""
        rows.append(f"| {fault} | {what} | `{node.split('::')[1]}`{cases} | {outcome} in {seconds:.1f} s |")
    props = []
    examples_of = generated_examples(ROOT / "tests" / "test_properties.py")
    for node in PROPERTY_TESTS:
        name = node.split("::")[1]
        examples = f"{examples_of[name]} generated examples" if name in examples_of else "schemathesis"
        outcome, seconds, _ = results.get(node, ("**not run**", 0.0, 0))
        props.append(f"| `{name}` | {examples} | {outcome} in {seconds:.1f} s |")
    return [
        "## Faults of the model repository and the processes",
        "",
        "Each row is a test run by this script (pytest, outcome read from its JUnit report).",
        "",
        "| fault | what happens | test | result |",
        "|---|---|---|---|",
        *rows,
        "",
        "## Property-based and schema-driven testing",
        "",
        "hypothesis drives valid requests (answered 200 with finite, ordered forecasts), arbitrary JSON shaped "
        "like forecast requests, and OIP requests that are well formed but for one broken part, as JSON and as "
        "binary tensors with sizes and header lengths right or off: none may answer 5xx, every error must have "
        "the route's shape. schemathesis runs against the live OpenAPI schema (all checks but "
        "`positive_data_acceptance`: `text/csv` bodies are declared as strings, which no schema narrows to a "
        "valid table).",
        "",
        "| test | runs | result |",
        "|---|---|---|",
        *props,
        "",
    ]


def soak_section() -> list[str]:
    soak = ROOT / "docs" / "benchmarks" / "soak.json"
    if not soak.exists():
        return []
    s = json.loads(soak.read_text())
    measured_at = subprocess.run(
        ["git", "log", "-1", "--format=%h (%ad)", "--date=short", "--", str(soak)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    ).stdout.strip()
    p99 = s["p99_ms_first_last_max"]
    lines = [
        "## Soak",
        "",
        f"From docs/benchmarks/soak.json, measured by `python -m bench.soak` at commit {measured_at}: "
        f"{len(s['minutes'])} minutes aiming at {s['target_rps']:.0f} req/s (80% of the "
        f"measured maximum {s['peak_rps']:.0f} req/s; achieved {s['achieved_rps']:.0f}), {s['workers']} workers, "
        f"{s['connections']} paced connections: {s['requests']} requests, {s['errors']} errors, memory growth "
        f"{s['memory_growth'] * 100:+.1f}% from the first to the last minute, p99 {p99[0]:.2f} ms in the first "
        f"minute, {p99[1]:.2f} ms in the last, {p99[2]:.2f} ms at worst. Errors and memory: "
        f"{'pass' if s['pass'] else '**fail**'}. p99: "
        + ("steady." if p99[2] <= 1.5 * p99[0] else f"**not steady** (worst {p99[2] / p99[0]:.1f}x the first minute)."),
        "",
        "| minute | req/s | p50 ms | p99 ms | errors | RSS MB |",
        "|---|---|---|---|---|---|",
    ]
    for m in s["minutes"]:
        lines.append(
            f"| {m['minute']} | {m['rps']:.0f} | {m['p50_us'] / 1000:.2f} | {m['p99_us'] / 1000:.2f} | "
            f"{m['socket_errors'] + m['non_2xx']} | {m['rss_mb']:.0f} |"
        )
    return [*lines, ""]


def _commit() -> str:
    """HEAD, marked when files other than this report differ from it."""
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
    changed = subprocess.run(
        ["git", "status", "--porcelain", "--", ".", f":!{DOC.relative_to(ROOT)}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    ).stdout
    return head.strip() + (" with uncommitted changes" if changed.strip() else "")


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="gatecast-reliability-"))
    repo = work / "models"
    repo.symlink_to(ROOT / "models")
    commit = _commit()
    lines = [
        "# Reliability: bad input, memory, HTTP limits, faults, overload and access",
        "",
        f"Generated by `python -m bench.reliability` (`make reliability`) at commit {commit}, "
        f"on {platform.machine()} with {platform.python_version()}, against real `gatecast serve` processes with "
        "the committed models. Every route and protocol reaches the models through one forecasting entry point "
        "(app/forecasting.py) and "
        "answers errors through one mapping (app/error_mapping.py), so every section below holds for every route.",
        "",
    ]
    with running_server(repo) as (url, _):
        lines += cases_section(url)
    lines += memory_section(repo)
    lines += http_section(repo)
    lines += overload_section(repo)
    lines += faults_section()
    lines += soak_section()
    lines += [(ROOT / "docs" / "reliability-access.md").read_text()]
    DOC.write_text("\n".join(lines))
    print(f"-> {DOC}")


if __name__ == "__main__":
    main()
