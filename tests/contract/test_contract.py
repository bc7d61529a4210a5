from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from contract import signature
from contract.card import PREFIX, Conformal, ContractError, ModelCard
from contract.windows import probe_lengths
from tests.markers import needs_training

ROOT = Path(__file__).resolve().parents[2]


def card(**overrides: object) -> ModelCard:
    base = ModelCard(
        name="m",
        version="1",
        cell="gru",
        input_window={"min": 8, "trained": 16},
        horizon=2,
        freq="h",
        season=24,
        target="y",
        dataset={"name": "d"},
        conformal=Conformal(levels=[0.5, 0.9], quantiles=[[1.0, 2.0], [3.0, 4.0]], calibration_windows=10),
        metrics={"mase": 0.5},
        trained_at="2026-01-01T00:00:00+00:00",
        seed=0,
        versions={"torch": "x"},
        sha256="ab",
    )
    return dataclasses.replace(base, **overrides)  # type: ignore[arg-type]


def test_round_trip_through_metadata_props() -> None:
    c = card()
    props = c.to_props()
    assert all(isinstance(v, str) for v in props.values())
    assert props[PREFIX + "schema"] == "5"
    assert ModelCard.from_props(props) == c
    quantile = card(quantile_levels=[0.1, 0.5, 0.9], freq="")
    assert ModelCard.from_props(quantile.to_props()) == quantile and quantile.any_freq
    ensemble = card(cell="mixed", transform="log", members=[{"cell": "gru", "input_window": 16, "hidden_size": 8}])
    assert ModelCard.from_props(ensemble.to_props()) == ensemble


def test_a_schema_3_file_is_one_plain_model_and_schema_4_must_say_what_it_is() -> None:
    props = card().to_props()
    del props[PREFIX + "transform"], props[PREFIX + "members"]
    with pytest.raises(ContractError, match="gatecast.transform"):
        ModelCard.from_props(props)
    del props[PREFIX + "quantile_levels"]
    props[PREFIX + "schema"] = "3"
    old = ModelCard.from_props(props)
    assert old.transform == "none" and old.members == [] and not old.positive_only


def test_a_schema_4_file_has_no_quantile_head_and_schema_5_must_say() -> None:
    props = card().to_props()
    del props[PREFIX + "quantile_levels"]
    with pytest.raises(ContractError, match="gatecast.quantile_levels"):
        ModelCard.from_props(props)
    props[PREFIX + "schema"] = "4"
    assert ModelCard.from_props(props).quantile_levels == []


@pytest.mark.parametrize("key", ["gatecast.horizon", "gatecast.conformal", "gatecast.input_window"])
def test_missing_key_is_named(key: str) -> None:
    props = card().to_props()
    del props[key]
    with pytest.raises(ContractError, match=key):
        ModelCard.from_props(props)


def test_file_without_gatecast_metadata_is_refused() -> None:
    with pytest.raises(ContractError, match="not a gatecast model file"):
        ModelCard.from_props({"producer": "someone"})


def test_newer_schema_is_refused() -> None:
    props = card().to_props()
    props[PREFIX + "schema"] = "99"
    with pytest.raises(ContractError, match="schema"):
        ModelCard.from_props(props)


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"cell": "tcn"}, id="cell"),
        pytest.param({"cell": "mixed"}, id="mixed-without-members"),
        pytest.param({"transform": "sqrt"}, id="transform"),
        pytest.param({"horizon": 3}, id="quantile-rows-vs-horizon"),
        pytest.param({"input_window": {"min": 20, "trained": 16}}, id="window"),
        pytest.param({"conformal": Conformal([0.9, 0.5], [[1, 1], [1, 1]], 3)}, id="levels-order"),
    ],
)
def test_inconsistent_cards_are_refused(overrides: dict[str, object]) -> None:
    with pytest.raises(ContractError):
        card(**overrides).check()


def test_half_width_interpolates_and_clamps() -> None:
    c = card().conformal
    assert c.half_width_factors(0.7) == pytest.approx([2.0, 3.0])
    assert c.half_width_factors(0.99) == [3.0, 4.0]
    assert c.half_width_factors(0.1) == [1.0, 2.0]


@dataclasses.dataclass
class Tensor:
    name: str
    type: str
    shape: list[int | str | None]


def good_graph() -> tuple[list[Tensor], list[Tensor]]:
    return (
        [Tensor("values", signature.FLOAT, ["batch", "time"])],
        [Tensor("forecast", signature.FLOAT, ["batch", 2]), Tensor("scale", signature.FLOAT, ["batch"])],
    )


def test_a_graph_that_follows_the_signature_has_no_mismatches() -> None:
    inputs, outputs = good_graph()
    assert signature.mismatches(inputs, outputs, horizon=2) == []


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        pytest.param(lambda i, o: i[0].__setattr__("name", "x"), "inputs are ['x']", id="input-name"),
        pytest.param(lambda i, o: o.pop(), "outputs are ['forecast']", id="missing-output"),
        pytest.param(lambda i, o: i[0].__setattr__("type", "tensor(double)"), "float32", id="dtype"),
        pytest.param(lambda i, o: i[0].__setattr__("shape", ["batch", 48]), "fixes axis 'time' to 48", id="fixed-time"),
        pytest.param(lambda i, o: i[0].__setattr__("shape", [1, "time"]), "fixes axis 'batch' to 1", id="fixed-batch"),
        pytest.param(lambda i, o: o[0].__setattr__("shape", ["batch", 3]), "horizon 3; the card says 2", id="horizon"),
        pytest.param(lambda i, o: o[1].__setattr__("shape", ["batch", 1]), "has shape", id="rank"),
    ],
)
def test_every_departure_from_the_signature_is_named(change: object, problem: str) -> None:
    inputs, outputs = good_graph()
    change(inputs, outputs)  # type: ignore[operator]
    found = signature.mismatches(inputs, outputs, horizon=2)
    assert any(problem in line for line in found), found


def test_the_exporters_dynamic_axes_come_from_the_signature() -> None:
    assert signature.dynamic_axes() == {
        "values": {0: "batch", 1: "time"},
        "forecast": {0: "batch"},
        "scale": {0: "batch"},
    }


def test_probe_lengths_cover_the_declared_window_range() -> None:
    assert probe_lengths(48, 168) == [48, 108, 168]
    assert probe_lengths(64, 64) == [64]


@needs_training
def test_training_never_imports_the_server() -> None:
    """The contract package is the only thing the two halves share."""
    code = (
        "import sys, training.pipeline, training.export, training.data, training.evaluate, training.conformal;"
        "bad = sorted(m for m in sys.modules if m == 'app' or m.startswith('app.'));"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_the_server_never_imports_training() -> None:
    code = (
        "import sys, app.main, app.cli, app.supervisor;"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('training', 'torch'));"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_the_contract_package_imports_neither_half() -> None:
    """contract/ is the lowest layer: it imports neither app nor training nor torch, by statement or by name
    (importlib), so no tool and no reader is misled about what depends on what."""
    import ast

    for path in (ROOT / "contract").glob("*.py"):
        tree = ast.parse(path.read_text())
        imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        imported |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        upward = {m for m in imported if m.split(".")[0] in ("app", "training", "torch", "importlib")}
        assert not upward, f"{path.name} imports {sorted(upward)}"


def test_the_supervisor_of_gatecast_serve_loads_no_model_runtime() -> None:
    """`gatecast serve`'s parent process shares the memory limit with its workers: what it needs to start them (and
    a local Ray) must not pull onnxruntime or pandas into it."""
    code = (
        "import sys, app.supervisor, app.trainer_client;"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('onnxruntime', 'pandas', 'ray', 'torch'));"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
