"""The shipped models load unchanged (their digests) and answer bit for bit as recorded.

The reference probabilities are ``benchmarks/results/shipped_probabilities*.json`` (written by
``benchmarks/structure_check.py``), exact float64 as ``float.hex``, computed with one BLAS
thread as every prediction is (``benchmarks/results/shipped_one_blas.md``), one file per CPU
kind: the last bits depend on the CPU's vector units (BLAS kernels, bf16 in hardware on AMX),
so a machine answers bit for bit as the reference recorded on its own kind. Measured on the 50
clips of the two files (AMD EPYC with AVX2, Intel Xeon with AVX-512 and AMX): every quadrant the
same, probabilities apart by at most 1.8e-3 (``default``, whose CRNN taggers run in bf16) and
4.7e-8 (``fast``). A CPU kind with no reference of its own is held to those bounds (with a
margin) and the same quadrants.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

from conftest import FOURQAED, needs_4qaed, needs_crnn_weights
from merkit.core.versions import cpu_kind
from merkit.product.shipped import verify_shipped

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks/results"
CLIPS = ("Q1/MT0000040632.ogg", "Q4/MT0000550961.ogg")
ACROSS_CPU_KINDS = {"default": 5e-3, "fast": 1e-6}
"""Largest probability difference allowed against a reference of another CPU kind."""


def _references() -> tuple[dict, bool]:
    """The reference recorded on this CPU kind (exact: True), else the first one (False)."""
    found = [json.loads(p.read_text()) for p in sorted(RESULTS.glob("shipped_probabilities*.json"))]
    model, isa = cpu_kind()
    for ref in found:
        m = ref["machine"]
        if m["cpu_model"] == model and m.get("isa", isa) == isa:
            return ref, True
    return found[0], False


def test_each_reference_names_its_cpu_kind() -> None:
    refs = [json.loads(p.read_text()) for p in sorted(RESULTS.glob("shipped_probabilities*.json"))]
    kinds = [(r["machine"]["cpu_model"], tuple(r["machine"].get("isa", ()))) for r in refs]
    assert len(refs) >= 2 and len(set(kinds)) == len(kinds)


@pytest.mark.parametrize("name", ["default", "fast"])
def test_shipped_digests_hold(name: str) -> None:
    verify_shipped(name)  # raises ModelError on any changed file


@needs_4qaed
@needs_crnn_weights
@pytest.mark.parametrize("name", ["default", "fast"])
def test_shipped_models_give_the_recorded_probabilities(name: str) -> None:
    import merkit

    reference, exact = _references()
    recorded = reference["models"][name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        predictor = merkit.load_model(name)
    for clip in CLIPS:
        result = predictor.predict(FOURQAED / clip)
        got = {q: float(p).hex() for q, p in result.probabilities.items()}
        if exact:
            assert got == recorded[clip]["probabilities"], clip
            continue
        assert result.quadrant == recorded[clip]["quadrant"], clip
        apart = max(abs(p - float.fromhex(recorded[clip]["probabilities"][q]))
                    for q, p in result.probabilities.items())  # fmt: skip
        assert apart <= ACROSS_CPU_KINDS[name], (clip, apart, reference["machine"]["cpu_model"])
