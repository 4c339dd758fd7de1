"""Results as people read them: a Table-3-style table, a CSV, a Markdown report and plots."""

from __future__ import annotations

import fcntl
import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
from rich.table import Table

from merkit.core.errors import ConfigError
from merkit.core.labels import QUADRANTS
from merkit.protocol.results import RunResults, load_results
from merkit.protocol.runner import MethodResult

RESULT_COLUMNS = [
    "method",
    "dataset",
    "n_splits",
    "precision",
    "recall",
    "f1",
    "f1_std",
    "precision_std",
    "recall_std",
    "accuracy",
    *[f"f1_{q}" for q in QUADRANTS],
    "protocol",
    "inputs",
    "regime",
    "paper_f1",
    "paper_note",
    "seconds",
    "train_fraction",
    "train_songs",
    "tuning",
]


def tuning_note(settings: dict | None) -> str:
    """How a method's settings were chosen, for results rows: nested search or fixed ("")."""
    tune = (settings or {}).get("tune")
    if not tune:
        return ""
    trials = tune.get("trials")
    space = tune.get("space", "paper")
    space = space if isinstance(space, str) else "inline"
    return f"nested (space {space}" + (f", {trials} trials)" if trials else ")")


def train_songs(result: MethodResult) -> float | None:
    """Mean training songs per fold: recorded for a size-curve subset, else n (k - 1) / k."""
    recorded = (result.settings or {}).get("train_songs")
    if recorded is not None:
        return float(recorded)
    protocol = result.protocol
    if protocol.split is not None or not result.per_fold:
        return None
    n_songs = (
        sum(len(r.test_ids) for r in result.per_fold)
        * protocol.n_folds
        / len(result.per_fold)
        / protocol.n_repeats
    )
    return n_songs * (protocol.n_splits - 1) / protocol.n_splits


def sort_results(results: Sequence[MethodResult]) -> list[MethodResult]:
    """Best first by macro F1; a size curve's subsets together, by training fraction."""
    from merkit.protocol.curves import parse_fraction_name

    def key(result: MethodResult) -> tuple[Any, ...]:
        base, _ = parse_fraction_name(result.method)
        fraction = (result.settings or {}).get("train_fraction", 1.0)
        best_of_base = max(
            r.summary["f1"] for r in results if parse_fraction_name(r.method)[0] == base
        )
        return (-best_of_base, base, fraction, -result.summary["f1"], result.method)

    return sorted(results, key=key)


def results_frame(results: Sequence[MethodResult]) -> pd.DataFrame:
    """One row per method with the columns of ``results.csv`` (fractions 0-1), best first.

    ``paper_f1`` holds the paper's Table 3 number only where the result is comparable with it
    (:mod:`merkit.protocol.comparability`); ``paper_note`` says why it is blank otherwise.
    ``regime`` is the training regime (``full``, ``reduced``, ``quick``).
    """
    rows = []
    for result in sort_results(results):
        summary = result.summary
        rows.append(
            {
                "method": result.method,
                "dataset": result.dataset,
                **{k: summary[k] for k in RESULT_COLUMNS if k in summary},
                "protocol": result.protocol.describe(),
                "inputs": "+".join(result.inputs),
                "regime": result.regime,
                "paper_f1": result.comparable_paper_f1,
                "paper_note": result.paper_note or "",
                "seconds": round(result.seconds, 1),
                "train_fraction": (result.settings or {}).get("train_fraction", 1.0),
                "train_songs": train_songs(result),
                "tuning": tuning_note(result.settings),
            }
        )
    return pd.DataFrame(rows, columns=RESULT_COLUMNS)


@contextmanager
def _atomic_path(path: Path) -> Iterator[str]:
    """A temporary file beside ``path`` that replaces it on success (removed on failure)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}"
    )
    os.close(handle)
    try:
        os.chmod(temp, 0o644)  # mkstemp creates 0600; results are for sharing
        yield temp
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def write_csv_atomic(frame: pd.DataFrame, path: Path) -> None:
    """Write a CSV via a temporary file, so a killed run never leaves a truncated file."""
    with _atomic_path(path) as temp:
        frame.to_csv(temp, index=False, float_format="%.6f")


def write_text_atomic(text: str, path: Path) -> None:
    """Write a text file via a temporary file and a rename."""
    with _atomic_path(path) as temp:
        Path(temp).write_text(text)


@contextmanager
def results_lock(out_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``out_dir`` while its summary files are rebuilt.

    Two benchmarks writing into one folder at once then take turns, and the later one's summary
    includes the earlier one's methods.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    with (out_dir / ".results.lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def update_summaries(out_dir: Path, title: str | None = None, *, plots: bool = True) -> RunResults:
    """Rebuild ``results.csv``, ``report.md`` and plots from every finished method in ``out_dir``.

    Whatever methods earlier runs completed in the folder are kept; a method run again replaces
    its own row. Runs under :func:`results_lock`; every file is replaced atomically.
    """
    with results_lock(out_dir):
        run = load_results(out_dir)
        complete = run.complete()
        if not complete:
            return run
        frame = results_frame(complete)
        title = title or _default_title(complete)
        write_csv_atomic(frame, out_dir / "results.csv")
        write_text_atomic(markdown_report(frame, complete, title), out_dir / "report.md")
        if plots:
            plot_results(complete, out_dir)
    return run


def _default_title(results: Sequence[MethodResult]) -> str:
    datasets = sorted({r.dataset for r in results})
    protocols = sorted({r.protocol.describe() for r in results})
    return f"{', '.join(datasets)}: {'; '.join(protocols)}"


def _pct(mean: float, std: float | None = None) -> str:
    return f"{100 * mean:.2f}" if std is None else f"{100 * mean:.2f} ± {100 * std:.2f}"


REGIME_BANNERS = {
    "quick": (
        "SMOKE RUN (--quick): 3 folds x 1 repeat, deep methods capped at 2 epochs. These numbers "
        "test that the pipeline runs; they say nothing about how good a method is."
    ),
    "reduced": (
        "REDUCED TRAINING: epoch caps (or the training-accuracy stop) below the method's recipe. "
        "These rows are lower bounds, not reproductions of the paper."
    ),
}


def regime_banners(frame: pd.DataFrame) -> list[str]:
    """One warning line per non-full regime present in the rows (``quick`` first)."""
    regimes = set(frame["regime"]) if "regime" in frame else set()
    lines = []
    for regime, text in REGIME_BANNERS.items():
        if regime in regimes:
            names = ", ".join(frame.loc[frame["regime"] == regime, "method"])
            lines.append(f"{text} ({names})")
    return lines


def paper_cell(row: Any) -> str:
    """The paper's F1 where comparable; otherwise a dash (the reason is in ``paper_note``)."""
    if not pd.isna(row.paper_f1):
        return _pct(row.paper_f1)
    return "" if row.paper_note in ("", "no Table 3 row") else "—"


def paper_footnotes(frame: pd.DataFrame) -> list[str]:
    """``method: reason`` for every row whose paper number is left out for a reason."""
    return [
        f"{row.method}: {row.paper_note}"
        for row in frame.itertuples(index=False)
        if pd.isna(row.paper_f1) and row.paper_note not in ("", "no Table 3 row")
    ]


def results_table(frame: pd.DataFrame, title: str) -> Table:
    """A rich table like the paper's Table 3: P, R, F1 ± std in percent, beside the paper's F1.

    The paper's number shows only where the row is comparable with it; otherwise a dash, and the
    caption says why. Rows of smoke or reduced runs are named in a banner above the table.
    """
    banners = regime_banners(frame)
    notes = paper_footnotes(frame)
    table = Table(
        title=title + "".join(f"\n[bold red]{text}[/]" for text in banners),
        caption="\n".join(f"paper F1 —: {note}" for note in notes) or None,
        caption_justify="left",
    )
    for column in (
        "Method",
        "P %",
        "R %",
        "F1 % ± std",
        *[f"F1 {q}" for q in QUADRANTS],
        "regime",
        "paper F1",
    ):
        table.add_column(column, justify="left" if column == "Method" else "right")
    for row in frame.itertuples(index=False):
        table.add_row(
            row.method,
            _pct(row.precision),
            _pct(row.recall),
            _pct(row.f1, row.f1_std),
            *[_pct(getattr(row, f"f1_{q}")) for q in QUADRANTS],
            row.regime,
            paper_cell(row),
        )
    return table


def markdown_report(frame: pd.DataFrame, results: Sequence[MethodResult], title: str) -> str:
    """The same table in Markdown, plus each method's summed confusion matrix."""
    lines = [f"# {title}", ""]
    lines += [f"> **{text}**\n" for text in regime_banners(frame)]
    lines += [
        "| Method | P % | R % | F1 % ± std | regime | paper F1 % | splits |",
        "|---|---:|---:|---:|---|---:|---:|",
    ]
    for row in frame.itertuples(index=False):
        lines.append(
            f"| {row.method} | {_pct(row.precision)} | {_pct(row.recall)} | "
            f"{_pct(row.f1, row.f1_std)} | {row.regime} | {paper_cell(row)} | {row.n_splits} |"
        )
    notes = paper_footnotes(frame)
    if notes:
        lines += ["", "Paper F1 left out (not comparable with the paper's Table 3):"]
        lines += [f"- {note}" for note in notes]
    tuned = [f"{row.method}: {row.tuning}" for row in frame.itertuples(index=False) if row.tuning]
    if tuned:
        lines += ["", "Settings chosen by an inner-CV search inside each outer training fold:"]
        lines += [f"- {line}" for line in tuned]
    for result in sort_results(results):
        confusion = result.summary["confusion"]
        lines += [
            "",
            f"## {result.method}: confusion matrix summed over folds (rows: true)",
            "",
            "| | " + " | ".join(QUADRANTS) + " |",
            "|---" * (len(QUADRANTS) + 1) + "|",
        ]
        for quadrant, counts in zip(QUADRANTS, confusion, strict=True):
            lines.append(f"| {quadrant} | " + " | ".join(str(c) for c in counts) + " |")
    return "\n".join(lines) + "\n"


def plot_results(results: Sequence[MethodResult], out_dir: Path) -> list[Path]:
    """``f1.png`` (macro F1 ± std per method) and ``confusion_<method>.png`` (row-normalised)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    written = []
    curve = plot_size_curve(results, out_dir)
    if curve is not None:
        written.append(curve)
    frame = results_frame(results)
    fig, ax = plt.subplots(figsize=(max(4, 1.2 * len(frame) + 2), 3.5))
    ax.bar(
        frame["method"], 100 * frame["f1"], yerr=100 * frame["f1_std"], capsize=4, color="#4477aa"
    )
    if frame["paper_f1"].notna().any():
        ax.scatter(
            frame["method"], 100 * frame["paper_f1"], color="#cc3311", zorder=3, label="paper"
        )
        ax.legend()
    ax.axhline(25, color="grey", linestyle=":", linewidth=1)
    ax.set_ylabel("macro F1 (%)")
    ax.set_ylim(0, 100)
    ax.set_title(_default_title(results), fontsize=9)
    fig.tight_layout()
    path = out_dir / "f1.png"
    with _atomic_path(path) as temp:
        fig.savefig(temp, dpi=120, format="png")
    plt.close(fig)
    written.append(path)

    for result in results:
        confusion = np.asarray(result.summary["confusion"], dtype=float)
        share = confusion / np.maximum(confusion.sum(axis=1, keepdims=True), 1)
        fig, ax = plt.subplots(figsize=(3.6, 3.2))
        ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
        for i in range(len(QUADRANTS)):
            for j in range(len(QUADRANTS)):
                colour = "white" if share[i, j] > 0.6 else "black"
                ax.text(j, i, f"{100 * share[i, j]:.0f}%", ha="center", va="center", color=colour)
        ax.set_xticks(range(len(QUADRANTS)), QUADRANTS)
        ax.set_yticks(range(len(QUADRANTS)), QUADRANTS)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(result.method)
        fig.tight_layout()
        path = out_dir / f"confusion_{result.method}.png"
        with _atomic_path(path) as temp:
            fig.savefig(temp, dpi=120, format="png")
        plt.close(fig)
        written.append(path)
    return written


def size_curve_figure(results: Sequence[MethodResult]) -> Any:
    """Macro F1 against training songs per method (mean, ± std band of the folds, each fold a
    faint dot), when ``results`` hold ``--train-fraction`` subsets; else None."""
    from merkit.protocol.curves import parse_fraction_name

    curves: dict[str, list[tuple[float, list[float]]]] = {}
    for result in results:
        base, _ = parse_fraction_name(result.method)
        size = train_songs(result)
        if size is not None:
            curves.setdefault(base, []).append((size, [r.metrics.f1 for r in result.per_fold]))
    curves = {
        base: sorted(points)
        for base, points in curves.items()
        if any(r.method.startswith(f"{base}@train") for r in results)
    }
    if not curves:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for index, (base, points) in enumerate(sorted(curves.items())):
        colour = f"C{index}"
        sizes = np.array([size for size, _ in points])
        means = np.array([100 * np.mean(f1) for _, f1 in points])
        stds = np.array([100 * np.std(f1) for _, f1 in points])
        for size, f1 in points:
            ax.scatter([size] * len(f1), 100 * np.asarray(f1), s=6, alpha=0.15, color=colour)
        ax.fill_between(sizes, means - stds, means + stds, alpha=0.2, color=colour)
        ax.plot(sizes, means, marker="o", color=colour, label=f"{base} (mean ± std of folds)")
    ax.set_xlabel("training songs per fold")
    ax.set_ylabel("macro F1 on the full test folds (%)")
    ax.set_title(f"dataset-size curve: {_default_title(results)}", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_size_curve(results: Sequence[MethodResult], out_dir: Path) -> Path | None:
    """``size_curve.png`` (:func:`size_curve_figure`), when the run holds size-curve subsets."""
    fig = size_curve_figure(results)
    if fig is None:
        return None
    import matplotlib.pyplot as plt

    path = out_dir / "size_curve.png"
    with _atomic_path(path) as temp:
        fig.savefig(temp, dpi=120, format="png")
    plt.close(fig)
    return path


def check_report_path(run_dirs: Sequence[Path], out: Path) -> None:
    """Refuse an ``--out`` that is a folder, a run's own file, or a file that is not a report.

    Inside a run folder only its ``report.html`` may be (re)written; elsewhere an existing file
    is replaced only when it is an HTML report merkit wrote.

    Raises
    ------
    ConfigError
        Naming ``out`` and the reason.
    """
    if out.is_dir():
        raise ConfigError(
            f"--out {out} is a folder; give the report's file name, e.g. {out / 'report.html'}"
        )
    target = out.resolve()
    runs = [Path(run_dir).resolve() for run_dir in run_dirs]
    if any(target == run / "report.html" for run in runs):
        return  # a run's own report, which each benchmark rewrites
    for run_dir, run in zip(run_dirs, runs, strict=True):
        if target.is_relative_to(run) and (target.exists() or target.parent != run):
            raise ConfigError(
                f"--out {out} would overwrite a file of run folder {run_dir} (its results "
                f"are kept there); write the report elsewhere or to {run_dir / 'report.html'}"
            )
    if out.exists() and not _is_report(out):
        raise ConfigError(
            f"--out {out} exists and is not an HTML report merkit wrote; choose another file "
            "name (nothing was overwritten)"
        )


def _is_report(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            head = handle.read(4096).decode("utf-8", "replace")
    except OSError:
        return False
    return head.lstrip().lower().startswith("<!doctype html") and "merkit report" in head
