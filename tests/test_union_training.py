"""benchmarks/union_training.py: the union's input rows are the first dataset's rows followed by
the second's, column for column, and inputs that do not line up are refused."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def union() -> Iterator[ModuleType]:
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import union_training

        yield union_training
    finally:
        sys.path.remove(str(BENCHMARKS))


def test_union_rows_are_first_then_second_in_order(union: ModuleType) -> None:
    first = {"own": np.arange(6.0).reshape(3, 2), "tags": np.arange(9.0).reshape(3, 3)}
    second = {"own": -np.arange(4.0).reshape(2, 2), "tags": -np.arange(6.0).reshape(2, 3)}
    out = union.union_arrays(first, second)
    for name in first:
        assert out[name].shape == (5, first[name].shape[1])
        np.testing.assert_array_equal(out[name][:3], first[name])
        np.testing.assert_array_equal(out[name][3:], second[name])


def test_union_refuses_different_inputs_or_columns(union: ModuleType) -> None:
    a = {"own": np.zeros((2, 3))}
    with pytest.raises(ValueError, match="column layouts differ"):
        union.union_arrays(a, {"own": np.zeros((2, 4))})
    with pytest.raises(ValueError, match="different inputs"):
        union.union_arrays(a, {"tags": np.zeros((2, 3))})


def test_bootstrap_macro_f1_is_fold_metrics_f1(union: ModuleType) -> None:
    from merkit.protocol.metrics import fold_metrics

    rng = np.random.default_rng(0)
    for present in ([0, 1, 2, 3], [0, 2, 3]):
        y = rng.choice(present, 200)
        pred = rng.integers(0, 4, 200)
        pred[:5] = 1  # a quadrant predicted that y may lack
        assert union.macro_f1(y, pred) == pytest.approx(fold_metrics(y, pred)["f1"])
