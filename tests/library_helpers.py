"""A deliberately slow test representation, so a library run can be killed part-way through.

``MERKIT_TEST_DELAY`` (seconds, default 0) is read at each call: training runs at full speed, a
``merkit predict`` subprocess given a delay is slow enough to be SIGKILLed after a few files.
"""

from __future__ import annotations

import os
import time

import numpy as np

from merkit.methods import METHODS, MethodSpec, register_method
from merkit.representations.registry import REPRESENTATIONS, Representation, register_representation
from product_helpers import _logreg, band_features

SLOW_BANDS = "test-slow-bands"
SLOW_LOGREG = "test-slow-logreg"


def slow_band_features(y: np.ndarray, sr: int, *, seed: int = 0, n_bands: int = 8) -> np.ndarray:
    """:func:`product_helpers.band_features` after sleeping ``MERKIT_TEST_DELAY`` seconds."""
    time.sleep(float(os.environ.get("MERKIT_TEST_DELAY", "0")))
    return band_features(y, sr, seed=seed, n_bands=n_bands)


def register_slow_method() -> None:
    """Register the slow representation and a logistic regression on it (once per process)."""
    if SLOW_BANDS not in REPRESENTATIONS:
        register_representation(Representation(name=SLOW_BANDS, fn=slow_band_features))
    if SLOW_LOGREG not in METHODS:
        register_method(MethodSpec(SLOW_LOGREG, "test: slow band energies", (SLOW_BANDS,), _logreg))


def main() -> None:
    """``python tests/library_helpers.py predict ...``: the merkit CLI knowing these parts."""
    # The module by its own name, not ``__main__``: the manifest names the function as
    # ``library_helpers:slow_band_features``, as training registered it.
    import library_helpers

    library_helpers.register_slow_method()
    from merkit.cli import app

    app(prog_name="merkit")


if __name__ == "__main__":
    main()
