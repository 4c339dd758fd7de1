"""A file whose audio ends before its header says (a cut download) is refused, not padded.

libsndfile's ``SoundFile.blocks`` ignores a short read and yields its previous buffer again, so
streaming a truncated MP3 used to give the whole declared length with the last decoded block
repeated, and a confident answer for audio that is not in the file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from merkit.audio.decode import decode_frames, stream_frames
from merkit.core.errors import AudioError

SR = 22_050


def write_mp3(path: Path, seconds: float) -> bytes:
    t = np.arange(int(SR * seconds)) / SR
    sf.write(path, 0.3 * np.sin(2 * np.pi * 440 * t), SR)  # LAME writes a Xing frame count
    return path.read_bytes()


def test_a_complete_mp3_streams_its_exact_length(tmp_path: Path) -> None:
    path = tmp_path / "whole.mp3"
    write_mp3(path, 5.0)
    total = sum(block.shape[0] for block, _ in stream_frames(path))
    assert total == 5 * SR
    assert decode_frames(path)[0].shape[0] == 5 * SR


@pytest.mark.parametrize("keep", [0.3, 0.6])
def test_a_truncated_mp3_is_refused_naming_both_lengths(tmp_path: Path, keep: float) -> None:
    whole = write_mp3(tmp_path / "whole.mp3", 5.0)
    cut = tmp_path / "cut.mp3"
    cut.write_bytes(whole[: int(len(whole) * keep)])
    decodable = sf.read(cut)[0].shape[0] / SR  # what the decoder really gets out of it
    with pytest.raises(AudioError, match="truncated") as error:
        for _ in stream_frames(cut):
            pass
    message = str(error.value)
    assert f"'{cut}'" in message and "header says 5.0 s" in message
    assert f"only the first {decodable:.1f} s" in message
    with pytest.raises(AudioError, match="truncated"):  # training decodes it with the same decoder
        decode_frames(cut)


def test_predict_refuses_a_truncated_mp3(tmp_path: Path) -> None:
    from merkit.product.predict import load_model

    whole = write_mp3(tmp_path / "whole.mp3", 5.0)
    cut = tmp_path / "cut.mp3"
    cut.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(AudioError, match="truncated"):
        load_model().predict(cut)
