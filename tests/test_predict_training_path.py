"""`merkit predict` feeds the shipped models exactly the arrays training's extraction computes.

For a clip no longer than a window, the file itself is the training song; for a window of a long
track, the training song is a file holding exactly that window's samples (a float WAV cut from
the decoded track at the window's frames). Either way the predictor's arrays must equal, bit for
bit, what :func:`merkit.protocol.runner.resolve_inputs` (the training extraction) returns.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
import soxr
from typer.testing import CliRunner

from conftest import FOURQAED, needs_crnn_weights
from merkit.datasets.base import Dataset, FileSource, Song
from merkit.product.predict import Predictor, load_model
from merkit.protocol.runner import resolve_inputs
from merkit.representations.cache import NullCache

MODELS = ["fast", pytest.param("default", marks=needs_crnn_weights)]
TRACK_SR = 44_100


def _clips(n: int) -> list[Path]:
    """Real 4QAED clips, one quadrant after another, when the data is here."""
    folders = [FOURQAED / q for q in ("Q1", "Q2", "Q3", "Q4")]
    if not all(f.is_dir() for f in folders):
        return []
    lists = [sorted(f.glob("*.ogg")) for f in folders]
    return [lists[i % 4][i // 4] for i in range(n)]


def _music(seconds: float, sr: int, seed: int) -> np.ndarray:
    """Stereo synthetic 'music' (changing chords, noise bursts, a level ramp) at ``sr``."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * sr)) / sr
    y = np.zeros_like(t)
    for start in np.arange(0.0, seconds, 2.0):
        part = (t >= start) & (t < start + 2.0)
        for f in rng.uniform(110, 880, 3):
            y[part] += 0.15 * np.sin(2 * np.pi * f * t[part])
    y += 0.05 * rng.standard_normal(t.size) * (np.sin(2 * np.pi * 0.5 * t) > 0.7)
    y *= np.linspace(0.4, 1.0, t.size)
    return np.stack([y, 0.8 * np.roll(y, 7)], axis=1).astype(np.float32)


def _track(path: Path, clips: list[Path], seconds: float, seed: int) -> Path:
    """A 44.1 kHz stereo file: the clips joined (resampled, the right channel delayed and
    quieter), or synthetic music without the data."""
    if clips:
        mono = np.concatenate([sf.read(c, dtype="float32")[0] for c in clips])
        mono = soxr.resample(mono, 16_000, TRACK_SR)[: round(seconds * TRACK_SR)]
        audio = np.stack([mono, 0.8 * np.roll(mono, 7)], axis=1)
    else:
        audio = _music(seconds, TRACK_SR, seed)
    sf.write(path, audio, TRACK_SR, subtype="PCM_16" if path.suffix == ".flac" else None)
    return path


def _fed_arrays(
    app: Any, monkeypatch: pytest.MonkeyPatch, path: Path, model: str
) -> tuple[dict[str, np.ndarray], list[dict]]:
    """The arrays ``merkit predict`` hands the model for ``path`` (one row per window), and the
    windows it reports."""
    fed: list[dict[str, np.ndarray]] = []
    real = Predictor.predict_inputs

    def spy(self: Predictor, inputs: Any) -> np.ndarray:
        fed.append({name: np.array(value, copy=True) for name, value in inputs.items()})
        return real(self, inputs)

    monkeypatch.setattr(Predictor, "predict_inputs", spy)
    args = ["predict", str(path), "--model", model, "--format", "json", "--quiet", "--segments"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    (item,) = json.loads(result.stdout)
    names = list(fed[0])
    return {n: np.concatenate([batch[n] for batch in fed]) for n in names}, item["segments"]


def _training_arrays(path: Path, names: list[str]) -> dict[str, np.ndarray]:
    """What training's extraction computes for the song in ``path``."""
    dataset = Dataset("probe", [Song("probe", FileSource(path), "Q1")])
    inputs = resolve_inputs(dataset, names, cache=NullCache(), progress=False)
    return {name: np.asarray(inputs[name]) for name in names}


def _assert_identical(got: dict[str, np.ndarray], row: int, want: dict[str, np.ndarray]) -> None:
    assert set(got) == set(want)
    for name in want:
        assert got[name].dtype == want[name].dtype == np.float32
        np.testing.assert_array_equal(got[name][row], want[name][0], err_msg=name)


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("kind", ["4qaed-ogg", "mp3-44k-stereo", "flac-44k-stereo"])
def test_a_30_s_clip_reaches_the_model_as_training_computes_it(
    app: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, model: str, kind: str
) -> None:
    if kind == "4qaed-ogg":
        clips = _clips(1)
        if not clips:
            pytest.skip(f"the real 4QAED dataset is not at {FOURQAED}")
        path = clips[0]
    else:
        suffix = ".mp3" if kind.startswith("mp3") else ".flac"
        path = _track(tmp_path / f"clip{suffix}", _clips(1), 30.0, seed=1)
    got, segments = _fed_arrays(app, monkeypatch, path, model)
    assert len(segments) == 1  # shorter than the 30.1 s window: the file is the one window
    names = [spec.name for spec in load_model(model).manifest.inputs]
    _assert_identical(got, 0, _training_arrays(path, names))


@pytest.mark.parametrize("model", MODELS)
def test_a_window_of_a_3_minute_track_is_a_training_song(
    app: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, model: str
) -> None:
    track = _track(tmp_path / "track.flac", _clips(6), 180.0, seed=2)
    got, segments = _fed_arrays(app, monkeypatch, track, model)
    manifest = load_model(model).manifest
    window, hop = manifest.window_s, manifest.hop_s
    assert len(segments) == 11  # 0, 15.05 ... 150.5 s, and one ending at 180 s
    frames = sf.read(track, dtype="float32", always_2d=True)[0]
    length = round(window * TRACK_SR)
    names = [spec.name for spec in manifest.inputs]
    # a middle window, and the last one (it ends at the track's end)
    for k in (5, len(segments) - 1):
        start = round(k * hop * TRACK_SR) if k < 10 else frames.shape[0] - length
        assert segments[k]["start_s"] == pytest.approx(start / TRACK_SR, abs=1e-3)
        song = tmp_path / f"window{k}.wav"
        sf.write(song, frames[start : start + length], TRACK_SR, subtype="FLOAT")
        _assert_identical(got, k, _training_arrays(song, names))


def test_each_window_of_a_44k_track_is_resampled_once(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The signal checks and the window's extraction read one resampled array
    (:meth:`merkit.audio.windows.Window.resampled`), which gives the same answer as resampling
    for each."""
    from merkit.audio import decode
    from merkit.audio.signal_checks import SignalCheck

    track = _track(tmp_path / "track.flac", _clips(2), 50.0, seed=3)
    predictor = load_model("fast")
    expected = predictor.predict(track, segments=True)
    calls: list[int] = []
    real = decode.resample

    def counted(y: np.ndarray, orig_sr: int, sr: int) -> np.ndarray:
        if orig_sr == TRACK_SR:
            calls.append(sr)
        return real(y, orig_sr, sr)

    monkeypatch.setattr(decode, "resample", counted)
    got = predictor.predict(track, segments=True)
    assert calls == [16_000] * len(got.segments) == [16_000] * 3
    assert got.probabilities == expected.probabilities and got.reliable == expected.reliable
    assert [s.probabilities for s in got.segments] == [s.probabilities for s in expected.segments]
    # the checks see what they saw when they resampled for themselves
    y = sf.read(track, dtype="float32")[0].mean(axis=1)
    own, shared = SignalCheck(), SignalCheck()
    own.add(real(y[: 30 * TRACK_SR], TRACK_SR, 16_000))
    from merkit.audio.windows import Window

    shared.add(Window(0.0, 30.0, y[: 30 * TRACK_SR], TRACK_SR).resampled(16_000))
    assert own.steadiness == shared.steadiness and own.tonal_fraction == shared.tonal_fraction
