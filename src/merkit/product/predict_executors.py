"""Predict many files: in this process, in worker processes, or as Ray tasks; results come back
as one iterator, in input order.

:func:`predict_files` is what :meth:`merkit.product.predict.Predictor.predict_many` and
``merkit predict`` run. Whatever the executor, it yields one
:class:`~merkit.product.prediction.PredictionResult` or
:class:`~merkit.product.prediction.PredictionFailure` per path, in the order of ``paths``,
identical to a serial run (a consumer such as ``--output``/``--resume`` can write each as it comes).

- ``"processes"`` (``jobs > 1``): this process and ``jobs - 1`` :mod:`merkit.core.parallel` worker
  processes (spawned, tied to this one) predict files side by side: this one has the model loaded
  already and starts at once, each worker loads it once and keeps it for every file it gets. A
  small folder gets fewer workers: one process per :data:`MIN_FILES_PER_PROCESS` files at most,
  since a worker's start-up costs as much as a dozen files. Every process holds its torch and
  OpenMP thread pools to its share of the cores and its BLAS pool to one thread
  (:data:`BLAS_THREADS`, a serial run's too), so answers are bit-identical to a serial run's. A
  worker that dies (killed, out of memory) costs the file it was running one rerun in a fresh
  worker (``retries``); finished files are kept, and a file that kills its worker every time is a
  :class:`PredictionFailure` saying so.
- ``"ray"``: one Ray task per file on a local instance or the cluster at ``ray_address``; each
  Ray worker process loads the model once. At most a few tasks per CPU are in flight, so a library
  of millions of paths is never submitted at once. A task whose worker dies (killed, out of
  memory, its node lost) is run again up to ``retries`` times: a killed worker costs that one file
  a rerun; a file that still fails is a :class:`PredictionFailure` saying so, and the others go
  on. Every node must see the files at the same paths and have the model directory (a shared
  filesystem, or the same installation of merkit for a shipped model).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from merkit.core.errors import ConfigError
from merkit.core.threads import BLAS_THREADS, limit_torch, thread_limits
from merkit.product.prediction import PredictionFailure, PredictionResult

Outcome = PredictionResult | PredictionFailure


class FilePredictor(Protocol):
    """What :func:`predict_files` needs of a model (:class:`merkit.product.predict.Predictor`
    has it).

    This module sits below :mod:`merkit.product.predict`, which calls it: it knows the predictor
    only by this protocol and gets the functions that load and run one in a worker as arguments
    (they travel to workers by reference).
    """

    model_dir: Any  # where workers load the model from; None: only this process has it


Loader = Callable[[str], Any]
"""Loads a model directory in a worker (e.g. ``partial(load_model, check_inputs=False)``)."""

Runner = Callable[..., Outcome]
"""``run(predictor, path, segments=..., decoded=...)``: one file's result or failure
(``safe_predict``; ``decoded``: its prefetched blocks, from
:func:`merkit.audio.decode.prefetch_frames`)."""

EXECUTORS = ("processes", "ray")
"""Where :func:`predict_files` runs files when it does not run them in this process."""

RAY_TASKS_PER_CPU = 4
"""Ray tasks in flight per CPU of the cluster (enough to keep every worker busy)."""

MIN_FILES_PER_PROCESS = 16
"""``"processes"`` starts one process per this many files at most (``jobs`` is an upper bound).

A worker's start-up (spawning, importing torch and scikit-learn, loading the model, a first
file's one-off costs) takes about as much CPU as a dozen clips of the default model (3.2-6.1 CPU
s against 0.3-0.6 s a clip on a Xeon and an EPYC), and while workers run this process predicts
without decoding ahead. So on a small folder ``--jobs 2`` was slower than one process (12 clips:
0.91x on the Xeon, ``benchmarks/results/predict_speed_xeon_interleaved.md``; 0.79x on the EPYC,
``predict_speed_default_interleaved.md``); below this many files per process, fewer processes
are started (12 clips: 0.99x). With 160 clips two processes gave 1.93x one process kept to one
core."""


def predict_files(
    predictor: FilePredictor,
    paths: Sequence[str | os.PathLike[str]],
    *,
    load: Loader,
    run: Runner,
    warm_numba: bool = True,
    segments: bool = False,
    jobs: int = 1,
    executor: str = "processes",
    ray_address: str | None = None,
    retries: int = 1,
) -> Iterator[Outcome]:
    """Predict every file of ``paths``; yield its result or failure, in input order.

    Parameters
    ----------
    predictor : FilePredictor
        The loaded model. Workers load it again from ``predictor.model_dir`` (once each), so
        parallel runs need a model loaded from a directory.
    paths : sequence of path
        Audio files.
    load, run : callable
        A module-level function loading a model directory, and one predicting a file with a
        loaded model, never raising (see :data:`Loader`, :data:`Runner`).
    warm_numba : bool
        Whether the model's inputs call librosa's numba code (worker processes then check its
        cache first).
    segments : bool
        Include per-window answers.
    jobs : int
        ``"processes"``: processes at most (1: this process; fewer with fewer than
        :data:`MIN_FILES_PER_PROCESS` files per process). ``"ray"``: CPUs of the local Ray
        instance (1: every core); unused with ``ray_address``.
    executor : {"processes", "ray"}
        See the module docstring.
    ray_address : str, optional
        A Ray cluster (``auto``, ``ray://HOST:10001``); default: a local instance, stopped at the
        end.
    retries : int
        Reruns of a file whose worker died (processes and Ray).

    Raises
    ------
    ConfigError
        An unknown executor, ``ray_address`` without Ray, or a parallel run of a model that was
        not loaded from a directory.
    """
    check_executor(executor, ray_address)
    parallel = executor == "ray" or (jobs > 1 and len(paths) > 1)
    if parallel and predictor.model_dir is None:
        if executor == "ray":
            raise ConfigError("--executor ray needs a model loaded from a directory")
        parallel = False  # a model built in this process: predict here
    if not parallel:  # Predictor.predict holds BLAS to one thread itself, call by call
        if len(paths) < 2:
            for path in paths:
                yield run(predictor, path, segments=segments)
            return
        from merkit.audio.decode import prefetch_frames

        # a thread decodes the next blocks and file while this one is analysed (issue 30)
        for path, decoded in zip(paths, prefetch_frames(list(paths)), strict=True):
            yield run(predictor, path, segments=segments, decoded=decoded)
        return
    model_dir = str(predictor.model_dir)
    if executor == "ray":
        yield from _ray_predict(
            load,
            run,
            model_dir,
            [str(p) for p in paths],
            segments,
            num_cpus=None if jobs <= 1 else jobs,
            address=ray_address,
            retries=retries,
        )
        return
    from merkit.core.parallel import map_ordered

    jobs = process_count(jobs, len(paths))
    if jobs == 1:  # too few files to pay for a worker's start-up: predict them here
        yield from predict_files(predictor, paths, load=load, run=run, segments=segments)
        return
    threads = max(1, (os.cpu_count() or 1) // jobs)
    tasks = [_Task(load, run, model_dir, str(path), segments, threads) for path in paths]

    def here(task: _Task) -> Outcome:  # this process predicts files too (no start-up to pay)
        limit_torch(threads)
        return run(predictor, task.path, segments=task.segments)

    def died(task: _Task) -> Outcome:  # its worker died on it retries + 1 times
        return PredictionFailure(
            path=task.path,
            error=f"'{task.path}': its worker process died {retries + 1} time(s) "
            "(killed, out of memory, or a crash in native code)",
        )

    with thread_limits(threads):
        yield from map_ordered(
            predict_task,
            tasks,
            jobs,
            warm_numba=warm_numba,
            here=here,
            retries=retries,
            on_death=died,
        )


def process_count(jobs: int, n_files: int) -> int:
    """The processes ``executor="processes"`` runs ``n_files`` files with when asked for ``jobs``
    (``-1``: every core): one per :data:`MIN_FILES_PER_PROCESS` files at most."""
    from merkit.core.parallel import resolve_jobs

    return max(1, min(resolve_jobs(jobs), n_files // MIN_FILES_PER_PROCESS))


def check_executor(executor: str, ray_address: str | None = None) -> None:
    """Refuse an unknown executor, or a Ray address without Ray (ConfigError), before any work."""
    if executor not in EXECUTORS:
        raise ConfigError(f"--executor must be {' or '.join(EXECUTORS)}, not {executor!r}")
    if ray_address is not None and executor != "ray":
        raise ConfigError("--ray-address applies to --executor ray")


# ---------------------------------------------------------------------------------------------
# In a worker


@dataclass(frozen=True)
class _Task:
    """One file for a worker: how to load and run the model, the model directory, the file, and
    the worker's thread budget."""

    load: Loader
    run: Runner
    model_dir: str
    path: str
    segments: bool
    threads: int


@dataclass
class _Worker:
    """What a worker process keeps between files: its models (loaded once) and thread limit."""

    models: dict[str, Any] = field(default_factory=dict)
    threads: int | None = None
    limits: Any = None

    def predictor(self, task: _Task) -> Any:
        if self.threads != task.threads:
            self._limit_threads(task.threads)
        if task.model_dir not in self.models:
            self.models[task.model_dir] = task.load(task.model_dir)
        limit_torch(task.threads)
        return self.models[task.model_dir]

    def _limit_threads(self, threads: int) -> None:
        """Hold the OpenMP and torch pools to ``threads`` (N workers using every core each would
        oversubscribe the machine; torch's default is every core), BLAS to
        :data:`BLAS_THREADS` (see there). torch's and OpenMP's thread counts change no answer
        (measured, default model)."""
        from threadpoolctl import threadpool_limits

        os.environ["OMP_NUM_THREADS"] = str(threads)  # for OpenMP runtimes loaded from now on
        os.environ["OPENBLAS_NUM_THREADS"] = str(BLAS_THREADS)
        self.limits = [
            threadpool_limits(limits=threads, user_api="openmp"),
            threadpool_limits(limits=BLAS_THREADS, user_api="blas"),
        ]  # kept alive: the limits last while they live
        self.threads = threads


_WORKER = _Worker()


def predict_task(task: _Task) -> Outcome:
    """The body of a worker's (or a Ray task's) work: one file, with the worker's model."""
    return task.run(_WORKER.predictor(task), task.path, segments=task.segments)


# ---------------------------------------------------------------------------------------------
# Ray


def _ray_predict(
    load: Loader,
    run: Runner,
    model_dir: str,
    paths: list[str],
    segments: bool,
    *,
    num_cpus: int | None,
    address: str | None,
    retries: int,
) -> Iterator[Outcome]:
    from merkit.protocol.executor import TaskNeeds
    from merkit.protocol.ray_executor import RayExecutor

    with RayExecutor(address, num_cpus=num_cpus, retries=retries) as executor:
        ray = executor._ray
        remote = ray.remote(predict_task).options(
            **executor.options(TaskNeeds(cpus=1.0, label="predict"))
        )
        cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
        window = RAY_TASKS_PER_CPU * cpus
        pending: dict[Any, int] = {}
        done: dict[int, Outcome] = {}
        submitted = next_index = 0
        try:
            while next_index < len(paths):
                while submitted < len(paths) and len(pending) + len(done) < window:
                    task = _Task(load, run, model_dir, paths[submitted], segments, 1)
                    pending[remote.remote(task)] = submitted
                    submitted += 1
                if next_index in done:
                    yield done.pop(next_index)
                    next_index += 1
                    continue
                ready, _ = ray.wait(list(pending), num_returns=1)
                for ref in ready:
                    index = pending.pop(ref)
                    try:
                        done[index] = ray.get(ref)
                    except ray.exceptions.RayError as error:  # its worker died, retries spent
                        reason = " ".join(str(error).split())[:300]
                        done[index] = PredictionFailure(
                            path=paths[index],
                            error=f"'{paths[index]}': its worker died {retries + 1} time(s) "
                            f"({type(error).__name__}: {reason})",
                        )
        finally:
            for ref in pending:  # Ctrl-C, an error or an abandoned iterator: stop the rest
                with contextlib.suppress(Exception):
                    ray.cancel(ref, force=True)


__all__ = [
    "EXECUTORS",
    "FilePredictor",
    "check_executor",
    "predict_files",
    "predict_task",
]
