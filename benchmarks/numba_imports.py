"""Where a fresh install's first prediction spends its time: librosa's numba compilation.

Imports librosa's modules one by one and prints the seconds each takes. Run it with an empty
numba cache to see the one-off compilation a fresh install pays::

    rm -rf /tmp/numba-fresh && NUMBA_CACHE_DIR=/tmp/numba-fresh python benchmarks/numba_imports.py

librosa compiles the functions it declares with explicit numba signatures (``guvectorize`` /
``vectorize``) when their module is imported, every signature at once; ``librosa.util.utils`` is
imported by every librosa function. ``benchmarks/predict_speed.py --fresh-only`` measures the
same through a model's first prediction.
"""

from __future__ import annotations

import importlib
import time

MODULES = (
    "librosa",
    "librosa.util.utils",
    "librosa.core.audio",
    "librosa.core.spectrum",
    "librosa.filters",
    "librosa.core.pitch",
    "librosa.onset",
    "librosa.beat",
    "librosa.feature",
    "librosa.decompose",
    "librosa.effects",
    "librosa.sequence",
)


def main() -> None:
    tic = time.perf_counter()
    import numba  # noqa: F401
    import numpy  # noqa: F401

    print(f"numba+numpy {time.perf_counter() - tic:.2f}", flush=True)
    for name in MODULES:
        tic = time.perf_counter()
        importlib.import_module(name)
        print(f"{name} {time.perf_counter() - tic:.2f}", flush=True)


if __name__ == "__main__":
    main()
