"""Batched window inputs (:mod:`merkit.product.window_features`) equal training's per-window
extraction (:class:`merkit.representations.extract.SongJobs`, ``Predictor(jobs_path=True)``).

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
from merkit.product.predict import Predictor, load_model
from merkit.product.window_features import plan_inputs

SR = 16_000


def _track(seconds: int = 75) -> np.ndarray:
    parts = [
        SyntheticSource(seed=5, index=i, quadrant=q, duration=15.0).load(SR)
        for i, q in enumerate(("Q1", "Q2", "Q3", "Q4", "Q1"))
    ]
    return np.concatenate(parts)[: seconds * SR]


def _pair(name: str) -> tuple[Predictor, Predictor]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        batched, jobs = load_model(name), load_model(name)
    jobs.jobs_path = True
    return batched, jobs


def _windows(result: object) -> np.ndarray:
    return np.array([list(s.probabilities.values()) for s in result.segments])  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", ["fast", pytest.param("default", marks=needs_crnn_weights)])
def test_batched_windows_equal_the_per_window_path(name: str) -> None:
    batched, jobs = _pair(name)
    assert plan_inputs(batched.manifest.inputs) is not None  # the batched path is the one taken
    y = _track()
    new, old = batched.predict(y, sr=SR, segments=True), jobs.predict(y, sr=SR, segments=True)
    assert len(new.segments) == len(old.segments) >= 4  # at least one full batch of windows
    np.testing.assert_allclose(_windows(new), _windows(old), rtol=0, atol=1e-5)
    assert new.quadrant == old.quadrant
    got, _ = batched.window_inputs(y, SR)
    want, _ = jobs.window_inputs(y, SR)
    for spec in batched.manifest.inputs:
        if "crnn" in spec.name:
            np.testing.assert_allclose(got[spec.name], want[spec.name], rtol=0, atol=1e-4)
        else:
            np.testing.assert_array_equal(got[spec.name], want[spec.name])


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
