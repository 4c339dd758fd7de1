"""Folds and per-song representations as tasks on a Ray cluster (``pip install 'merkit[ray]'``).

:class:`RayExecutor` satisfies :class:`~merkit.protocol.executor.Executor`: every fold is one Ray
task asking for its :class:`~merkit.protocol.executor.TaskNeeds` (a core, a GPU or a fraction of
one for a network when the cluster has GPUs, memory). The fold function and the inputs it holds
are put into the object store once per method; every node keeps one shared-memory copy that its
tasks read without copying. Results come back to the driver, which writes each fold's file as its
task finishes (:func:`merkit.protocol.runner.run_method`), so resume works as in a serial run.

Representations (:meth:`RayExecutor.song_mapper`) are computed once per song, as tasks, for the
songs the driver's cache lacks. Where they are kept:

- **shared cache** — when every node sees the driver's cache folder (a local instance, or a
  cluster whose nodes mount the same filesystem; detected by a probe file each node must read,
  or forced with ``shared_cache=``): tasks write each song's value into that cache
  (disk: the representation in its storage dtype, e.g. float16 log-mels), where reruns and other
  drivers find it;
- **object store** — otherwise: tasks compute without a cache, each value travels to the driver
  through the object store and the driver stores it in its own cache (disk on the driver only).

Either way the fold tasks then read the stacked float32 inputs from the object store, which needs
their size once per node (object-store memory, shared memory by default), plus each fold's
working memory (:func:`merkit.protocol.runner.fold_needs`). Songs' audio is read by path: every
node needs the dataset at the same path (a shared filesystem, or a copy at the same place).

Faults: a task whose worker process dies (killed, out of memory, its node lost) is retried by Ray
up to ``retries`` times; a fold that still fails is reported by :class:`TasksFailed` with Ray's
reason after all other folds are written. A Python error inside a task is raised in the driver as
itself (no retry: it would fail again). Ctrl-C in the driver cancels every pending task (their
workers are killed) and leaves only complete fold files. Every worker verifies librosa's numba
cache (:func:`merkit.core.numba_cache.ensure_numba_cache`, file-locked) before its first task:
concurrent first compiles corrupt numba's on-disk cache (numba issue #10128).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from merkit.core.errors import ConfigError, MerkitError
from merkit.protocol.executor import TaskNeeds, TasksFailed
from merkit.representations.cache import NullCache
from merkit.representations.extract import SongJob

T = TypeVar("T")
R = TypeVar("R")

_log = logging.getLogger(__name__)
_warmed = False  # per worker process

LOCAL_SYSTEM_CONFIG: dict[str, int] = {
    "health_check_period_ms": 10_000,
    "health_check_timeout_ms": 60_000,
    "health_check_failure_threshold": 10,
    "worker_register_timeout_seconds": 300,
}
"""Ray settings of a local instance, for a machine shared with other jobs: Ray's defaults declare
the node dead after about 25 s without a heartbeat and a worker failed when it has not started in
60 s, which happens on a loaded machine (measured at a load average of 25 on 2 cores); a worker
starting slowly (importing torch) then looks like a crash."""


def _warm_worker() -> None:
    """Guard librosa's numba cache in this worker before its first task (numba #10128)."""
    global _warmed
    if not _warmed:
        from merkit.core.numba_cache import ensure_numba_cache, lock_numba_cache_io

        lock_numba_cache_io()
        ensure_numba_cache()
        _warmed = True


def _run(fn: Callable[[Any], Any], item: Any) -> Any:
    """The body of every task: warm the worker, then ``fn(item)``."""
    _warm_worker()
    return fn(item)


def _probe(path: str, token: str) -> bool:
    """Whether this node reads ``token`` from ``path`` (a shared-filesystem probe)."""
    with contextlib.suppress(OSError):
        return Path(path).read_text() == token
    return False


def _import_ray() -> Any:
    from merkit.core.versions import require_extra

    return require_extra("ray", needed_by="--executor ray")


def _reason(error: BaseException) -> str:
    """Ray's explanation of a lost task, on one line."""
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text[:300]}"


class RayExecutor:
    """Runs tasks on Ray: a local instance, or the cluster at ``address``.

    Parameters
    ----------
    address : str, optional
        ``"auto"`` (the cluster this machine belongs to), ``"ray://HOST:10001"`` (Ray Client),
        or a GCS address; None starts a local instance (stopped by :meth:`close`). When Ray is
        already initialised in this process, that instance is used as it is.
    num_cpus : int, optional
        CPUs of the local instance (default: every core). Ignored with ``address``.
    gpus_per_fold : float
        GPUs (or a fraction of one) asked for by a fold of a network method when the cluster has
        GPUs; a fold of any other method asks for none.
    cpus_per_fold : float, optional
        Overrides the fold's CPU request (default :attr:`TaskNeeds.cpus`).
    memory_per_fold : int, optional
        Bytes reserved per fold, overriding the estimate of :func:`~merkit.protocol.runner.
        fold_needs` (an estimate larger than every node is capped at 80 % of the largest one).
    retries : int
        Times a task whose worker died is run again.
    shared_cache : bool, optional
        Whether every node sees the driver's cache folder; None probes it.
    """

    def __init__(
        self,
        address: str | None = None,
        *,
        num_cpus: int | None = None,
        gpus_per_fold: float = 1.0,
        cpus_per_fold: float | None = None,
        memory_per_fold: int | None = None,
        retries: int = 2,
        shared_cache: bool | None = None,
        quiet: bool = False,
    ) -> None:
        if gpus_per_fold < 0 or (cpus_per_fold is not None and cpus_per_fold <= 0):
            raise ConfigError("--gpus-per-fold must be >= 0 and --cpus-per-fold > 0")
        if retries < 0:
            raise ConfigError(f"--retries must be 0 or more, not {retries}")
        self.address = address
        self.num_cpus = num_cpus
        self.gpus_per_fold = float(gpus_per_fold)
        self.cpus_per_fold = cpus_per_fold
        self.memory_per_fold = memory_per_fold
        self.retries = int(retries)
        self.shared_cache = shared_cache
        self.quiet = quiet
        self._ray: Any = None
        self._owned = False
        self._remote: Any = None
        self._shared: dict[str, bool] = {}

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> RayExecutor:
        """Connect to (or start) Ray; idempotent."""
        if self._ray is not None:
            return self
        ray = _import_ray()
        if not ray.is_initialized():
            if self.address is None:
                # Workers of a local instance share this machine's numba cache: fill it once here.
                from merkit.core.numba_cache import ensure_numba_cache

                ensure_numba_cache()
            self._init(ray)
            self._owned = True
        self._ray = ray
        self._remote = ray.remote(_run)
        return self

    def _init(self, ray: Any, attempts: int = 3) -> None:
        if self.quiet:
            # --quiet: Ray's own notices (its token-authentication warning among them) and the
            # workers' log lines stay off the terminal; failures still arrive as exceptions and
            # merkit's summary. (RAY_AUTH_MODE is left to the user: setting it after Ray has read
            # its config makes the driver and a new local instance disagree.)
            logging.getLogger("ray").setLevel(logging.ERROR)
        # ray.init puts the driver's current folder on every worker's sys.path: started from
        # the folder holding merkit (already on sys.path), no code of a music or data folder runs
        packages = Path(__file__).resolve().parents[2]  # the folder holding merkit/
        for attempt in range(1, attempts + 1):
            try:
                with contextlib.chdir(packages):
                    ray.init(
                        address=self.address,
                        num_cpus=None if self.address else self.num_cpus,
                        include_dashboard=False,
                        configure_logging=False,
                        log_to_driver=not self.quiet,
                        _system_config=None if self.address else LOCAL_SYSTEM_CONFIG,
                    )
                return
            except (ConnectionError, RuntimeError, ValueError) as error:
                raise ConfigError(
                    f"cannot connect to Ray at {self.address or 'a new local instance'}: {error}"
                ) from None
            except Exception as error:
                # Ray gives a new local node a fixed 30 s to register, which a loaded machine
                # can miss ("The current node timed out during startup"): start it again.
                if self.address is not None or attempt == attempts or "startup" not in str(error):
                    raise
                _log.warning("Ray's local instance did not start in time; starting it again")
                ray.shutdown()

    def close(self) -> None:
        """Stop the local instance this executor started (a cluster is left running)."""
        if self._ray is not None and self._owned:
            # After Ray's node died its shutdown may fail too; that must not hide merkit's summary.
            with contextlib.suppress(Exception):
                self._ray.shutdown()
        self._ray, self._owned = None, False

    def __enter__(self) -> RayExecutor:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- scheduling -----------------------------------------------------------------------------

    def _largest_node(self) -> dict[str, float]:
        nodes = [n["Resources"] for n in self._ray.nodes() if n.get("Alive")]
        return {
            key: max((float(n.get(key, 0.0)) for n in nodes), default=0.0)
            for key in ("CPU", "GPU", "memory")
        }

    def options(self, needs: TaskNeeds | None) -> dict[str, Any]:
        """Ray task options (resources, retries) for tasks with ``needs``.

        Raises
        ------
        ConfigError
            When no node could ever run such a task (Ray would wait for one forever).
        """
        self.start()
        needs = needs or TaskNeeds()
        largest = self._largest_node()
        cpus = float(self.cpus_per_fold or needs.cpus)
        options: dict[str, Any] = {
            "num_cpus": cpus,
            "max_retries": self.retries,
            "retry_exceptions": False,
        }
        if cpus > largest["CPU"]:
            raise ConfigError(
                f"a {needs.label} task asks for {cpus:g} CPUs but the largest Ray node has "
                f"{largest['CPU']:g}; lower --cpus-per-fold"
            )
        if needs.gpus > 0 and largest["GPU"] > 0 and self.gpus_per_fold > 0:
            gpus = needs.gpus * self.gpus_per_fold
            if gpus > largest["GPU"]:
                raise ConfigError(
                    f"a {needs.label} fold asks for {gpus:g} GPUs but the largest Ray node has "
                    f"{largest['GPU']:g}; lower --gpus-per-fold"
                )
            options["num_gpus"] = gpus
        memory = self.memory_per_fold if self.memory_per_fold is not None else needs.memory
        if memory:
            if memory > largest["memory"]:
                if self.memory_per_fold is not None:
                    raise ConfigError(
                        f"--memory-per-fold asks for {memory / 2**30:.1f} GiB but the largest "
                        f"Ray node offers {largest['memory'] / 2**30:.1f} GiB"
                    )
                memory = int(0.8 * largest["memory"])
            options["memory"] = int(memory)
        return options

    def map(
        self, fn: Callable[[T], R], tasks: Iterable[T], *, needs: TaskNeeds | None = None
    ) -> Iterator[R]:
        """Run ``fn(task)`` for every task on the cluster; yield results as they finish.

        Raises
        ------
        TasksFailed
            After every other result, for tasks whose workers died more than ``retries`` times.
        Exception
            The exception ``fn`` raised in a task, as itself (other tasks are cancelled).
        """
        ray = self.start()._ray
        remote = self._remote.options(**self.options(needs))
        fn_ref = ray.put(fn)  # once: every task (and every node) shares this copy
        pending = {remote.remote(fn_ref, task): index for index, task in enumerate(tasks)}
        failures: dict[int, str] = {}
        warned: set[str] = set()
        try:
            while pending:
                try:
                    ready, _ = ray.wait(list(pending), num_returns=1)
                except ray.exceptions.RayError as error:
                    # Ray itself is gone (its node process died): every pending task is lost.
                    _log.warning(
                        "Ray stopped answering (%s): the folds finished so far are saved; rerun "
                        "the same command to resume",
                        type(error).__name__,
                    )
                    failures.update(dict.fromkeys(pending.values(), _reason(error)))
                    pending.clear()
                    break
                for ref in ready:
                    index = pending.pop(ref)
                    try:
                        result = ray.get(ref)
                    except ray.exceptions.RayTaskError as error:
                        raise _cause(error) from None
                    except ray.exceptions.RayError as error:  # the worker or its node was lost
                        failures[index] = _reason(error)
                        kind = type(error).__name__
                        if self._lost_ray(error):
                            # Ray's own node process is gone: nothing pending can finish, and
                            # Ray may end this process soon, so say now what a rerun does.
                            _log.warning(
                                "Ray's node process died (%s): the folds finished so far are "
                                "saved; rerun the same command to resume",
                                kind,
                            )
                            failures.update(dict.fromkeys(pending.values(), failures[index]))
                            pending.clear()
                            break
                        if kind not in warned:  # one line per kind of failure, not per task
                            warned.add(kind)
                            _log.warning(
                                "a %s task failed (%s); merkit summarises the failed tasks at "
                                "the end",
                                getattr(needs, "label", "") or "Ray",
                                kind,
                            )
                        continue
                    yield result
        finally:
            # Ctrl-C, an error, or an abandoned generator: nothing left running for this map.
            for ref in pending:
                with contextlib.suppress(Exception):
                    ray.cancel(ref, force=True)
        if failures:
            raise TasksFailed(needs.label if needs else "task", failures)

    def _lost_ray(self, error: BaseException) -> bool:
        """Whether ``error`` means no task can run any more: this machine's raylet died, or the
        node of a local instance (its only node) was declared dead."""
        exceptions = self._ray.exceptions
        if isinstance(error, exceptions.LocalRayletDiedError):
            return True
        return self._owned and isinstance(error, exceptions.NodeDiedError)

    # -- representations ------------------------------------------------------------------------

    def cache_is_shared(self, cache: Any) -> bool:
        """Whether every alive node reads the folder of ``cache`` (see the module docstring)."""
        root = getattr(cache, "root", None)
        if root is None:
            return False
        if self.shared_cache is not None:
            return self.shared_cache
        key = str(root)
        if key not in self._shared:
            self._shared[key] = self._probe_shared(Path(root))
        return self._shared[key]

    def _probe_shared(self, root: Path) -> bool:
        ray = self.start()._ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        root.mkdir(parents=True, exist_ok=True)
        token = uuid.uuid4().hex
        probe = root / f".merkit-probe-{token}"
        probe.write_text(token)
        try:
            nodes = [n["NodeID"] for n in ray.nodes() if n.get("Alive")]
            probe_task = ray.remote(_probe)
            refs = [
                probe_task.options(
                    num_cpus=0,
                    scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False),
                ).remote(str(probe), token)
                for node in nodes
            ]
            return all(ray.get(refs))
        finally:
            with contextlib.suppress(OSError):
                probe.unlink()

    def song_mapper(self, job: SongJob, sources: list[Any]) -> Iterator[tuple[np.ndarray, bool]]:
        """Compute ``job`` for every source as Ray tasks; yield ``(value, cached)`` in order.

        A :data:`merkit.representations.extract.SongMapper` for
        :func:`merkit.representations.extract.compute`. Songs the
        driver's cache holds are not sent out; see the module docstring for where the others go.
        """
        ray = self.start()._ray
        shared = self.cache_is_shared(job.cache)
        results: list[tuple[np.ndarray, bool] | None] = [None] * len(sources)
        for index, source in enumerate(sources):
            cached = job.cached(source)
            if cached is not None:
                results[index] = (cached, True)
        missing = [i for i, result in enumerate(results) if result is None]
        pending: dict[Any, int] = {}
        if missing:
            worker_job = job if shared else dataclasses.replace(job, cache=NullCache())
            job_ref = ray.put(worker_job)
            remote = self._remote.options(
                num_cpus=1, max_retries=self.retries, retry_exceptions=False
            )
            pending = {remote.remote(job_ref, sources[i]): i for i in missing}
        try:
            for index in range(len(sources)):
                while results[index] is None:
                    ready, _ = ray.wait(list(pending), num_returns=1)
                    ref = ready[0]
                    done = pending.pop(ref)
                    try:
                        value, was_cached = ray.get(ref)
                    except ray.exceptions.RayTaskError as error:
                        raise _cause(error) from None
                    except ray.exceptions.RayError as error:
                        raise MerkitError(
                            f"computing {job.rep.name} of {sources[done].description} failed "
                            f"after {self.retries} retries ({_reason(error)}); rerun to resume"
                        ) from None
                    if not shared:
                        job.cache.put(job.key(sources[done]), value)
                    results[done] = (value, was_cached)
                result, results[index] = results[index], None  # the caller keeps the copy
                yield result
        finally:
            for ref in pending:
                with contextlib.suppress(Exception):
                    ray.cancel(ref, force=True)


def _cause(error: Any) -> BaseException:
    """The exception a task raised, as itself (Ray wraps it in a RayTaskError)."""
    cause = getattr(error, "cause", None)
    return cause if isinstance(cause, BaseException) else error


__all__ = ["RayExecutor"]
