"""Cache entries are validated on read: a bad entry is recomputed with one warning, never used."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from merkit.datasets.synthetic import load_synthetic
from merkit.representations.cache import FeatureCache, NullCache
from merkit.representations.extract import compute


@pytest.fixture
def filled(tmp_path: Path) -> tuple[FeatureCache, np.ndarray, list[Path]]:
    """A cache holding the log-mels of 8 short synthetic songs, the values and the files."""
    cache = FeatureCache(tmp_path / "cache")
    dataset = load_synthetic(n_per_quadrant=2, duration=2.0)
    reference = compute(dataset, "logmel", cache=cache, progress=False)
    files = sorted((tmp_path / "cache").rglob("*.npy"))
    assert len(files) == 8
    return cache, reference, files


def _recompute_with(
    cache: FeatureCache, reference: np.ndarray, caplog: pytest.LogCaptureFixture
) -> list[str]:
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="merkit"):
        again = compute(
            load_synthetic(n_per_quadrant=2, duration=2.0), "logmel", cache=cache, progress=False
        )
    assert isinstance(again, np.ndarray) and again.shape == reference.shape
    np.testing.assert_array_equal(again, reference)  # the recomputed value, bit for bit
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def test_a_cache_entry_full_of_nan_is_recomputed_with_a_warning(
    filled: tuple[FeatureCache, np.ndarray, list[Path]], caplog: pytest.LogCaptureFixture
) -> None:
    cache, reference, files = filled
    np.save(files[3], np.full((942, 128), np.nan, dtype=np.float16))
    warnings = _recompute_with(cache, reference, caplog)
    assert len(warnings) == 1
    assert "cached logmel of synthetic" in warnings[0]
    assert "unusable (120576 NaN or infinite value(s)); recomputing it" in warnings[0]
    assert np.isfinite(np.load(files[3])).all()  # rewritten with the good value
    assert _recompute_with(cache, reference, caplog) == []


def test_a_cache_entry_of_the_wrong_shape_is_recomputed_not_a_traceback(
    filled: tuple[FeatureCache, np.ndarray, list[Path]], caplog: pytest.LogCaptureFixture
) -> None:
    cache, reference, files = filled
    np.save(files[0], np.zeros((10, 7), dtype=np.float16))
    np.save(files[5], np.zeros((942, 128, 1), dtype=np.float16))
    warnings = _recompute_with(cache, reference, caplog)
    assert len(warnings) == 2
    assert any("shape 10x7, expected 942x128" in w for w in warnings)
    assert any("shape 942x128x1, expected 942x128" in w for w in warnings)


def test_a_cache_entry_of_the_wrong_dtype_or_with_inf_is_recomputed(
    filled: tuple[FeatureCache, np.ndarray, list[Path]], caplog: pytest.LogCaptureFixture
) -> None:
    cache, reference, files = filled
    np.save(files[1], np.zeros((942, 128), dtype=np.float64))
    bad = np.load(files[2])
    bad[5, 5] = np.inf
    np.save(files[2], bad)
    warnings = _recompute_with(cache, reference, caplog)
    assert len(warnings) == 2
    assert any("dtype float64, expected float16" in w for w in warnings)
    assert any("1 NaN or infinite value(s)" in w for w in warnings)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("logmel", (942, 128)),
        ("logmel-paper", (942, 128)),
        ("logmel-chunks", (None, 116, 128)),
        ("waveform-chunks", (None, 59_049)),
        ("own-features", None),
    ],
)
def test_each_representation_knows_the_shape_it_produces(
    name: str, expected: tuple[int | None, ...] | None
) -> None:
    from merkit.representations.registry import get_representation

    rep = get_representation(name)
    dataset = load_synthetic(n_per_quadrant=2, duration=8.0)
    value = compute(dataset.subset(dataset.song_ids[:1]), name, cache=NullCache(), progress=False)
    stored = np.asarray(value)[0].astype(rep.dtype)
    params = {k: v for k, v in rep.params.items() if k != "sr"}
    assert rep.problem(stored, rep.sr, params) is None
    if expected is not None:
        assert rep.shape is not None and rep.shape(rep.sr, params) == expected
