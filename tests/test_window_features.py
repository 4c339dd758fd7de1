"""Batched window inputs (:func:`merkit.product.window_features.batch_features`, what the one-pass
path computes a window with when it falls back) equal training's per-window extraction
(:class:`merkit.representations.extract.SongJobs`, the exact path of ``Predictor``).

The CRNN taggers run on a batch of windows at once, whose convolutions may sum in another order:
tag log-odds agree within 1e-4, window probabilities within 1e-5; every other input is
bit-identical.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from conftest import needs_crnn_weights
from merkit.datasets.synthetic import SyntheticSource
from merkit.product.predict import load_model
from merkit.product.window_features import plan_inputs

SR = 16_000


def _track(seconds: int = 75) -> np.ndarray:
    parts = [
        SyntheticSource(seed=5, index=i, quadrant=q, duration=15.0).load(SR)
        for i, q in enumerate(("Q1", "Q2", "Q3", "Q4", "Q1"))
    ]
    return np.concatenate(parts)[: seconds * SR]


@pytest.mark.parametrize("name", ["fast", pytest.param("default", marks=needs_crnn_weights)])
def test_batched_windows_equal_the_per_window_path(name: str) -> None:
    from merkit.audio.windows import TrackStats
    from merkit.product.window_features import batch_features

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exact = load_model(name)
    assert exact.exact_windows
    plans = plan_inputs(exact.manifest.inputs)
    assert plans is not None
    y = _track()
    windows, _ = exact._window_stream(y, SR, TrackStats())
    windows = list(windows)
    assert len(windows) >= 4  # at least one full batch of windows
    got = batch_features(plans, windows, exact.manifest.seed)
    want, _ = exact.window_inputs(y, SR)
    for spec in exact.manifest.inputs:
        stacked = np.stack([g[spec.name] for g in got])
        if "crnn" in spec.name:
            np.testing.assert_allclose(stacked, want[spec.name], rtol=0, atol=1e-4)
        else:
            np.testing.assert_array_equal(stacked, want[spec.name])


def test_a_canonical_input_shares_one_front_end() -> None:
    from merkit.product.model_dir import InputSpec

    specs = [
        InputSpec(name="own-features-canon", kind="representation", sr=SR,
                  params={"inner": "own-features", "band_sr": 14000, "trim_db": 60.0}),
        InputSpec(name="own-features", kind="representation", sr=SR, params={}),
    ]  # fmt: skip
    plans = plan_inputs(specs)
    assert plans is not None
    assert plans[0].rep.name == "own-features" and plans[0].params == {}
    assert dict(plans[0].front or ())["band_sr"] == 14000 and plans[1].front is None
