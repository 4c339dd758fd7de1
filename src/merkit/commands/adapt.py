"""``merkit adapt``: recalibrate a saved model with a few labelled songs of the user's domain."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from merkit.commands import err_console, user_errors

console = Console(width=None if sys.stdout.isatty() else 140)


@user_errors
def adapt(
    examples: Annotated[
        Path,
        typer.Option(
            help="Labelled example songs: a folder with Q1/ .. Q4/ sub-folders, or a CSV with "
            "path,quadrant columns (at least 2 songs per quadrant; 5 or more are better)",
        ),
    ],
    out: Annotated[Path, typer.Option(help="Model directory to write (never the input model)")],
    model: Annotated[
        Path | None,
        typer.Option(
            "--model", help="Model directory, or a shipped model: default (most accurate) or fast"
        ),
    ] = None,
    kind: Annotated[
        str | None,
        typer.Option(
            help=(
                "Default: auto for SVM models with a familiarity measure (the shipped default), "
                "refit for other SVM models (fast), bias for the rest. "
                "bias: per-quadrant offsets only | "
                "affine: offsets and a 4x4 mixing matrix on the log-probabilities (needs more "
                "examples) | "
                "refit: refit the model's SVM on its support vectors plus the examples (SVM "
                "models: default, fast, svm, svm-own) | "
                "shift: move your songs by their per-quadrant offset from the training songs, "
                "then refit | "
                "align: move and scale your music's features onto the training songs' mean and "
                "spread, estimated on --unlabelled songs, then refit | "
                "auto: refit or shift (with --unlabelled: or align), whichever answers your "
                "examples better (smaller log loss) when each is left out (see docs/adapt.md)"
            ),
            show_default=False,
        ),
    ] = None,
    strength: Annotated[
        float,
        typer.Option(
            min=0.0,
            help="Shrinkage toward the original model, in example songs' worth of trust",
        ),
    ] = 4.0,
    weight: Annotated[
        float,
        typer.Option(
            min=0.0,
            help="--kind refit, shift, align, auto: how many training songs each example song "
            "weighs",
        ),
    ] = 3.0,
    prior: Annotated[
        float,
        typer.Option(
            min=0.0,
            help="--kind shift, align, auto: shrinkage of the shift (of the alignment) toward "
            "none, in pseudo-songs (pseudo-windows)",
        ),
    ] = 10.0,
    unlabelled: Annotated[
        Path | None,
        typer.Option(
            help="A folder of your songs without labels (at least 10; searched recursively, "
            "may hold the examples too): --kind align and auto use their features' mean and "
            "spread, never any label",
            show_default=False,
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option(help="No progress output")] = False,
) -> None:
    """Adapt a model to your music: a handful of your songs labelled per quadrant recalibrate
    its probabilities (bias, affine), refit its SVM around them (refit), or move your music to
    where the training music lies and refit (shift, or align with --unlabelled songs); auto
    picks among them by leave-one-out on your examples.

    The adapted model is a normal model directory (merkit predict --model OUT, merkit serve);
    its card names the examples. The input model is never modified.
    """
    from merkit.core.errors import ConfigError
    from merkit.datasets.csv import load_csv
    from merkit.datasets.folder import load_folder
    from merkit.product.adapt import ADAPT_KINDS, adapt_model

    if kind is not None and kind not in ADAPT_KINDS:
        raise ConfigError(f"--kind must be one of {', '.join(ADAPT_KINDS)}, not {kind!r}")
    if strength <= 0:
        raise ConfigError("--strength must be > 0")
    if weight <= 0:
        raise ConfigError("--weight must be > 0")
    is_csv = examples.is_file() and examples.suffix.lower() == ".csv"
    loader = load_csv if is_csv else load_folder
    dataset = loader(examples, name=examples.stem)

    n_examples = len(dataset)
    seen: list[str] = []

    def report(song_id: str) -> None:
        seen.append(song_id)
        if not quiet:
            what = "example" if len(seen) <= n_examples else "unlabelled song"
            err_console.print(f"read {what} {escape(song_id)}", highlight=False)

    done = adapt_model(
        model,
        dataset,
        out,
        kind=kind,
        strength=strength,
        weight=weight,
        prior=prior,
        progress=report,  # type: ignore[arg-type]
        unlabelled=unlabelled,
    )
    before, after = done.example_accuracy
    if done.recalibration is None:
        what = f"SVM refitted, each example weighing {weight:g} training songs"
        if done.shift is not None:
            what = f"features shifted (prior {prior:g}), {what}"
        if done.alignment is not None:
            aligned = f"features aligned on {done.n_unlabelled} unlabelled songs (prior {prior:g})"
            what = f"{aligned}, {what}"
        if done.leave_one_out is not None:
            right = ", ".join(f"{k} {v}" for k, v in done.leave_one_out.items())
            loss = ", ".join(f"{k} {v:.2f}" for k, v in (done.leave_one_out_loss or {}).items())
            what = (
                f"kind {done.kind} chosen by leave-one-out (log loss: {loss}; right: {right}); "
                f"{what}"
            )
    else:
        what = "log-offsets " + ", ".join(
            f"{q} {b:+.2f}" for q, b in zip(done.counts, done.recalibration.intercept_, strict=True)
        )
    if kind is None:
        what = f"--kind {done.requested} (this model's default); {what}"
    console.print(
        f"adapted model written to {escape(str(out))} from {len(done.song_ids)} examples "
        f"({', '.join(f'{q} {n}' for q, n in done.counts.items())}); {what}; "
        f"accuracy on the examples {100 * before:.0f} % -> {100 * after:.0f} % (in-sample)",
        highlight=False,
        soft_wrap=True,
    )


def register(app: typer.Typer) -> None:
    """Add ``adapt`` to the ``merkit`` app."""
    app.command("adapt")(adapt)
