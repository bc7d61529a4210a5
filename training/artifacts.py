"""Where a run writes, and whose those files are: a run never overwrites a checkpoint, report or model that it did not
produce. More: docs/design.md#trainingartifacts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from training.config import RunConfig

CONFIG_KEY = "training.config"  # metadata key of the model card that names the run's config file


class NameTaken(RuntimeError):
    """The run's name belongs to files this run did not produce; `taken` lists them with their maker."""

    def __init__(self, name: str, taken: list[str], owner: str, source: str) -> None:
        self.name, self.taken, self.owner = name, taken, owner
        super().__init__(
            f"the name {name!r} is taken: {', '.join(taken)}; this run is {owner}. Choose another name "
            f'(name = "..." in {source or "the config"}), or pass --force to overwrite them'
        )


class StaleEvaluation(RuntimeError):
    """runs/<name>/evaluation.json was computed for another checkpoint than the one to export."""


@dataclass(frozen=True)
class RunPaths:
    run: Path  # runs/<name>/
    checkpoint: Path
    evaluation: Path
    record: Path  # runs/<name>/run.json: which config produced this run
    report: Path  # reports/<name>/
    models: Path  # models/<name>/
    model: Path  # models/<name>/<version>/model.onnx


def paths(config: RunConfig, root: Path) -> RunPaths:
    run = root / "runs" / config.name
    return RunPaths(
        run=run,
        checkpoint=run / "checkpoint.pt",
        evaluation=run / "evaluation.json",
        record=run / "run.json",
        report=root / "reports" / config.name,
        models=root / "models" / config.name,
        model=root / "models" / config.name / config.version / "model.onnx",
    )


def config_id(config: RunConfig, root: Path) -> str:
    """The run's identity: its config file, relative to the project root when inside it."""
    if not config.source:
        return f"<in-memory config {config.name}>"
    source = Path(config.source).resolve()
    return str(source.relative_to(root.resolve())) if source.is_relative_to(root.resolve()) else str(source)


def claim(config: RunConfig, root: Path, force: bool = False) -> RunPaths:
    """The run's paths, after checking that nothing under its name belongs to another run. Raises NameTaken."""
    p = paths(config, root)
    owner = config_id(config, root)
    recorded = _recorded_owner(p.record)
    foreign: list[str] = []
    if p.run.exists() and any(p.run.iterdir()) and recorded != owner:
        foreign.append(f"{_rel(p.run, root)} ({_by(recorded)})")
    if p.report.exists() and any(p.report.iterdir()) and recorded != owner:
        foreign.append(f"{_rel(p.report, root)} ({_by(recorded)})")
    for model in sorted(p.models.glob("*/model.onnx")):
        made_by = model_owner(model)
        if made_by != owner:
            foreign.append(f"{_rel(model, root)} ({_by(made_by)})")
    if foreign and not force:
        raise NameTaken(config.name, foreign, owner, config.source)
    return p


def record(config: RunConfig, root: Path) -> None:
    """Mark runs/<name>/ as produced by this config."""
    p = paths(config, root)
    p.run.mkdir(parents=True, exist_ok=True)
    p.record.write_text(json.dumps({"name": config.name, "config": config_id(config, root)}, indent=2) + "\n")


def model_owner(path: Path) -> str | None:
    """The config recorded in an exported model's card, or None (a model from elsewhere, or unreadable)."""
    import onnx

    try:
        props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    except Exception:  # a corrupt or foreign file has no owner we can read
        return None
    return props.get(CONFIG_KEY)


def _recorded_owner(record_path: Path) -> str | None:
    try:
        return str(json.loads(record_path.read_text())["config"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _by(owner: str | None) -> str:
    return f"made from {owner}" if owner else "which records no config: not this run's"


def _rel(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)
