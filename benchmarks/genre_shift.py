"""Leave-one-genre-out results (and few-shot adaptation on the held-out genre) as Markdown + CSV.

Reads finished ``merkit benchmark`` runs, computes nothing a run did not produce except metrics
of subsets of its persisted predictions:

- ``--logo``: a run with ``--protocol logo-genre`` (one fold per genre group);
- ``--kfold``: a K-fold run of the same methods on the same songs (within-distribution), whose
  out-of-fold predictions are also scored per genre group (the genre *was* seen in training);
- adaptation: for each held-out genre, ``k`` songs per quadrant of that genre (several seeds) fit
  a :class:`merkit.product.adapt.Recalibration` on the held-out model's probabilities (the fold's
  persisted test probabilities: exactly what the model trained without that genre outputs), and
  the genre's *remaining* songs are scored before and after. A quadrant with ``k`` or fewer songs
  in the genre gives no examples (so some are always left to test).

Example::

    python benchmarks/genre_shift.py --logo runs/logo-genre --kfold runs/kfold10x1 \\
        --methods svm-own --name 4qaed_leave_one_genre_out --command '...'

Macro F1 of a genre averages over the quadrants present in its (remaining) songs
(:func:`merkit.protocol.metrics.fold_metrics`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from _common import draw_few, footer, machine, timestamp, versions
from merkit.core.labels import QUADRANTS
from merkit.product.adapt import Recalibration
from merkit.protocol.metrics import fold_metrics
from merkit.protocol.results import load_results

ADAPT_GRID = (("bias", 1.0), ("bias", 4.0), ("bias", 16.0), ("affine", 16.0))


def _scores(y: np.ndarray, pred: np.ndarray) -> tuple[float, float]:
    m = fold_metrics(y, pred)
    return m["f1"], m["accuracy"]


def fold_groups(run: Path) -> dict[str, str]:
    """Song id -> genre group, from the run's persisted leave-one-genre-out fold file."""
    files = sorted((run / "folds").glob("*-logo-genre.json"))
    if not files:
        raise SystemExit(f"{run} has no leave-one-genre-out fold file (run --protocol logo-genre)")
    stored = json.loads(files[0].read_text())
    return {song: entry["group"] for entry in stored["folds"] for song in entry["test"]}


def _complete(run: Any, method: str) -> bool:
    return run is not None and method in run.methods and run.methods[method].complete


def genre_rows(logo: Path, kfold: Path | None, methods: list[str]) -> pd.DataFrame:
    groups = fold_groups(logo)
    logo_run = load_results(logo)
    kfold_run = load_results(kfold) if kfold else None
    rows = []
    for method in methods:
        result = logo_run.methods.get(method)
        if result is None or not result.complete:
            raise SystemExit(f"{logo} has no complete leave-one-genre-out run of {method}")
        oof: list[pd.DataFrame] = []
        if _complete(kfold_run, method):
            for r in kfold_run.methods[method].per_fold:
                oof.append(
                    pd.DataFrame(
                        {"song": r.test_ids, "y": r.y_true, "pred": r.y_pred, "repeat": r.repeat}
                    )
                )
        within = pd.concat(oof) if oof else None
        for record in result.per_fold:
            genre = groups[record.test_ids[0]]
            y, pred = np.array(record.y_true), np.array(record.y_pred)
            f1, acc = _scores(y, pred)
            row = {
                "method": method,
                "genre": genre,
                "n": len(y),
                **{q: int((y == i).sum()) for i, q in enumerate(QUADRANTS)},
                "logo_f1": f1,
                "logo_accuracy": acc,
            }
            if within is not None:
                part = within[within.song.isin(record.test_ids)]
                per_repeat = [
                    _scores(g.y.to_numpy(), g.pred.to_numpy()) for _, g in part.groupby("repeat")
                ]
                row["kfold_f1"] = float(np.mean([s[0] for s in per_repeat]))
                row["kfold_accuracy"] = float(np.mean([s[1] for s in per_repeat]))
            rows.append(row)
    return pd.DataFrame(rows)


def overall(logo: Path, kfold: Path | None, methods: list[str]) -> pd.DataFrame:
    """Pooled figures: every song predicted once by a model that never saw its genre."""
    logo_run = load_results(logo)
    kfold_run = load_results(kfold) if kfold else None
    rows = []
    for method in methods:
        records = logo_run.methods[method].per_fold
        y = np.concatenate([r.y_true for r in records])
        pred = np.concatenate([r.y_pred for r in records])
        f1, acc = _scores(y, pred)
        summary = logo_run.methods[method].summary
        row = {
            "method": method,
            "logo_pooled_f1": f1,
            "logo_pooled_accuracy": acc,
            "logo_mean_genre_f1": summary["f1"],
            "logo_genre_f1_std": summary["f1_std"],
        }
        if _complete(kfold_run, method):
            k = kfold_run.methods[method]
            row["kfold_f1"] = k.summary["f1"]
            row["kfold_f1_std"] = k.summary["f1_std"]
            row["kfold_accuracy"] = k.summary["accuracy"]
            row["kfold_protocol"] = k.protocol.describe()
        rows.append(row)
    return pd.DataFrame(rows)


def adapt_rows(logo: Path, methods: list[str], ks: list[int], seeds: int) -> pd.DataFrame:
    """Before/after few-shot recalibration per held-out genre, k and layer (mean over seeds).

    A method whose records hold no probabilities is replaced by its ``+platt`` run.
    """
    groups = fold_groups(logo)
    run = load_results(logo)
    rows = []
    done: set[str] = set()
    for name in methods:
        method = name
        if run.methods[name].per_fold[0].proba is None:
            # e.g. svm-own: its shipped form is calibrated (benchmarks/calibrated_run.py)
            method = f"{name}+platt"
            if method not in run.methods:
                raise SystemExit(
                    f"{name} stored no probabilities and {run.run_dir} has no {method}; "
                    "run benchmarks/calibrated_run.py for it"
                )
        if method in done:
            continue
        done.add(method)
        for record in run.methods[method].per_fold:
            genre = groups[record.test_ids[0]]
            y = np.array(record.y_true)
            proba = np.array(record.proba)
            for k in ks:
                for kind, strength in ADAPT_GRID:
                    before, after, used = [], [], []
                    for seed in range(seeds):
                        rng = np.random.default_rng([seed, record.fold, k])
                        chosen, rest = draw_few(y, k, rng)
                        layer = Recalibration(kind, strength).fit(proba[chosen], y[chosen])
                        before.append(_scores(y[rest], proba[rest].argmax(axis=1)))
                        after.append(_scores(y[rest], layer.transform(proba[rest]).argmax(axis=1)))
                        used.append(len(chosen))
                    rows.append(
                        {
                            "method": method,
                            "genre": genre,
                            "k": k,
                            "kind": kind,
                            "strength": strength,
                            "examples": int(np.mean(used)),
                            "n_test": len(y) - int(np.mean(used)),
                            "f1_before": float(np.mean([b[0] for b in before])),
                            "f1_after": float(np.mean([a[0] for a in after])),
                            "accuracy_before": float(np.mean([b[1] for b in before])),
                            "accuracy_after": float(np.mean([a[1] for a in after])),
                        }
                    )
    return pd.DataFrame(rows)


def relative_rows(logo: Path, methods: list[str]) -> pd.DataFrame:
    """Each held-out genre predicted as one collection with ``--relative``
    (merkit.product.relative)."""
    from merkit.product.relative import relative_placements

    groups = fold_groups(logo)
    run = load_results(logo)
    rows = []
    for method in methods:
        records = run.methods[method].per_fold
        if records[0].proba is None:
            continue
        for record in records:
            y = np.array(record.y_true)
            proba = np.array(record.proba)
            placed = relative_placements(proba)
            relative = np.array([QUADRANTS.index(p.quadrant) for p in placed])
            f1, acc = _scores(y, proba.argmax(axis=1))
            rel_f1, rel_acc = _scores(y, relative)
            rows.append(
                {
                    "method": method,
                    "genre": groups[record.test_ids[0]],
                    "n": len(y),
                    "f1_absolute": f1,
                    "f1_relative": rel_f1,
                    "accuracy_absolute": acc,
                    "accuracy_relative": rel_acc,
                }
            )
    return pd.DataFrame(rows)


def _pct(value: float) -> str:
    return "n/a" if value is None or np.isnan(value) else f"{100 * value:.1f}"


def markdown(
    name: str,
    genres: pd.DataFrame,
    pooled: pd.DataFrame,
    adapt: pd.DataFrame,
    relative: pd.DataFrame,
    seeds: int,
    commands: list[str],
    notes: list[str],
    findings: list[str],
) -> str:
    lines = [
        f"# {name}: leave-one-genre-out on 4QAED, and few-shot adaptation to the held-out genre",
        "",
        f"Produced {timestamp()} by `benchmarks/genre_shift.py` from persisted runs.",
        "",
        *[f"- {finding}" for finding in findings],
        *([""] if findings else []),
        "Genre groups (`merkit.protocol.genre`): each song's most specific listed genre (the one "
        "the fewest of the 900 songs list, in the metadata's `GenresStr`), groups under 30 songs "
        "merged into `Other`. Each group is one fold: trained on every other song, tested on the "
        "group. Macro F1 averages over the quadrants present in the tested songs. `10-fold` is "
        "the same method's out-of-fold predictions of a within-distribution stratified 10-fold "
        "run, scored on the same genre's songs (the genre was in training there).",
        "",
        "## Overall",
        "",
        "| method | leave-one-genre-out pooled F1 % | pooled acc % | mean over genres F1 % ± std "
        "| within-distribution F1 % ± std (protocol) | acc % |",
        "|---|---:|---:|---:|---|---:|",
    ]
    for r in pooled.itertuples():
        within = (
            f"{_pct(r.kfold_f1)} ± {_pct(r.kfold_f1_std)} ({r.kfold_protocol})"
            if isinstance(getattr(r, "kfold_protocol", None), str)
            else "n/a"
        )
        within_acc = _pct(r.kfold_accuracy) if "kfold_accuracy" in pooled.columns else "n/a"
        lines.append(
            f"| {r.method} | {_pct(r.logo_pooled_f1)} | {_pct(r.logo_pooled_accuracy)} | "
            f"{_pct(r.logo_mean_genre_f1)} ± {_pct(r.logo_genre_f1_std)} | {within} | "
            f"{within_acc} |"
        )
    lines += [
        "",
        "## Per held-out genre",
        "",
        "| method | genre | n | Q1 | Q2 | Q3 | Q4 | unseen genre F1 % | acc % "
        "| 10-fold F1 % | acc % | F1 drop |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    has_kfold = "kfold_f1" in genres.columns
    for r in genres.itertuples():
        kf = (
            [_pct(r.kfold_f1), _pct(r.kfold_accuracy), f"{100 * (r.kfold_f1 - r.logo_f1):+.1f}"]
            if has_kfold and not np.isnan(r.kfold_f1)
            else ["n/a"] * 3
        )
        lines.append(
            f"| {r.method} | {r.genre} | {r.n} | {r.Q1} | {r.Q2} | {r.Q3} | {r.Q4} | "
            f"{_pct(r.logo_f1)} | {_pct(r.logo_accuracy)} | {' | '.join(kf)} |"
        )
    if not adapt.empty:
        mean = (
            adapt.groupby(["method", "k", "kind", "strength"], sort=False)[
                ["f1_before", "f1_after", "accuracy_before", "accuracy_after"]
            ]
            .mean()
            .reset_index()
        )
        delta = adapt.assign(d=adapt.f1_after - adapt.f1_before).groupby(
            ["method", "k", "kind", "strength"], sort=False
        )["d"]
        rose = delta.apply(lambda d: int((d > 5e-4).sum())).to_numpy()
        fell = delta.apply(lambda d: int((d < -5e-4).sum())).to_numpy()
        spread = delta.std(ddof=1).to_numpy()
        n_genres = adapt.genre.nunique()
        lines += [
            "",
            "## Few-shot adaptation on the held-out genre",
            "",
            f"`k` songs per quadrant of the held-out genre (mean over {seeds} seeds) recalibrate "
            "the model trained without that genre "
            "(`merkit.product.adapt.Recalibration`); scored on the "
            "genre's remaining songs, before and after, averaged over genres. `ΔF1` is the mean "
            "change ± its std over genres; `rose / fell` count genres whose mean F1 rose or fell "
            "by more than 0.05 points.",
            "",
            "| method | k | kind | strength | F1 % before | F1 % after | acc % before "
            "| acc % after | ΔF1 points | rose / fell |",
            "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r, up, down, sd in zip(mean.itertuples(), rose, fell, spread, strict=True):
            lines.append(
                f"| {r.method} | {r.k} | {r.kind} | {r.strength:g} | {_pct(r.f1_before)} | "
                f"{_pct(r.f1_after)} | {_pct(r.accuracy_before)} | {_pct(r.accuracy_after)} | "
                f"{100 * (r.f1_after - r.f1_before):+.1f} ± {100 * sd:.1f} | "
                f"{up} / {down} of {n_genres} |"
            )
    if not relative.empty:
        lines += [
            "",
            "## Each held-out genre as one collection, with `merkit predict --relative`",
            "",
            "The held-out model's probabilities of a genre's songs, placed relative to each other "
            "(`merkit.product.relative`: arousal/valence scores centred on the genre's median), "
            "against "
            "the absolute answers. Relative mode assumes the collection spans the emotion plane; "
            "a genre whose songs are mostly one quadrant breaks that assumption.",
            "",
            "| method | genre | n | F1 % absolute | F1 % relative | acc % absolute "
            "| acc % relative |",
            "|---|---|---:|---:|---:|---:|---:|",
        ]
        for r in relative.itertuples():
            lines.append(
                f"| {r.method} | {r.genre} | {r.n} | {_pct(r.f1_absolute)} | "
                f"{_pct(r.f1_relative)} | {_pct(r.accuracy_absolute)} | "
                f"{_pct(r.accuracy_relative)} |"
            )
        means = relative.groupby("method")[
            ["f1_absolute", "f1_relative", "accuracy_absolute", "accuracy_relative"]
        ].mean()
        for method, m in means.iterrows():
            lines.append(
                f"| {method} | mean over genres | | {_pct(m.f1_absolute)} | "
                f"{_pct(m.f1_relative)} | {_pct(m.accuracy_absolute)} | "
                f"{_pct(m.accuracy_relative)} |"
            )
    lines += ["", "Commands:", "", *[f"    {c}" for c in commands]]
    lines += footer(machine(), versions(), notes)
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logo", type=Path, required=True, help="logo-genre benchmark run")
    parser.add_argument("--kfold", type=Path, help="K-fold benchmark run of the same methods")
    parser.add_argument("--methods", default="svm-own", help="comma-separated methods")
    parser.add_argument("--k", default="2,5", help="adaptation songs per quadrant")
    parser.add_argument("--seeds", type=int, default=10, help="adaptation draws per genre and k")
    parser.add_argument("--name", default="4qaed_leave_one_genre_out")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--command", action="append", default=[], help="command that made a run")
    parser.add_argument("--note", action="append", default=[])
    parser.add_argument("--finding", action="append", default=[], help="headline, under the title")
    args = parser.parse_args()
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    ks = [int(k) for k in args.k.split(",") if k.strip()]
    genres = genre_rows(args.logo, args.kfold, methods)
    pooled = overall(args.logo, args.kfold, methods)
    adapt = adapt_rows(args.logo, methods, ks, args.seeds) if ks else pd.DataFrame()
    args.out.mkdir(parents=True, exist_ok=True)
    genres.to_csv(args.out / f"{args.name}.csv", index=False, float_format="%.4f")
    if not adapt.empty:
        adapt.to_csv(args.out / f"{args.name}_adapt.csv", index=False, float_format="%.4f")
    relative = relative_rows(args.logo, methods)
    if not relative.empty:
        relative.to_csv(args.out / f"{args.name}_relative.csv", index=False, float_format="%.4f")
    text = markdown(
        args.name,
        genres,
        pooled,
        adapt,
        relative,
        args.seeds,
        args.command,
        args.note,
        args.finding,
    )
    (args.out / f"{args.name}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
