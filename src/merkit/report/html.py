"""One self-contained HTML report of one or more benchmark runs (``merkit report``).

Everything comes from the persisted folds (:func:`merkit.protocol.results.load_results`): the
Table-3-style table beside the paper's numbers, per-quadrant F1, row-normalised confusion
matrices, fold-spread plots, the corrected pairwise tests and critical-difference diagram
(:mod:`merkit.report.stats`), each song's averaged prediction on the arousal/valence plane (and,
where
the dataset annotates arousal and valence, as MERGE does, each song at its annotated place
coloured by its prediction), and the provenance of every number. The page is rendered from the
jinja2 template ``merkit/templates/report.html.j2`` (autoescaped); plots are inline SVG, styles
inline, no script and nothing fetched from the network, so the file opens offline.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import platform
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from merkit.core.errors import ConfigError
from merkit.core.labels import QUADRANTS
from merkit.core.versions import require_extra
from merkit.datasets.base import Song
from merkit.protocol.results import load_results
from merkit.protocol.runner import MethodResult
from merkit.report.stats import (
    MIN_VERDICT_FOLDS,
    fold_scores,
    friedman,
    pairwise_comparisons,
    significance_matrix,
    single_split_comparisons,
)
from merkit.report.tables import (
    check_report_path,
    paper_cell,
    paper_footnotes,
    regime_banners,
    results_frame,
    size_curve_figure,
    sort_results,
    write_csv_atomic,
    write_text_atomic,
)

_log = logging.getLogger(__name__)
TEMPLATE = "report.html.j2"
QUADRANT_COLOURS = {"Q1": "#e6a000", "Q2": "#cc3311", "Q3": "#3366aa", "Q4": "#228833"}
STAT_LIBRARIES = ("scipy", "statsmodels", "scikit-posthocs", "pandas", "matplotlib", "jinja2")


@dataclass
class Entry:
    """One method of one run, as the report shows it."""

    label: str
    run_dir: Path
    result: MethodResult
    config: dict[str, Any] = field(default_factory=dict)


def collect(run_dirs: Sequence[Path]) -> list[Entry]:
    """The finished methods of each run folder; labelled ``run/method`` when a name repeats.

    Raises
    ------
    ConfigError
        A folder that is not a run folder, or runs with no finished method.
    """
    return collect_all(run_dirs)[0]


def collect_all(run_dirs: Sequence[Path]) -> tuple[list[Entry], list[str]]:
    """:func:`collect`, and one line per method that is not shown and why (incomplete, damaged
    fold files, unreadable ``config.json``) or per file that was ignored."""
    found: list[tuple[Path, MethodResult]] = []
    not_shown: list[str] = []
    for run_dir in map(Path, run_dirs):
        if not run_dir.is_dir():
            raise ConfigError(f"{run_dir} is not a folder (expected a merkit benchmark --out)")
        run = load_results(run_dir)
        if not len(run) and not run.problems:
            raise ConfigError(f"{run_dir} holds no method results (no <method>/config.json)")
        found += [(run_dir, result) for result in run.complete()]
        not_shown += [f"not shown: {line}" for line in run.problems.values()] + run.notes
    if not found:
        reasons = "".join(f"\n  - {line}" for line in not_shown)
        raise ConfigError(
            f"no method in {', '.join(map(str, run_dirs))} has all its folds finished{reasons}"
        )
    order = {id(result): i for i, result in enumerate(sort_results([r for _, r in found]))}
    found.sort(key=lambda pair: order[id(pair[1])])
    names = [result.method for _, result in found]
    entries = []
    for run_dir, result in found:
        label = (
            result.method if names.count(result.method) == 1 else f"{run_dir.name}/{result.method}"
        )
        try:
            stamp = json.loads((run_dir / result.method / "config.json").read_text())
        except (OSError, ValueError):
            stamp = {}
        entries.append(Entry(label, run_dir, result, stamp))
    return entries, not_shown


# -- plots (inline SVG) -----------------------------------------------------------------------


def _svg(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    text = buffer.getvalue()
    return text[text.index("<svg") :]  # drop the XML prologue and doctype


def _scatter_by_quadrant(ax: Any, points: Any, codes: np.ndarray, label: str) -> None:
    """Songs at ``points[["valence", "arousal"]]``, coloured by quadrant index ``codes``."""
    for index, quadrant in enumerate(QUADRANTS):
        chosen = points[codes == index]
        ax.scatter(
            chosen["valence"],
            chosen["arousal"],
            s=9,
            alpha=0.6,
            color=QUADRANT_COLOURS[quadrant],
            label=f"{label} {quadrant}",
        )


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams["svg.fonttype"] = "none"  # text stays text (smaller, selectable)
    plt.rcParams["svg.hashsalt"] = "merkit"  # stable ids: the same run gives the same file
    return plt


def fold_spread_svg(entries: Sequence[Entry]) -> str:
    """Per-fold macro F1 of each method: box plot with every fold as a dot, paper F1 as a star."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(4.0, 1.3 * len(entries) + 1.5), 3.4))
    data = [[100 * r.metrics.f1 for r in e.result.per_fold] for e in entries]
    ax.boxplot(data, widths=0.5, showfliers=False)
    rng = np.random.default_rng(0)
    for i, values in enumerate(data, start=1):
        ax.scatter(
            i + rng.uniform(-0.12, 0.12, len(values)), values, s=8, alpha=0.5, color="#4477aa"
        )
        paper = entries[i - 1].result.comparable_paper_f1
        if paper is not None:
            ax.scatter([i], [100 * paper], marker="*", s=120, color="#cc3311", zorder=3)
    ax.set_xticks(range(1, len(entries) + 1), [e.label for e in entries], rotation=20, ha="right")
    ax.set_ylabel("macro F1 per fold (%)")
    ax.axhline(25, color="grey", linestyle=":", linewidth=1)
    return _svg(fig)


def size_curve_svg(entries: Sequence[Entry]) -> str | None:
    """Macro F1 against training songs (``--train-fraction`` runs), else None."""
    _pyplot()
    fig = size_curve_figure([e.result for e in entries])
    return None if fig is None else _svg(fig)


def circumplex_points(result: MethodResult) -> pd.DataFrame:
    """Each tested song's place on the valence/arousal plane, averaged over the repeats.

    From the class probabilities (one-hot predictions when the method has none):
    valence ``x = P(Q1) + P(Q4) - P(Q2) - P(Q3)``, arousal ``y = P(Q1) + P(Q2) - P(Q3) - P(Q4)``.
    """
    rows = []
    for record in result.per_fold:
        proba = (
            np.asarray(record.proba, dtype=float)
            if record.proba is not None
            else np.eye(len(QUADRANTS))[np.asarray(record.y_pred)]
        )
        for song, truth, p in zip(record.test_ids, record.y_true, proba, strict=True):
            rows.append((song, truth, p[0] + p[3] - p[1] - p[2], p[0] + p[1] - p[2] - p[3]))
    frame = pd.DataFrame(rows, columns=["song", "true", "valence", "arousal"])
    return frame.groupby(["song", "true"], as_index=False)[["valence", "arousal"]].mean()


def circumplex_svg(entry: Entry) -> str:
    """Songs placed by their predicted probabilities, coloured by their true quadrant."""
    plt = _pyplot()
    points = circumplex_points(entry.result)
    if any(r.proba is None for r in entry.result.per_fold):
        # One-hot predictions pile up on a few points: spread them a little so density shows.
        rng = np.random.default_rng(0)
        points[["valence", "arousal"]] += rng.uniform(-0.07, 0.07, size=(len(points), 2))
    fig, ax = plt.subplots(figsize=(3.9, 3.9))
    _scatter_by_quadrant(ax, points, np.asarray(points["true"]), "true")
    ax.axhline(0, color="grey", linewidth=0.8)
    ax.axvline(0, color="grey", linewidth=0.8)
    for (x, y), quadrant in zip([(1, 1), (-1, 1), (-1, -1), (1, -1)], QUADRANTS, strict=True):
        ax.text(0.92 * x, 0.92 * y, quadrant, ha="center", va="center", fontsize=11, alpha=0.5)
    ax.set_xlim(-1.05, 1.05)
    ax.set_ylim(-1.05, 1.05)
    ax.set_xlabel("valence (predicted)")
    ax.set_ylabel("arousal (predicted)")
    ax.set_title(entry.label, fontsize=10)
    ax.legend(fontsize=7, loc="lower center", ncol=4, bbox_to_anchor=(0.5, -0.3), frameon=False)
    return _svg(fig)


ANNOTATIONS = "annotations.csv"
"""Per-song annotated arousal/valence of a run's dataset (MERGE), written by the benchmark."""


def write_annotations(out_dir: Path, songs: Sequence[Song]) -> Path | None:
    """Write ``out_dir/annotations.csv`` (song, quadrant, arousal, valence) when songs have AV."""
    rows = [
        (s.song_id, s.quadrant, s.arousal, s.valence)
        for s in songs
        if s.arousal is not None and s.valence is not None
    ]
    if not rows:
        return None
    frame = pd.DataFrame(rows, columns=["song", "quadrant", "arousal", "valence"])
    path = Path(out_dir) / ANNOTATIONS
    write_csv_atomic(frame, path)
    return path


def read_annotations(run_dir: Path) -> pd.DataFrame | None:
    """The run's annotations indexed by song, or None when it has none (or they are unreadable)."""
    path = Path(run_dir) / ANNOTATIONS
    try:
        frame = pd.read_csv(path, dtype={"song": str})
        return frame.set_index("song")[["arousal", "valence"]].astype(float)
    except (OSError, ValueError, KeyError, pd.errors.ParserError, pd.errors.EmptyDataError):
        return None


def annotated_svg(entry: Entry, annotations: pd.DataFrame) -> str | None:
    """Songs at their annotated arousal/valence, coloured by the quadrant predicted most often."""
    predicted: dict[str, list[int]] = {}
    for record in entry.result.per_fold:
        for song, guess in zip(record.test_ids, record.y_pred, strict=True):
            predicted.setdefault(song, []).append(guess)
    songs = [s for s in predicted if s in annotations.index]
    if not songs:
        return None
    vote = np.array([np.bincount(predicted[s], minlength=len(QUADRANTS)).argmax() for s in songs])
    where = annotations.loc[songs]
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(3.9, 3.9))
    _scatter_by_quadrant(ax, where, np.asarray(vote), "predicted")
    ax.axhline(0.5, color="grey", linewidth=0.8)
    ax.axvline(0.5, color="grey", linewidth=0.8)
    ax.set_xlabel("valence (annotated)")
    ax.set_ylabel("arousal (annotated)")
    ax.set_title(f"{entry.label}: annotated position", fontsize=10)
    ax.legend(fontsize=7, loc="lower center", ncol=4, bbox_to_anchor=(0.5, -0.3), frameon=False)
    return _svg(fig)


def cd_diagram_svg(mean_ranks: pd.Series, sig: pd.DataFrame) -> str:
    """Critical-difference diagram (scikit-posthocs); bars join methods not told apart."""
    sp = require_extra("scikit_posthocs", needed_by="the critical-difference diagram")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 0.5 + 0.35 * len(mean_ranks)))
    sp.critical_difference_diagram(mean_ranks, sig, ax=ax)
    return _svg(fig)


# -- provenance -------------------------------------------------------------------------------


def git_commit(path: Path) -> str | None:
    """The commit of the git checkout holding ``path`` (``+dirty`` if modified), or None."""
    try:
        out = subprocess.run(
            ["git", "-C", str(path), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(path), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{out}+dirty" if dirty else out


def environment_info() -> dict[str, Any]:
    """merkit and library versions, Python, machine, git commit of the merkit source, time."""
    import importlib.metadata

    from merkit.core.versions import library_versions, merkit_version

    versions: dict[str, str | None] = {"merkit": merkit_version(), **library_versions()}
    for name in STAT_LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "versions": versions,
        "machine": f"{platform.machine()} {platform.processor() or ''} | {platform.platform()}",
        "node": platform.node(),
        "git_commit": git_commit(Path(__file__).resolve().parent),
        "generated": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
    }


# -- assembling -------------------------------------------------------------------------------


def _confusion_share(result: MethodResult) -> list[list[float]]:
    confusion = np.asarray(result.summary["confusion"], dtype=float)
    return (confusion / np.maximum(confusion.sum(axis=1, keepdims=True), 1)).tolist()


def statistics(entries: Sequence[Entry], *, strict: bool) -> dict[str, Any]:
    """Pairwise corrected tests, the significance matrix, Friedman and the CD diagram.

    ``strict``: methods on different folds raise :class:`ConfigError`; otherwise the reason is
    returned as ``refused`` and the page says why there are no tests.
    """
    if len(entries) < 2:
        return {"note": "one method: nothing to compare"}
    try:
        scores, ratio = fold_scores({e.label: e.result for e in entries})
    except ConfigError as exc:
        if strict:
            raise
        return {"refused": str(exc)}
    if len(scores) < 2:
        return {
            "note": (
                "a single split (fixed train/validate/test protocol): no fold-to-fold variance, "
                "so no t-test; the methods are compared song by song with McNemar's exact test"
            ),
            "mcnemar": single_split_comparisons({e.label: e.result for e in entries}),
        }
    comparisons = pairwise_comparisons(scores, ratio)
    out: dict[str, Any] = {
        "comparisons": comparisons,
        "ratio": ratio,
        "n_folds": len(scores),
        "underpowered": len(scores) < MIN_VERDICT_FOLDS,
        "min_folds": MIN_VERDICT_FOLDS,
        "matrix": significance_matrix(comparisons, list(scores.columns)),
    }
    if scores.shape[1] >= 3 and len(scores) >= MIN_VERDICT_FOLDS:
        result = friedman(scores)
        out["friedman"] = result
        out["cd_svg"] = cd_diagram_svg(result.mean_ranks, result.nemenyi)
    return out


def build_context(run_dirs: Sequence[Path], *, strict: bool = True) -> dict[str, Any]:
    """Everything the template shows, computed from the persisted folds."""
    entries, not_shown = collect_all(run_dirs)
    for line in not_shown:
        _log.warning("%s", line)
    frame = results_frame([e.result for e in entries])
    frame["label"] = [e.label for e in entries]
    annotations = {e.run_dir: read_annotations(e.run_dir) for e in entries}
    methods = []
    for entry, row in zip(entries, frame.itertuples(index=False), strict=True):
        per_fold = entry.result.per_fold
        methods.append(
            {
                "label": entry.label,
                "row": row,
                "paper": paper_cell(row),
                "confusion": _confusion_share(entry.result),
                "confusion_counts": entry.result.summary["confusion"],
                "circumplex_svg": circumplex_svg(entry),
                "annotated_svg": (
                    annotated_svg(entry, annotations[entry.run_dir])
                    if annotations[entry.run_dir] is not None
                    else None
                ),
                "has_proba": all(r.proba is not None for r in per_fold),
                "run_dir": str(entry.run_dir),
                "dataset": entry.result.dataset,
                "fingerprint": entry.config.get("fingerprint"),
                "n_songs": (entry.config.get("info") or {}).get("n_songs"),
                "protocol": entry.result.protocol.describe(),
                "n_folds": len(per_fold),
                "seeds": f"{min(r.seed for r in per_fold)}..{max(r.seed for r in per_fold)}",
                "settings": json.dumps(entry.config.get("config"), indent=1, sort_keys=True),
                "seconds": entry.result.seconds,
            }
        )
    return {
        "title": "merkit report: " + ", ".join(sorted({e.result.dataset for e in entries})),
        "run_dirs": [str(p) for p in run_dirs],
        "methods": methods,
        "banners": regime_banners(frame),
        "paper_notes": paper_footnotes(frame),
        "not_shown": not_shown,
        "quadrants": QUADRANTS,
        "colours": QUADRANT_COLOURS,
        "fold_spread_svg": fold_spread_svg(entries),
        "size_curve_svg": size_curve_svg(entries),
        "stats": statistics(entries, strict=strict),
        "env": environment_info(),
    }


def _pct(value: float | None, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    return f"{100 * value:.{digits}f}"


def _pvalue(value: float) -> str:
    return "<0.0001" if value < 1e-4 else f"{value:.4f}"


def _cell_colour(share: float) -> str:
    """Background for a row share in [0, 1]: white to dark blue."""
    light = round(255 - 190 * share)
    return f"rgb({light},{light + int(35 * share)},255)"


@cache
def _environment() -> Any:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("merkit", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"], default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters.update(pct=_pct, pvalue=_pvalue, cell_colour=_cell_colour)
    return env


def render_report(run_dirs: Sequence[Path], *, strict: bool = True) -> str:
    """The HTML text of the report of ``run_dirs`` (see :func:`build_context`)."""
    import markupsafe

    context = build_context(run_dirs, strict=strict)
    # The SVGs come from matplotlib, not from user text: mark them safe to embed.
    for method in context["methods"]:
        method["circumplex_svg"] = markupsafe.Markup(method["circumplex_svg"])
        if method["annotated_svg"] is not None:
            method["annotated_svg"] = markupsafe.Markup(method["annotated_svg"])
    context["fold_spread_svg"] = markupsafe.Markup(context["fold_spread_svg"])
    if context["size_curve_svg"] is not None:
        context["size_curve_svg"] = markupsafe.Markup(context["size_curve_svg"])
    if "cd_svg" in context["stats"]:
        context["stats"]["cd_svg"] = markupsafe.Markup(context["stats"]["cd_svg"])
    return _environment().get_template(TEMPLATE).render(**context)


def write_report(run_dirs: Sequence[Path], out: Path, *, strict: bool = True) -> Path:
    """Render the report of ``run_dirs`` and write it to ``out`` atomically.

    Raises
    ------
    ConfigError
        Before anything is computed, when ``out`` would overwrite what a user has
        (:func:`check_report_path`).
    """
    out = Path(out)
    check_report_path(run_dirs, out)
    write_text_atomic(render_report(run_dirs, strict=strict), out)
    return out


__all__ = [
    "build_context",
    "circumplex_points",
    "collect",
    "collect_all",
    "environment_info",
    "read_annotations",
    "render_report",
    "write_annotations",
    "write_report",
]
