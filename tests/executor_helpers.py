"""Helpers of test_executors: an estimator whose fits can be held at a gate, and the driver script.

:class:`Gated` wraps any estimator: each fit writes a file naming its process and, while
``gate_dir/open`` is missing, waits, so a test can kill the process that runs a fold (a Ray
worker, or the driver). Run as a script, this module is a benchmark driver that a test kills.
"""

from __future__ import annotations

import os
import signal
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.utils.metaestimators import available_if

GATE_SECONDS = 120.0


class Gated(ClassifierMixin, BaseEstimator):
    """``estimator``, whose ``fit`` first records ``fit-<pid>-<id>`` in ``gate_dir`` and then
    waits for ``gate_dir/open`` (at most two minutes); ``delay`` seconds more after that."""

    def __init__(self, estimator: Any = None, gate_dir: str | None = None, delay: float = 0.0):
        self.estimator = estimator
        self.gate_dir = gate_dir
        self.delay = delay

    def fit(self, X: Any, y: Any) -> Gated:
        if self.gate_dir is not None:
            gate = Path(self.gate_dir)
            (gate / f"fit-{os.getpid()}-{uuid.uuid4().hex}").write_text(str(os.getpid()))
            deadline = time.monotonic() + GATE_SECONDS
            while not (gate / "open").exists() and time.monotonic() < deadline:
                time.sleep(0.02)
        time.sleep(self.delay)
        self.model_ = clone(self.estimator).fit(X, y)
        self.classes_ = self.model_.classes_
        return self

    def predict(self, X: Any) -> np.ndarray:
        return self.model_.predict(X)

    @available_if(lambda self: hasattr(self.estimator, "predict_proba"))
    def predict_proba(self, X: Any) -> np.ndarray:
        return self.model_.predict_proba(X)


class Suicidal(ClassifierMixin, BaseEstimator):
    """An estimator whose ``fit`` kills its own process, as the OOM killer would."""

    def fit(self, X: Any, y: Any) -> Suicidal:
        os.kill(os.getpid(), signal.SIGKILL)
        return self  # pragma: no cover


def die_once(item: tuple[Path, int]) -> int:
    """``value ** 2``; the first call of all (``marker`` missing) kills its process instead."""
    marker, value = item
    try:
        marker.open("x").close()
    except FileExistsError:
        return value * value
    os.kill(os.getpid(), signal.SIGKILL)
    return -1  # pragma: no cover


def always_die(value: int) -> int:
    os.kill(os.getpid(), signal.SIGKILL)
    return value  # pragma: no cover


def fits(gate_dir: Path) -> list[Path]:
    """The fit records written in ``gate_dir`` so far."""
    return sorted(gate_dir.glob("fit-*"))


def _driver(argv: list[str]) -> None:
    """``python executor_helpers.py OUT FEATURES.npy LABELS.npy GATE_DIR ADDRESS``: cross-validate
    a gated svm-own on the given features (4 folds x 2 repeats) on the Ray cluster at ADDRESS."""
    import ray.cloudpickle

    import executor_helpers
    from merkit.core.labels import QUADRANTS
    from merkit.datasets.base import Dataset, Song
    from merkit.methods import ResolvedMethod, resolve_method
    from merkit.protocol import ProtocolConfig, load_or_create_folds, run_method
    from merkit.protocol.ray_executor import RayExecutor

    ray.cloudpickle.register_pickle_by_value(executor_helpers)
    out, features, labels, gate, address = argv
    x, y = np.load(features), np.load(labels)
    songs = [Song(f"s{i:03d}", None, QUADRANTS[label]) for i, label in enumerate(y)]
    dataset = Dataset(name="features", songs=songs)
    protocol = ProtocolConfig(n_splits=4, n_repeats=2, random_state=1)
    folds = load_or_create_folds(Path(out) / "folds", dataset, protocol)
    method = ResolvedMethod.of(
        "gated-svm",
        executor_helpers.Gated(resolve_method("svm-own").estimator, gate, delay=0.3),
        ("own-features",),
    )
    with RayExecutor(address) as executor:
        run_method(
            method,
            dataset,
            {"own-features": x},
            folds,
            protocol,
            Path(out),
            executor=executor,
            progress=False,
        )


if __name__ == "__main__":
    _driver(sys.argv[1:])
