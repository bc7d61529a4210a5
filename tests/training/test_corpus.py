"""The base model's corpus (training.corpus): excluded evaluation data cannot enter it, by place or by content, and
the committed base model's card lists every source with its count and what was excluded."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest

from contract.card import BASE_MODEL, ModelCard
from tests.conftest import COMMITTED_MODELS
from training import corpus
from training.corpus import EXCLUDED, SOURCES, CorpusLeak, Series, Source
from training.synthetic import GENERATORS, generate


def fake_data_dir(root: Path) -> Path:
    """A data dir with an ETTh1-shaped file and exchange rates of random values (3 decimals, as the real ones)."""
    rng = np.random.default_rng(0)
    (root / "ett").mkdir(parents=True)
    stamps = pd.date_range("2016-07-01", periods=500, freq="h")
    frame = pd.DataFrame({"date": stamps, **{c: (rng.normal(size=500).cumsum() + 10).round(3) for c in ("HUFL", "OT")}})
    frame.to_csv(root / "ett" / "ETTh1.csv", index=False)
    (root / "exchange_rate").mkdir()
    pd.DataFrame(rng.uniform(0.5, 1.5, (300, 2)).round(6)).to_csv(
        root / "exchange_rate" / "exchange_rate.txt.gz", header=False, index=False
    )
    (root / "m4").mkdir()
    train = pd.DataFrame(rng.uniform(100, 900, (3, 80)).round(1), index=["H1", "H2", "H3"])
    train.columns = [f"V{i + 2}" for i in range(80)]
    train.to_csv(root / "m4" / "Hourly-train.csv", index_label="V1")
    return root


def test_m4_hourly_values_under_another_name_are_caught(tmp_path: Path) -> None:
    data = fake_data_dir(tmp_path)
    row = pd.read_csv(data / "m4" / "Hourly-train.csv", index_col=0).iloc[1].to_numpy()
    with pytest.raises(CorpusLeak, match="M4 Hourly"):
        corpus.check_exclusions([Series("hourly load", "h", row[10:40].astype(np.float32))], data)


@pytest.mark.parametrize("path", ["ett/ETTh1.csv", "ett/ETTm1.csv.gz", "m4/Hourly-train.csv", "exchange_rate/x.gz"])
def test_a_source_reading_an_excluded_place_is_refused(path: str) -> None:
    source = Source("sneaky", "test", lambda _: [], (path,))
    with pytest.raises(CorpusLeak, match="excluded evaluation data"):
        corpus.check_source(source)


def test_excluded_values_under_another_name_are_caught(tmp_path: Path) -> None:
    data = fake_data_dir(tmp_path)
    ot = pd.read_csv(data / "ett" / "ETTh1.csv")["OT"].to_numpy()
    honest = [Series("other", "h", np.random.default_rng(1).normal(size=400).astype(np.float32))]
    assert corpus.check_exclusions(honest, data)["ETTh1@3"] > 0  # compared, nothing found
    copied = Series("renamed sensor", "h", (ot[100:160] * 1.0).astype(np.float32))  # 60 values of ETTh1's OT
    with pytest.raises(CorpusLeak, match="renamed sensor series holds .* of ETTh1"):
        corpus.check_exclusions([*honest, copied], data)
    rates = pd.read_csv(data / "exchange_rate" / "exchange_rate.txt.gz", header=None)[1].to_numpy()
    with pytest.raises(CorpusLeak, match="exchange rates"):
        corpus.check_exclusions([Series("fx", "D", rates[:40].astype(np.float32))], data)


def test_a_leaking_source_stops_the_build(tmp_path: Path) -> None:
    data = fake_data_dir(tmp_path)

    def load(d: Path) -> list[Series]:
        return [Series("leak", "h", pd.read_csv(d / "ett" / "ETTh1.csv")["HUFL"].to_numpy(np.float32))]

    with pytest.raises(CorpusLeak):
        corpus.build(data, 0, 0, sources=[Source("leak", "a copy of ETTh1", load)])


def test_synthetic_series_are_seeded_and_cover_every_generator() -> None:
    a, b = generate(70, seed=3), generate(70, seed=3)
    assert all(np.array_equal(x.values, y.values) for x, y in zip(a, b, strict=True))
    assert {s.source.removeprefix("synthetic/") for s in a} == set(GENERATORS)
    assert all(np.isfinite(s.values).all() and len(s.values) >= 48 for s in a)
    assert not np.array_equal(generate(5, seed=4)[0].values, a[0].values)


def test_readings_go_on_a_regular_grid_and_their_gaps_stay_missing() -> None:
    times = pd.Series(["2020-01-01 00:00", "2020-01-01 00:05", "2020-01-01 00:05", "2020-01-01 00:20"])
    values = pd.Series(["1", "3", "5", "oops"])
    grid = corpus._on_grid(times, values, "5min")
    # a duplicated stamp is averaged, a missing reading and an unreadable one become NaN, never a made-up value
    np.testing.assert_array_equal(grid, np.array([1, 4, np.nan, np.nan, np.nan], dtype=np.float32))


@pytest.mark.parametrize("source", ["pvlib", "vega_datasets", "bokeh_sampledata", "sktime"])
def test_the_packaged_sources_load_their_wheel_files(source: str) -> None:
    pytest.importorskip(source.replace("-", "_"))
    loaded = next(s for s in corpus.EXTRA_SOURCES if s.name == source).load(Path("unused"))
    assert loaded and all(s.source == source and s.values.dtype == np.float32 for s in loaded)
    assert all(len(s.values) >= corpus.MIN_LENGTH for s in loaded)
    if source == "sktime":  # ACSF1's train and test parts: 100 appliances each, 1,460 readings
        assert len(loaded) == 200 and {len(s.values) for s in loaded} == {1460}


@pytest.mark.data
def test_the_real_sources_hold_no_excluded_data() -> None:
    from training.data import data_dir

    built = corpus.build(data_dir(), 0, 0, SOURCES + corpus.EXTRA_SOURCES)
    assert not built.manifest["missing"], built.manifest["missing"]
    assert {s["name"] for s in built.manifest["real"]} == {s.name for s in SOURCES + corpus.EXTRA_SOURCES}


def test_the_committed_base_model_lists_its_corpus_and_exclusions() -> None:
    path = COMMITTED_MODELS / BASE_MODEL / "1" / "model.onnx"
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    card = ModelCard.from_props(dict(session.get_modelmeta().custom_metadata_map))
    listed = card.dataset["corpus"]
    assert {s["name"] for s in listed["real"]} == {s.name for s in SOURCES}
    assert all(s["series"] > 0 for s in listed["real"])
    assert {s["name"] for s in listed["excluded"]} == set(EXCLUDED)
    assert {s["generator"].removeprefix("synthetic/") for s in listed["synthetic"]} == set(GENERATORS)
    assert len(card.dataset["corpus_sha256"]) == 64
    assert path.stat().st_size <= 25 * 2**20
    config = json.loads(card.extra["training.pretrain_config"])
    assert config["seed"] == card.seed


@pytest.mark.parametrize("power", [0.5, 1.0])
def test_real_series_are_drawn_in_proportion_to_length_to_the_power_set(power: float) -> None:
    from training.pretrain import PretrainConfig, Sampler

    real = [np.zeros(100, np.float32), np.zeros(400, np.float32)]
    sampler = Sampler(real, [], PretrainConfig(real_share=1.0, length_power=power), seed=0)
    long_share = np.mean([len(sampler._series()) == 400 for _ in range(4000)])
    assert long_share == pytest.approx(400**power / (100**power + 400**power), abs=0.03)  # 2/3 or 4/5


def test_extra_sources_enter_the_corpus_only_when_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from training import pretrain

    seen: list[list[str]] = []

    def build(data_dir: Path, count: int, seed: int, sources: tuple[Source, ...]) -> None:
        seen.append([s.name for s in sources])
        raise RuntimeError("stop here: only the sources were wanted")

    monkeypatch.setattr(pretrain.corpora, "build", build)
    for extra in (False, True):
        with pytest.raises(RuntimeError, match="stop here"):
            pretrain.train(pretrain.PretrainConfig(extra_sources=extra), tmp_path, tmp_path / "out")
    assert seen == [[s.name for s in SOURCES], [s.name for s in SOURCES + corpus.EXTRA_SOURCES]]
    assert not {s.name for s in SOURCES} & {s.name for s in corpus.EXTRA_SOURCES}
