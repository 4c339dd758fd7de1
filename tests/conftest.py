"""Shared fixtures: small generated datasets; paths to the optional real data in ../shared."""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from merkit.core.labels import QUADRANTS

# ../shared beside the checkout; $MERKIT_TEST_SHARED points a worktree elsewhere at it
SHARED = Path(
    os.environ.get("MERKIT_TEST_SHARED") or Path(__file__).resolve().parents[1].parent / "shared"
)
FOURQAED = SHARED / "data" / "4qaed"
PRETRAINED = SHARED / "pretrained"
if PRETRAINED.is_dir():
    # The default model's CRNN checkpoints: users download them; the tests read ../shared's.
    os.environ.setdefault("MERKIT_PRETRAINED", str(PRETRAINED))
# Models the tests write are recorded as trusted (merkit.product.trust): in a list of this
# session's own, # never the user's ~/.config/merkit (subprocesses inherit the variable).
os.environ.setdefault(
    "MERKIT_TRUST_FILE", str(Path(tempfile.mkdtemp(prefix="merkit-test-trust-")) / "trusted.json")
)
CRNN_WEIGHTS = all(
    (PRETRAINED / f"crnn_{name}.pth").is_file() for name in ("mtat", "msd", "jamendo")
)
needs_crnn_weights = pytest.mark.skipif(
    not CRNN_WEIGHTS,
    reason=f"the default model needs Won's CRNN checkpoints, not in {PRETRAINED} "
    "(without them merkit answers with the fast model)",
)
needs_4qaed = pytest.mark.skipif(
    not (FOURQAED / "panda_dataset_taffc_annotations.csv").is_file(),
    reason=f"the real 4QAED dataset is not at {FOURQAED} (../shared beside the checkout)",
)


def write_tone(
    path: Path, freq: float, *, sr: int = 16_000, seconds: float = 2.0, channels: int = 1
) -> Path:
    """A short sine tone written with soundfile; the format follows the extension."""
    t = np.arange(int(sr * seconds)) / sr
    y = 0.3 * np.sin(2 * np.pi * freq * t)
    data = np.stack([y] * channels, axis=1) if channels > 1 else y
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, data, sr)
    return path


def make_4qaed_tree(root: Path, per_quadrant: int = 3, *, features: bool = True) -> dict[str, str]:
    """A miniature 4QAED: Q1..Q4 folders of wav tones, annotations and a feature table.

    Features are informative: feature ``F0001`` equals the quadrant index plus small noise.
    """
    rng = np.random.default_rng(0)
    labels: dict[str, str] = {}
    for q_index, quadrant in enumerate(QUADRANTS):
        for k in range(per_quadrant):
            song = f"MT{q_index}{k:09d}"
            write_tone(root / quadrant / f"{song}.wav", 220.0 * (q_index + 1) + k, seconds=1.5)
            labels[song] = quadrant
    lines = ["Song,Quadrant", *[f"{s},{q}" for s, q in labels.items()]]
    (root / "panda_dataset_taffc_annotations.csv").write_text("\n".join(lines) + "\n")
    if features:
        header = '"SongID","F0001","F0002","Quadrant"'
        rows = [
            f'"{s}",{QUADRANTS.index(q) + rng.normal(0, 0.05):.4f},{rng.normal():.4f},"{q}"'
            for s, q in labels.items()
        ]
        (root / "top100_features.csv").write_text("\n".join([header, *rows]) + "\n")
    return labels


@pytest.fixture
def tiny_4qaed(tmp_path: Path) -> Path:
    root = tmp_path / "4qaed"
    make_4qaed_tree(root)
    return root


def within(seconds: float, fn: Callable[[], object]) -> object:
    """``fn()``'s result or the exception it raised; fails the test if it blocks for longer than
    ``seconds`` (as opening a FIFO does). The thread is a daemon, so a blocked call cannot hang
    the test run."""
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(fn())
        except BaseException as error:  # the test inspects it
            outcome.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        pytest.fail(f"blocked for more than {seconds} s")
    return outcome[0]


# ---- a real browser --------------------------------------------------------------------------

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome-stable", "google-chrome")
"""Executables tried in order on PATH (Debian's ``chromium`` package installs the first)."""


def find_chromium() -> str | None:
    """A Chromium executable: ``$MERKIT_CHROMIUM`` if set, else the first of
    :data:`CHROMIUM_NAMES` on PATH, else None."""
    explicit = os.environ.get("MERKIT_CHROMIUM")
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.fixture(scope="session")
def chromium() -> str:
    """Path of a headless-capable Chromium, or skip the test saying how to get one.

    ``make test`` installs Debian's ``chromium`` when it runs as root with apt; Playwright's own
    browser download is not used (it cannot be reached from every machine).
    """
    path = find_chromium()
    if path is None:
        pytest.skip(
            "no Chromium: install it (apt-get install chromium; `make test` does so as root) "
            "or set MERKIT_CHROMIUM=/path/to/chromium"
        )
    return path


@pytest.fixture(scope="session")
def browser(chromium: str) -> Iterator[Any]:
    """A headless Playwright ``Browser`` on :func:`chromium` (one per test session)."""
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is not installed (pip install -e '.[test]')"
    )
    with sync_api.sync_playwright() as playwright:
        # --no-sandbox: Chromium's sandbox refuses to run as root, as tests do in containers
        launched = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="session")
def app() -> Any:
    """The ``merkit`` typer app, every command registered by :mod:`merkit.cli` itself."""
    from merkit.cli import app

    return app
