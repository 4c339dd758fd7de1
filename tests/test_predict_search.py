"""Listing files to predict is stat-only: each path is checked once, by the decoder's check."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from merkit.product.search import Unreadable, expand_folders, find_audio_files

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")


def test_listing_opens_nothing_and_keeps_unreadable_files_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    music = tmp_path / "music"
    music.mkdir()
    (music / "b.wav").write_bytes(b"RIFF")
    os.mkfifo(music / "a.mp3")  # listed, never opened: the decoder's check refuses it
    (music / "c.flac").symlink_to("nowhere.flac")  # a broken link, listed too
    (music / "notes.txt").write_text("x")  # no audio extension: not a candidate
    named = tmp_path / "missing.wav"

    def no_open(*args: Any, **kwargs: Any) -> int:
        raise AssertionError(f"listing opened {args[0]!r}")

    monkeypatch.setattr(os, "open", no_open)
    files, problems = find_audio_files([named, music])
    assert files == [named, music / "a.mp3", music / "b.wav", music / "c.flac"]
    assert problems == []


def test_only_an_unreadable_folder_fails_listing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    music = tmp_path / "music"
    (music / "locked").mkdir(parents=True)
    (music / "song.wav").write_bytes(b"RIFF")
    real_scandir = os.scandir

    def scandir(path: Any) -> Any:
        if os.fspath(path).endswith("locked"):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    items = expand_folders([music])
    assert items[0] == Unreadable(
        str(music / "locked"),
        f"'{music / 'locked'}' is a folder that cannot be read: permission denied",
    )
    assert items[1:] == [music / "song.wav"]
