"""Hostile cases of issue 27: no wrong answer without a word, and serve's settings and requests.

- W5: a WAV (or AIFF) whose header declares more audio than the file holds is refused, in the
  CLI and over HTTP, like a truncated MP3 or FLAC.
- W6: a constant level (DC 0.5), a near-constant one and a steady test tone are answered but
  flagged unreliable with a plain reason; real music is not flagged.
- A clipped tone answered Q2 (angry) with ``arousal: low``: an answer whose quadrant its own
  arousal/valence answer contradicts is flagged unreliable, saying so.
- ``serve --max-upload-mb inf``, ``serve --host 999.1.1.1``, a 5000-character upload name: one
  clear message each.
"""

from __future__ import annotations

import io
import json
import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from conftest import FOURQAED, needs_4qaed
from merkit.audio.signal_checks import SignalCheck
from merkit.cli import app as cli_app
from merkit.core.errors import AudioError
from merkit.product.predict import Predictor, load_model
from merkit.product.prediction import song_result
from product_helpers import music, write_wav

SR = 16_000


@pytest.fixture(scope="module")
def fast() -> Predictor:
    return load_model("fast")


def _cut(path: Path, keep: float) -> Path:
    data = path.read_bytes()
    cut = path.with_name("cut-" + path.name)
    cut.write_bytes(data[: int(len(data) * keep)])
    return cut


# ---------------------------------------------------------------------------------------------
# W5


@pytest.mark.parametrize(
    ("ext", "subtype"), [("wav", "PCM_16"), ("wav", "FLOAT"), ("aiff", "PCM_16")]
)
def test_W5_a_file_whose_header_says_10_s_but_holds_3_3_s_is_refused(
    fast: Predictor, tmp_path: Path, ext: str, subtype: str
) -> None:
    whole = tmp_path / f"song.{ext}"
    sf.write(whole, np.stack([music(10.0)] * 2, axis=1), SR, subtype=subtype)
    cut = _cut(whole, 0.33)
    assert sf.info(str(cut)).duration == pytest.approx(3.3, abs=0.05)  # libsndfile says 3.3 s
    with pytest.raises(AudioError) as error:
        fast.predict(cut)
    assert str(error.value) == (
        f"audio file '{cut}' is truncated (its header says 10.0 s, the file holds only 3.3 s): "
        "a cut download or copy"
    )
    assert fast.predict(whole).duration_s == pytest.approx(10.0)  # the whole file still works


def test_W5_the_cli_and_http_refuse_it_too(fast: Predictor, tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from merkit.serve.app import create_app

    whole = write_wav(tmp_path / "song.wav", music(10.0), SR, subtype="PCM_16")
    cut = _cut(whole, 0.33)
    result = CliRunner().invoke(cli_app, ["predict", str(cut), "--model", "fast", "-f", "json"])
    assert result.exit_code == 1
    assert "is truncated (its header says 10.0 s" in json.loads(result.stdout)[0]["error"]
    with TestClient(create_app(predictor=fast)) as client:
        reply = client.post("/v1/predict", files={"file": ("cut.wav", cut.read_bytes())})
    assert reply.status_code == 400
    assert reply.json()["error"].startswith("the uploaded file 'cut.wav' is truncated")


def test_W5_complete_and_streamed_wavs_are_not_refused(fast: Predictor, tmp_path: Path) -> None:
    path = write_wav(tmp_path / "tail.wav", music(4.0), SR, subtype="PCM_16")
    with open(path, "ab") as handle:  # a chunk after the audio, as some editors write
        handle.write(b"LIST" + struct.pack("<I", 4) + b"INFO")
    assert fast.predict(path).duration_s == pytest.approx(4.0)
    streamed = bytearray(write_wav(tmp_path / "s.wav", music(4.0), SR, "PCM_16").read_bytes())
    at = streamed.index(b"data")
    streamed[at + 4 : at + 8] = struct.pack("<I", 0xFFFFFFFF)  # length unknown when written
    (tmp_path / "s.wav").write_bytes(bytes(streamed))
    assert fast.predict(tmp_path / "s.wav").duration_s == pytest.approx(4.0)


# ---------------------------------------------------------------------------------------------
# W6


def _t(seconds: float) -> np.ndarray:
    return np.arange(int(seconds * SR)) / SR


@pytest.mark.parametrize(
    ("name", "y", "reason"),
    [
        ("DC 0.5", np.full(10 * SR, 0.5), "constant level (offset +0.500) with no sound"),
        (
            "DC 0.5 + hiss at -80 dBFS",
            0.5 + 1e-4 * np.random.default_rng(0).standard_normal(10 * SR),
            "constant level (offset +0.500) with no sound in it (variation -80.0 dBFS)",
        ),
        ("DC -0.2 under a quiet tone", -0.2 + 0.02 * np.sin(2 * np.pi * 440 * _t(10)), "offset"),
        ("sine 440 Hz", 0.3 * np.sin(2 * np.pi * 440 * _t(10)), "steady tone"),
        ("clipped sine", np.clip(3 * np.sin(2 * np.pi * 440 * _t(10)), -1, 1), "steady tone"),
        (
            "held chord",
            sum(0.2 * np.sin(2 * np.pi * f * _t(10)) for f in (261.6, 329.6, 392.0)),
            "steady tone",
        ),
    ],
)
def test_W6_constant_and_tonal_signals_are_flagged_unreliable(
    fast: Predictor, name: str, y: np.ndarray, reason: str
) -> None:
    result = fast.predict(np.asarray(y, np.float32), sr=SR)
    assert not result.reliable, name
    assert reason in result.warnings[0] and "not reliable" in result.warnings[0]
    assert sum(result.probabilities.values()) == pytest.approx(1.0)  # still an answer


def test_W6_the_cli_says_so_for_a_dc_file(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "dc.wav", np.full(5 * SR, 0.5, np.float32), SR)
    result = CliRunner().invoke(cli_app, ["predict", str(path), "--model", "fast", "-f", "json"])
    assert result.exit_code == 0
    answer = json.loads(result.stdout)[0]
    assert answer["reliable"] is False and "constant level" in answer["warnings"][0]


def test_W6_music_is_not_flagged(fast: Predictor) -> None:
    for quadrant in ("Q1", "Q2", "Q3", "Q4"):
        result = fast.predict(music(10.0, quadrant=quadrant), sr=SR)
        assert not any("tone" in w or "constant" in w for w in result.warnings), result.warnings


@needs_4qaed
def test_W6_real_4qaed_clips_are_not_flagged() -> None:
    """Every 20th clip of each quadrant (45); benchmarks/signal_checks.py checks all 900."""
    from merkit.audio.decode import load_audio

    files = sorted(FOURQAED.glob("Q[1-4]/*"))[::20]
    for path in files:
        check = SignalCheck()
        check.add(load_audio(path, SR, normalize=False))
        assert check.reasons() == [], path


def test_W6_a_steady_tone_interrupted_by_pauses_is_still_a_tone() -> None:
    beeps = 0.3 * np.sin(2 * np.pi * 1000 * _t(10)) * (np.sin(2 * np.pi * _t(10)) > 0)
    check = SignalCheck()
    check.add(beeps)
    assert check.reasons() and "steady tone" in check.reasons()[0]


# ---------------------------------------------------------------------------------------------
# The clipped tone: Q2 (angry) with arousal "low"


def test_clipped_tone_an_answer_its_own_arousal_contradicts_is_flagged() -> None:
    # Q2 is the most probable quadrant (40 %), but P(Q1) + P(Q2) = 42 % < 50 %: arousal "low"
    result = song_result(
        None,
        np.array([[0.02, 0.40, 0.30, 0.28]]),
        [(0.0, 3.0, False)],
        3.0,
        -10.0,
        ["Q1", "Q2", "Q3", "Q4"],
        {},
        segments=False,
    )
    assert (result.quadrant, result.arousal, result.valence) == ("Q2", "low", "negative")
    assert not result.reliable
    assert result.warnings == [
        "the model is unsure: its most probable quadrant Q2 (angry/tense) disagrees with its "
        "arousal (low) answer (Q1 2 %, Q2 40 %, Q3 30 %, Q4 28 %): the answer is not reliable"
    ]
    agreeing = song_result(
        None, np.array([[0.1, 0.5, 0.3, 0.1]]), [(0.0, 3.0, False)], 3.0, -10.0,
        ["Q1", "Q2", "Q3", "Q4"], {}, segments=False,
    )  # fmt: skip
    assert agreeing.reliable and agreeing.warnings == []


def test_clipped_tone_through_the_model_is_not_a_confident_answer(fast: Predictor) -> None:
    y = np.clip(3 * np.sin(2 * np.pi * 440 * _t(10)), -1, 1).astype(np.float32)
    result = fast.predict(y, sr=SR)
    assert not result.reliable and result.warnings
    high = result.quadrant in ("Q1", "Q2")
    contradicted = high != (result.arousal == "high")
    assert not contradicted or any("disagrees" in w for w in result.warnings)


# ---------------------------------------------------------------------------------------------
# serve


@pytest.mark.parametrize("value", ["inf", "nan", "-inf"])
def test_serve_max_upload_mb_inf_is_one_clear_error(value: str) -> None:
    result = CliRunner().invoke(cli_app, ["serve", "--model", "fast", "--max-upload-mb", value])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --max-upload-mb:"), result.output
    assert "finite" in lines[0] or "greater than 0" in lines[0]
    assert "Traceback" not in result.output and "serving" not in result.output


@pytest.mark.parametrize("host", ["999.1.1.1", "no such host.invalid"])
def test_serve_host_999_is_refused_naming_host_before_serving(host: str) -> None:
    result = CliRunner().invoke(cli_app, ["serve", "--model", "fast", "--host", host])
    assert result.exit_code == 1
    assert f"--host {host!r}: not an address this machine can listen on" in result.output
    assert "serving" not in result.output


def test_serve_a_5000_character_filename_gets_a_clear_400(fast: Predictor) -> None:
    from fastapi.testclient import TestClient

    from merkit.serve.app import create_app

    buffer = io.BytesIO()
    sf.write(buffer, music(2.0), SR, format="WAV")
    with TestClient(create_app(predictor=fast)) as client:
        reply = client.post("/v1/predict", files={"file": ("a" * 5000 + ".wav", buffer.getvalue())})
        assert reply.status_code == 400
        assert "file name is thousands of characters long" in reply.json()["error"]
        ok = client.post("/v1/predict", files={"file": ("a" * 300 + ".wav", buffer.getvalue())})
        assert ok.status_code == 200, ok.text
