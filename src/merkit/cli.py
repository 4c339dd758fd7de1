"""The ``merkit`` command line."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from merkit.commands import err_console, user_errors
from merkit.commands.embed import register as register_embed
from merkit.commands.product import register as register_product
from merkit.commands.serve import register as register_serve
from merkit.errors import ConfigError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="merkit: music emotion recognition in Russell's four arousal/valence quadrants.",
)
data_app = typer.Typer(no_args_is_help=True, help="Inspect datasets.")
app.add_typer(data_app, name="data")
register_product(app)
register_serve(app)
register_embed(app)

console = Console(width=None if sys.stdout.isatty() else 140)

DatasetOpt = Annotated[
    str, typer.Option("--dataset", "-d", help="synthetic | 4qaed | merge | folder | csv")
]
RootOpt = Annotated[
    Path | None, typer.Option("--root", "-r", help="Dataset folder (or CSV file for --dataset csv)")
]
SubsetOpt = Annotated[
    Path | None, typer.Option(help="File of song ids to keep (4qaed layout only)")
]


def _dataset_options(dataset: str, subset: Path | None, group_by_artist: bool) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if subset is not None:
        if dataset != "4qaed":
            raise ConfigError("--subset applies to --dataset 4qaed")
        options["subset"] = subset
    if group_by_artist:
        if dataset != "4qaed":
            raise ConfigError("--group-by-artist applies to --dataset 4qaed")
        options["group_by_artist"] = True
    return options


@app.command()
@user_errors
def benchmark(
    dataset: DatasetOpt = "synthetic",
    root: RootOpt = None,
    methods: Annotated[str, typer.Option(help="Comma-separated method names")] = "",
    folds: Annotated[int, typer.Option(min=2, help="Folds per repeat")] = 10,
    repeats: Annotated[int, typer.Option(min=1, help="Repeats of the K-fold split")] = 10,
    seed: Annotated[int, typer.Option(help="random_state of the fold splitter")] = 1,
    protocol_name: Annotated[
        str,
        typer.Option(
            "--protocol",
            help="kfold (--folds x --repeats) | tvt-70-15-15 | tvt-40-30-30 (MERGE's fixed "
            "train/validate/test split)",
        ),
    ] = "kfold",
    unstratified: Annotated[bool, typer.Option(help="Repo-compat dummy-label splits")] = False,
    out: Annotated[Path, typer.Option(help="Output folder (rerun the same to resume)")] = Path(
        "runs/benchmark"
    ),
    config: Annotated[Path | None, typer.Option(help="YAML of per-method settings")] = None,
    subset: SubsetOpt = None,
    group_by_artist: Annotated[bool, typer.Option(help="Keep an artist's songs together")] = False,
    jobs: Annotated[int, typer.Option(min=1, help="Parallel workers for feature extraction")] = 2,
    cache_dir: Annotated[Path | None, typer.Option(help="Representation cache folder")] = None,
    save_models: Annotated[bool, typer.Option(help="Also save each fold's model")] = False,
    quick: Annotated[
        bool, typer.Option(help="Smoke run: 3 folds x 1 repeat, deep methods capped at 2 epochs")
    ] = False,
    quiet: Annotated[bool, typer.Option(help="No progress bars")] = False,
) -> None:
    """Cross-validate methods on a dataset and print a Table-3-style report.

    With no arguments: the built-in synthetic dataset, 10x10 stratified CV, the audio-only SVM.
    """
    from merkit.benchmark import run_benchmark
    from merkit.cache import FeatureCache
    from merkit.datasets.check import load_checked_dataset
    from merkit.inputs import parse_input
    from merkit.methods import read_settings, resolve_method
    from merkit.protocol.fixed import protocol_for
    from merkit.protocol.folds import ProtocolConfig

    protocol_for(protocol_name)  # an unknown --protocol is refused before any work
    names = [m.strip() for m in methods.split(",") if m.strip()] or (
        ["svm-own"] if dataset in ("synthetic", "merge") else ["svm"]
    )
    settings = read_settings(config)  # a key that is not a method is refused before any work
    # Every method and setting is checked before the dataset is read or anything is computed.
    resolved = [resolve_method(name, settings.get(name), quick=quick) for name in names]
    tables = sorted(
        {parse_input(i).name for r in resolved for i in r.inputs if parse_input(i).kind == "table"}
    )
    # The same checks and the same list of problems as `merkit data check --no-decode`.
    loaded = load_checked_dataset(
        dataset,
        root,
        progress=not quiet,
        require_tables=tables,
        **_dataset_options(dataset, subset, group_by_artist),
    )
    if quick:
        folds, repeats = 3, 1
    protocol = ProtocolConfig(
        n_splits=folds, n_repeats=repeats, random_state=seed, stratify=not unstratified
    )
    if protocol_name != "kfold":
        protocol = protocol_for(protocol_name, seed)
    console.print(
        f"[bold]{loaded.name}[/]: {len(loaded)} songs {loaded.counts()} | {protocol.describe()} "
        f"| methods: {', '.join(names)} | out: {out}"
    )
    run_benchmark(
        loaded,
        names,
        protocol,
        out,
        params=settings,
        cache=FeatureCache(cache_dir),
        n_jobs=jobs,
        save_models=save_models,
        quick=quick,
        progress=not quiet,
        console=console,
    )
    console.print(
        f"results: {out / 'results.csv'}  report: {out / 'report.md'}, {out / 'report.html'}  "
        f"plots: {out}/*.png"
    )


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
    from merkit.html_report import write_report

    path = write_report(run_dirs, out)
    console.print(f"report: {path}")


@app.command("methods")
def list_methods() -> None:
    """List the available methods and the paper row each reproduces."""
    from rich.table import Table

    from merkit.methods import METHODS

    table = Table(title="merkit methods")
    for column in ("name", "inputs", "paper row (Orig-4QAED F1)", "summary"):
        table.add_column(column)
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
        table.add_row(spec.name, inputs, paper, spec.summary)
    console.print(table)


@data_app.command("check")
@user_errors
def data_check(
    dataset: DatasetOpt = "4qaed",
    root: RootOpt = None,
    subset: SubsetOpt = None,
    decode: Annotated[
        bool, typer.Option(help="Decode every file fully (finds corrupt data)")
    ] = True,
) -> None:
    """Count songs per quadrant, summarise durations and sample rates, list every problem."""
    from merkit.datasets.check import check_dataset

    report = check_dataset(dataset, root, decode=decode, **_dataset_options(dataset, subset, False))
    if report.dataset is not None:
        console.print(f"[bold]{report.dataset.name}[/] at {root}: {len(report.dataset)} songs")
        console.print(f"  per quadrant: {report.counts}")
        if report.durations:
            console.print(f"  durations (s): {report.duration_summary()}")
            console.print(
                f"  sample rates: {dict(report.sample_rates)}  channels: {dict(report.channels)}"
            )
        for name, frame in report.dataset.tables.items():
            console.print(
                f"  feature table {name!r}: {frame.shape[1]} features, {frame.shape[0]} rows"
            )
    for note in report.notes:
        console.print(f"  [yellow]note:[/] {escape(note)}", highlight=False)
    if report.ok:
        console.print("[green]no problems found[/]")
        return
    err_console.print(f"[bold red]{len(report.problems)} problem(s):[/]")
    for problem in report.problems:
        err_console.print(f"  - {escape(problem)}", highlight=False)
    raise typer.Exit(1)


def main() -> None:
    """Console entry point.

    Re-executes once with glibc's huge-page malloc where it helps (see
    :func:`merkit.training.runtime.malloc_reexec_environment`; the variable must be set before
    the process starts, hence the re-exec).
    """
    from merkit.training.runtime import malloc_reexec_environment

    env = malloc_reexec_environment()
    if env is not None:
        os.execve(sys.executable, [sys.executable, "-m", "merkit", *sys.argv[1:]], env)
    app(prog_name="merkit")


if __name__ == "__main__":
    main()
