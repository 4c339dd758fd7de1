"""Winograd CRNN convolutions against the stored precision: agreement and CPU (issue 30).

``merkit predict --crnn-precision winograd`` (``load_model(..., crnn_precision="winograd")``)
runs conv blocks 2-4 of the default model's three CRNN taggers through NNPACK's Winograd
float32 convolutions (:func:`merkit.transfer.won_crnn.winograd_conv_blocks`) instead of oneDNN's
direct ones. This script predicts the same audio both ways in one process, alternating which
goes first, and reports:

- on 4QAED clips (every ``--clip-step``-th file, sorted by path; each predicted from its file,
  decoding included): the largest probability difference, the quadrant, axis sides and
  familiarity flag agreement, and CPU seconds per clip of each path;
- on long tracks made by joining 4QAED clips (as ``predict_onepass_agreement.py``): the same per
  window, for the exact per-window path and for ``--one-pass``.

CPU is ``time.process_time`` with one BLAS and one torch thread, after a warm-up.

Usage::

    MERKIT_PRETRAINED=/work/shared/pretrained python benchmarks/predict_winograd_agreement.py \\
        --clip-step 5 --tracks 4 --clips 10

Writes ``benchmarks/results/predict_winograd_agreement.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from _common import command_line, footer, machine, timestamp, versions
from predict_onepass_agreement import DATA, SR, tracks

HERE = Path(__file__).resolve().parent


def _probs(result: Any) -> np.ndarray:
    return np.array([result.probabilities[q] for q in sorted(result.probabilities)])


def _windows(result: Any) -> np.ndarray:
    labels = sorted(result.probabilities)
    return np.array([[s.probabilities[q] for q in labels] for s in result.segments])


def _pair(a: Any, b: Any, label: str, items: list[tuple[str, Any]], segments: bool) -> list[dict]:
    """Predict every item with both predictors (alternating first) and compare."""
    rows = []
    for k, (name, audio) in enumerate(items):
        order = ((label, a), ("winograd", b)) if k % 2 == 0 else (("winograd", b), (label, a))
        got: dict[str, tuple[float, Any]] = {}
        for which, predictor in order:
            t0 = time.process_time()
            if isinstance(audio, str):
                result = predictor.predict(audio, segments=segments)
            else:
                result = predictor.predict(audio, sr=SR, segments=segments)
            got[which] = (time.process_time() - t0, result)
        (t_a, r_a), (t_b, r_b) = got[label], got["winograd"]
        row: dict[str, Any] = {
            "item": name,
            "cpu_stored_s": round(t_a, 4),
            "cpu_winograd_s": round(t_b, 4),
            "p_max_diff": float(np.abs(_probs(r_a) - _probs(r_b)).max()),
            "quadrant_same": r_a.quadrant == r_b.quadrant,
            "sides_same": (r_a.arousal, r_a.valence) == (r_b.arousal, r_b.valence),
            "reliable_same": r_a.reliable == r_b.reliable,
            "familiarity_diff": (
                None
                if r_a.familiarity is None
                else abs(float(r_a.familiarity) - float(r_b.familiarity))
            ),
        }
        if segments:
            w_a, w_b = _windows(r_a), _windows(r_b)
            row["windows"] = len(w_a)
            row["window_p_max_diff"] = float(np.abs(w_a - w_b).max())
            row["window_quadrants_same"] = int((w_a.argmax(1) == w_b.argmax(1)).sum())
        rows.append(row)
        print(label, k, name, row["cpu_stored_s"], row["cpu_winograd_s"], row["p_max_diff"])
    return rows


def _summary(rows: list[dict]) -> dict[str, Any]:
    cpu_a = float(np.mean([r["cpu_stored_s"] for r in rows]))
    cpu_b = float(np.mean([r["cpu_winograd_s"] for r in rows]))
    out: dict[str, Any] = {
        "n": len(rows),
        "p_max_diff": max(r["p_max_diff"] for r in rows),
        "p_median_of_max_diff": float(np.median([r["p_max_diff"] for r in rows])),
        "quadrant_same": sum(r["quadrant_same"] for r in rows),
        "sides_same": sum(r["sides_same"] for r in rows),
        "reliable_same": sum(r["reliable_same"] for r in rows),
        "familiarity_max_diff": max((r["familiarity_diff"] or 0.0) for r in rows),
        "cpu_stored_s": round(cpu_a, 4),
        "cpu_winograd_s": round(cpu_b, 4),
        "cpu_ratio_winograd_over_stored": round(cpu_b / cpu_a, 3),
    }
    if "windows" in rows[0]:
        out["windows"] = sum(r["windows"] for r in rows)
        out["window_p_max_diff"] = max(r["window_p_max_diff"] for r in rows)
        out["window_quadrants_same"] = sum(r["window_quadrants_same"] for r in rows)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--clip-step", type=int, default=5)
    parser.add_argument("--tracks", type=int, default=4)
    parser.add_argument("--clips", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(HERE / "results" / "predict_winograd_agreement"))
    args = parser.parse_args()

    import torch

    from merkit.core.threads import thread_limits
    from merkit.product.predict import load_model

    torch.set_num_threads(1)
    info, started = machine(), timestamp()
    files = sorted(str(p) for p in DATA.glob("Q*/*") if p.suffix in (".ogg", ".mp3", ".opus"))
    clips = [(Path(f).name, f) for f in files[:: args.clip_step]]
    made = tracks(args.tracks, args.clips, args.seed)
    joined = [(" + ".join(names[:3]) + " ...", y) for names, y in made]
    results: dict[str, Any] = {}
    with warnings.catch_warnings(), thread_limits(1):
        warnings.simplefilter("ignore")
        for exact in (True, False):
            stored = load_model(args.model, exact_windows=exact)
            wino = load_model(args.model, exact_windows=exact, crnn_precision="winograd")
            for p in (stored, wino):  # warm up: networks loaded, weights converted
                p.predict(clips[0][1])
            if exact:
                rows = _pair(stored, wino, "stored", clips, segments=False)
                results["clips"] = {"rows": rows, "summary": _summary(rows)}
            key = "tracks_exact" if exact else "tracks_onepass"
            rows = _pair(stored, wino, "stored", joined, segments=True)
            results[key] = {"rows": rows, "summary": _summary(rows)}
    record = {
        "command": command_line(),
        "started": started,
        "finished": timestamp(),
        "machine": info,
        "versions": versions(),
        "model": args.model,
        "clip_step": args.clip_step,
        "tracks": args.tracks,
        "clips_per_track": args.clips,
        "results": results,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(record, indent=1) + "\n")

    c = results["clips"]["summary"]
    lines = [
        "# Winograd CRNN convolutions against the stored precision (issue 30)",
        "",
        f"`{record['command']}`, {started} to {record['finished']}.",
        "",
        f"Model `{args.model}`, predicted by `load_model(...)` (the precision it stored: `bf16`, "
        "which is float32 oneDNN on a CPU without native bfloat16, as here) and by "
        '`load_model(..., crnn_precision="winograd")` in one process, alternating which goes '
        "first; one BLAS and one torch thread.",
        "",
        f"## 4QAED clips (every {args.clip_step}th of the sorted files, predicted from the file)",
        "",
        "| clips | max \\|Δp\\| | median of per-clip max \\|Δp\\| | quadrant same | arousal and "
        "valence sides same | reliable flag same | max \\|Δ familiarity\\| | CPU s/clip stored | "
        "CPU s/clip winograd | ratio |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        f"| {c['n']} | {c['p_max_diff']:.2e} | {c['p_median_of_max_diff']:.2e} | "
        f"{c['quadrant_same']}/{c['n']} | {c['sides_same']}/{c['n']} | "
        f"{c['reliable_same']}/{c['n']} | {c['familiarity_max_diff']:.2e} | "
        f"{c['cpu_stored_s']:.3f} | {c['cpu_winograd_s']:.3f} | "
        f"{c['cpu_ratio_winograd_over_stored']:.2f} |",
        "",
        f"## Long tracks ({args.tracks} tracks of {args.clips} joined 4QAED clips)",
        "",
        "| path | tracks | windows | max window \\|Δp\\| | window quadrants same | track quadrant "
        "same | CPU s/track stored | CPU s/track winograd | ratio |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for key, label in (("tracks_exact", "exact windows"), ("tracks_onepass", "--one-pass")):
        s = results[key]["summary"]
        lines.append(
            f"| {label} | {s['n']} | {s['windows']} | {s['window_p_max_diff']:.2e} | "
            f"{s['window_quadrants_same']}/{s['windows']} | {s['quadrant_same']}/{s['n']} | "
            f"{s['cpu_stored_s']:.2f} | {s['cpu_winograd_s']:.2f} | "
            f"{s['cpu_ratio_winograd_over_stored']:.2f} |"
        )
    notes = [
        "The ratio is the figure to read: both paths ran interleaved in one process on a shared "
        "2-core machine (helpers' jobs running), so absolute CPU seconds carry the contention.",
        "CPU per clip includes decoding the Opus file, the canonical front end, merkit's own "
        "features (unchanged by the switch) and the SVM; only the taggers' conv blocks 2-4 differ.",
        "Winograd F(6x6, 3x3) multiplies ~5x less than a direct 3x3 convolution, at the cost of "
        "float rounding: the differences above are that rounding carried through the model.",
    ]
    lines += footer(info, record["versions"], notes)
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
