"""What every image copies is in its build context: nothing a Dockerfile COPYs is excluded by .dockerignore."""

from __future__ import annotations

import fnmatch
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILES = sorted(ROOT.glob("Dockerfile*"))


def ignored() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip().rstrip("/") for line in lines if line.strip() and not line.startswith("#")]


def copied(dockerfile: Path) -> list[str]:
    sources = []
    for line in dockerfile.read_text().splitlines():
        words = line.split("#", 1)[0].split()
        if not words or words[0].upper() != "COPY" or any(w.startswith("--from") for w in words):
            continue
        sources += [w for w in words[1:-1] if not w.startswith("--")]
    return sources


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_nothing_an_image_copies_is_left_out_of_its_build_context(dockerfile: Path) -> None:
    sources = copied(dockerfile)
    assert sources, f"{dockerfile.name} copies nothing"
    for source in sources:
        assert (ROOT / source).exists(), f"{dockerfile.name} copies {source}, which is not in the checkout"
        hits = [pattern for pattern in ignored() if fnmatch.fnmatch(source.rstrip("/"), pattern)]
        assert not hits, f"{dockerfile.name} copies {source}, which .dockerignore leaves out ({hits})"
