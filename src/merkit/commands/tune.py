"""``merkit tune``: an inner-CV hyperparameter search whose best settings become a config YAML."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from merkit.commands import load_for_methods, user_errors

console = Console()


@user_errors
def tune(
    method: Annotated[str, typer.Option("--method", "-m", help="Method name (merkit methods)")],
    space: Annotated[
        str,
        typer.Option(help="Search-space YAML, or 'paper' for the space shipped for the method"),
    ] = "paper",
    dataset: Annotated[
        str, typer.Option("--dataset", "-d", help="synthetic | 4qaed | merge | folder | csv")
    ] = "synthetic",
    root: Annotated[
        Path | None, typer.Option("--root", "-r", help="Dataset folder (or CSV for --dataset csv)")
    ] = None,
    trials: Annotated[
        int | None,
        typer.Option(min=1, help="Trials in all (a rerun continues) [default: the space's]"),
    ] = None,
    out: Annotated[
        Path, typer.Option(help="Folder: study.sqlite3 (resumable), trials.csv, best.yaml")
    ] = Path("runs/tune"),
    config: Annotated[
        Path | None, typer.Option(help="YAML of fixed settings (benchmark format)")
    ] = None,
    subset: Annotated[
        Path | None, typer.Option(help="File of song ids to keep (4qaed layout only)")
    ] = None,
    sampler: Annotated[
        str | None, typer.Option(help="grid | tpe | random [default: the space's]")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the inner folds and the sampler")] = 0,
    jobs: Annotated[int, typer.Option(min=1, help="Parallel workers for feature extraction")] = 2,
    cache_dir: Annotated[Path | None, typer.Option(help="Representation cache folder")] = None,
    quick: Annotated[bool, typer.Option(help="The method's smoke-run settings")] = False,
    quiet: Annotated[bool, typer.Option(help="No progress bars or per-trial lines")] = False,
) -> None:
    """Search a method's settings by inner stratified cross-validation; write OUT/best.yaml.

    The best settings are chosen on every song given, so benchmarking them on the same songs is
    optimistic; for an honest score put `tune: {space: ..., trials: N}` in the method's
    benchmark settings, which repeats the search inside every outer training fold.
    """
    from merkit.methods import read_settings
    from merkit.representations.cache import FeatureCache
    from merkit.tuning.run import tune_method
    from merkit.tuning.search import validate_space
    from merkit.tuning.space import format_params, load_space, with_sampler

    base = read_settings(config).get(method, {})
    search_space = with_sampler(load_space(space, method), sampler)
    resolved = validate_space(method, search_space, base, quick=quick)  # before any work
    loaded = load_for_methods(dataset, root, [resolved], subset=subset, quiet=quiet)
    n_trials = search_space.n_trials(trials)
    console.print(
        f"tuning [bold]{escape(method)}[/] on {escape(loaded.name)} ({len(loaded)} songs): "
        f"{search_space.sampler}, {n_trials} trials, inner {search_space.inner_folds}-fold "
        f"x {search_space.inner_repeats} | out: {out}",
        highlight=False,
    )

    def show(trial: Any) -> None:
        if quiet:
            return
        value = "pruned" if trial.value is None else f"inner F1 {100 * trial.value:.2f}"
        shown = format_params(search_space, trial.params)
        console.print(f"  trial {trial.number}: {value}  {shown}", highlight=False)

    result = tune_method(
        method,
        search_space,
        loaded,
        out,
        trials=trials,
        base_settings=base,
        seed=seed,
        cache=FeatureCache(cache_dir),
        n_jobs=jobs,
        quick=quick,
        progress=not quiet,
        on_trial=show,
    )
    console.print(
        f"best of {result.n_trials} trials: inner F1 {100 * result.best_f1:.2f} with "
        f"{format_params(search_space, result.best_params)}\nsettings: {result.best_yaml} "
        "(merkit benchmark --config / merkit train --config)",
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    """Add ``tune`` to the main app."""
    app.command()(tune)
