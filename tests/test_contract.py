from __future__ import annotations

import dataclasses

import pytest

from contract.card import PREFIX, Conformal, ContractError, ModelCard


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
    assert props[PREFIX + "schema"] == "1"
    assert ModelCard.from_props(props) == c


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
