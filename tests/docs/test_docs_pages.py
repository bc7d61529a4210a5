"""/docs and /redoc render in a real browser with no internet: their scripts and styles come from the server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.browser import CHROMIUM, render
from harness.live import running_server

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)"),
]
MODELS = Path(__file__).resolve().parents[2] / "models"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    repo = tmp_path_factory.mktemp("docs") / "models"
    repo.symlink_to(MODELS)
    with running_server(repo, GATECAST_API_KEYS="secret") as (url, _):  # the docs stay open under keys
        yield url


def test_swagger_ui_renders_every_operation_offline(server: str, tmp_path: Path) -> None:
    dom = render(f"{server}/docs", tmp_path / "docs.png")
    assert 'class="swagger-ui"' in dom
    assert dom.count("opblock-summary-path") >= 20  # every operation, drawn from /openapi.json
    assert "Forecast one or many series" in dom
    assert (tmp_path / "docs.png").stat().st_size > 20_000  # a drawn page, not a blank one


def test_redoc_renders_offline(server: str, tmp_path: Path) -> None:
    dom = render(f"{server}/redoc", tmp_path / "redoc.png")
    assert "Forecast one or many series" in dom and "Request samples" in dom
    assert (tmp_path / "redoc.png").stat().st_size > 20_000
