"""How far the default recipe's leave-one-genre-out score moves with its settings (issue 33).

Issue 33 asks for leave-one-genre-out (LOGO) macro F1 >= 73 % pooled on 4QAED (the shipped
default: about 70). This script measures what the cheap knobs give, on the shipped inputs from
merkit's feature cache (own features without the codec-unstable ones, and the 150 tag log-odds of
the three CRNN taggers), with merkit's persisted genre groups (``merkit.protocol.genre``):

- ``grid``: the early-fusion RBF SVM at each (C, gamma) of a grid, uncalibrated (argmax of the
  SVM). *Optimistic*: the best cell is chosen on the very folds it is scored on.
- ``nested``: the honest version of that choice: for each held-out genre, (C, gamma) chosen by
  LOGO over the 13 other genres only, then scored on the held-out one.
- ``inputs``: input subsets at two (C, gamma) each: own features only, tags only, only the MTAT
  tagger's block, the MTAT instrument/genre tags left out, the timbre family left out.
- ``logreg``: an L2 logistic regression on the shipped inputs at four C.

Everything is fitted on the training genres only (imputation, standardisation, the classifier).

Example::

    python benchmarks/logo_search.py --root ../shared/data/4qaed \\
        --out benchmarks/results/4qaed_logo_search
"""

from __future__ import annotations

# ruff: noqa: E402
import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # one BLAS thread: a shared 2-core machine

import argparse
import itertools
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from _common import command_line, footer, machine, timestamp, versions
from merkit.datasets import load_dataset
from merkit.features.own import OWN_FEATURE_NAMES
from merkit.features.robust import CODEC_UNSTABLE, excluded_columns
from merkit.protocol.genre import dataset_genre_groups, leave_one_group_out
from merkit.protocol.runner import resolve_inputs
from merkit.transfer.won_crnn import MTAT_TAGS

SHIPPED = (4.0, 2.0**-11)
"""The shipped default's early-fusion SVM (C, gamma), chosen on all 900 songs."""
C_GRID = tuple(2.0**e for e in range(-2, 6))
GAMMA_GRID = tuple(2.0**e for e in range(-14, -7))
NESTED_C = (1.0, 2.0, 4.0, 8.0)
NESTED_GAMMA = (2.0**-12, 2.0**-11, 2.0**-10)
NON_AFFECT_TAGS = frozenset(
    (
        *("guitar", "strings", "drums", "piano", "violin", "synth", "harpsichord", "flute"),
        *("sitar", "harp", "cello", "choir", "choral", "vocal", "vocals", "voice", "female"),
        *("male", "woman", "man", "singing", "opera", "indian", "techno", "electronic", "rock"),
        *("pop", "classical", "classic", "country", "metal", "solo", "no vocals", "no vocal"),
        *("no voice", "male vocal", "female vocal", "male voice", "female voice", "new age"),
    )
)
"""MTAT tags that name an instrument, a voice or a genre rather than a feel."""


class Data:
    """The shipped inputs of every 4QAED song, its label and its genre group."""

    def __init__(self, root: Path) -> None:
        dataset = load_dataset("4qaed", root)
        inputs = resolve_inputs(dataset, ("own-features-canon", "crnn-tags3-canon"), progress=False)
        names = list(OWN_FEATURE_NAMES)
        keep = np.ones(len(names), bool)
        keep[excluded_columns(names, CODEC_UNSTABLE)] = False
        self.own_names = [n for n, k in zip(names, keep, strict=True) if k]
        self.own = np.asarray(inputs["own-features-canon"], dtype=np.float64)[:, keep]
        self.tags = np.asarray(inputs["crnn-tags3-canon"], dtype=np.float64)
        self.y = np.asarray(dataset.labels)
        groups = dataset_genre_groups(dataset)
        self.groups = np.array([groups[s] for s in dataset.song_ids], dtype=object)
        self.split = leave_one_group_out(self.groups.tolist())

    @property
    def shipped(self) -> np.ndarray:
        return np.hstack([self.own, self.tags])


def svm(C: float, gamma: float) -> Callable[[], Any]:
    return lambda: make_pipeline(SimpleImputer(), StandardScaler(), SVC(C=C, gamma=gamma))


def logo_predictions(
    X: np.ndarray, y: np.ndarray, split: list[tuple[str, np.ndarray]], make: Callable[[], Any]
) -> np.ndarray:
    """Each song's answer by a model fitted on every other genre group."""
    pred = np.empty(len(y), dtype=y.dtype)
    for _, test in split:
        train = np.setdiff1d(np.arange(len(y)), test)
        pred[test] = make().fit(X[train], y[train]).predict(X[test])
    return pred


def macro_f1(y: np.ndarray, pred: np.ndarray) -> float:
    return float(100 * f1_score(y, pred, average="macro"))


def part_grid(data: Data) -> dict[str, Any]:
    X, cells = data.shipped, []
    for C, gamma in itertools.product(C_GRID, GAMMA_GRID):
        f1 = macro_f1(data.y, logo_predictions(X, data.y, data.split, svm(C, gamma)))
        cells.append({"C": C, "gamma": gamma, "f1": f1})
        print(f"grid C={C:g} gamma=2^{np.log2(gamma):.0f}: {f1:.2f}", flush=True)
    return {"cells": cells}


def part_nested(data: Data, grid: list[tuple[float, float]]) -> dict[str, Any]:
    X, y = data.shipped, data.y
    pred = np.empty(len(y), dtype=y.dtype)
    chosen = {}
    for name, test in data.split:
        train = np.setdiff1d(np.arange(len(y)), test)
        inner = leave_one_group_out(data.groups[train].tolist())
        scores = {
            cell: macro_f1(y[train], logo_predictions(X[train], y[train], inner, svm(*cell)))
            for cell in grid
        }
        best = max(scores, key=lambda cell: (scores[cell], -cell[0]))  # a tie: the smaller C
        chosen[name] = {"C": best[0], "gamma": best[1], "inner_f1": scores[best]}
        pred[test] = svm(*best)().fit(X[train], y[train]).predict(X[test])
        print(f"nested {name}: C={best[0]:g} gamma=2^{np.log2(best[1]):.0f}", flush=True)
    return {"f1": macro_f1(y, pred), "chosen": chosen, "grid": grid}


def part_inputs(data: Data) -> dict[str, Any]:
    family = np.array([n.split(".")[0] for n in data.own_names])
    mtat_keep = np.ones(data.tags.shape[1], bool)
    mtat_keep[[i for i, t in enumerate(MTAT_TAGS) if t in NON_AFFECT_TAGS]] = False
    variants = {
        "shipped inputs (own + 3 taggers)": data.shipped,
        "own features only": data.own,
        "tags of the 3 taggers only": data.tags,
        "own + the MTAT tagger's 50 tags only": np.hstack([data.own, data.tags[:, :50]]),
        "own + tags, MTAT instrument/voice/genre tags left out": np.hstack(
            [data.own, data.tags[:, mtat_keep]]
        ),
        "own without the timbre family + tags": np.hstack(
            [data.own[:, family != "timbre"], data.tags]
        ),
    }
    rows = []
    for name, X in variants.items():
        for C, gamma_440 in ((SHIPPED[0], SHIPPED[1]), (2.0, 2.0**-10)):
            gamma = gamma_440 * 440 / X.shape[1]  # the same kernel width per column as at 440
            f1 = macro_f1(data.y, logo_predictions(X, data.y, data.split, svm(C, gamma)))
            rows.append({"inputs": name, "columns": X.shape[1], "C": C, "gamma": gamma, "f1": f1})
            print(f"inputs {name} C={C:g}: {f1:.2f}", flush=True)
    return {"rows": rows}


def part_logreg(data: Data) -> dict[str, Any]:
    rows = []
    for C in (0.003, 0.01, 0.03, 0.1):

        def make(C: float = C) -> Any:
            return make_pipeline(
                SimpleImputer(), StandardScaler(), LogisticRegression(C=C, max_iter=3000)
            )

        f1 = macro_f1(data.y, logo_predictions(data.shipped, data.y, data.split, make))
        rows.append({"C": C, "f1": f1})
        print(f"logreg C={C:g}: {f1:.2f}", flush=True)
    return {"rows": rows}


def render(results: dict[str, Any], commands: list[str], notes: list[str]) -> str:
    lines = [
        "# 4qaed_logo_search: what the default recipe's settings do to leave-one-genre-out F1",
        "",
        f"Generated by `benchmarks/logo_search.py`; finished {timestamp()}.",
        "",
        *[f"Command: `{c}`" for c in commands],
        "",
        "The shipped inputs (own features without the 27 codec-unstable ones + the 150 tag "
        "log-odds of the MTAT, MSD and Jamendo CRNN taggers, from merkit's cache), merkit's 14 "
        "genre groups, each held out in turn, everything fitted on the other 13. Pooled macro F1 "
        "over the 900 held-out answers, uncalibrated (the SVM's own argmax). Issue 33's target "
        "is 73 %; the shipped model (calibrated) scores 70.2 in `4qaed_axes_familiarity.md`.",
        "",
    ]
    grid = results.get("grid")
    if grid:
        cells = grid["cells"]
        best = max(cells, key=lambda c: c["f1"])
        shipped = next(
            c
            for c in cells
            if np.isclose(c["C"], SHIPPED[0]) and np.isclose(c["gamma"], SHIPPED[1])
        )
        lines += [
            "## SVM (C, gamma) grid, shipped inputs",
            "",
            f"Shipped cell (C 4, gamma 2^-11): **{shipped['f1']:.2f}**. Best cell: "
            f"**{best['f1']:.2f}** (C {best['C']:g}, gamma 2^{np.log2(best['gamma']):.0f}), "
            "*optimistic*: chosen on the folds it is scored on.",
            "",
            "| C \\ gamma | " + " | ".join(f"2^{np.log2(g):.0f}" for g in GAMMA_GRID) + " |",
            "|---|" + "---:|" * len(GAMMA_GRID),
        ]
        for C in C_GRID:
            row = [c["f1"] for c in cells if np.isclose(c["C"], C)]
            lines.append(f"| {C:g} | " + " | ".join(f"{v:.2f}" for v in row) + " |")
        lines.append("")
    nested = results.get("nested")
    if nested:
        lines += [
            "## The same choice made honestly (nested)",
            "",
            f"(C, gamma) chosen per held-out genre by LOGO over the other 13 genres among "
            f"{len(nested['grid'])} cells fixed in advance (C 1..8, gamma 2^-12..2^-10): pooled "
            f"F1 **{nested['f1']:.2f}**.",
            "",
            "| held-out genre | C | gamma | inner LOGO F1 % |",
            "|---|---:|---:|---:|",
            *[
                f"| {g} | {c['C']:g} | 2^{np.log2(c['gamma']):.0f} | {c['inner_f1']:.2f} |"
                for g, c in nested["chosen"].items()
            ],
            "",
        ]
    inputs = results.get("inputs")
    if inputs:
        lines += [
            "## Input subsets (gamma scaled to the column count)",
            "",
            "| inputs | columns | C | gamma | LOGO F1 % |",
            "|---|---:|---:|---:|---:|",
            *[
                f"| {r['inputs']} | {r['columns']} | {r['C']:g} | {r['gamma']:.2e} "
                f"| {r['f1']:.2f} |"
                for r in inputs["rows"]
            ],
            "",
        ]
    logreg = results.get("logreg")
    if logreg:
        lines += [
            "## L2 logistic regression, shipped inputs",
            "",
            "| C | LOGO F1 % |",
            "|---:|---:|",
            *[f"| {r['C']:g} | {r['f1']:.2f} |" for r in logreg["rows"]],
            "",
        ]
    return "\n".join(lines + footer(machine(), versions(), notes))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/4qaed_logo_search"))
    parser.add_argument("--parts", default="grid,nested,inputs,logreg")
    args = parser.parse_args()
    json_path = args.out.with_suffix(".json")
    stored = json.loads(json_path.read_text()) if json_path.is_file() else {}
    results, commands = stored.get("results", {}), stored.get("commands", [])
    data = Data(args.root) if args.parts else None
    for part in filter(None, args.parts.split(",")):  # --parts '': rewrite the .md only
        assert data is not None
        started = time.perf_counter()
        if part == "grid":
            results["grid"] = part_grid(data)
        elif part == "nested":
            results["nested"] = part_nested(data, list(itertools.product(NESTED_C, NESTED_GAMMA)))
        elif part == "inputs":
            results["inputs"] = part_inputs(data)
        elif part == "logreg":
            results["logreg"] = part_logreg(data)
        else:
            raise SystemExit(f"unknown part {part!r}")
        results[part]["seconds"] = round(time.perf_counter() - started, 1)
        commands = [*dict.fromkeys([*commands, command_line()])]
        args.out.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps({"results": results, "commands": commands}, indent=1))
    notes = [
        "`nested` searches 12 cells around the shipped one (C 1..8, gamma 2^-12..2^-10, one step "
        "either side): the held-out genre takes no part in the choice among them, but the range "
        "was set after an exploratory run of `grid` had been seen, so it is nearly, not strictly, "
        "blind."
    ]
    args.out.with_suffix(".md").write_text(render(results, commands, notes))
    print(f"wrote {args.out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
