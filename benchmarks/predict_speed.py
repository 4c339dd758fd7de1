"""Prediction speed and memory of a model directory: what ``merkit predict`` costs per song.

Measurements (each in a fresh worker process, so thread limits and peak RSS are its own):

- ``latency``: one 30 s clip and one 5-minute track, with 1 and 2 threads (``OMP/MKL/OPENBLAS/
  NUMBA_NUM_THREADS``, ``torch.set_num_threads`` and ``threadpoolctl`` limits). The model is
  loaded first (``load_s``); the first prediction is reported on its own (``cold_s``: one-off
  costs such as numba compilation and lazy imports), then the median and minimum wall time and
  the median CPU time (all threads) of ``--repeats`` further predictions.
- ``throughput``: ``Predictor.predict_many`` over a folder of clips (4QAED clips when ``--root``
  holds them, else generated 30 s clips), one thread per process, 1 and 2 processes; a warm-up
  prediction precedes the timing in the parent, while worker processes pay their own start-up and
  model loading (that is what ``merkit predict --jobs 2`` does).
- ``fresh``: the first prediction of a fresh install: ``NUMBA_CACHE_DIR`` and ``MERKIT_CACHE``
  new empty folders, a new process. Recorded: importing ``merkit.product.predict``, loading the
  model,
  the first and a second prediction, which of librosa/numba/torch the prediction imported and
  how many files numba wrote; and the wall time of ``python -m merkit predict FILE`` under the
  same conditions. ``--fresh-only`` runs just this and writes ``first_call.json`` / ``.md``
  (``--librosa-imports`` adds the import time of librosa's numba modules, for comparison).
- ``rss``: peak resident memory (``ru_maxrss``) of a process that loads the model and predicts a
  30 s clip, a 5-minute or a 10-minute track: streaming keeps the tracks' peaks equal (the clip's
  can be lower: its single window makes a smaller estimator batch).

Test audio: the 30 s clip is the first 4QAED clip when ``--root`` exists (16 kHz Opus), else a
generated synthetic clip; the 5- and 10-minute tracks are concatenated clips written as 44.1 kHz
stereo 16-bit WAV (a CD rip), so decoding, mixing down and resampling are all measured.

- ``--against REV`` (issue 30's comparison, instead of the above): the predictor at ``--this``
  (default ``HEAD``; ``--this-options`` passes it ``load_model`` keywords, e.g. a
  ``crnn_precision``) and the one at git revision ``REV`` (e.g. ``HEAD~1``; both taken from
  git, so the working tree may change meanwhile), measured *interleaved*: rounds of
  one fresh process per side, the order alternating (AB, BA, ...), so load on a shared machine
  falls on both alike. Each process, on one thread, decodes each file alone (``soundfile`` and a
  mixdown: the floor) and predicts it, both as CPU time (``time.process_time``, which a loaded
  machine inflates far less than wall time), for a 30 s clip and a 5-minute track; then
  ``predict_many`` over folders of ``--folder-sizes`` clips with 1 process kept to one core,
  1 process and 2 processes (``n_jobs``; the order reversing with the rounds): files/s (wall
  time), the speed-ups 2 / 1 (one process already uses part of a second core: it decodes the
  next file ahead) and 2 / 1 on one core (what a second core adds), the CPU per file of the
  process and its workers (start-up included) and the CPU other jobs took meanwhile
  (``/proc/stat``), so a speed-up lost to start-up or to a busy machine shows as such.
  Reported: medians over rounds, CPU per file, its ratio to decoding the same file, and files/s.
  Writes ``<--out's stem>_interleaved.json`` and ``.md`` beside ``--out``
  (``predict_speed_interleaved.*`` by default).

Usage::

    python benchmarks/predict_speed.py [--model DIR] [--root ../shared/data/4qaed] [--clips 50]
    nice -n 19 python benchmarks/predict_speed.py --against HEAD~1 --model default --rounds 3

``--model`` defaults to the model shipped in ``merkit/pretrained/default``. Writes
``benchmarks/results/predict_speed.json`` and ``.md`` (``--out`` to change, ``--no-write`` not to).
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata
import json
import os
import platform
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from _common import footer, machine

HERE = Path(__file__).resolve().parent
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS")
TARGET_S = 0.25


# ---------------------------------------------------------------------------------------------
# Worker side (runs in a subprocess)


def _limit_threads(threads: int) -> Any:
    from threadpoolctl import threadpool_limits

    # torch (only for models that need it) reads OMP_NUM_THREADS, which the parent sets
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
    return threadpool_limits(threads)


NUMBA_MODULES = (
    "librosa.util.utils",
    "librosa.core.audio",
    "librosa.core.pitch",
    "librosa.beat",
    "librosa.decompose",
    "librosa.sequence",
)
"""librosa modules whose import compiles numba functions (eager signatures) or loads them."""

HEAVY_MODULES = ("librosa", "numba", "torch")
"""Modules a prediction might import; the fresh run records which it did."""


def fresh_worker(args: argparse.Namespace) -> dict[str, Any]:
    """Load the model and predict twice on a fresh install (empty numba cache and merkit cache).

    With ``--librosa-imports`` the librosa modules that compile numba functions are imported
    afterwards, one by one, to show what a prediction path through librosa would have cost.
    """
    import importlib

    limits = _limit_threads(args.threads)
    record: dict[str, Any] = {"threads": args.threads, "numba_cache": os.environ["NUMBA_CACHE_DIR"]}
    start, cpu_start = time.perf_counter(), time.process_time()
    from merkit.product.predict import load_model

    record["import_s"] = time.perf_counter() - start
    tic = time.perf_counter()
    predictor = load_model(args.model)
    record["load_s"] = time.perf_counter() - tic
    tic = time.perf_counter()
    predictor.predict(args.file)
    record["first_predict_s"] = time.perf_counter() - tic
    record["first_answer_s"] = time.perf_counter() - start
    record["first_answer_cpu_s"] = time.process_time() - cpu_start
    tic = time.perf_counter()
    predictor.predict(args.file)
    record["second_predict_s"] = time.perf_counter() - tic
    record["imported"] = [name for name in HEAVY_MODULES if name in sys.modules]
    record["numba_cache_files"] = sum(
        1 for p in Path(record["numba_cache"]).rglob("*") if p.is_file()
    )
    if args.librosa_imports:
        imports = {}
        for name in NUMBA_MODULES:
            tic = time.perf_counter()
            importlib.import_module(name)
            imports[name] = time.perf_counter() - tic
        record["librosa_imports_s"] = imports
    limits.restore_original_limits()
    return record


def worker(args: argparse.Namespace) -> dict[str, Any]:
    """One measurement in this process; returns a JSON-able record."""
    if args.worker == "fresh":
        return fresh_worker(args)
    if args.worker == "interleaved":
        return interleaved_worker(args)
    limits = _limit_threads(args.threads)
    from merkit.product.predict import load_model

    tic = time.perf_counter()
    predictor = load_model(args.model)
    record: dict[str, Any] = {"threads": args.threads, "load_s": time.perf_counter() - tic}
    if args.worker == "latency":
        tic = time.perf_counter()
        result = predictor.predict(args.file)
        record["cold_s"] = time.perf_counter() - tic
        walls, cpus = [], []
        for _ in range(args.repeats):
            wall, cpu = time.perf_counter(), time.process_time()
            predictor.predict(args.file)
            walls.append(time.perf_counter() - wall)
            cpus.append(time.process_time() - cpu)
        record |= {
            "duration_s": result.duration_s,
            "n_windows": result.n_windows,
            "wall_median_s": statistics.median(walls),
            "wall_min_s": min(walls),
            "cpu_median_s": statistics.median(cpus),
            "repeats": args.repeats,
        }
    elif args.worker == "throughput":
        files = sorted(Path(args.file).glob("*"))
        predictor.predict(files[0])  # warm-up: one-off costs are not throughput
        tic = time.perf_counter()
        outcomes = list(predictor.predict_many(files, n_jobs=args.jobs))
        seconds = time.perf_counter() - tic
        failed = [o for o in outcomes if not hasattr(o, "quadrant")]
        record |= {
            "jobs": args.jobs,
            "n_files": len(files),
            "failed": len(failed),
            "seconds": seconds,
            "files_per_s": len(files) / seconds,
            "s_per_file": seconds / len(files),
        }
    elif args.worker == "rss":
        result = predictor.predict(args.file)
        record |= {
            "duration_s": result.duration_s,
            "n_windows": result.n_windows,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        }
    limits.restore_original_limits()
    return record


def _decode_cpu(path: Path, repeats: int) -> float:
    """Median CPU seconds of decoding ``path`` to mono at its own rate (the floor)."""
    import soundfile as sf

    cpus = []
    for _ in range(repeats):
        cpu = time.process_time()
        data, _ = sf.read(str(path), dtype="float32", always_2d=True)
        data.mean(axis=1, dtype=np.float32)
        cpus.append(time.process_time() - cpu)
    return statistics.median(cpus)


def _machine_busy_s() -> float | None:
    """CPU seconds the whole machine has spent busy since boot (``/proc/stat``; None elsewhere):
    the difference over a measurement, less this process's and its children's, is what other
    jobs took meanwhile."""
    try:
        with open("/proc/stat") as handle:
            ticks = [int(v) for v in handle.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")  # less idle, iowait


def _own_cpu_s() -> float:
    """CPU seconds of this process (every thread) and of its finished children."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def folder_throughput(
    predictor: Any, files: list[Path], jobs: int, *, one_core: bool = False
) -> dict[str, Any]:
    """``predict_many`` over ``files`` with ``jobs`` processes: wall time, the CPU of this
    process and its workers (start-up included), and the CPU other jobs took meanwhile.

    ``one_core``: this process (and the decoding thread it starts) kept to one CPU
    (``sched_setaffinity``), the baseline a second core is measured against: without it a
    single process already uses part of a second core, decoding the next file ahead."""
    pinned = None
    if one_core:
        pinned = os.sched_getaffinity(0)
        os.sched_setaffinity(0, {min(pinned)})  # this thread; threads started now inherit it
    busy, cpu, tic = _machine_busy_s(), _own_cpu_s(), time.perf_counter()
    try:
        outcomes = list(predictor.predict_many(files, n_jobs=jobs))
    finally:
        if pinned is not None:
            os.sched_setaffinity(0, pinned)
    seconds = time.perf_counter() - tic
    cpu = _own_cpu_s() - cpu  # the workers have ended: their CPU is counted
    others = None if busy is None else max(0.0, _machine_busy_s() - busy - cpu)
    return {
        "n_files": len(files),
        "seconds": seconds,
        "files_per_s": len(files) / seconds,
        "cpu_s": cpu,
        "cpu_per_file_s": cpu / len(files),
        "others_cpu_s": others,
        "load_average": os.getloadavg(),
        "quadrants": [getattr(o, "quadrant", None) for o in outcomes],
    }


def interleaved_worker(args: argparse.Namespace) -> dict[str, Any]:
    """One side of one round of ``--against``: decode and predict CPU per file, then folder
    throughput with 1 and 2 processes (in the order of ``--jobs-order``). Works with any merkit
    that has ``load_model`` and ``predict_many(n_jobs=)``, so it also measures older trees
    (``PYTHONPATH``)."""
    import merkit
    from merkit import load_model  # a public name in every layout

    limits = _limit_threads(1)
    options = json.loads(args.load_options or "{}")
    predictor = load_model(args.model, **options)
    record: dict[str, Any] = {
        "merkit": str(Path(merkit.__file__).parents[1]),
        "load_options": options,
        "files": {},
    }
    for path in map(Path, args.names.split(",")):
        predictor.predict(path)  # warm-up: one-off costs are not per-file costs
        cpus = []
        for _ in range(args.repeats):
            cpu = time.process_time()
            result = predictor.predict(path)
            cpus.append(time.process_time() - cpu)
        record["files"][path.name] = {
            "duration_s": result.duration_s,
            "n_windows": result.n_windows,
            "predict_cpu_s": statistics.median(cpus),
            "decode_cpu_s": _decode_cpu(path, max(3, args.repeats)),
            "quadrant": result.quadrant,
        }
    files = sorted(args.file.glob("*"))
    sizes = [int(n) for n in args.sizes.split(",")] if args.sizes else [len(files)]
    record["folders"] = {}
    for size in sizes:
        runs: dict[str, Any] = {}
        for key in args.jobs_order.split(","):  # "1c": one process kept to one core
            jobs = int(key.rstrip("c"))
            runs[key] = folder_throughput(predictor, files[:size], jobs, one_core=key.endswith("c"))
        record["folders"][str(size)] = runs
    limits.restore_original_limits()
    return record


# ---------------------------------------------------------------------------------------------
# Parent side


def run_worker(kind: str, model: Path, file: Path, threads: int, **extra: Any) -> dict[str, Any]:
    env = dict(os.environ, MERKIT_NO_REEXEC="1")
    env.update({name: str(threads) for name in THREAD_VARS})
    if kind == "fresh":  # a fresh install: nothing compiled, no record of a verified cache
        env["NUMBA_CACHE_DIR"] = tempfile.mkdtemp(prefix="merkit-fresh-numba-")
        env["MERKIT_CACHE"] = tempfile.mkdtemp(prefix="merkit-fresh-cache-")
    command = [sys.executable, __file__, "--worker", kind, "--model", str(model), "--file",
               str(file), "--threads", str(threads)]  # fmt: skip
    for key, value in extra.items():
        command += [f"--{key}"] if value is True else [f"--{key}", str(value)]
    tic = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    process_s = time.perf_counter() - tic
    if kind == "fresh":
        shutil.rmtree(env["MERKIT_CACHE"], ignore_errors=True)
    if done.returncode != 0:
        sys.exit(f"worker {kind} failed:\n{done.stderr[-3000:]}")
    record = json.loads(done.stdout.strip().splitlines()[-1])
    record["process_s"] = process_s  # the whole worker process, interpreter start included
    print(f"{kind:>10} {file.name:<16} {json.dumps(record)}", flush=True)
    return record


def _children_cpu() -> float:
    """User + system CPU seconds of this process's finished children (and theirs)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def fresh_cli(file: Path, model: Path) -> dict[str, Any]:
    """Wall time of ``python -m merkit predict FILE --model M`` in a new process on a fresh
    install."""
    env = dict(os.environ, MERKIT_NO_REEXEC="1")
    env.update({name: "1" for name in THREAD_VARS})
    env["NUMBA_CACHE_DIR"] = numba_dir = tempfile.mkdtemp(prefix="merkit-fresh-numba-")
    env["MERKIT_CACHE"] = cache_dir = tempfile.mkdtemp(prefix="merkit-fresh-cache-")
    command = [sys.executable, "-m", "merkit", "predict", str(file), "--model", str(model)]
    command.append("--quiet")
    tic, before = time.perf_counter(), _children_cpu()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    record = {
        "cli_s": time.perf_counter() - tic,
        "cli_cpu_s": _children_cpu() - before,
        "returncode": done.returncode,
        "numba_cache_files": sum(1 for p in Path(numba_dir).rglob("*") if p.is_file()),
    }
    shutil.rmtree(numba_dir, ignore_errors=True)
    shutil.rmtree(cache_dir, ignore_errors=True)
    if done.returncode != 0:
        sys.exit(f"merkit predict failed:\n{done.stderr[-3000:]}")
    print(f"{'cli':>10} {file.name:<16} {json.dumps(record)}", flush=True)
    return record


def fresh_lines(fresh: dict[str, Any], cli: dict[str, Any], method: str) -> list[str]:
    """Markdown table of the first prediction on a fresh install."""
    imported = ", ".join(f"`{m}`" for m in fresh["imported"]) or "none"
    lines = [
        "| step (fresh install: empty numba cache and merkit cache, one thread) | wall s | CPU s |",
        "| --- | ---: | ---: |",
        f"| `merkit predict FILE` in a new process, start to exit | {cli['cli_s']:.2f} | "
        f"{cli['cli_cpu_s']:.2f} |",
        f"| in-process: `import merkit.product.predict` | {fresh['import_s']:.2f} | |",
        f"| in-process: load the model | {fresh['load_s']:.2f} | |",
        f"| in-process: first prediction | {fresh['first_predict_s']:.2f} | |",
        f"| in-process: **start to first answer** | **{fresh['first_answer_s']:.2f}** | "
        f"{fresh['first_answer_cpu_s']:.2f} |",
        f"| in-process: second prediction | {fresh['second_predict_s']:.2f} | |",
        *(
            f"| afterwards, for comparison: import `{name}` | {sec:.2f} | |"
            for name, sec in fresh.get("librosa_imports_s", {}).items()
        ),
        "",
        "CPU s of the CLI row counts the process and any it started; on a shared machine the "
        "wall time also holds the time spent waiting for a core.",
        "",
        f"Model `{method}`. Modules of {', '.join(f'`{m}`' for m in HEAVY_MODULES)} imported by "
        f"the prediction: {imported}; files numba wrote to its empty cache: "
        f"{fresh['numba_cache_files']} (in-process), {cli['numba_cache_files']} (CLI).",
    ]
    return lines


def _clip_paths(root: Path | None, n: int) -> list[Path]:
    """The first ``n`` 4QAED clips, taken round-robin over Q1..Q4 (empty if no dataset)."""
    if root is None or not root.is_dir():
        return []
    per_quadrant = [sorted((root / q).glob("*.ogg")) + sorted((root / q).glob("*.mp3"))
                    for q in ("Q1", "Q2", "Q3", "Q4")]  # fmt: skip
    ordered = [p for group in zip(*per_quadrant, strict=False) for p in group]
    return ordered[:n]


def _generated_clip(index: int, sr: int) -> np.ndarray:
    from merkit.datasets.synthetic import SyntheticSource

    quadrant = ("Q1", "Q2", "Q3", "Q4")[index % 4]
    return SyntheticSource(seed=11, index=index, quadrant=quadrant, duration=30.0).load(sr)


def _clip_audio(clips: list[Path], index: int, sr: int) -> np.ndarray:
    from merkit.audio.decode import load_audio

    if clips:
        return load_audio(clips[index % len(clips)], sr=sr)
    return _generated_clip(index, sr)


def prepare_audio(folder: Path, clips: list[Path], n_clips: int) -> dict[str, Path]:
    """The 30 s clip, the 5- and 10-minute CD-format tracks, and the throughput folder."""
    import soundfile as sf

    files: dict[str, Path] = {}
    if clips:
        files["clip30"] = clips[0]
    else:
        files["clip30"] = folder / "clip30.wav"
        sf.write(files["clip30"], _generated_clip(0, 44_100), 44_100, subtype="PCM_16")
    # The same clip as an uncompressed mono WAV: latency without the decoder's share.
    y, sr = sf.read(files["clip30"], dtype="float32")
    files["clip30wav"] = folder / "clip30-pcm.wav"
    sf.write(files["clip30wav"], y if y.ndim == 1 else y.mean(axis=1), sr, subtype="FLOAT")
    for name, minutes in (("track5", 5), ("track10", 10)):
        path = folder / f"{name}.wav"
        with sf.SoundFile(path, "w", 44_100, 2, subtype="PCM_16") as out:
            for i in range(2 * minutes):
                y = _clip_audio(clips, i, 44_100)
                out.write(np.stack([y, y], axis=1) * 0.9)
        files[name] = path
    many = folder / "clips"
    many.mkdir()
    if clips:
        for path in clips[:n_clips]:
            (many / path.name).symlink_to(path.resolve())
    else:
        for i in range(n_clips):
            sf.write(many / f"gen{i:03d}.wav", _generated_clip(i, 16_000), 16_000)
    files["clips"] = many
    return files


def _tree_at(revision: str, folder: Path) -> Path:
    """The ``src`` folder of this repository at ``revision`` (``git archive``), under ``folder``."""
    repo = HERE.parent
    archive = subprocess.run(
        ["git", "-C", str(repo), "archive", revision, "src"], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder / "src"


def interleaved(args: argparse.Namespace, clips: list[Path], started: Any) -> None:
    """``--against REV``: this tree and REV's predictor, interleaved (see the module docstring)."""

    def git(*words: str) -> str:
        done = subprocess.run(
            ["git", "-C", str(HERE.parent), *words], capture_output=True, text=True, check=True
        )
        return done.stdout.strip()

    revision = git("rev-parse", "--short", args.against)
    here = git("rev-parse", "--short", args.this)
    this = f"this tree ({args.this} = {here})"
    if args.this_options:
        this += f" with load_model options {args.this_options}"
    previous = f"{args.against} ({revision})"
    rounds: dict[str, list[dict[str, Any]]] = {this: [], previous: []}
    cli_tunables = None
    if args.cli_malloc:  # the malloc settings `merkit predict` re-executes itself with
        from merkit.training.runtime import malloc_reexec_environment

        unset = ("GLIBC_TUNABLES", "MERKIT_NO_REEXEC")
        tuned = malloc_reexec_environment({k: v for k, v in os.environ.items() if k not in unset})
        cli_tunables = tuned["GLIBC_TUNABLES"] if tuned else None
    with tempfile.TemporaryDirectory() as tmp:
        files = prepare_audio(Path(tmp), clips, args.clips)
        (Path(tmp) / "old").mkdir()
        (Path(tmp) / "new").mkdir()
        # both sides from git, so the working tree may change while this runs
        paths = {
            this: _tree_at(here, Path(tmp) / "new"),
            previous: _tree_at(revision, Path(tmp) / "old"),
        }
        model = str(args.model_name)
        names = ",".join(str(files[n]) for n in ("clip30", "track5"))
        sizes = ",".join(str(n) for n in args.folder_sizes)
        for r in range(args.rounds):
            order = [this, previous] if r % 2 == 0 else [previous, this]
            for side in order:
                env = dict(os.environ, MERKIT_NO_REEXEC="1")
                env.update({name: "1" for name in THREAD_VARS})
                env["PYTHONPATH"] = str(paths[side])
                if cli_tunables:  # glibc reads them at start: each side's process is born with them
                    env["GLIBC_TUNABLES"] = cli_tunables
                # the old tree resolves the shipped model name inside its own package
                command = [sys.executable, __file__, "--worker", "interleaved", "--model", model,
                           "--file", str(files["clips"]), "--names", names,
                           "--repeats", str(args.repeats), "--sizes", sizes,
                           "--jobs-order", "1c,1,2" if r % 2 == 0 else "2,1,1c"]  # fmt: skip
                if side == this and args.this_options:
                    command += ["--load-options", args.this_options]
                done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
                if done.returncode != 0:
                    sys.exit(f"{side} failed:\n{done.stderr[-3000:]}")
                record = json.loads(done.stdout.strip().splitlines()[-1])
                rounds[side].append(record)
                print(f"round {r + 1} {side}: {json.dumps(record)[:300]}", flush=True)
        load_end = os.getloadavg()
    summary = {side: _summarise_rounds(records) for side, records in rounds.items()}
    result = {
        "benchmark": "predict_speed_interleaved",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": shlex.join([Path(sys.executable).name, *sys.argv]),
        "model": str(args.model_name),
        "rounds": rounds,
        "summary": summary,
        "load_average_end": load_end,
        "glibc_tunables": cli_tunables,
        "machine": started,
        "versions": versions(),
    }
    out = args.out.with_name(f"{args.out.stem}_interleaved.json")
    if not args.no_write:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n")
        out.with_suffix(".md").write_text("\n".join(_interleaved_markdown(result)))
        print(f"wrote {out} and {out.with_suffix('.md')}")


def _summarise_rounds(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over the rounds of one side."""
    files: dict[str, Any] = {}
    for name in records[0]["files"]:
        rows = [r["files"][name] for r in records]
        predict = statistics.median(r["predict_cpu_s"] for r in rows)
        decode = statistics.median(r["decode_cpu_s"] for r in rows)
        files[name] = {
            "duration_s": rows[0]["duration_s"],
            "n_windows": rows[0]["n_windows"],
            "predict_cpu_s": predict,
            "decode_cpu_s": decode,
            "ratio_to_decode": predict / decode if decode > 0 else float("nan"),
        }
    folders = {}
    for size in records[0]["folders"]:
        runs = [r["folders"][size] for r in records]
        keys = list(runs[0])
        rate = {k: statistics.median(run[k]["files_per_s"] for run in runs) for k in keys}
        folders[size] = {
            "n_files": runs[0][keys[0]]["n_files"],
            "files_per_s": rate,
            "scaling": {
                f"2 / {base}": rate["2"] / rate[base] for base in ("1", "1c") if base in rate
            },
            "scaling_per_round": {
                f"2 / {base}": [run["2"]["files_per_s"] / run[base]["files_per_s"] for run in runs]
                for base in ("1", "1c")
                if base in rate
            },
            "cpu_per_file_s": {k: _median_of(runs, k, "cpu_per_file_s") for k in keys},
            "others_cpu_s": {k: _median_of(runs, k, "others_cpu_s") for k in keys},
            "quadrants_same_across_jobs": all(
                len({json.dumps(run[k]["quadrants"]) for k in keys}) == 1 for run in runs
            ),
        }
    return {"files": files, "folders": folders}


def _median_of(records: list[dict[str, Any]], key: str, field: str) -> float | None:
    values = [r[key][field] for r in records if r[key].get(field) is not None]
    return statistics.median(values) if values else None


def _fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def _interleaved_markdown(result: dict[str, Any]) -> list[str]:
    sides = list(result["summary"])
    lines = [
        "# Prediction speed: this tree against a previous commit, interleaved",
        "",
        f"Generated by `benchmarks/predict_speed.py --against` on {result['date']}.",
        "",
        f"Command: `{result['command']}`",
        "",
        f"Model: `{result['model']}`. {len(result['rounds'][sides[0]])} rounds, one fresh process "
        "per side per round, order alternating; one thread per process "
        "(`OMP/MKL/OPENBLAS/NUMBA_NUM_THREADS=1`). Per-file figures are CPU seconds "
        "(`time.process_time`, median of repeats, then of rounds); decoding is `soundfile` "
        "plus a mixdown of the same file in the same process. Folder throughput is wall time. "
        + (
            f"Every process of both sides ran with `GLIBC_TUNABLES={result['glibc_tunables']}`, "
            "the malloc settings the `merkit` command re-executes itself with "
            "(`merkit.training.runtime.malloc_reexec_environment`), so the figures are those of "
            "`merkit predict`."
            if result.get("glibc_tunables")
            else "The processes ran with glibc's default malloc (the library in a plain Python "
            "process; the `merkit` command re-executes itself with tuned malloc settings, "
            "`--cli-malloc` measures those)."
        ),
        "",
        "| side | file | windows | predict CPU s | decode CPU s | predict / decode |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for side in sides:
        for name, f in result["summary"][side]["files"].items():
            lines.append(
                f"| {side} | {name} ({f['duration_s']:.0f} s) | {f['n_windows']} | "
                f"{f['predict_cpu_s']:.3f} | {f['decode_cpu_s']:.4f} | "
                f"{f['ratio_to_decode']:.1f}x |"
            )
    lines += [
        "",
        "| side | files | 1 process on 1 core, files/s | 1 process, files/s | 2 processes, "
        "files/s | 2 / 1 on 1 core (per round) | 2 / 1 (per round) | CPU s per file, 1 / 2 "
        "processes | start-up CPU s | other jobs' CPU s, 1 / 2 | same answers |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for side in sides:
        for f in result["summary"][side]["folders"].values():
            rate, cpu, others = f["files_per_s"], f["cpu_per_file_s"], f["others_cpu_s"]
            per_round = {
                k: ", ".join(f"{x:.2f}" for x in v) for k, v in f["scaling_per_round"].items()
            }
            startup = None
            if cpu.get("1") is not None and cpu.get("2") is not None:
                startup = (cpu["2"] - cpu["1"]) * f["n_files"]
            lines.append(
                f"| {side} | {f['n_files']} | {_fmt(rate.get('1c'), '.2f')} | "
                f"{rate['1']:.2f} | {rate['2']:.2f} | "
                f"{_fmt(f['scaling'].get('2 / 1c'), '.2f')}x ({per_round.get('2 / 1c', '')}) | "
                f"{f['scaling']['2 / 1']:.2f}x ({per_round['2 / 1']}) | "
                f"{_fmt(cpu.get('1'), '.3f')} / {_fmt(cpu.get('2'), '.3f')} | "
                f"{_fmt(startup, '.1f')} | "
                f"{_fmt(others.get('1'), '.1f')} / {_fmt(others.get('2'), '.1f')} | "
                f"{'yes' if f['quadrants_same_across_jobs'] else 'NO'} |"
            )
    lines += [
        "",
        "Folders are the first N files of one folder of 4QAED clips. *1 process on 1 core*: "
        "`predict_many` with `n_jobs=1` in a process kept to one CPU (`sched_setaffinity`, "
        "which the thread that decodes the next file ahead inherits); *1 process*: the same "
        "free to use both cores, so it already uses part of the second one for decoding ahead; "
        "*2 processes*: `n_jobs=2` (the new tree starts the worker only with enough files, "
        "see `merkit.product.predict_executors.MIN_FILES_PER_PROCESS`). "
        "CPU s per file: this process and its workers over the folder run, divided by the files "
        "(worker start-up included: spawning, imports, loading the model, a first file's one-off "
        "costs); start-up CPU s is their difference times the files (what the 2-process run "
        "spent beyond the 1-process one). Other jobs' CPU: what the rest of the machine "
        "used during the run, from `/proc/stat`. The order of the runs (1 core, 1, 2) "
        "reverses with the rounds.",
    ]
    m = result["machine"]
    lines += [
        "",
        f"Machine: {m['cpu_model']}, nproc {m['nproc']}; 1-min load average "
        f"{m['load_average'][0]:.1f} at the start, {result['load_average_end'][0]:.1f} at the "
        "end. On a shared, loaded machine the CPU figures hold up better than the wall-time "
        "throughput, and the 2-process scaling is not meaningful: rerun this command on a quiet "
        "machine for it.",
        "",
    ]
    return lines


def versions() -> dict[str, str]:
    names = ["numpy", "scikit-learn", "librosa", "soundfile", "soxr", "torch", "merkit"]
    found = {name: importlib.metadata.version(name) for name in names}
    found["python"] = platform.python_version()
    return found


def write_markdown(result: dict[str, Any], path: Path) -> None:
    model = result["model"]
    lines = [
        "# Prediction speed and memory",
        "",
        f"Generated by `benchmarks/predict_speed.py` on {result['date']}.",
        "",
        f"Command: `{result['command']}`",
        "",
        f"Model: `{model['method']}` from `{model['dir']}` (inputs {', '.join(model['inputs'])}; "
        f"{model['window_s']:g} s windows, hop {model['hop_s']:g} s). Audio: {result['audio']}.",
        "",
        "## Latency once the model is loaded",
        "",
        "| audio | windows | threads | load s | first call s | median s | min s | CPU s |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in result["latency"]:
        lines.append(
            f"| {r['audio']} ({r['duration_s']:.0f} s) | {r['n_windows']} | {r['threads']} | "
            f"{r['load_s']:.2f} | {r['cold_s']:.3f} | {r['wall_median_s']:.3f} | "
            f"{r['wall_min_s']:.3f} | {r['cpu_median_s']:.3f} |"
        )
    one = next(r for r in result["latency"] if r["audio"] == "clip30" and r["threads"] == 1)
    target = result.get("target_s", TARGET_S)
    verdict = "meets" if one["cpu_median_s"] <= target else "misses"
    wav = next(r for r in result["latency"] if r["audio"] == "clip30wav" and r["threads"] == 1)
    lines += [
        "",
        f"Compute per 30 s clip on one core: {one['cpu_median_s']:.3f} s CPU "
        f"({one['wall_median_s']:.3f} s wall); this {verdict} the {target} s target. "
        f"Without decoding (the same clip as a WAV, `clip30wav`): {wav['cpu_median_s']:.3f} s.",
        "",
        "## Throughput over a folder",
        "",
        "| files | processes | threads each | seconds | files/s | s/file | failed |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in result["throughput"]:
        lines.append(
            f"| {r['n_files']} | {r['jobs']} | {r['threads']} | {r['seconds']:.2f} | "
            f"{r['files_per_s']:.2f} | {r['s_per_file']:.3f} | {r['failed']} |"
        )
    lines += [
        "",
        "## Peak memory",
        "",
        "| audio | windows | peak RSS MB |",
        "| --- | ---: | ---: |",
    ]
    for r in result["rss"]:
        lines.append(
            f"| {r['audio']} ({r['duration_s']:.0f} s) | {r['n_windows']} | "
            f"{r['peak_rss_mb']:.0f} |"
        )
    if "fresh" in result:
        lines += [
            "",
            "## First prediction on a fresh install",
            "",
            *fresh_lines(result["fresh"], result["fresh_cli"], model["method"]),
        ]
    lines += footer(result["machine"], result["versions"], result["notes"])
    path.write_text("\n".join(lines))


def first_call(args: argparse.Namespace, manifest: Any, clips: list[Path], started: Any) -> None:
    """Measure and write the first prediction on a fresh install (``--fresh-only``)."""
    with tempfile.TemporaryDirectory() as tmp:
        clip = clips[0] if clips else Path(tmp) / "clip30.wav"
        if not clips:
            import soundfile as sf

            sf.write(clip, _generated_clip(0, 44_100), 44_100, subtype="PCM_16")
        record = run_worker(
            "fresh",
            args.model,
            clip,
            1,
            **({"librosa-imports": True} if args.librosa_imports else {}),
        )
        cli = fresh_cli(clip, args.model)
    shutil.rmtree(record["numba_cache"], ignore_errors=True)
    result = {
        "benchmark": "first_call",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": shlex.join([Path(sys.executable).name, *sys.argv]),
        "model": {"dir": str(args.model), "method": manifest.method},
        "fresh": record,
        "fresh_cli": cli,
        "machine": started,
        "versions": versions(),
    }
    out = args.out.with_name("first_call.json")
    lines = [
        "# First prediction on a fresh install",
        "",
        f"Generated by `benchmarks/predict_speed.py --fresh-only` on {result['date']}.",
        "",
        f"Command: `{result['command']}`",
        "",
        f"Model: `{manifest.method}` from `{args.model}`; one 30 s clip (the first 4QAED clip, "
        "or a generated one), one thread; `NUMBA_CACHE_DIR` and `MERKIT_CACHE` new empty "
        "folders, each measurement a new Python process.",
        "",
        *fresh_lines(record, cli, manifest.method),
    ]
    lines += footer(started, result["versions"], [])
    if not args.no_write:
        out.write_text(json.dumps(result, indent=2) + "\n")
        out.with_suffix(".md").write_text("\n".join(lines))
        print(f"wrote {out} and {out.with_suffix('.md')}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--model", default=None, help="model directory or shipped model name (default, fast)"
    )
    parser.add_argument(
        "--target",
        type=float,
        default=None,
        help="CPU seconds per 30 s clip to meet (default: 0.25 for `fast`, 0.5 otherwise)",
    )
    parser.add_argument("--root", type=Path, default=HERE.parents[1] / "shared/data/4qaed")
    parser.add_argument("--clips", type=int, default=50, help="files in the throughput folder")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "predict_speed.json")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument(
        "--worker",
        choices=["latency", "throughput", "rss", "fresh", "interleaved"],
        help=argparse.SUPPRESS,
    )
    parser.add_argument(
        "--fresh-only",
        action="store_true",
        help="only the first prediction with an empty numba cache (writes first_call.json/.md)",
    )
    parser.add_argument(
        "--librosa-imports",
        action="store_true",
        help="with the fresh run, also time importing librosa's numba modules (minutes)",
    )
    parser.add_argument("--file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--jobs", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--names", default="", help=argparse.SUPPRESS)
    parser.add_argument("--jobs-order", default="1c,1,2", help=argparse.SUPPRESS)
    parser.add_argument("--sizes", default="", help=argparse.SUPPRESS)
    parser.add_argument(
        "--folder-sizes",
        default=None,
        help="with --against: folder sizes measured, e.g. 12,24,160 (default: --clips)",
    )
    parser.add_argument(
        "--against",
        default=None,
        help="git revision to compare with, interleaved (writes predict_speed_interleaved.*)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds of --against")
    parser.add_argument(
        "--cli-malloc",
        action="store_true",
        help="with --against: run both sides with the GLIBC_TUNABLES the merkit command "
        "re-executes itself with (what `merkit predict` runs with)",
    )
    parser.add_argument(
        "--this", default="HEAD", help="with --against: the revision measured as this tree's"
    )
    parser.add_argument(
        "--this-options",
        default=None,
        help="with --against: load_model keywords of this tree's side, as JSON, e.g. "
        '\'{"crnn_precision": "winograd"}\'',
    )
    parser.add_argument("--load-options", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.model_name = args.model or "default"
    sizes = args.folder_sizes.split(",") if args.folder_sizes else [str(args.clips)]
    args.folder_sizes = sorted({int(n) for n in sizes})
    args.clips = max(args.clips, *args.folder_sizes)
    if args.worker == "interleaved":  # before the imports below: older trees lay modules out
        print(json.dumps(worker(args)))  # differently, and load_model takes shipped names
        return

    from merkit.product.model_dir import read_manifest
    from merkit.product.shipped import resolve_model_dir, shipped_model_dir

    args.model = resolve_model_dir(args.model)
    if args.target is None:
        args.target = TARGET_S if args.model == shipped_model_dir("fast") else 2 * TARGET_S
    if args.worker:
        print(json.dumps(worker(args)))
        return
    manifest = read_manifest(args.model)  # fail early on a bad model directory
    clips = _clip_paths(args.root, max(args.clips, 20))
    if not clips:  # said, so a wrong --root is not mistaken for a 4QAED measurement
        print(f"note: no 4QAED clips under {args.root}: timing generated clips", file=sys.stderr)
    started = machine()
    if args.fresh_only:
        first_call(args, manifest, clips, started)
        return
    if args.against:
        interleaved(args, clips, started)
        return
    with tempfile.TemporaryDirectory() as tmp:
        files = prepare_audio(Path(tmp), clips, args.clips)
        latency = [
            {"audio": name, **run_worker("latency", args.model, files[name], threads,
                                         repeats=args.repeats if "clip" in name else 2)}
            for name in ("clip30", "clip30wav", "track5")
            for threads in (1, 2)
        ]  # fmt: skip
        throughput = [
            run_worker("throughput", args.model, files["clips"], 1, jobs=jobs) for jobs in (1, 2)
        ]
        rss = [
            {"audio": name, **run_worker("rss", args.model, files[name], 1)}
            for name in ("clip30", "track5", "track10")
        ]
        fresh = run_worker("fresh", args.model, files["clip30"], 1)
        fresh_cli_record = fresh_cli(files["clip30"], args.model)
    shutil.rmtree(fresh["numba_cache"], ignore_errors=True)
    result = {
        "benchmark": "predict_speed",
        "target_s": args.target,
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": shlex.join([Path(sys.executable).name, *sys.argv]),
        "model": {
            "dir": str(args.model),
            "method": manifest.method,
            "inputs": [spec.name for spec in manifest.inputs],
            "window_s": manifest.window_s,
            "hop_s": manifest.hop_s,
        },
        "audio": (
            f"4QAED clips from {args.root}" if clips else "generated synthetic clips (no 4QAED)"
        ),
        "latency": latency,
        "throughput": throughput,
        "rss": rss,
        "fresh": fresh,
        "fresh_cli": fresh_cli_record,
        "machine": started,
        "versions": versions(),
        "notes": [
            "Each row is a fresh process with the thread limits set before start-up.",
            "CPU s is process CPU time over all threads; with 1 thread it is the compute per "
            "song on one core.",
            "first call includes one-off costs (lazy imports, filter banks; numba compilation "
            "only for models whose inputs use librosa).",
            "Throughput with 2 processes includes starting the workers and loading the model in "
            "each; on a 2-core machine it also competes with the parent.",
            "Peak RSS is the whole Python process (interpreter, the libraries the worker "
            "imports, the model).",
        ],
    }
    if not args.no_write:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        write_markdown(result, args.out.with_suffix(".md"))
        print(f"wrote {args.out} and {args.out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
