"""A real Prometheus server (Debian package) scrapes a live gatecast; its query API returns our histogram."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from harness.live import free_port, running_server

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("prometheus") is None, reason="prometheus not installed (apt-get install prometheus)"
    ),
]


def query(prom: str, expr: str) -> list[dict[str, object]]:
    r = httpx.get(f"{prom}/api/v1/query", params={"query": expr}, timeout=5)
    r.raise_for_status()
    return r.json()["data"]["result"]  # type: ignore[no-any-return]


def test_prometheus_scrapes_the_request_duration_histogram(tmp_path: Path, repository: Path) -> None:
    with running_server(repository) as (url, _):
        target = url.removeprefix("http://")
        config = tmp_path / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            f"scrape_configs:\n  - job_name: gatecast\n    static_configs:\n      - targets: ['{target}']\n"
        )
        port = free_port()
        prom = subprocess.Popen(
            [
                "prometheus",
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        prom_url = f"http://127.0.0.1:{port}"
        try:
            values = [float(i % 24) for i in range(48)]
            deadline = time.monotonic() + 60
            buckets: list[dict[str, object]] = []
            while time.monotonic() < deadline:
                httpx.post(f"{url}/forecast", json={"series": [{"id": "a", "values": values}]})
                try:
                    buckets = query(
                        prom_url, 'gatecast_http_request_duration_seconds_bucket{route="/forecast",status_class="2xx"}'
                    )
                except httpx.HTTPError:
                    buckets = []
                if buckets:
                    break
                time.sleep(0.5)
            assert buckets, "Prometheus never returned the histogram"
            les = {b["metric"]["le"] for b in buckets}  # type: ignore[index]
            assert {"0.0005", "0.001", "+Inf"} <= les  # sub-millisecond buckets are there
            up = query(prom_url, 'up{job="gatecast"}')
            assert up and up[0]["value"][1] == "1"  # type: ignore[index]
            p99 = query(
                prom_url,
                "histogram_quantile(0.99, sum by (le) "
                '(gatecast_http_request_duration_seconds_bucket{route="/forecast"}))',
            )
            assert p99 and float(p99[0]["value"][1]) > 0  # type: ignore[index]
            # The dashboard's batch-size panel, as Grafana would run it: every batch here held one series.
            for expr in dashboard_batch_exprs():
                deadline = time.monotonic() + 30
                result: list[dict[str, object]] = []
                while time.monotonic() < deadline and not result:
                    httpx.post(f"{url}/forecast", json={"series": [{"id": "a", "values": values}]})
                    result = [r for r in query(prom_url, expr) if r["value"][1] != "NaN"]  # type: ignore[index]
                    time.sleep(0.5)
                assert result and float(result[0]["value"][1]) == 1.0, (expr, result)  # type: ignore[index]
        finally:
            prom.terminate()
            prom.wait(timeout=20)


def dashboard_batch_exprs() -> list[str]:
    import json

    dashboard = json.loads(
        (Path(__file__).resolve().parents[2] / "deploy/grafana/dashboards/gatecast.json").read_text()
    )
    panel = next(p for p in dashboard["panels"] if p["title"].startswith("Batch size"))
    return [
        t["expr"].replace("$__rate_interval", "1m").replace("$instance", ".*").replace("$model", ".*")
        for t in panel["targets"]
    ]
