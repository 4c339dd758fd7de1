"""Hostile inputs for ``merkit predict``: never hang, never abort the batch, name the real reason.

FIFOs, devices and sockets are refused before they are opened (opening a FIFO blocks until a
writer comes); a file that cannot be opened is a failure with the system's reason (not "corrupt");
symbolic-link loops and broken links inside folders are reported, not skipped in silence.
"""

from __future__ import annotations

import errno
import json
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

import merkit
from merkit.core.errors import AudioError
from product_helpers import tone, write_wav

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")

TIMEOUT_S = 60.0


def _without_hanging(action: Callable[[], Any], fifos: list[Path]) -> Any:
    """Run ``action``; if it blocks on a FIFO, unblock it by opening each for writing, then fail."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = action()
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(TIMEOUT_S)
    if thread.is_alive():
        for fifo in fifos:  # a writer that closes at once: the blocked reader sees EOF
            os.close(os.open(fifo, os.O_RDWR))
        thread.join(TIMEOUT_S)
        pytest.fail(f"blocked for more than {TIMEOUT_S:.0f} s on a FIFO")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def test_predict_refuses_a_fifo_without_opening_it(tmp_path: Path) -> None:
    fifo = tmp_path / "song.wav"
    os.mkfifo(fifo)
    predictor = merkit.load_model()
    with pytest.raises(AudioError) as caught:
        _without_hanging(lambda: predictor.predict(fifo), [fifo])
    message = str(caught.value)
    assert str(fifo) in message
    assert "not a regular file" in message and "FIFO" in message


def _json_batch(app: Any, args: list[str], fifos: list[Path]) -> tuple[int, dict[str, dict], str]:
    result = _without_hanging(
        lambda: CliRunner().invoke(app, ["predict", *args, "--format", "json", "--quiet"]), fifos
    )
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    items = json.loads(result.stdout)
    return result.exit_code, {Path(i["path"]).name: i for i in items}, result.stderr


def test_cli_reports_fifos_links_and_long_names_and_goes_on(app: Any, tmp_path: Path) -> None:
    music = tmp_path / "music"
    write_wav(music / "good.wav", tone(2.0, freq=300.0), 16_000)
    os.mkfifo(music / "pipe.mp3")
    (music / "loop.wav").symlink_to("loop.wav")  # a symbolic-link loop
    (music / "gone.flac").symlink_to("nowhere.flac")  # a broken link
    os.mkfifo(music / "not-audio")  # no audio extension: not a candidate, not opened
    named_fifo = tmp_path / "named.wav"
    os.mkfifo(named_fifo)
    named_loop = tmp_path / "named-loop.wav"
    named_loop.symlink_to(named_loop.name)
    too_long = tmp_path / ("x" * 300 + ".wav")  # ENAMETOOLONG: stat itself fails
    good2 = write_wav(tmp_path / "good2.wav", tone(2.0, freq=500.0), 16_000)
    args = [str(music), str(named_fifo), str(named_loop), str(too_long), str(good2)]
    code, items, stderr = _json_batch(
        app, args, [music / "pipe.mp3", named_fifo, music / "not-audio"]
    )
    assert code == 1
    failed = {name: item["error"] for name, item in items.items() if "error" in item}
    assert sorted(items) == sorted(
        ["good.wav", "pipe.mp3", "loop.wav", "gone.flac", "named.wav", "named-loop.wav",
         too_long.name, "good2.wav"]
    )  # fmt: skip
    assert set(failed) == set(items) - {"good.wav", "good2.wav"}
    assert "FIFO" in failed["pipe.mp3"] and "FIFO" in failed["named.wav"]
    assert "symbolic-link loop" in failed["loop.wav"]
    assert "symbolic-link loop" in failed["named-loop.wav"]
    assert "broken symbolic link" in failed["gone.flac"]
    assert "file name too long" in failed[too_long.name]
    for name, error in failed.items():
        assert name in error  # every message names its file
    assert items["good.wav"]["quadrant"] in merkit.QUADRANTS
    assert len([ln for ln in stderr.splitlines() if ln.startswith("failed:")]) == len(failed)


@pytest.fixture
def denied(monkeypatch: pytest.MonkeyPatch) -> Callable[[Path], None]:
    """Make opening given files fail with EACCES (tests run as root, which ignores chmod 000)."""
    paths: set[str] = set()
    real_open = os.open

    def fake_open(path: Any, *args: Any, **kwargs: Any) -> int:
        if os.fspath(path) in paths:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", fake_open)

    import soundfile

    real_soundfile = soundfile.SoundFile

    def fake_soundfile(file: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(file, str | os.PathLike) and os.fspath(file) in paths:
            raise soundfile.LibsndfileError(2, f"Error opening {file!r}: ")  # libsndfile's words
        return real_soundfile(file, *args, **kwargs)

    monkeypatch.setattr(soundfile, "SoundFile", fake_soundfile)
    return lambda path: paths.add(str(path))


def test_a_file_that_cannot_be_opened_is_a_failure_with_the_real_reason(
    app: Any, tmp_path: Path, denied: Callable[[Path], None]
) -> None:
    music = tmp_path / "music"
    write_wav(music / "good.wav", tone(2.0, freq=300.0), 16_000)
    inside = write_wav(music / "locked.wav", tone(2.0), 16_000)
    named = write_wav(tmp_path / "named-locked.wav", tone(2.0), 16_000)
    denied(inside)
    denied(named)
    code, items, _ = _json_batch(app, [str(named), str(music)], [])
    assert code == 1
    assert set(items) == {"good.wav", "locked.wav", "named-locked.wav"}
    assert "error" not in items["good.wav"]
    for name in ("locked.wav", "named-locked.wav"):
        error = items[name]["error"]
        assert "permission denied" in error.lower() and name in error
        assert "corrupt" not in error and "unsupported" not in error


def test_the_library_refuses_devices_too() -> None:
    from merkit.audio.files import unreadable_reason

    if not Path("/dev/null").exists():
        pytest.skip("no /dev/null")
    assert "character device" in (unreadable_reason("/dev/null") or "")
    predictor = merkit.load_model()
    with pytest.raises(AudioError, match="character device"):
        _without_hanging(lambda: predictor.predict("/dev/null"), [])
    assert np.isfinite(predictor.window_s)
