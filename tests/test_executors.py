"""Executors: serial, processes and Ray give fold-for-fold identical results; faults and resumes.

One local Ray instance (2 CPUs) serves the whole module. Killing is done from outside the
process that runs a fold: :class:`executor_helpers.Gated` holds each fit at a gate and names its
process, so a test can SIGKILL a Ray worker mid-fold or a driver mid-run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import executor_helpers
from executor_helpers import Gated, fits
from merkit.benchmark import run_benchmark
from merkit.core.errors import ConfigError
from merkit.core.labels import QUADRANTS
from merkit.datasets.base import Dataset, Song
from merkit.datasets.synthetic import load_synthetic
from merkit.methods import ResolvedMethod, resolve_method
from merkit.protocol import (
    ProcessExecutor,
    ProtocolConfig,
    SerialExecutor,
    TaskNeeds,
    TasksFailed,
    load_or_create_folds,
    run_method,
)
from merkit.protocol.runner import fold_needs, method_lock
from merkit.representations.cache import FeatureCache
from merkit.representations.extract import ComputeStats, compute

ray = pytest.importorskip("ray", reason="--executor ray needs the merkit[ray] extra")
from merkit.protocol.ray_executor import RayExecutor  # noqa: E402

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def ray_local() -> Iterator[str]:
    """A local Ray instance with 2 CPUs for this module; its GCS address."""
    ray.cloudpickle.register_pickle_by_value(executor_helpers)  # workers need not import tests/
    executor = RayExecutor(num_cpus=2).start()  # the executors of the tests reuse it
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        executor.close()


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> tuple[Dataset, np.ndarray, Path]:
    """16 synthetic songs, their own-features computed serially into a cache, and that cache."""
    dataset = load_synthetic(n_per_quadrant=4, seed=3, duration=3.0)
    cache = tmp_path_factory.mktemp("cache")
    features = compute(dataset, "own-features", cache=FeatureCache(cache), progress=False)
    return dataset, np.asarray(features), cache


def feature_dataset(labels: np.ndarray) -> Dataset:
    songs = [Song(f"s{i:03d}", None, QUADRANTS[label]) for i, label in enumerate(labels)]
    return Dataset(name="features", songs=songs)


def scores(result: object) -> list[tuple[str, list[int], list[list[float]] | None]]:
    return [(r.name, r.y_pred, r.proba) for r in result.per_fold]  # type: ignore[attr-defined]


# ---- identical results ------------------------------------------------------------------------


def test_svm_own_folds_are_identical_on_every_executor(
    synthetic: tuple[Dataset, np.ndarray, Path], ray_local: str, tmp_path: Path
) -> None:
    dataset, features, cache = synthetic
    protocol = ProtocolConfig(n_splits=4, n_repeats=2, random_state=1)
    runs = {}
    for name, executor, run_cache in (
        ("serial", SerialExecutor(), cache),
        ("processes", ProcessExecutor(2), cache),
        # an empty cache: Ray computes every song's features as tasks, then the folds
        ("ray", RayExecutor(), tmp_path / "ray-cache"),
    ):
        (result,) = run_benchmark(
            dataset,
            ["svm-own"],
            protocol,
            tmp_path / name,
            cache=FeatureCache(run_cache),
            progress=False,
            executor=executor,
        )
        assert result.complete
        runs[name] = scores(result)
    assert runs["serial"] == runs["processes"] == runs["ray"]
    assert len(runs["serial"]) == 8
    # The local instance shares this machine's cache folder: the Ray tasks stored the songs there.
    stats = ComputeStats()
    again = compute(
        dataset,
        "own-features",
        cache=FeatureCache(tmp_path / "ray-cache"),
        progress=False,
        stats=stats,
    )
    assert stats.cached == len(dataset)
    # A single-threaded worker's FFTs round differently in float32's last bits than this
    # process's; the scores above are identical all the same.
    np.testing.assert_allclose(again, features, rtol=1e-4, atol=1e-6)


def test_quick_cnn_folds_are_identical_on_every_executor(ray_local: str, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 4)
    mels = (rng.normal(size=(16, 116, 128)) + labels[:, None, None]).astype(np.float32)
    dataset = feature_dataset(labels)
    protocol = ProtocolConfig(n_splits=2, n_repeats=1)
    folds = load_or_create_folds(tmp_path / "folds", dataset, protocol)
    settings = {
        "batch_size": 8,
        "device": "cpu",
        "model_params": {"n_frames": 116},
        # The same thread count everywhere: torch's CPU kernels reduce in a thread-dependent order.
        "train_options": {"num_threads": 1},
    }
    method = resolve_method("cnn", settings, quick=True)
    assert fold_needs(method, {"logmel": mels}).gpus == 1.0  # a network: a GPU where there is one
    runs = {}
    for name, executor in (
        ("serial", SerialExecutor()),
        ("processes", ProcessExecutor(2)),
        ("ray", RayExecutor()),
    ):
        result = run_method(
            method,
            dataset,
            {"logmel": mels},
            folds,
            protocol,
            tmp_path / name,
            executor=executor,
            progress=False,
        )
        assert [r.training.epochs_run for r in result.per_fold] == [2, 2]
        runs[name] = scores(result)
    assert runs["serial"] == runs["processes"] == runs["ray"]


# ---- faults -----------------------------------------------------------------------------------


def gated_svm(gate: Path, delay: float = 0.0) -> ResolvedMethod:
    return ResolvedMethod.of(
        "gated-svm", Gated(resolve_method("svm-own").estimator, str(gate), delay), ("own-features",)
    )


def wait_for(condition: object, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_a_ray_worker_killed_mid_fold_is_retried_and_the_numbers_are_identical(
    synthetic: tuple[Dataset, np.ndarray, Path], ray_local: str, tmp_path: Path
) -> None:
    dataset, features, _ = synthetic
    data = feature_dataset(dataset.labels)
    protocol = ProtocolConfig(n_splits=4, n_repeats=1, random_state=1)
    folds = load_or_create_folds(tmp_path / "folds", data, protocol)
    inputs = {"own-features": features}
    open_gate = tmp_path / "open-gate"
    open_gate.mkdir()
    (open_gate / "open").touch()
    reference = run_method(
        gated_svm(open_gate), data, inputs, folds, protocol, tmp_path / "serial", progress=False
    )

    gate = tmp_path / "gate"
    gate.mkdir()
    results: list[object] = []
    executor = RayExecutor(retries=2)
    runner = threading.Thread(
        target=lambda: results.append(
            run_method(
                gated_svm(gate),
                data,
                inputs,
                folds,
                protocol,
                tmp_path / "ray",
                executor=executor,
                progress=False,
            )
        )
    )
    runner.start()
    wait_for(lambda: any(p.read_text() for p in fits(gate)), 120, "a fold to start on Ray")
    victim = int(next(p.read_text() for p in fits(gate) if p.read_text()))
    assert victim != os.getpid()
    os.kill(victim, signal.SIGKILL)  # mid-fold: the fit waits at the gate
    (gate / "open").touch()
    runner.join(180)
    assert not runner.is_alive() and results, "the run did not finish"
    assert scores(results[0]) == scores(reference)
    assert len(fits(gate)) == len(folds) + 1  # the killed fold ran once more


def test_a_fold_whose_worker_keeps_dying_is_reported_failed_with_the_reason(
    synthetic: tuple[Dataset, np.ndarray, Path], ray_local: str, tmp_path: Path
) -> None:
    dataset, features, _ = synthetic
    data = feature_dataset(dataset.labels)
    protocol = ProtocolConfig(n_splits=2, n_repeats=1, random_state=1)
    folds = load_or_create_folds(tmp_path / "folds", data, protocol)
    method = ResolvedMethod.of("dies", executor_helpers.Suicidal(), ("own-features",))
    with pytest.raises(TasksFailed, match="2 dies task.*WorkerCrashedError") as failed:
        run_method(
            method,
            data,
            {"own-features": features},
            folds,
            protocol,
            tmp_path,
            executor=RayExecutor(retries=1),
            progress=False,
        )
    assert sorted(failed.value.failures) == [0, 1]
    assert not list((tmp_path / "dies" / "folds").glob("*.json"))  # no half result


@pytest.mark.slow
def test_a_killed_driver_is_resumed_by_a_rerun_with_identical_numbers(
    synthetic: tuple[Dataset, np.ndarray, Path], ray_local: str, tmp_path: Path
) -> None:
    dataset, features, _ = synthetic
    np.save(tmp_path / "x.npy", features)
    np.save(tmp_path / "y.npy", dataset.labels)
    gate = tmp_path / "gate"
    gate.mkdir()
    (gate / "open").touch()
    out = tmp_path / "run"
    command = [
        sys.executable,
        str(HERE / "executor_helpers.py"),
        str(out),
        str(tmp_path / "x.npy"),
        str(tmp_path / "y.npy"),
        str(gate),
        ray_local,
    ]
    folds_dir = out / "gated-svm" / "folds"
    log = tmp_path / "driver.log"
    with log.open("wb") as sink:
        driver = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
    try:
        wait_for(
            lambda: len(list(folds_dir.glob("*.json"))) >= 2 or driver.poll() is not None,
            300,
            "two finished folds",
        )
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.wait(30)
    assert driver.returncode == -signal.SIGKILL, log.read_text()[-3000:]
    first = {p.name: p.read_bytes() for p in folds_dir.glob("*.json")}
    assert 2 <= len(first) < 8, "the driver was not killed midway"
    rerun = subprocess.run(command, capture_output=True, text=True, timeout=420)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    final = {p.name: p.read_bytes() for p in folds_dir.glob("*.json")}
    assert len(final) == 8
    assert all(final[name] == body for name, body in first.items())  # finished folds kept

    data = feature_dataset(dataset.labels)
    protocol = ProtocolConfig(n_splits=4, n_repeats=2, random_state=1)
    folds = load_or_create_folds(out / "folds", data, protocol)  # the run's persisted folds
    reference = run_method(
        gated_svm(gate),
        data,
        {"own-features": features},
        folds,
        protocol,
        tmp_path / "serial",
        progress=False,
    )
    resumed = run_method(
        gated_svm(gate), data, {"own-features": features}, folds, protocol, out, progress=False
    )  # reads every fold back: nothing left to compute
    assert scores(resumed) == scores(reference)


def test_processes_retry_tasks_whose_worker_died(tmp_path: Path) -> None:
    marker = tmp_path / "died"
    results = sorted(
        ProcessExecutor(2, retries=1).map(
            executor_helpers.die_once, [(marker, i) for i in range(4)]
        )
    )
    assert results == [0, 1, 4, 9] and marker.exists()
    with pytest.raises(TasksFailed, match="task"):
        list(ProcessExecutor(2, retries=1).map(executor_helpers.always_die, [1, 2]))


# ---- scheduling, locking, options -------------------------------------------------------------


def test_ray_requests_a_gpu_only_for_networks_on_a_cluster_with_gpus(ray_local: str) -> None:
    executor = RayExecutor(gpus_per_fold=0.5, retries=3)
    network = TaskNeeds(cpus=1, gpus=1, memory=1 << 20, label="cnn")
    options = executor.options(network)
    # This instance has no GPU: the fold asks for none rather than waiting forever for one.
    assert "num_gpus" not in options
    assert options["num_cpus"] == 1 and options["memory"] == 1 << 20
    assert options["max_retries"] == 3 and options["retry_exceptions"] is False
    executor._largest_node = lambda: {"CPU": 8.0, "GPU": 2.0, "memory": 2.0**34}  # type: ignore[method-assign]
    assert executor.options(network)["num_gpus"] == 0.5
    assert "num_gpus" not in executor.options(TaskNeeds(label="svm"))
    executor.cpus_per_fold = 16
    with pytest.raises(ConfigError, match="16 CPUs but the largest Ray node has 8"):
        executor.options(network)
    executor.cpus_per_fold = None
    # An estimate larger than every node is capped; an explicit request is refused.
    assert executor.options(TaskNeeds(memory=2**40))["memory"] == int(0.8 * 2**34)
    executor.memory_per_fold = 2**40
    with pytest.raises(ConfigError, match="--memory-per-fold"):
        executor.options(network)


def test_a_second_driver_cannot_write_the_same_method_folder(tmp_path: Path) -> None:
    first, second = method_lock(tmp_path / "svm"), method_lock(tmp_path / "svm")
    with first, pytest.raises(ConfigError, match="another merkit"), second:
        pass
    with method_lock(tmp_path / "svm"):  # released when the first driver is done
        pass


def test_executor_options_are_checked(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from merkit.cli import app

    for args, message in (
        (["--executor", "threads"], "--executor must be serial, processes or ray"),
        (["--workers", "4"], "--workers applies to --executor processes or ray"),
        (["--ray-address", "auto"], "--ray-address applies to --executor ray"),
    ):
        result = CliRunner().invoke(
            app, ["benchmark", "--quick", "--out", str(tmp_path), "--quiet", *args]
        )
        assert result.exit_code != 0
        assert message in result.output, result.output
