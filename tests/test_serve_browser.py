"""The web page in a real headless Chromium, against ``merkit serve`` started as a user would.

Skipped (with the reason) where no Chromium or Playwright is installed; ``make test`` installs
Debian's chromium where it runs as root with apt.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import soundfile as sf

from conftest import needs_crnn_weights

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SR = 22_050


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serving(
    process: subprocess.Popen[bytes], port: int, log: Path, *, wait_s: float
) -> Iterator[str]:
    """Yield the base URL of ``process`` (a ``merkit serve``) once ``/healthz`` answers, within
    ``wait_s`` seconds (its log in the failure message); stop it afterwards, killing it if it
    does not end within 30 s."""
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + wait_s
        while True:
            if process.poll() is not None:
                pytest.fail(f"merkit serve exited ({process.returncode}):\n{log.read_text()}")
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"merkit serve did not come up in {wait_s:g} s:\n{log.read_text()}")
            time.sleep(0.3)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``merkit serve`` in a subprocess on a free localhost port; its base URL."""
    port = free_port()
    log = tmp_path_factory.mktemp("serve") / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "merkit",
                "serve",
                "--port",
                str(port),
                "--log-level",
                "warning",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=os.environ.copy(),
        )
    yield from serving(process, port, log, wait_s=300)  # model loading and numba warm-up


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context()
    try:
        yield context.new_page()
    finally:
        context.close()


def write_clip(path: Path, seconds: float) -> Path:
    t = np.arange(int(SR * seconds)) / SR
    y = 0.3 * np.sin(2 * np.pi * 330 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 2 * t))
    sf.write(path, y, SR)
    return path


def finish(page: Any) -> str:
    page.wait_for_function(
        "['done', 'error'].includes(document.body.dataset.state)", timeout=180_000
    )
    return page.evaluate("document.body.dataset.state")


@needs_crnn_weights
def test_a_dropped_song_lands_on_its_quadrant(server: str, page: Any, tmp_path: Path) -> None:
    song = write_clip(tmp_path / "song.wav", 40.0)
    with song.open("rb") as handle:
        api = httpx.post(
            f"{server}/v1/predict",
            files={"file": ("song.wav", handle, "audio/wav")},
            timeout=120,
        ).json()

    page.goto(server + "/")
    page.wait_for_function("document.body.dataset.state === 'ready'")
    page.wait_for_function(
        "document.getElementById('model').textContent.includes('900 song clips')"
    )
    page.set_input_files("#file", str(song))
    assert finish(page) == "done", page.inner_text("#error")

    shown = page.inner_text("#quadrant")
    assert shown == api["quadrant"]
    assert page.inner_text("#meaning") == api["meaning"]
    # the point sits in the quadrant of the arousal and valence sides the answer gives
    cx = float(page.get_attribute("#point", "cx"))
    cy = float(page.get_attribute("#point", "cy"))
    assert (cx > 0) == (api["p_positive_valence"] > 0.5)
    assert (cy < 0) == (api["p_high_arousal"] > 0.5)
    assert cx == pytest.approx(200 * (api["p_positive_valence"] - 0.5), abs=1e-6)
    # four bars with the four probabilities, and one timeline bar per window
    for q, p in api["probabilities"].items():
        assert float(page.get_attribute(f"#bar-{q}", "data-probability")) == pytest.approx(p)
    assert api["n_windows"] == 2
    assert page.locator("#timeline rect.window").count() == 2
    assert page.is_visible("#timeline-box")


def test_a_text_file_shows_the_services_reason(server: str, page: Any, tmp_path: Path) -> None:
    notes = tmp_path / "notes.mp3"
    notes.write_text("not a song\n" * 50)
    page.goto(server + "/")
    page.wait_for_function("document.body.dataset.state === 'ready'")
    page.set_input_files("#file", str(notes))
    assert finish(page) == "error"
    assert "'notes.mp3'" in page.inner_text("#error")
    assert "text file" in page.inner_text("#error")
    assert page.is_hidden("#result")


def test_api_docs_render_offline(server: str, page: Any) -> None:
    page.goto(server + "/docs")
    title = page.wait_for_selector(".swagger-ui .info .title", timeout=60_000)
    assert "merkit" in title.inner_text()
    page.wait_for_selector('[data-path="/v1/predict"]')
