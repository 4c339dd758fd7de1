"""Signals that are not music get ``reliable: false`` from the shipped default model, by its
familiarity measure (issue 33 item 2: white noise, speech and test tones are flagged).

Speech is synthesised by espeak-ng (``apt-get install espeak-ng``); its test skips without it.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from conftest import needs_crnn_weights
from merkit.product.predict import Predictor, load_model

SR = 16_000
TEXT = (
    "The committee will meet on Tuesday to review the budget for the coming year. Members are "
    "asked to read the report in advance and to send their questions to the secretary."
)

pytestmark = needs_crnn_weights


@pytest.fixture(scope="module")
def default() -> Predictor:
    return load_model("default")


def _unlike(predictor: Predictor, y: np.ndarray) -> list[str]:
    result = predictor.predict(y.astype(np.float32), SR)
    assert result.reliable is False
    return [w for w in result.warnings if "unlike the music" in w]


def test_white_noise_and_a_tone_are_unlike_the_training_music(default: Predictor) -> None:
    rng = np.random.default_rng(0)
    t = np.arange(30 * SR) / SR
    assert _unlike(default, 0.3 * rng.standard_normal(t.size))
    assert _unlike(default, 0.5 * np.sin(2 * np.pi * 440 * t))


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
@pytest.mark.parametrize("voice", ["en-us", "en-gb"])
def test_speech_is_unlike_the_training_music(
    default: Predictor, voice: str, tmp_path: Path
) -> None:
    from merkit.audio.decode import load_audio

    path = tmp_path / "speech.wav"
    subprocess.run(
        ["espeak-ng", "-v", voice, "-s", "150", "-w", str(path), " ".join([TEXT] * 3)], check=True
    )
    y = load_audio(path, sr=SR)
    assert len(y) > 25 * SR  # most of a window of speech
    y = y[: 30 * SR]
    assert _unlike(default, 0.5 * y / np.max(np.abs(y)))
