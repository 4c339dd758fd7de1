"""The page for a non-expert, in a real headless Chromium (issue 29.5): plain words, a mixed
answer, progress for a long song, legends, no overlapping labels, several songs with a table of
answers and CSV/JSON downloads, at desktop and phone widths.

The service runs a small fixture model (band energies + logistic regression, 3 s windows) made
slow on purpose (``MERKIT_TEST_DELAY`` per window), so a long song takes long enough to show
progress. Its ``calibration.json`` sets the mixed threshold between the fixture songs'
confidences, so the same run shows a clear answer and a mixed one.

Screenshots are written to ``runs/screenshots/`` (ignored by git) for a person to look at.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from library_helpers import SLOW_LOGREG, register_slow_method
from merkit.estimators.calibration import ProbabilityCalibration
from merkit.product.export import save_model, train_final
from merkit.product.predict import load_model
from merkit.representations.cache import NullCache
from product_helpers import synthetic_files, tone, write_wav
from test_serve_browser import free_port, serving

pytestmark = [pytest.mark.browser, pytest.mark.slow]

register_slow_method()
TESTS = Path(__file__).parent
SHOTS = TESTS.parent / "runs" / "screenshots"
JARGON = ("fusion", "stacking", "in-fold", "random_state", "F1", "macro", "SVM", "MIME",
          "multipart", "calibrat", "log-odds")  # fmt: skip


@pytest.fixture(scope="module")
def songs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("songs")
    return {
        "bright.wav": write_wav(folder / "bright.wav", tone(3.0, freq=1800.0), 16_000),
        "low hum.wav": write_wav(folder / "low hum.wav", tone(4.0, freq=110.0), 16_000),
        "long song.wav": write_wav(folder / "long song.wav", tone(45.0, freq=500.0), 16_000),
    }


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory, songs: dict[str, Path]) -> Path:
    trained = synthetic_files(tmp_path_factory.mktemp("synthetic"))
    model = train_final(SLOW_LOGREG, trained, cache=NullCache(), progress=False)
    path = save_model(model, tmp_path_factory.mktemp("models") / "page")
    predictor = load_model(path)
    confidence = sorted(predictor.predict(p).confidence for p in songs.values())
    assert confidence[0] < confidence[-1]
    ProbabilityCalibration(mixed_below=(confidence[0] + confidence[-1]) / 2).save(path)
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> Iterator[str]:
    port = free_port()
    log = tmp_path_factory.mktemp("serve") / "server.log"
    env = {**os.environ, "MERKIT_TEST_DELAY": "0.12"}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, str(TESTS / "library_helpers.py"), "serve", "--model",
             str(model_dir), "--port", str(port), "--log-level", "warning"],
            stdout=out, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
    yield from serving(process, port, log, wait_s=120)


def _page(browser: Any, width: int, height: int) -> Any:
    context = browser.new_context(
        viewport={"width": width, "height": height}, accept_downloads=True
    )
    return context, context.new_page()


def _overlaps(a: dict[str, float], b: dict[str, float]) -> bool:
    return not (
        a["x"] + a["width"] <= b["x"]
        or b["x"] + b["width"] <= a["x"]
        or a["y"] + a["height"] <= b["y"]
        or b["y"] + b["height"] <= a["y"]
    )


def _boxes(page: Any, selector: str) -> list[dict[str, float]]:
    return page.eval_on_selector_all(
        selector,
        "nodes => nodes.map(n => { const r = n.getBoundingClientRect();"
        " return {x: r.x, y: r.y, width: r.width, height: r.height}; })",
    )


def _wait_done(page: Any) -> None:
    page.wait_for_function(
        "['done', 'error'].includes(document.body.dataset.state)", timeout=180_000
    )


def test_several_songs_a_mixed_answer_legends_and_downloads(
    server: str, browser: Any, songs: dict[str, Path], model_dir: Path
) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    answers = {}
    for name, path in songs.items():
        with path.open("rb") as handle:
            answers[name] = httpx.post(
                f"{server}/v1/predict", files={"file": (name, handle, "audio/wav")}, timeout=120
            ).json()
    assert any(a["mixed"] for a in answers.values())
    assert not all(a["mixed"] for a in answers.values())
    assert httpx.get(f"{server}/healthz").json()["model"] == str(model_dir)  # not the method

    context, page = _page(browser, 1280, 1000)
    try:
        page.goto(server + "/")
        page.wait_for_function("document.body.dataset.state === 'ready'")
        page.wait_for_function("document.getElementById('model').textContent.length > 0")
        footer = page.inner_text("#model")
        assert footer.startswith("About the model: The model learned from 12 song clips")
        for word in JARGON:
            assert word not in footer and word not in page.inner_text(".explain"), word
        order = ["long song.wav", "bright.wav", "low hum.wav"]
        page.set_input_files("#file", [str(songs[n]) for n in order])
        # the long song (15 windows) shows its progress while it is heard
        page.wait_for_function(
            "document.getElementById('status').textContent.includes('Listening to long song.wav"
            " (1 of 3)')",
            timeout=60_000,
        )
        assert page.is_visible("#progress")
        status = page.inner_text("#status")
        assert "of about" in status or "so far" in status, status
        _wait_done(page)
        assert page.evaluate("document.body.dataset.state") == "done"

        rows = page.locator("#answers tbody tr")
        assert rows.count() == 3
        assert [rows.nth(i).locator("td").first.inner_text() for i in range(3)] == order
        for i, name in enumerate(order):
            assert rows.nth(i).get_attribute("data-quadrant") == answers[name]["quadrant"]
            assert rows.nth(i).get_attribute("data-mixed") == (
                "yes" if answers[name]["mixed"] else "no"
            )

        # the mixed answer, in plain words
        mixed_name = next(n for n in order if answers[n]["mixed"])
        mixed = answers[mixed_name]
        rows.nth(order.index(mixed_name)).click()
        headline = page.inner_text("#answer")
        assert headline == (
            f"Between {mixed['quadrant']} {mixed['meaning']} and {mixed['runner_up']} "
            f"{page.evaluate('meanings')[mixed['runner_up']]}"
        )
        assert page.inner_text("#mixed-note").startswith("Mixed: this song sits between two")
        assert page.inner_text("#sure").startswith("How sure: not sure, between two moods")
        assert page.is_visible("#plane-legend")

        # the long song: timeline with its legend and colour key, dots for its pieces
        rows.nth(0).click()
        assert page.is_visible("#timeline-box") and page.is_visible("#timeline-legend")
        assert page.locator("#timeline rect.window").count() == answers[order[0]]["n_windows"]
        assert page.locator("#colour-key .chip").count() == 4
        assert page.locator("#trail circle").count() == answers[order[0]]["n_windows"]
        assert page.is_visible("#legend-pieces")
        assert page.inner_text("#legend-pieces").strip() == "one 3-second piece of it"

        # no label overlaps another, nor the song's point
        labels = _boxes(page, "#plane text")
        assert len(labels) == 8
        for i, a in enumerate(labels):
            for b in labels[i + 1 :]:
                assert not _overlaps(a, b), (a, b)
        for dot in _boxes(page, "#point") + _boxes(page, "#trail circle"):
            assert not any(_overlaps(dot, label) for label in labels)
        page.screenshot(path=str(SHOTS / "page-desktop-long.png"), full_page=True)
        rows.nth(order.index(mixed_name)).click()
        page.screenshot(path=str(SHOTS / "page-desktop-mixed.png"), full_page=True)

        # downloads: every song once, the same answers as the API
        with page.expect_download() as got:
            page.click("#download-csv")
        table = list(csv.DictReader(io.StringIO(Path(got.value.path()).read_text())))
        assert [r["file"] for r in table] == order
        for r in table:
            assert r["quadrant"] == answers[r["file"]]["quadrant"]
            assert float(r["p_Q1"]) == pytest.approx(answers[r["file"]]["probabilities"]["Q1"])
            assert r["mixed"] == str(answers[r["file"]]["mixed"]).lower()
        with page.expect_download() as got:
            page.click("#download-json")
        data = json.loads(Path(got.value.path()).read_text())
        assert [d["path"] for d in data] == order
        assert [d["summary"] for d in data] == [answers[n]["summary"] for n in order]
    finally:
        context.close()

    context, page = _page(browser, 390, 844)  # a phone
    try:
        page.goto(server + "/")
        page.wait_for_function("document.body.dataset.state === 'ready'")
        page.set_input_files("#file", [str(songs[n]) for n in order[1:]])
        _wait_done(page)
        on_phone = [answers[n]["mixed"] for n in order[1:]]
        shown = on_phone.index(True) if True in on_phone else 0
        page.locator("#answers tbody tr").nth(shown).click()
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
        labels = _boxes(page, "#plane text")
        for i, a in enumerate(labels):
            for b in labels[i + 1 :]:
                assert not _overlaps(a, b), (a, b)
        page.screenshot(path=str(SHOTS / "page-phone.png"), full_page=True)
    finally:
        context.close()


def test_a_text_file_gets_a_plain_reason(server: str, browser: Any, tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("shopping list\n" * 20)
    song = write_wav(tmp_path / "fine.wav", tone(3.0, freq=700.0), 16_000)
    context, page = _page(browser, 1280, 900)
    try:
        page.goto(server + "/")
        page.wait_for_function("document.body.dataset.state === 'ready'")
        page.set_input_files("#file", [str(notes), str(song)])
        _wait_done(page)
        message = page.inner_text("#error")
        assert message == (
            "'notes.txt' is not an audio file (it looks like text); choose a song "
            "file such as MP3, WAV, FLAC, OGG or M4A"
        )
        assert "Could not listen" in page.inner_text("#answers tbody tr >> nth=0")
        assert page.evaluate("document.body.dataset.state") == "done"  # the song still came
        page.screenshot(path=str(SHOTS / "page-desktop-error.png"), full_page=True)
    finally:
        context.close()
