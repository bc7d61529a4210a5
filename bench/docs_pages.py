"""Screenshots of /docs and /redoc as a browser with no internet draws them -> docs/images/.

python -m bench.docs_pages    (make docs-pages)
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from harness.browser import render
from harness.live import running_server

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    repo = Path(tempfile.mkdtemp(prefix="gatecast-docs-")) / "models"
    repo.symlink_to(ROOT / "models")
    with running_server(repo) as (url, _):
        for page in ("docs", "redoc"):
            render(f"{url}/{page}", ROOT / "docs" / "images" / f"{page}.png")
            print(f"-> docs/images/{page}.png")


if __name__ == "__main__":
    main()
