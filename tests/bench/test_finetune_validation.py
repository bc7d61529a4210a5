"""bench.finetune_validation: the base model fine-tuned per ETT resolution before its validation windows, scored on
them beside the base. Needs the real data (ETTm1), so it skips without it."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from bench import giftprotocol as protocol
from bench.finetune_validation import BASE, fine_tune_and_score, main
from bench.zeroshot import validate, validation_tasks
from training.data import data_dir

pytestmark = pytest.mark.data


@pytest.fixture(scope="module")
def tasks() -> dict[str, protocol.Task]:
    return validation_tasks(protocol.tasks(data_dir() / "ett" / "ETTm1.csv.gz", None))


def test_the_daily_resolution_is_fine_tuned_before_its_windows_and_scored_beside_the_base(
    tasks: dict[str, protocol.Task], tmp_path: Path
) -> None:
    main(["--resolutions", "D", "--steps", "5", "--out", str(tmp_path)])
    report = json.loads((tmp_path / "finetune-validation.json").read_text())
    daily = report["resolutions"]["D"]
    assert report["settings"] == {"steps": 5, "depth": 5, "seed": 0, "pipeline": False, "joint": False}
    assert list(daily["configs"]) == ["ett1/D/short"]  # the other resolutions share the station: not scored
    assert daily["channels"] == 7
    assert daily["cut"] <= min(o[0] for o in tasks["ett1/D/short"].origins)  # trained before every window
    assert 0 <= daily["fine_tuning"]["best_step"] <= 5
    alone = validate([BASE], {"ett1/D/short": tasks["ett1/D/short"]})[str(BASE)]["configs"]["ett1/D/short"]
    assert daily["configs"]["ett1/D/short"]["base"] == alone
    scored = daily["configs"]["ett1/D/short"]
    crossed = {
        f"{m}, validation spread {k} (cross-fitted)" for m in ("base", "fine-tuned") for k in ("per step", "per level")
    }
    assert set(scored) == {"base", "fine-tuned", "fine-tuned, spread", *crossed}
    for label in ("fine-tuned", "fine-tuned, spread", *crossed):
        assert math.isfinite(scored[label]["mase"]) and math.isfinite(scored[label]["crps"])
        assert set(scored[label]["coverage"]) == {"80", "95"}
    assert scored["fine-tuned, spread"]["mase"] == pytest.approx(scored["fine-tuned"]["mase"])  # the median is kept
    spread = daily["fine_tuning"]["spread"]
    assert spread["windows"] > 0 and 0 <= spread["coverage_after"]["central 80%"] <= 1


def test_a_resolution_without_configurations_is_refused(tasks: dict[str, protocol.Task]) -> None:
    with pytest.raises(ValueError, match="no configuration at '2H'"):
        fine_tune_and_score(tasks, "2H", steps=1, depth=5, seed=0)


def test_the_model_fine_tuned_on_every_resolution_reads_nothing_from_any_validation_window(
    tasks: dict[str, protocol.Task], monkeypatch
) -> None:
    import pandas as pd

    from bench import finetune_validation
    from training import finetune_base

    seen: list[int] = []
    real = finetune_base.finetune

    def spy(card, checkpoint, series, steps, depth, seed, report, cancelled):  # type: ignore[no-untyped-def]
        seen.extend(len(s) for s in series)
        return real(card, checkpoint, series, steps, depth, seed, report, cancelled)

    monkeypatch.setattr(finetune_base, "finetune", spy)
    found = finetune_validation.joint_candidate(tasks, steps=2, depth=1, seed=0)
    ett = {n: t for n, t in tasks.items() if n.startswith("ett1/")}
    assert set(found["configs"]) == set(ett) and found["series"] == 28  # 7 channels x 4 resolutions
    cut = pd.Timestamp(found["cut"])
    for name, task in ett.items():  # every validation window starts at or after the cut, at every resolution
        assert task.data.index[task.first_origin] >= cut, name
    by_resolution = {t.data.resolution: t.data for t in ett.values()}
    ends = {"15T": pd.Timedelta("15min"), "H": pd.Timedelta("1h"), "D": pd.Timedelta("1D"), "W": pd.Timedelta("1D")}
    lengths = iter(seen)
    for resolution in ("15T", "H", "D", "W"):  # the order series_before reads them in
        index = by_resolution[resolution].index
        for _ in range(7):
            n = next(lengths)
            assert index[n - 1] + ends[resolution] <= cut < index[n] + ends[resolution], resolution  # all, no more
