"""Hostile audio inputs: each is refused up front, with the real reason, quietly and quickly."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import within
from merkit.audio import decode as audio
from merkit.audio.decode import audio_info, load_audio
from merkit.core.errors import AudioError
from merkit.datasets.base import FileSource

posix_only = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")


@posix_only
@pytest.mark.parametrize(
    "call",
    [load_audio, audio_info, lambda p: audio.check_audio_file(p), lambda p: FileSource(p).key],
    ids=["load_audio", "audio_info", "check_audio_file", "FileSource.key"],
)
def test_a_fifo_is_refused_without_blocking(tmp_path: Path, call: Callable[[Path], object]) -> None:
    fifo = tmp_path / "song.mp3"
    os.mkfifo(fifo)
    error = within(5.0, lambda: call(fifo))
    assert isinstance(error, AudioError)
    assert str(fifo) in str(error) and "FIFO (named pipe), not a regular file" in str(error)


def test_a_directory_named_like_audio_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "album.mp3"
    folder.mkdir()
    with pytest.raises(AudioError, match=r"album\.mp3' is a directory"):
        load_audio(folder)
    with pytest.raises(AudioError, match="is a directory"):
        _ = FileSource(folder).key


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root reads anything")
def test_an_unreadable_file_says_permission_denied(tmp_path: Path) -> None:
    path = tmp_path / "locked.wav"
    sf.write(path, np.zeros(16_000, dtype=np.float32), 16_000)
    path.chmod(0)
    try:
        with pytest.raises(AudioError, match="permission denied") as info:
            load_audio(path)
        assert "corrupt" not in str(info.value) and str(path) in str(info.value)
    finally:
        path.chmod(0o644)


def test_a_symlink_loop_is_named_as_such(tmp_path: Path) -> None:
    (tmp_path / "a.mp3").symlink_to(tmp_path / "b.mp3")
    (tmp_path / "b.mp3").symlink_to(tmp_path / "a.mp3")
    with pytest.raises(AudioError, match="symbolic-link loop"):
        load_audio(tmp_path / "a.mp3")


def test_a_broken_symlink_is_named_as_such(tmp_path: Path) -> None:
    (tmp_path / "gone.wav").symlink_to(tmp_path / "missing.wav")
    with pytest.raises(AudioError, match="broken symbolic link"):
        load_audio(tmp_path / "gone.wav")


def test_a_missing_file_is_reported_as_missing(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match="does not exist"):
        load_audio(tmp_path / "nothing.ogg")


@pytest.mark.parametrize("reader", [load_audio, audio_info], ids=["load_audio", "audio_info"])
def test_a_text_file_named_mp3_is_refused_without_decoder_noise(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], reader: Callable[[Path], object]
) -> None:
    path = tmp_path / "notes.mp3"
    path.write_text("These are my notes, not a song.\n" * 40)
    capfd.readouterr()
    with pytest.raises(AudioError) as info:
        reader(path)
    captured = capfd.readouterr()  # file-descriptor level: C libraries' output shows up here
    assert captured.err == "" and captured.out == ""
    assert "notes.mp3' is a text file, not a recognised audio format" in str(info.value)


def test_binary_garbage_named_mp3_gives_one_message_and_no_decoder_noise(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "noise.mp3"
    rng = np.random.default_rng(0)
    data = rng.integers(0, 256, 20_000, dtype=np.uint8)
    data[:2] = (0xFF, 0xFB)  # an MPEG frame sync, so mpg123 tries (and complains) in earnest
    path.write_bytes(data.tobytes())
    capfd.readouterr()
    with pytest.raises(AudioError, match=r"noise\.mp3"):
        load_audio(path)
    assert capfd.readouterr().err == ""


def test_real_audio_still_loads(tmp_path: Path) -> None:
    t = np.arange(16_000) / 16_000
    for name in ("tone.wav", "tone.flac", "tone.ogg"):
        sf.write(tmp_path / name, 0.5 * np.sin(2 * np.pi * 440 * t), 16_000)
        y = load_audio(tmp_path / name)
        assert y.shape == (16_000,) and abs(float(np.abs(y).max()) - 10 ** (-0.1 / 20)) < 1e-4
