"""MkDocs hook: repository files the pages show, added to the site without copying them into
docs/ (one copy in the repository: the figure in ``reports/`` that the tests regenerate)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
# site path -> repository file
FILES = {
    "assets/compare.png": "reports/compare.png",
    **{
        f"assets/app/{page}.png": f"reports/app/{page}.png"
        for page in ("compare", "runs", "run", "export")
    },
}


def on_files(files: Any, config: Any) -> Any:
    from mkdocs.structure.files import File

    for site_path, repo_path in FILES.items():
        files.append(File.generated(config, site_path, abs_src_path=str(ROOT / repo_path)))
    return files
