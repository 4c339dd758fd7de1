"""What one fold asks of an executor, and who may write a method's folder.

:func:`fold_needs` sizes a fold task (a core, a GPU for a network, memory for its copies of the
data); :func:`method_lock` lets one driver at a time write a method's fold files (an OS file lock,
released even when the driver is killed).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock, Timeout

from merkit.errors import ConfigError
from merkit.inputs import InputArray
from merkit.methods.resolve import ResolvedMethod
from merkit.protocol.executor import TaskNeeds


@contextmanager
def method_lock(method_dir: Path) -> Iterator[None]:
    """Hold ``method_dir/.lock`` while this process writes the method's folds.

    Raises
    ------
    ConfigError
        When another process (a second ``merkit benchmark`` into the same ``--out``) holds it.
    """
    method_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(method_dir / ".lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise ConfigError(
            f"another merkit process is running {method_dir.name!r} into {method_dir.parent} "
            "(it holds the folder's .lock); wait for it to finish or use another --out"
        ) from None
    try:
        yield
    finally:
        lock.release()


def uses_network(estimator: Any) -> bool:
    """Whether ``estimator`` trains a torch network (so a fold of it can use a GPU).

    True when one of its parameters is a ``device`` (a :class:`merkit.estimators.TorchClassifier`,
    or a pipeline or wrapper holding one) or its class is defined beside torch code (e.g. the
    hybrid, which builds its networks inside ``fit``).
    """
    if any(key.split("__")[-1] == "device" for key in estimator.get_params(deep=True)):
        return True
    module = vars(sys.modules.get(type(estimator).__module__, object()))
    return "torch" in module or "TorchClassifier" in module


def input_bytes(inputs: Mapping[str, InputArray]) -> int:
    """Bytes held by the arrays of ``inputs`` (feature tables, representations)."""
    total = 0
    for value in inputs.values():
        if isinstance(value, np.ndarray):
            total += value.nbytes
        elif hasattr(value, "to_numpy"):
            total += int(value.memory_usage(deep=True).sum())
        else:
            total += sum(np.asarray(part).nbytes for part in value)
    return total


def fold_needs(method: ResolvedMethod, inputs: Mapping[str, InputArray]) -> TaskNeeds:
    """One fold's requests: a core, a GPU for a network, and memory for its copies of the data.

    Memory: twice the inputs (the training and test rows are copied out of the shared arrays,
    then scaled or batched) plus a base of 1 GiB for a network, 256 MiB otherwise.
    """
    network = uses_network(method.estimator)
    base = (1 << 30) if network else (256 << 20)
    return TaskNeeds(
        cpus=1.0,
        gpus=1.0 if network else 0.0,
        memory=2 * input_bytes(inputs) + base,
        label=method.name,
    )


_PLAIN_MODULES = ("sklearn", "imblearn", "merkit.features")


def holds_network(estimator: Any) -> bool:
    """Whether ``estimator`` may hold a network: anything but scikit-learn, imbalanced-learn
    and merkit's feature steps, at any depth of its parameters."""
    found = [estimator]
    get_params = getattr(estimator, "get_params", None)
    if get_params is not None:
        found += [v for v in get_params(deep=True).values() if hasattr(v, "fit")]
    return not all(type(sub).__module__.startswith(_PLAIN_MODULES) for sub in found)


__all__ = ["fold_needs", "holds_network", "input_bytes", "method_lock", "uses_network"]
