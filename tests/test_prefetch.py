"""The prefetching decoder (issue 30): what ``stream_frames`` gives, file by file, in order."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from merkit.audio.decode import prefetch_frames, stream_frames
from merkit.core.errors import AudioError


def _wav(path: Path, seconds: float, sr: int = 22_050, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    sf.write(path, (0.1 * rng.standard_normal((int(seconds * sr), 2))).astype(np.float32), sr)
    return path


def test_prefetched_blocks_equal_stream_frames_and_errors_come_in_place(tmp_path: Path) -> None:
    good = [_wav(tmp_path / f"{i}.wav", 2 + 3 * i, seed=i) for i in range(3)]
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF" + b"\0" * 60)
    paths = [good[0], bad, good[1], good[2]]
    seen = []
    for path, decoded in zip(paths, prefetch_frames(paths, ahead=2), strict=True):
        if path == bad:
            with pytest.raises(AudioError, match="bad.wav"):
                list(decoded)
            continue
        if path == good[1]:  # stopped early: the rest is skipped, the next file still right
            next(iter(decoded))
            continue
        got = list(decoded)
        want = list(stream_frames(path))
        assert [sr for _, sr in got] == [sr for _, sr in want]
        assert all(np.array_equal(a, b) for (a, _), (b, _) in zip(got, want, strict=True))
        seen.append(path)
    assert seen == [good[0], good[2]]


def test_folder_prediction_with_prefetch_matches_one_file_at_a_time(tmp_path: Path) -> None:
    from merkit.product.predict import PredictionFailure, load_model
    from product_helpers import music, write_wav

    files = [
        write_wav(tmp_path / f"{i}.wav", music(4 + 9 * i, quadrant=q, index=i), 16_000)
        for i, q in enumerate(["Q1", "Q3", "Q2"])
    ]
    (tmp_path / "1b.wav").write_bytes(b"RIFF" + b"\0" * 60)  # a failure between two files
    predictor = load_model("fast")
    many = list(predictor.predict_many(tmp_path, segments=True))
    assert [Path(r.path).name for r in many] == ["0.wav", "1.wav", "1b.wav", "2.wav"]
    assert isinstance(many[2], PredictionFailure)
    for result, path in zip([many[0], many[1], many[3]], files, strict=True):
        assert result.model_dump() == predictor.predict(path, segments=True).model_dump()
