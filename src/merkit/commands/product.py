"""``merkit train`` (fit and export a final model) and ``merkit predict`` (songs to quadrants)."""

from __future__ import annotations

import json
import sys
import time
import warnings
from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from merkit.commands import (
    CrnnPrecisionOption,
    ExactWindowsOption,
    HopOption,
    err_console,
    load_for_methods,
    user_errors,
)
from merkit.core.errors import ConfigError

if TYPE_CHECKING:
    from merkit.product.output import ResultSink
    from merkit.product.prediction import PredictionFailure, PredictionResult

    Outcome = PredictionResult | PredictionFailure

console = Console(width=None if sys.stdout.isatty() else 140)  # as merkit.cli: wide in pipes


class OutputFormat(StrEnum):
    """How ``merkit predict`` prints its answers."""

    table = "table"
    json = "json"
    csv = "csv"


def _output_format(value: str | None) -> OutputFormat | None:
    """``--format`` checked here, so a bad one is one plain line (not a parser's message)."""
    if value is None:
        return None
    try:
        return OutputFormat(value.lower())
    except ValueError:
        raise ConfigError(f"--format must be table, json or csv, not {value!r}") from None


# ---------------------------------------------------------------------------------------------
# merkit train


def _method_params(config: Path | None, method: str) -> dict[str, Any]:
    """The ``method:`` section of a benchmark-style YAML config (``{method: {param: value}}``).

    Any file ``merkit benchmark --config`` accepts is accepted: a method it does not mention runs
    with its defaults, as it would in a benchmark (said on stderr).
    """
    from merkit.methods import read_settings

    loaded = read_settings(config)
    if config is not None and method not in loaded:
        err_console.print(
            f"note: {escape(str(config))} has no settings for method {escape(method)!r}; "
            "using its defaults",
            highlight=False,
        )
    return dict(loaded.get(method, {}))


@user_errors
def train(
    method: Annotated[str, typer.Option("--method", "-m", help="Method name (merkit methods)")],
    dataset: Annotated[
        str, typer.Option("--dataset", "-d", help="synthetic | 4qaed | folder | csv")
    ],
    out: Annotated[Path, typer.Option(help="Model directory to write")],
    root: Annotated[
        Path | None, typer.Option("--root", "-r", help="Dataset folder (or CSV for --dataset csv)")
    ] = None,
    config: Annotated[
        Path | None, typer.Option(help="YAML of per-method settings (benchmark format)")
    ] = None,
    cv_results: Annotated[
        Path | None,
        typer.Option(help="Benchmark results.csv with this method's cross-validated scores"),
    ] = None,
    subset: Annotated[
        Path | None, typer.Option(help="File of song ids to keep (4qaed layout only)")
    ] = None,
    jobs: Annotated[int, typer.Option(min=1, help="Parallel workers for feature extraction")] = 2,
    seed: Annotated[int, typer.Option(help="Seed of every random choice of the estimator")] = 0,
    window: Annotated[
        float | None,
        typer.Option(help="Window length in s for whole tracks [default: median clip length]"),
    ] = None,
    hop: Annotated[
        float | None, typer.Option(help="Hop between windows in s [default: window/2]")
    ] = None,
    cache_dir: Annotated[Path | None, typer.Option(help="Representation cache folder")] = None,
    quiet: Annotated[bool, typer.Option(help="No progress bars")] = False,
) -> None:
    """Fit a method on every song of a dataset and export a self-contained model directory.

    The directory holds the weights, the exact representation and method settings, label names,
    library versions and a model card (MODEL_CARD.md) quoting the method's cross-validated scores
    from --cv-results.
    """
    from merkit.methods import resolve_method
    from merkit.product.export import save_model, train_final
    from merkit.product.shipped import require_input_weights
    from merkit.representations.cache import FeatureCache

    params = _method_params(config, method)
    resolved = resolve_method(method, params)  # every setting checked before any work
    require_input_weights(resolved.inputs, needed_by=f"method {method!r}")
    loaded = load_for_methods(dataset, root, [resolved], subset=subset, quiet=quiet)
    err_console.print(
        f"training [bold]{escape(method)}[/] on {escape(loaded.name)}: {len(loaded)} songs "
        f"{loaded.counts()}",
        highlight=False,
        soft_wrap=True,
    )
    model = train_final(
        method,
        loaded,
        params=params,
        cache=FeatureCache(cache_dir),
        n_jobs=jobs,
        progress=not quiet,
        cv_results=cv_results,
        seed=seed,
        window_s=window,
        hop_s=hop,
    )
    save_model(model, out)
    cv = model.manifest.cv
    scores = (
        f"cross-validated macro F1 {100 * cv.f1:.2f} % ({cv.protocol})"
        if cv
        else "not cross-validated"
    )
    console.print(
        f"model written to {escape(str(out))} ({scores}); "
        f"card: {escape(str(out / 'MODEL_CARD.md'))}",
        highlight=False,
        soft_wrap=True,
    )


# ---------------------------------------------------------------------------------------------
# merkit predict


def find_audio(paths: Sequence[Path]) -> tuple[list[Path], list[PredictionFailure]]:
    """Files to predict (:func:`merkit.product.search.find_audio_files`, stat-only: an unreadable
    file fails when predicted); each folder that cannot be read becomes a failure."""
    from merkit.product.prediction import PredictionFailure
    from merkit.product.search import find_audio_files

    files, problems = find_audio_files(paths)
    return files, [PredictionFailure(path=path, error=error) for path, error in problems]


def _pct(value: float) -> str:
    return f"{100 * value:.1f}"


def _print_table(outcomes: list[Outcome], segments: bool) -> None:
    from rich.table import Table

    from merkit.product.prediction import PredictionResult

    results = [o for o in outcomes if isinstance(o, PredictionResult)]
    if not results:
        return
    quadrants = list(results[0].probabilities)
    table = Table(title="merkit predictions (probabilities in %)")
    table.add_column("file", overflow="fold")
    table.add_column("quadrant")
    relative = any(r.relative is not None for r in results)
    if relative:
        table.add_column("relative quadrant (in this collection)")
    for q in quadrants:
        table.add_column(q, justify="right")
    for column in ("arousal", "valence", "length"):
        table.add_column(column)
    for r in results:
        p_arousal = r.p_high_arousal if r.arousal == "high" else 1 - r.p_high_arousal
        p_valence = r.p_positive_valence if r.valence == "positive" else 1 - r.p_positive_valence
        flag = "" if r.reliable else " [yellow](unreliable)[/]"
        if r.mixed:
            flag += f" [yellow](mixed: {escape(r.summary)})[/]"
        table.add_row(
            escape(r.path or "waveform"),
            f"[bold]{r.quadrant}[/] {r.meaning}{flag}",
            *([_relative_cell(r)] if relative else []),
            *[_pct(r.probabilities[q]) for q in quadrants],
            f"{r.arousal} {_pct(p_arousal)}",
            f"{r.valence} {_pct(p_valence)}",
            f"{r.duration_s:.1f} s, {r.n_windows} window{'s' if r.n_windows > 1 else ''}",
        )
    console.print(table)
    for r in results:
        for warning in r.warnings:
            console.print(
                f"[yellow]note:[/] {escape(r.path or 'waveform')}: {escape(warning)}",
                highlight=False,
                soft_wrap=True,
            )
    if segments:
        for r in results:
            _print_timeline(r, quadrants)


def _relative_cell(result: PredictionResult) -> str:
    rel = result.relative
    if rel is None:
        return ""
    return (
        f"[bold]{rel.quadrant}[/] {rel.meaning} "
        f"(a {rel.relative_arousal:+.1f}, v {rel.relative_valence:+.1f})"
    )


def _print_timeline(result: PredictionResult, quadrants: list[str]) -> None:
    from rich.table import Table

    table = Table(title=f"timeline of {escape(result.path or 'waveform')}", title_justify="left")
    for column in ("time", "quadrant", *quadrants, ""):
        table.add_column(column, justify="right" if column in quadrants else "left")
    for seg in result.segments or []:
        bar = "█" * round(10 * seg.probabilities[seg.quadrant])
        quiet = " [dim](silent)[/]" if seg.silent else ""
        table.add_row(
            f"{_clock(seg.start_s)}–{_clock(seg.end_s)}",
            f"{seg.quadrant} {seg.meaning}{quiet}",
            *[_pct(seg.probabilities[q]) for q in quadrants],
            bar,
        )
    console.print(table)


def _clock(seconds: float) -> str:
    minutes, rest = divmod(seconds, 60.0)
    return f"{int(minutes)}:{rest:04.1f}"


def _csv_text(outcomes: list[Outcome]) -> str:
    from merkit.product.output import csv_text

    return csv_text(outcomes)


def _progress(enabled: bool, total: int) -> Any:
    from merkit.core.progress import progress_bar

    return progress_bar("predicting", enabled=enabled, console=err_console)


@user_errors
def predict(
    paths: Annotated[
        list[Path], typer.Argument(help="Audio files or folders (searched recursively)")
    ],
    model: Annotated[
        Path | None,
        typer.Option(
            "--model",
            help="Model directory, or a shipped model: default (most accurate) or fast. A model "
            "directory is code (pickled Python): load only folders you made or trust",
        ),
    ] = None,
    output_format: Annotated[
        str | None,
        typer.Option(
            "--format",
            "-f",
            metavar="table|json|csv",
            help="How to give the answers [default: table; with --output, from its extension]",
        ),
    ] = None,
    trust: Annotated[
        bool,
        typer.Option(
            "--trust",
            help="Load a model folder merkit did not write on this machine (downloaded, shared "
            "or changed since): only one from a source you trust; it is remembered",
        ),
    ] = False,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Write each answer to this .csv or .jsonl file as soon as its song is done "
            "(a library run that is stopped keeps every finished song)",
        ),
    ] = None,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume",
            help="Continue an --output file: skip songs already in it (same path and same "
            "content); changed and failed songs are done again",
        ),
    ] = False,
    segments: Annotated[
        bool, typer.Option("--segments", help="Also give each window's answer (a timeline)")
    ] = False,
    jobs: Annotated[
        int,
        typer.Option(min=1, help="Files predicted in parallel (worker processes; ray: local CPUs)"),
    ] = 1,
    executor: Annotated[
        str,
        typer.Option(
            help="Where files run with --jobs > 1: processes (this machine) | ray (every file a "
            "Ray task; a killed worker costs that file one rerun)"
        ),
    ] = "processes",
    ray_address: Annotated[
        str | None,
        typer.Option(help="Existing Ray cluster: auto | ray://HOST:10001 (default: a local one)"),
    ] = None,
    quiet: Annotated[bool, typer.Option(help="No progress bar")] = False,
    exact_windows: ExactWindowsOption = None,
    crnn_precision: CrnnPrecisionOption = None,
    hop: HopOption = None,
    relative: Annotated[
        bool,
        typer.Option(
            "--relative",
            help="Also place each song relative to the others (at least 10 files): arousal and "
            "valence scores from the probabilities, centred on the collection's median and "
            "scaled by its MAD, quadrant from their signs. For music far from 4QAED's pop/rock "
            "(piano, game, film). Assumes the collection spans the emotion plane: a folder of "
            "only sad songs is still split into sadder and happier halves.",
        ),
    ] = False,
) -> None:
    """Predict the emotion quadrant of songs: Q1 happy/excited, Q2 angry/tense, Q3 sad/melancholic,
    Q4 calm/serene, with the four probabilities and the arousal and valence sides.

    Whole tracks are cut into windows whose answers are averaged. A song between two quadrants
    is called mixed ("between Q1 happy/excited and Q3 sad/melancholic"). A file that fails is
    reported with its reason and the others go on. Exit code: 0 all predicted, 1 some failed, 2
    no files.
    """
    from merkit.product.model_dir import ModelVersionWarning, read_manifest
    from merkit.product.predict import checked_hop, checked_precision, hop_within_window, load_model
    from merkit.product.predict_executors import check_executor
    from merkit.product.prediction import PredictionFailure
    from merkit.product.relative import MIN_FILES, with_relative
    from merkit.product.shipped import FastModelWarning, resolve_model_dir
    from merkit.product.trust import check_model_folder

    check_executor(executor, ray_address)  # before any file is looked at
    checked_hop(hop, "--hop")
    checked_precision(crnn_precision, "--crnn-precision")
    fmt = _output_format(output_format)
    with warnings.catch_warnings():  # said once, when the model is loaded below
        warnings.simplefilter("ignore")
        model_dir = Path(resolve_model_dir(model)).resolve()
    settings = {  # what the answers depend on: a resumed --output must have been written so
        "model": str(model_dir),
        "model_manifest_sha256": _manifest_digest(model_dir),
        "hop": hop,
        "exact_windows": exact_windows,
        "crnn_precision": crnn_precision,
        "segments": segments,
    }
    sink = _open_sink(output, fmt, resume, relative, settings)
    files, outcomes_missing = find_audio(paths)
    if not files and not outcomes_missing:
        err_console.print(
            "[bold red]error:[/] no audio files found in "
            + escape(", ".join(str(p) for p in paths)),
            highlight=False,
        )
        raise typer.Exit(2)
    if relative and len(files) < MIN_FILES:  # refused before any file is predicted
        raise ConfigError(
            f"--relative needs at least {MIN_FILES} audio files to place them against each "
            f"other (it assumes the collection spans the emotion plane); found {len(files)}"
        )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ModelVersionWarning)
        warnings.simplefilter("always", FastModelWarning)
        where = resolve_model_dir(model)
        note = check_model_folder(where, trust=trust)  # before anything in it is loaded
        if note is not None:
            err_console.print(f"[yellow]note:[/] {escape(note)}", highlight=False, soft_wrap=True)
        if hop is not None:  # named as the user typed it, before the model is loaded
            hop_within_window(hop, read_manifest(where).window_s, "--hop")
        predictor = load_model(
            where, exact_windows=exact_windows, crnn_precision=crnn_precision, hop_s=hop
        )
    for warning in caught:  # one plain line each, not Python's two-line warning format
        if issubclass(warning.category, ModelVersionWarning | FastModelWarning):
            line = f"[yellow]warning:[/] {escape(str(warning.message))}"
            err_console.print(line, highlight=False, soft_wrap=True)
        else:
            warnings.warn_explicit(
                warning.message, warning.category, warning.filename, warning.lineno
            )
    outcomes: list[Outcome] = list(outcomes_missing)
    for failure in outcomes_missing:
        err_console.print(f"[red]failed:[/] {escape(failure.error)}", highlight=False)
        if sink is not None:
            sink.write(failure)
    skipped = 0
    if sink is not None:
        files, skipped = sink.pending(files)
    if executor == "processes" and jobs > 1 and not quiet:
        from merkit.product.predict_executors import MIN_FILES_PER_PROCESS, process_count

        used = process_count(jobs, len(files))
        if used < jobs:  # say why --jobs was not taken at its word
            err_console.print(
                f"note: {len(files)} file(s): {used} process(es), not {jobs} (a worker's "
                f"start-up costs about a dozen files; one per {MIN_FILES_PER_PROCESS} files)",
                highlight=False,
            )
    started = time.perf_counter()
    with _progress(not quiet and len(files) > 1, len(files)) as bar:
        task = bar.add_task("files", total=len(files))
        run = predictor.predict_many(
            files, segments=segments, n_jobs=jobs, executor=executor, ray_address=ray_address
        )
        for outcome in run:
            if isinstance(outcome, PredictionFailure):
                bar.console.print(f"[red]failed:[/] {escape(outcome.error)}", highlight=False)
            if sink is not None:
                sink.write(outcome)  # durable before the next file's answer is taken
            else:
                outcomes.append(outcome)
            bar.advance(task)
    seconds = time.perf_counter() - started
    if sink is not None:
        sink.close()
        _closing_line(len(files), seconds, skipped, sink.failed, f" into {sink.path}", quiet)
        if sink.failed:
            raise typer.Exit(1)
        return
    if relative:
        predicted = [o for o in outcomes if not isinstance(o, PredictionFailure)]
        if len(predicted) < MIN_FILES:  # files failed: the absolute answers are still printed
            err_console.print(
                f"[yellow]warning:[/] --relative skipped: only {len(predicted)} of "
                f"{len(files)} files were predicted; it needs at least {MIN_FILES}",
                highlight=False,
            )
        else:
            placed = iter(with_relative(predicted))
            outcomes = [o if isinstance(o, PredictionFailure) else next(placed) for o in outcomes]
    if fmt is OutputFormat.json:
        typer.echo(json.dumps([o.model_dump(mode="json") for o in outcomes], indent=2))
    elif fmt is OutputFormat.csv:
        typer.echo(_csv_text(outcomes), nl=False)
    else:
        _print_table(outcomes, segments)
    n_failed = sum(isinstance(o, PredictionFailure) for o in outcomes)
    if len(files) > 1:
        _closing_line(len(files), seconds, 0, n_failed, "", quiet)
    if n_failed:
        err_console.print(f"{n_failed} of {len(outcomes)} file(s) failed", highlight=False)
        raise typer.Exit(1)


def _manifest_digest(model_dir: Path) -> str | None:
    """SHA-256 of a model folder's manifest (it holds its files' digests): a model changed in
    place, e.g. by an upgrade, is another model to ``--resume``. None where it is unreadable
    (loading the model then says why)."""
    from merkit.product.model_dir import MANIFEST
    from merkit.product.output import file_digest

    return file_digest(model_dir / MANIFEST)


def _open_sink(
    output: Path | None,
    fmt: OutputFormat | None,
    resume: bool,
    relative: bool,
    settings: dict[str, Any] | None = None,
) -> ResultSink | None:
    """The ``--output`` file's sink, every option checked before any work; ``settings`` (what
    the answers depend on) must match the ones a resumed file was written with."""
    from merkit.product.output import ResultSink, output_format

    if output is None:
        if resume:
            raise ConfigError("--resume continues an --output file; name it with --output")
        return None
    if relative:
        raise ConfigError(
            "--relative places songs against the whole collection, so it cannot stream to "
            "--output; run it without --output (e.g. --format csv > file.csv)"
        )
    return ResultSink(
        output, output_format(output, fmt and fmt.value), resume=resume, settings=settings
    )


def _closing_line(
    n_files: int, seconds: float, skipped: int, failed: int, where: str, quiet: bool
) -> None:
    """One line at the end of a run: files, time, files/s, skipped and failed ones."""
    if quiet and not failed:
        return
    rate = n_files / seconds if seconds > 0 else 0.0
    parts = [f"{n_files} file(s) in {seconds:.1f} s ({rate:.2f} files/s){where}"]
    if skipped:
        parts.append(f"{skipped} already done, skipped")
    if failed:
        parts.append(f"{failed} failed")
    err_console.print("done: " + "; ".join(parts), highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add ``train`` and ``predict`` to the ``merkit`` app."""
    app.command("train")(train)
    app.command("predict")(predict)
