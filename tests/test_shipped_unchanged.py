"""The shipped models load unchanged (their digests) and answer bit for bit as recorded.

The reference probabilities are ``benchmarks/results/shipped_probabilities.json`` (written by
``benchmarks/structure_check.py``), exact float64 as ``float.hex``, computed with one BLAS
thread as every prediction is (``benchmarks/results/shipped_one_blas.md``).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

from conftest import FOURQAED, needs_4qaed, needs_crnn_weights
from merkit.product.shipped import verify_shipped

REFERENCE = Path(__file__).resolve().parents[1] / "benchmarks/results/shipped_probabilities.json"
CLIPS = ("Q1/MT0000040632.ogg", "Q4/MT0000550961.ogg")


@pytest.mark.parametrize("name", ["default", "fast"])
def test_shipped_digests_hold(name: str) -> None:
    verify_shipped(name)  # raises ModelError on any changed file


@needs_4qaed
@needs_crnn_weights
@pytest.mark.parametrize("name", ["default", "fast"])
def test_shipped_models_give_the_recorded_probabilities(name: str) -> None:
    import merkit

    recorded = json.loads(REFERENCE.read_text())["models"][name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        predictor = merkit.load_model(name)
    for clip in CLIPS:
        result = predictor.predict(FOURQAED / clip)
        got = {q: float(p).hex() for q, p in result.probabilities.items()}
        assert got == recorded[clip]["probabilities"], clip
