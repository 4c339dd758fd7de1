"""The README is a short quickstart; everything else is in the MkDocs site built from docs/.

(`make docs` builds the site with warnings as errors; these checks are the cheap part of it that
the suite can run: every page is in the navigation, and every API reference names real code.)
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def _nav_files(nav: list) -> list[str]:
    files: list[str] = []
    for item in nav:
        value = next(iter(item.values())) if isinstance(item, dict) else item
        files += _nav_files(value) if isinstance(value, list) else [value]
    return files


def test_readme_is_a_quickstart_with_the_test_command() -> None:
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 200
    steps = [
        "pip install .",
        "merkit models download",
        "merkit predict song.mp3",
        "merkit predict music/",
        "merkit serve",
    ]
    positions = [text.index(step) for step in steps]
    assert positions == sorted(positions)  # install, weights, a file, a library, serve
    assert text.index("## Quickstart") < positions[0]
    assert "make test" in text


def test_every_page_is_in_the_navigation() -> None:
    config = yaml.load((ROOT / "mkdocs.yml").read_text(), Loader=yaml.BaseLoader)
    listed = sorted(_nav_files(config["nav"]))
    pages = sorted(str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md"))
    assert listed == pages


def test_every_api_reference_names_existing_code() -> None:
    for page in (DOCS / "api").glob("*.md"):
        for name in re.findall(r"^::: ([\w.]+)", page.read_text(), flags=re.M):
            parts = name.split(".")
            for cut in range(len(parts), 0, -1):  # the longest importable module, then attributes
                try:
                    target = importlib.import_module(".".join(parts[:cut]))
                except ModuleNotFoundError:
                    continue
                for attribute in parts[cut:]:
                    target = getattr(target, attribute)
                break
            else:
                raise AssertionError(f"{page.name}: {name} is not importable")
