"""Deployment files checked by real tools: promtool, the compose-spec schema, the Kubernetes schemas."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from app import metrics

ROOT = Path(__file__).resolve().parents[2]
PROM = ROOT / "deploy" / "prometheus"
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "gatecast.json"
needs_promtool = pytest.mark.skipif(
    shutil.which("promtool") is None, reason="promtool missing (apt-get install prometheus)"
)


def run(*args: str, cwd: Path = ROOT) -> str:
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


@needs_promtool
def test_prometheus_config_is_valid() -> None:
    assert "SUCCESS" in run("promtool", "check", "config", str(PROM / "prometheus.yml"))


@needs_promtool
def test_alert_rules_are_valid_and_pass_their_unit_tests() -> None:
    assert "6 rules found" in run("promtool", "check", "rules", "alerts.yml", cwd=PROM)
    assert "SUCCESS" in run("promtool", "test", "rules", "alerts_test.yml", cwd=PROM)


def dashboard_exprs() -> list[str]:
    dash = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in dash["panels"] for t in p["targets"]]


@needs_promtool
def test_every_dashboard_query_is_valid_promql(tmp_path: Path) -> None:
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard:query{i}", "expr": e.replace("$__rate_interval", "1m")}
                    for i, e in enumerate(dashboard_exprs())
                ],
            }
        ]
    }
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump(rules))
    run("promtool", "check", "rules", str(path))


def test_dashboard_covers_the_required_views_with_real_metric_names() -> None:
    collectors = [getattr(m, "gauge", m) for m in vars(metrics).values()]  # ProcessValue wraps its gauge
    defined = {m._name for m in collectors if hasattr(m, "_name")}  # noqa: SLF001
    used = set()
    for expr in dashboard_exprs():
        used |= {re.sub(r"_(bucket|sum|count|total)$", "", n) for n in re.findall(r"gatecast_[a-z_]+", expr)}
    assert used <= {n.removesuffix("_total") for n in defined} | defined, used
    titles = " ".join(p["title"] for p in json.loads(DASHBOARD.read_text())["panels"]).lower()
    for view in ("p50", "p99", "throughput", "batch size", "queue wait", "errors", "loaded models", "mae", "mase"):
        assert view in titles, view
    assert "coverage" in titles and "anomalies" in titles


def test_compose_file_follows_the_compose_spec() -> None:
    run(sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec", "docker-compose.yml")
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert {"gatecast", "prometheus", "grafana"} <= set(compose["services"])
    for service in compose["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), source


def test_kubernetes_manifests_follow_the_schemas() -> None:
    manifests = sorted(str(p) for p in (ROOT / "deploy" / "kubernetes").glob("*.yaml"))
    out = run(sys.executable, "-m", "kubernetes_validate", "--strict", "-k", "1.30.0", *manifests)
    resources = [d for p in manifests for d in yaml.safe_load_all(Path(p).read_text())]
    kinds = {d["kind"] for d in resources}
    assert {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "PersistentVolumeClaim"} <= kinds
    assert out.count("passed") == len(resources)  # each resource of each file


def test_deployment_is_hardened_and_probes_the_health_routes() -> None:
    dep = yaml.safe_load((ROOT / "deploy" / "kubernetes" / "deployment.yaml").read_text())
    pod = dep["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert container["resources"]["limits"]["cpu"] and container["resources"]["requests"]["memory"]
    assert dep["spec"]["template"]["metadata"]["annotations"]["prometheus.io/scrape"] == "true"


def test_every_dashboard_query_follows_the_instance_and_model_variables() -> None:
    dash = json.loads(DASHBOARD.read_text())
    assert [v["name"] for v in dash["templating"]["list"]] == ["instance", "model"]
    for expr in dashboard_exprs():
        for metric in re.findall(r"\b(gatecast_[a-z_]+)", expr):
            selector = re.search(metric + r"\{([^}]*)\}", expr)
            assert selector and 'instance=~"$instance"' in selector.group(1), expr
            if metric.startswith(
                ("gatecast_inference", "gatecast_queue", "gatecast_batch", "gatecast_series", "gatecast_model")
            ):
                assert 'model=~"$model"' in selector.group(1), expr


TRAINING = ROOT / "deploy" / "kubernetes" / "training"


def test_training_manifests_follow_the_schemas_and_share_the_model_repository() -> None:
    """Kubernetes' own kinds against its schemas; the RayCluster (a KubeRay custom resource, whose schema is not
    available offline) by what gatecast relies on: the trainer image on every node, the shared repository mounted
    at the server's path everywhere, Ray's version the one pyproject pins, the token from one secret."""
    manifests = [str(TRAINING / "models-pvc.yaml"), str(TRAINING / "trainer.yaml")]
    out = run(sys.executable, "-m", "kubernetes_validate", "--strict", "-k", "1.30.0", *manifests)
    assert out.count("passed") == 3
    cluster = yaml.safe_load((TRAINING / "raycluster.yaml").read_text())
    assert cluster["apiVersion"] == "ray.io/v1" and cluster["kind"] == "RayCluster"
    pinned = re.search(r'"ray\[tune\]==([\d.]+)"', (ROOT / "pyproject.toml").read_text())
    assert pinned and cluster["spec"]["rayVersion"] == pinned.group(1)
    trainer = yaml.safe_load_all((TRAINING / "trainer.yaml").read_text())
    pods = [cluster["spec"]["headGroupSpec"]["template"]["spec"]]
    pods += [group["template"]["spec"] for group in cluster["spec"]["workerGroupSpecs"]]
    pods += [d["spec"]["template"]["spec"] for d in trainer if d["kind"] == "Deployment"]
    for pod in pods:
        container = pod["containers"][0]
        assert container["image"].rsplit(":", 1)[0].endswith("gatecast-trainer")
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        claims = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"]}
        assert claims["models"] == "gatecast-models" and mounts["models"] == "/srv/gatecast/models"
        env = {e["name"]: e for e in container["env"]}
        assert env["RAY_AUTH_MODE"]["value"] == "token"
        assert env["RAY_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "gatecast-ray-token"
    assert "ENV PATH=/opt/venv/bin" in (ROOT / "Dockerfile.trainer").read_text()


def test_the_compose_training_profile_shares_the_model_repository_with_the_server() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    trainer, server = compose["services"]["trainer"], compose["services"]["gatecast"]
    assert trainer["profiles"] == ["training"] and trainer["build"]["dockerfile"] == "Dockerfile.trainer"
    assert "profiles" not in server
    assert "models:/srv/gatecast/models" in trainer["volumes"]
    assert "models:/srv/gatecast/models:ro" in server["volumes"]
    assert (ROOT / "Dockerfile.trainer").exists() and "torch==2.13.0" in (ROOT / "Dockerfile.trainer").read_text()
