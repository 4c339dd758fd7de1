"""Table 3's deep rows at the paper's training regime: 10 folds x 1 repeat, one method at a time.

Each method runs with its registered recipe, which is the paper's Table 1 regime (optimiser,
learning rate, batch, epoch cap, the 90 % training-accuracy stop); ``--config`` may override it.
The folds are the first repeat of the persisted 10x10 protocol (``random_state=1``): sklearn's
repeated K-fold draws repeat 1 first, so ``10x1`` is exactly that repeat. Finished folds are
small JSON files under ``--out/<method>/folds/``; commit them and a rerun (here or from a fresh
clone) resumes where the last one stopped. The fold in progress resumes mid-training too: its
network writes its training state after every epoch (``<fold>.partial.<n>.pt`` beside the fold
files, 2.5 MB for the baseline CNN; :mod:`merkit.training.resume`), ``table3_commit.sh`` commits
it, and a rerun continues from the epoch after it, bit-identical to an uninterrupted fold.

Cost: besides each fold record's wall-clock ``fit_seconds``, a watcher thread writes, per finished
fold, the process CPU seconds it took (``--out/costs.jsonl``; with ``--workers 1`` only: fold
workers' CPU time is not this process's), plus, for a fold resumed from a training state, the
CPU seconds earlier sessions had spent up to that state (its record's ``extras.resumed``). With
torch on one thread the CPU
seconds are what the fold costs on a dedicated core; the wall seconds also count time spent
waiting for a shared core, or stopped (``kill -STOP``). After every fold the method's results
file ``benchmarks/results/4qaed_<method>_paper.{csv,md}`` is rewritten (partial until 10 folds;
``--quick`` smoke runs write theirs into the run folder instead).

Example (what the CPU run of issue 32 runs, in the background)::

    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 nohup nice -n 19 .venv/bin/python \
        benchmarks/table3_paper.py --root ../shared/data/4qaed --threads 1 \
        --pid-file /work/coord/table3.pid > benchmarks/runs/table3-paper.log 2>&1 &
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PRIORITY = (
    "cnn",
    "cnn+rg",
    "cnn+tfm",
    "cnn+deepsmote",
    "hybrid",
    "shortchunk",
    "cnn-gru",
    "crnn",
    "samplecnn",
)
REGIME = {
    "cnn": "SGD lr 0.01, batch 150, <= 200 epochs",
    "cnn+rg": "SGD lr 0.01, batch 150, <= 200 epochs (2 copies per song: original + RG)",
    "cnn+tfm": "SGD lr 0.01, batch 150, <= 200 epochs (2 copies per song: original + TFM)",
    "cnn+sb": "SGD lr 0.01, batch 150, <= 200 epochs (2 copies per song: original + SB)",
    "cnn+deepsmote": "CNN SGD lr 0.01, batch 200, <= 150 epochs; AE Adam 2e-4, batch 150, "
    "150 epochs, per fold",
    "hybrid": "DNN SGD 0.01/300/<=100; CNN-H Adam 0.005/120/<=450 on 5 versions per song; "
    "fusion SGD 0.01/300/<=100",
    "shortchunk": "SGD lr 1e-3, batch 50, <= 100 epochs, every chunk",
    "samplecnn": "SGD lr 1e-3, batch 50, <= 150 epochs, every chunk",
    "cnn-gru": "SGD lr 0.01, batch 150, <= 200 epochs",
    "crnn": "SGD lr 1e-3, batch 50, <= 200 epochs (paper; code: lr 0.01, batch 150)",
}


MULTI_STAGE = {"hybrid": "fusion stage", "cnn+deepsmote": "CNN (after the autoencoder)"}


def result_name(method: str, suffix: str) -> str:
    """``cnn+rg`` -> ``4qaed_cnn_rg_paper``."""
    return "4qaed_" + method.replace("+", "_").replace("-", "_") + f"_{suffix}"


class CostWatcher(threading.Thread):
    """Appends, for each fold file that appears, the process CPU and wall seconds since the last.

    Polls every ``interval`` seconds, so a fold's CPU seconds are accurate to that interval
    (the extraction or set-up before the first fold is charged to the first fold).
    """

    def __init__(
        self, out: Path, methods: list[str], log_path: Path, on_fold, interval: float = 5.0
    ) -> None:
        super().__init__(daemon=True)
        self.out, self.methods, self.log_path = out, methods, log_path
        self.on_fold, self.interval = on_fold, interval
        self.seen = set(self._folds())
        self.cpu, self.wall = time.process_time(), time.time()
        self.stop = threading.Event()

    def _folds(self) -> list[Path]:
        return sorted(p for m in self.methods for p in (self.out / m / "folds").glob("*.json"))

    def check(self) -> None:
        new = [path for path in self._folds() if path not in self.seen]
        if not new:
            return
        cpu, wall = time.process_time(), time.time()
        for path in new:
            self.seen.add(path)
            before = resumed_costs(path)
            row = {
                "method": path.parent.parent.name,
                "fold": path.stem,
                "cpu_seconds": round((cpu - self.cpu) / len(new) + before[0], 1),
                "wall_seconds": round((wall - self.wall) / len(new) + before[1], 1),
                "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(wall)),
            }
            if before != (0.0, 0.0):
                row["resumed_cpu_seconds"] = round(before[0], 1)
            with self.log_path.open("a") as handle:
                handle.write(json.dumps(row) + "\n")
            self.on_fold(row["method"])
        self.cpu, self.wall = cpu, wall

    def run(self) -> None:
        while not self.stop.wait(self.interval):
            try:
                self.check()
            except Exception as exc:  # never let bookkeeping kill the training run
                print(f"cost watcher: {exc!r}", file=sys.stderr, flush=True)


def resumed_costs(fold_file: Path) -> tuple[float, float]:
    """CPU and wall seconds earlier sessions spent on a fold resumed from training states."""
    try:
        extras = json.loads(fold_file.read_text()).get("extras") or {}
    except (OSError, ValueError, AttributeError):
        return 0.0, 0.0
    resumed = extras.get("resumed") or {}
    return float(resumed.get("cpu_seconds_before", 0.0)), float(resumed.get("seconds_before", 0.0))


def read_costs(log_path: Path) -> dict[tuple[str, str], dict]:
    if not log_path.exists():
        return {}
    rows = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
    return {(r["method"], r["fold"]): r for r in rows}


def write_results(
    out: Path, method: str, suffix: str, command: str, settings: dict, note: str, quick: bool
) -> Path | None:
    """Rewrite ``<name>.{csv,md}`` from the method's finished folds: in ``benchmarks/results``,
    or in the run folder itself for a ``quick`` smoke run (never committed results)."""
    from _common import machine, timestamp, versions
    from merkit.core.atomic import write_text_atomic
    from merkit.protocol.results import load_results
    from merkit.report.tables import results_frame, write_csv_atomic

    run = load_results(out)
    if method not in run or not run[method].per_fold:
        return None
    result = run[method]
    name = result_name(method, suffix)
    results_dir = out if quick else HERE / "results"
    results_dir.mkdir(exist_ok=True)
    frame = results_frame([result])
    write_csv_atomic(frame, results_dir / f"{name}.csv")
    row = next(frame.itertuples(index=False))
    costs = read_costs(out / "costs.jsonl")
    done, total = len(result.per_fold), result.n_total
    status = "complete" if done == total else f"PARTIAL: {done} of {total} folds finished"
    paper_f1 = None if quick else result.paper_f1  # a smoke run is no comparison
    paper = "" if paper_f1 is None else f"{100 * paper_f1:.2f}"
    lines = [
        f"# {name}: {result.dataset}, {result.protocol.describe()}"
        + (" — smoke settings" if quick else " — the paper's training regime"),
        "",
        f"Status: **{status}**. Updated {timestamp()}; folds from `{command}`.",
        "",
        (
            "Regime: each method's `quick` smoke settings (2-4 epochs), NOT the paper's."
            if quick
            else f"Regime: {REGIME.get(method, 'the registered recipe')}, stop at 90 % training "
            "accuracy (paper Table 1; merkit's registered defaults)."
        ),
        "",
        "| method | P % | R % | F1 % ± std (folds) | paper F1 % (Orig-4QAED, 10x10) | gap |",
        "|---|---:|---:|---:|---:|---:|",
        f"| {method} | {100 * row.precision:.2f} | {100 * row.recall:.2f} | "
        f"{100 * row.f1:.2f} ± {100 * row.f1_std:.2f} ({done}) | {paper} | "
        + ("" if paper_f1 is None else f"{100 * (row.f1 - paper_f1):+.2f}")
        + " |",
        "",
        "Per fold (wall seconds on a shared 2-core machine, torch on 1 thread at nice 19; CPU "
        "seconds are the process's own, i.e. the cost on one dedicated core; the first fold a "
        "process runs also carries loading the inputs, and computing augmented copies; "
        "CPU s / epoch is the fold's CPU s over its epochs):",
        "",
        "| fold | F1 % | epochs | stop | final train acc | fit s (wall) | CPU s | CPU s / epoch |",
        "|---|---:|---:|---|---:|---:|---:|---:|",
    ]
    cpu_total, epochs_total = 0.0, 0
    for record in result.per_fold:
        info = record.training
        epochs = info.epochs_run if info and info.epochs_run else None
        cost = costs.get((method, f"r{record.repeat:02d}_f{record.fold:02d}"))
        cpu = cost["cpu_seconds"] if cost else None
        per_epoch = bool(cpu and epochs) and method not in MULTI_STAGE  # stages differ in cost
        if per_epoch:
            cpu_total, epochs_total = cpu_total + cpu, epochs_total + epochs
        acc = (
            ""
            if not info or info.final_train_accuracy is None
            else f"{info.final_train_accuracy:.3f}"
        )
        lines.append(
            f"| r{record.repeat:02d}_f{record.fold:02d} | {100 * record.metrics.f1:.2f} | "
            f"{epochs or ''} | {(info.stop_reason if info else '') or ''} | {acc} | "
            f"{record.fit_seconds:.0f} | {'' if cpu is None else f'{cpu:.0f}'} | "
            f"{f'{cpu / epochs:.1f}' if per_epoch else ''} |"
        )
    if method in MULTI_STAGE:
        lines += [
            "",
            f"`epochs`, `stop` and `final train acc` are the {MULTI_STAGE[method]}'s; the seconds "
            "cover every stage of the fold.",
        ]
    if epochs_total:
        lines += [
            "",
            f"Mean CPU seconds per epoch over the folds with a cost record: "
            f"{cpu_total / epochs_total:.1f} ({epochs_total} epochs, {cpu_total:.0f} CPU s).",
        ]
    if settings:
        lines += ["", f"Settings over the recipe (`--config`): `{json.dumps(settings)}`"]
    if note:
        lines += ["", note]
    lines += [
        "",
        f"Machine: `{json.dumps(machine())}`",
        "",
        f"Versions: `{json.dumps(versions())}`",
    ]
    write_text_atomic(results_dir / f"{name}.md", "\n".join(lines) + "\n")
    return results_dir / f"{name}.md"


def subset_per_quadrant(dataset, n_songs: int):
    """The first ``n_songs / 4`` songs (in dataset order) of each quadrant: a smoke-test set."""
    per_class = max(n_songs // 4, 1)
    taken: dict[int, int] = {}
    ids = []
    for song_id, label in zip(dataset.song_ids, dataset.labels, strict=True):
        if taken.get(int(label), 0) < per_class:
            taken[int(label)] = taken.get(int(label), 0) + 1
            ids.append(song_id)
    return dataset.subset(ids)


def prepare(dataset, methods, protocol, out: Path, params: dict, quick: bool, n_jobs: int) -> None:
    """Fill the feature cache with every input the methods read (the augmented copies with each
    repeat's seed) and persist the folds, so parallel per-method processes only read them."""
    from merkit.protocol.folds import load_or_create_folds
    from merkit.protocol.runner import is_per_repeat, repeat_seed, resolve_inputs
    from merkit.representations.cache import FeatureCache
    from merkit.tuning.nested import resolve_tuned

    load_or_create_folds(out / "folds", dataset, protocol)
    resolved = [resolve_tuned(m, params.get(m), quick=quick) for m in methods]
    names = sorted({name for method in resolved for name in method.inputs})
    fixed = [name for name in names if not is_per_repeat(name)]
    stochastic = [name for name in names if is_per_repeat(name)]
    cache = FeatureCache()
    resolve_inputs(dataset, fixed, cache=cache, n_jobs=n_jobs)
    for repeat in range(protocol.n_repeats) if stochastic else ():
        seed = repeat_seed(protocol, repeat)
        resolve_inputs(dataset, stochastic, cache=cache, n_jobs=n_jobs, seed=seed)
    print(f"prepared {len(fixed)} inputs and {len(stochastic)} augmented ones: {names}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, required=True, help="4QAED folder")
    parser.add_argument("--methods", default=",".join(PRIORITY), help="in the order to run")
    parser.add_argument("--folds", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--config", type=Path, default=None, help="YAML of per-method settings")
    parser.add_argument("--out", type=Path, default=HERE / "runs" / "table3-paper")
    parser.add_argument("--suffix", default="paper", help="results file suffix")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (1 on CPU)")
    parser.add_argument("--jobs", type=int, default=1, help="feature-extraction processes")
    parser.add_argument(
        "--workers", type=int, default=1, help="folds trained at once (processes; 1: this one)"
    )
    parser.add_argument("--quick", action="store_true", help="smoke settings (tests the script)")
    parser.add_argument("--songs", type=int, default=None, help="first N/4 songs per quadrant")
    parser.add_argument(
        "--prepare",
        action="store_true",
        help="only compute every input (cache) and the folds, then exit (before parallel runs)",
    )
    parser.add_argument("--pid-file", type=Path, default=None)
    parser.add_argument("--note", default="")
    args = parser.parse_args()
    if args.quick and args.suffix == "paper":
        args.suffix = "quick"  # never overwrite a paper-regime results file with a smoke run

    if args.threads:  # before torch starts its pools
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            os.environ[var] = str(args.threads)
    if args.pid_file:
        args.pid_file.write_text(f"{os.getpid()}\n")

    import torch

    from _common import command_line
    from merkit.benchmark import run_benchmark
    from merkit.datasets import load_dataset
    from merkit.methods import read_settings
    from merkit.protocol.executor import ProcessExecutor
    from merkit.protocol.folds import ProtocolConfig
    from merkit.representations.cache import FeatureCache

    if args.threads:
        torch.set_num_threads(args.threads)
        torch.set_num_interop_threads(args.threads)
    command = command_line()
    params = read_settings(args.config) if args.config else {}
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    note = args.note or (
        "Quick smoke settings (each method's `quick`): NOT the paper's regime."
        if args.quick
        else ""
    )
    args.out.mkdir(parents=True, exist_ok=True)
    watcher = CostWatcher(
        args.out,
        methods,
        args.out / "costs.jsonl",
        lambda method: write_results(
            args.out, method, args.suffix, command, params.get(method) or {}, note, args.quick
        ),
    )
    watcher.start()
    dataset = load_dataset("4qaed", args.root)
    if args.songs:
        dataset = subset_per_quadrant(dataset, args.songs)
    protocol = ProtocolConfig(n_splits=args.folds, n_repeats=args.repeats, random_state=1)
    if args.prepare:
        prepare(dataset, methods, protocol, args.out, params, args.quick, args.jobs)
        watcher.stop.set()
        return
    for method in methods:
        print(f"== {method}: {protocol.describe()}, torch device auto", flush=True)
        run_benchmark(
            dataset,
            [method],
            protocol,
            args.out,
            params={method: params[method]} if method in params else None,
            cache=FeatureCache(),
            n_jobs=args.jobs,
            quick=args.quick,
            executor=ProcessExecutor(args.workers) if args.workers > 1 else None,
        )
        watcher.check()
        try:
            path = write_results(
                args.out, method, args.suffix, command, params.get(method) or {}, note, args.quick
            )
        except Exception as exc:  # the folds are safe on disk; the file can be rebuilt
            path = f"results file not written ({exc!r})"
        print(f"== {method} done: {path}", flush=True)
    watcher.stop.set()


if __name__ == "__main__":
    main()
