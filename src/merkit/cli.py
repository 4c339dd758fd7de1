"""The ``merkit`` command line."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from merkit.commands import (
    TidyGroup,
    dataset_options,
    err_console,
    load_for_methods,
    user_errors,
)
from merkit.commands.adapt import register as register_adapt
from merkit.commands.embed import register as register_embed
from merkit.commands.models import register as register_models
from merkit.commands.product import register as register_product
from merkit.commands.serve import register as register_serve
from merkit.commands.tune import register as register_tune
from merkit.core.errors import ConfigError

app = typer.Typer(
    cls=TidyGroup,
    add_completion=False,
    no_args_is_help=True,
    help="merkit: music emotion recognition in Russell's four arousal/valence quadrants.",
)
data_app = typer.Typer(no_args_is_help=True, help="Inspect datasets.")
app.add_typer(data_app, name="data")
register_product(app)
register_models(app)
register_serve(app)
register_embed(app)
register_tune(app)
register_adapt(app)

console = Console(width=None if sys.stdout.isatty() else 140)

DatasetOpt = Annotated[
    str,
    typer.Option(
        "--dataset",
        "-d",
        help="synthetic | 4qaed | merge | musifeast17 | folder | csv (cross-dataset: A,B for "
        "the two --root)",
    ),
]
RootOpt = Annotated[
    Path | None, typer.Option("--root", "-r", help="Dataset folder (or CSV file for --dataset csv)")
]
SubsetOpt = Annotated[
    Path | None, typer.Option(help="File of song ids to keep (4qaed layout only)")
]


@app.command()
@user_errors
def benchmark(
    dataset: DatasetOpt = "synthetic",
    root: Annotated[
        list[Path] | None,
        typer.Option(
            "--root",
            "-r",
            help="Dataset folder (or CSV file for --dataset csv); give it twice with --protocol "
            "cross-dataset: trained on the first, tested on the second, and back",
        ),
    ] = None,
    methods: Annotated[str, typer.Option(help="Comma-separated method names")] = "",
    folds: Annotated[int, typer.Option(min=2, help="Folds per repeat")] = 10,
    repeats: Annotated[int, typer.Option(min=1, help="Repeats of the K-fold split")] = 10,
    seed: Annotated[int, typer.Option(help="random_state of the fold splitter")] = 1,
    protocol_name: Annotated[
        str,
        typer.Option(
            "--protocol",
            help="kfold (--folds x --repeats) | tvt-70-15-15 | tvt-40-30-30 (MERGE's fixed "
            "train/validate/test split) | logo-genre (leave one genre group out; 4QAED layout) "
            "| cross-dataset (two --root: train on one dataset, test on the other, and back)",
        ),
    ] = "kfold",
    unstratified: Annotated[bool, typer.Option(help="Repo-compat dummy-label splits")] = False,
    out: Annotated[Path, typer.Option(help="Output folder (rerun the same to resume)")] = Path(
        "runs/benchmark"
    ),
    config: Annotated[Path | None, typer.Option(help="YAML of per-method settings")] = None,
    augment: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated augmentations (tfm, sb, rg, classic, specaugment, ...) for "
            "every method of the run; replaces their 'augment' setting"
        ),
    ] = None,
    subset: SubsetOpt = None,
    group_by_artist: Annotated[bool, typer.Option(help="Keep an artist's songs together")] = False,
    jobs: Annotated[int, typer.Option(min=1, help="Parallel workers for feature extraction")] = 2,
    cache_dir: Annotated[Path | None, typer.Option(help="Representation cache folder")] = None,
    save_models: Annotated[bool, typer.Option(help="Also save each fold's model")] = False,
    quick: Annotated[
        bool, typer.Option(help="Smoke run: 3 folds x 1 repeat, deep methods capped at 2 epochs")
    ] = False,
    train_fraction: Annotated[
        str | None,
        typer.Option(
            help="Dataset-size curve: also train on these stratified, nested fractions of each "
            "training fold, e.g. 0.25,0.5,0.75,1.0 (tested on the full test folds)"
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option(help="No progress bars")] = False,
    executor: Annotated[
        str, typer.Option(help="Where folds run: serial | processes | ray")
    ] = "serial",
    workers: Annotated[
        int | None,
        typer.Option(min=1, help="Worker processes (processes) or CPUs of a local Ray instance"),
    ] = None,
    ray_address: Annotated[
        str | None,
        typer.Option(help="Existing Ray cluster: auto | ray://HOST:10001 (default: a local one)"),
    ] = None,
    gpus_per_fold: Annotated[
        float, typer.Option(min=0.0, help="Ray: GPUs per fold of a network method (if any)")
    ] = 1.0,
    retries: Annotated[
        int, typer.Option(min=0, help="Reruns of a fold whose worker died (processes, ray)")
    ] = 2,
) -> None:
    """Cross-validate methods on a dataset and print a Table-3-style report.

    With no arguments: the built-in synthetic dataset, 10x10 stratified CV, the audio-only SVM.
    """
    # Flags that contradict each other are refused before anything heavy is imported.
    _check_executor_options(executor, workers, ray_address)
    from merkit.benchmark import (
        CROSS_DATASET,
        benchmark_protocol,
        cross_dataset,
        dataset_per_root,
        default_methods,
        resolve_methods,
        roots_for_protocol,
        run_benchmark,
    )
    from merkit.core.versions import RESEARCH_COMMAND_LIBRARIES, require_extras
    from merkit.methods import read_settings
    from merkit.product.shipped import require_input_weights
    from merkit.protocol.curves import parse_fractions
    from merkit.representations.cache import FeatureCache

    require_extras(RESEARCH_COMMAND_LIBRARIES, needed_by="merkit benchmark")
    benchmark_protocol(protocol_name)  # an unknown --protocol is refused before any work
    roots = list(root or [])
    roots_for_protocol(protocol_name, roots)
    kinds = dataset_per_root(dataset, protocol_name, len(roots))
    names = [m.strip() for m in methods.split(",") if m.strip()] or default_methods(
        dataset, protocol_name
    )
    settings = read_settings(config)  # a key that is not a method is refused before any work
    # Every method and setting is checked before the dataset is read or anything is computed.
    resolved = resolve_methods(names, settings, quick=quick, augment=augment)
    for name, method in zip(names, resolved, strict=True):
        require_input_weights(method.inputs, needed_by=f"method {name!r}")
    fractions = None if train_fraction is None else parse_fractions(train_fraction)
    parts = [
        load_for_methods(
            kind, part, resolved, subset=subset, group_by_artist=group_by_artist, quiet=quiet
        )
        for kind, part in zip(kinds, roots or [None], strict=True)
    ]
    if protocol_name == CROSS_DATASET:
        loaded, protocol = cross_dataset(parts[0], parts[1], seed=seed)
    else:
        loaded = parts[0]
        protocol = benchmark_protocol(
            protocol_name,
            loaded,
            folds=folds,
            repeats=repeats,
            seed=seed,
            stratify=not unstratified,
            quick=quick,
        )
    console.print(
        f"[bold]{loaded.name}[/]: {len(loaded)} songs {loaded.counts()} | {protocol.describe()} "
        f"| methods: {', '.join(names)} | out: {out}"
    )
    with _open_executor(
        executor, workers, ray_address, gpus_per_fold, retries, quiet=quiet
    ) as runner:
        run_benchmark(
            loaded,
            resolved,
            protocol,
            out,
            params=settings,
            cache=FeatureCache(cache_dir),
            n_jobs=jobs,
            save_models=save_models,
            quick=quick,
            progress=not quiet,
            console=console,
            executor=runner,
            train_fractions=fractions,
        )
    console.print(
        f"results: {out / 'results.csv'}  report: {out / 'report.md'}, {out / 'report.html'}  "
        f"plots: {out}/*.png"
    )


def _check_executor_options(kind: str, workers: int | None, address: str | None) -> None:
    if kind not in ("serial", "processes", "ray"):
        raise ConfigError(f"--executor must be serial, processes or ray, not {kind!r}")
    if address is not None and kind != "ray":
        raise ConfigError("--ray-address applies to --executor ray")
    if kind == "serial" and workers not in (None, 1):
        raise ConfigError("--workers applies to --executor processes or ray")
    if address is not None and workers is not None:
        raise ConfigError("--workers sizes a local Ray instance; a cluster has its own")


@contextmanager
def _open_executor(
    kind: str,
    workers: int | None,
    address: str | None,
    gpus_per_fold: float,
    retries: int,
    *,
    quiet: bool = False,
) -> Iterator[Any]:
    """The ``--executor`` for a benchmark (a local Ray instance is stopped afterwards)."""
    from merkit.protocol.executor import ProcessExecutor, SerialExecutor

    _check_executor_options(kind, workers, address)
    if kind == "serial":
        yield SerialExecutor()
    elif kind == "processes":
        yield ProcessExecutor(workers or 2, retries=retries)
    else:
        from merkit.protocol.ray_executor import RayExecutor

        with RayExecutor(
            address, num_cpus=workers, gpus_per_fold=gpus_per_fold, retries=retries, quiet=quiet
        ) as ray_executor:
            yield ray_executor


@app.command()
@user_errors
def report(
    run_dirs: Annotated[list[Path], typer.Argument(help="merkit benchmark --out folders")],
    out: Annotated[Path, typer.Option(help="HTML file to write")] = Path("report.html"),
) -> None:
    """One self-contained HTML report of finished runs, with significance tests across methods.

    Methods of all the runs are compared with the corrected resampled t-test (Holm-adjusted) and,
    for three or more, Friedman's test and a critical-difference diagram; runs whose folds differ
    are refused.
    """
    from merkit.core.versions import RESEARCH_COMMAND_LIBRARIES, require_extras

    require_extras(RESEARCH_COMMAND_LIBRARIES, needed_by="merkit report")
    from merkit.report.html import write_report

    path = write_report(run_dirs, out)
    console.print(f"report: {path}")


@app.command("methods")
def list_methods() -> None:
    """List the methods: inputs, the paper row each reproduces, weights and extras, cost."""
    from rich.table import Table

    from merkit.methods import METHODS
    from merkit.methods.fold_costs import FOLD_COSTS

    table = Table(
        title="merkit methods",
        caption="cost: measured fit + predict seconds per fold on 4QAED on this project's 2-core "
        "CPU (* = run with lowered epoch caps: the paper regime costs more); "
        "extras: pip install 'merkit[EXTRA]'",
        caption_justify="left",
    )
    for column in ("name", "inputs", "paper row (Orig-4QAED F1)", "needs", "s/fold", "summary"):
        table.add_column(column, justify="right" if column == "s/fold" else "left")
    for spec in METHODS.values():
        paper = (
            f"{spec.paper_row} ({100 * spec.paper_f1:.2f})"
            if spec.paper_row and spec.paper_f1
            else ""
        )
        inputs = (
            ", ".join(f"{role}={name}" for role, name in zip(spec.roles, spec.inputs, strict=True))
            if spec.roles
            else ", ".join(spec.inputs) or "its members' inputs"
        )
        if spec.augment:
            inputs += f" (+ augment: {', '.join(map(str, spec.augment))})"
        needs = [f"weights: {spec.weights}"] if spec.weights else []
        needs += [f"extra: {extra}" for extra in spec.extras]
        cost = FOLD_COSTS.get(spec.name)
        seconds = f"{cost['seconds_per_fold']:.0f}{'*' if cost['reduced'] else ''}" if cost else ""
        table.add_row(spec.name, inputs, paper, "; ".join(needs), seconds, spec.summary)
    console.print(table)


@data_app.command("check")
@user_errors
def data_check(
    dataset: DatasetOpt = "synthetic",
    root: RootOpt = None,
    subset: SubsetOpt = None,
    decode: Annotated[
        bool, typer.Option(help="Decode every file fully (finds corrupt data)")
    ] = True,
) -> None:
    """Count songs per quadrant, summarise durations and sample rates, list every problem.

    The default dataset is the built-in synthetic one, as for ``benchmark`` and ``tune``.
    """
    from merkit.datasets.check import check_dataset

    report = check_dataset(dataset, root, decode=decode, **dataset_options(dataset, subset))
    if report.dataset is not None:
        where = f" at {root}" if root is not None else ""
        console.print(f"[bold]{report.dataset.name}[/]{where}: {len(report.dataset)} songs")
        console.print(_check_table(report), highlight=False)
    for note in report.notes:
        console.print(f"  [yellow]note:[/] {escape(note)}", highlight=False)
    if report.ok:
        console.print("[green]no problems found[/]")
        return
    err_console.print(f"[bold red]{len(report.problems)} problem(s):[/]")
    for problem in report.problems:
        err_console.print(f"  - {escape(problem)}", highlight=False)
    raise typer.Exit(1)


def _check_table(report: Any) -> Any:
    """What ``data check`` found, as one table: songs per quadrant, then the audio's numbers."""
    from rich.table import Table

    table = Table(show_header=False, box=None, padding=(0, 2))
    table.add_column("what", style="bold")
    table.add_column("value")
    counts = report.counts
    table.add_row(
        "songs per quadrant",
        "   ".join(f"{q} {n}" for q, n in counts.items()) + f"   (total {sum(counts.values())})",
    )
    if report.durations:
        d = report.duration_summary()
        table.add_row(
            "duration (s)",
            f"min {d['min']:.1f}   median {d['median']:.1f}   max {d['max']:.1f}   "
            f"under 29 s: {d['under_29s']}",
        )
        table.add_row(
            "sample rate",
            ", ".join(f"{rate} Hz: {n}" for rate, n in sorted(report.sample_rates.items())),
        )
        table.add_row(
            "channels",
            ", ".join(f"{ch}: {n}" for ch, n in sorted(report.channels.items())),
        )
    for name, frame in report.dataset.tables.items():
        table.add_row(f"feature table {name}", f"{frame.shape[1]} features, {frame.shape[0]} rows")
    return table


def main() -> None:
    """Console entry point.

    Re-executes once with glibc's huge-page malloc where it helps (see
    :func:`merkit.training.runtime.malloc_reexec_environment`; the variable must be set before
    the process starts, hence the re-exec). Nothing in the current folder is ever imported
    (merkit runs inside music and dataset folders, which may hold a ``numpy.py``): the re-exec
    runs with ``-P`` and every Python process merkit starts inherits ``PYTHONSAFEPATH``.
    """
    from merkit.training.runtime import malloc_reexec_environment

    os.environ["PYTHONSAFEPATH"] = "1"  # spawn/uvicorn workers, numba's check: no cwd on sys.path
    env = malloc_reexec_environment()
    if env is not None:
        os.execve(sys.executable, [sys.executable, "-P", "-m", "merkit", *sys.argv[1:]], env)
    app(prog_name="merkit")


if __name__ == "__main__":
    main()
