"""Every figure in the README and the benchmark pages is rendered from its source: re-rendering them gives
the committed text exactly. A hand-edited figure, or a source changed without re-rendering, fails here."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import bench.accuracy
import bench.choices
import bench.claims
import bench.fairness
import bench.memory_cost
import bench.protocols
import bench.serving
import bench.streams
import bench.zeroshot
from bench import readme

ROOT = Path(__file__).resolve().parents[2]
PAGES = ROOT / "docs" / "benchmarks"


@pytest.mark.parametrize("page", readme.PAGES, ids=lambda page: page.name)
def test_the_readme_and_docs_figures_are_what_their_sources_give(page: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    current = page.read_text()
    shallow = subprocess.run(
        ["git", "rev-parse", "--is-shallow-repository"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    if shallow != "false":  # without the history, the commit that measured a JSON cannot be looked up: take
        # it from the page and check every figure
        recorded = iter(
            re.findall(r"at commit ([0-9a-f]+, \d{4}-\d\d-\d\d)|commit ([0-9a-f]+, \d{4}-\d\d-\d\d)", current)
        )
        monkeypatch.setattr(readme, "measured_at", lambda path: "".join(next(recorded)))
    assert readme.render(current, page) == current, (
        f"{page.name} differs from its sources: run `python -m bench.readme`"
    )


def test_every_generated_block_has_a_renderer_and_appears_once() -> None:
    names = [m.group(2) for page in readme.PAGES for m in readme.BLOCK.finditer(page.read_text())]
    assert sorted(names) == sorted(readme.SECTIONS)


def test_every_relative_link_of_the_readme_and_docs_leads_somewhere() -> None:
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    broken = []
    for page in pages:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if target.startswith(("http://", "https://", "mailto:")):
                continue
            if not (page.parent / target).exists():
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert not broken, broken


@pytest.mark.parametrize(
    ("page", "render"),
    [
        pytest.param("serving", bench.serving.render, id="serving"),
        pytest.param("accuracy", bench.accuracy.render, id="accuracy"),
        pytest.param("choices", bench.choices.render, id="choices"),
        pytest.param("claims", bench.claims.render, id="claims"),
        pytest.param("protocols", bench.protocols.render, id="protocols"),
        pytest.param("streams", bench.streams.render, id="streams"),
        pytest.param("fairness", bench.fairness.render, id="fairness"),
        pytest.param("zeroshot", bench.zeroshot.render_markdown, id="zeroshot"),
    ],
)
def test_each_benchmark_page_is_its_json_rendered(page: str, render: Callable[[dict[str, Any]], str]) -> None:
    result = json.loads((PAGES / f"{page}.json").read_text())
    assert render(result) == (PAGES / f"{page}.md").read_text()


def test_the_memory_page_is_its_json_rendered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bench.memory_cost, "PAGE", tmp_path / "memory.md")
    bench.memory_cost.render(json.loads((PAGES / "memory_cost.json").read_text()))
    assert (tmp_path / "memory.md").read_text() == (PAGES / "memory.md").read_text()


def test_the_base_model_card_refuses_a_report_from_another_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from contract.card import BASE_MODEL

    model = ROOT / "models" / BASE_MODEL / "1" / "model.onnx"
    report = json.loads((ROOT / "reports" / BASE_MODEL / "pretrain.json").read_text())
    (tmp_path / "models" / BASE_MODEL / "1").mkdir(parents=True)
    (tmp_path / "models" / BASE_MODEL / "1" / "model.onnx").symlink_to(model)
    (tmp_path / "reports" / BASE_MODEL).mkdir(parents=True)
    monkeypatch.setattr(readme, "ROOT", tmp_path)
    (tmp_path / "reports" / BASE_MODEL / "pretrain.json").write_text(json.dumps(report))
    assert BASE_MODEL in readme.basemodel_section()  # its own run's report renders
    report["config"] = {**report["config"], "seed": report["config"]["seed"] + 1}
    (tmp_path / "reports" / BASE_MODEL / "pretrain.json").write_text(json.dumps(report))
    with pytest.raises(SystemExit, match="not the report"):
        readme.basemodel_section()
