"""A window hop of one window (each second analysed once) against the default half-window hop
(issue 30 item 1, "analyse each second once").

Long tracks are made by joining 4QAED clips decoded at 16 kHz, each at its own level
(:func:`predict_onepass_agreement.tracks`): ``aligned`` tracks join whole ~30 s clips, so a
30.1 s window nearly coincides with one clip (which flatters the non-overlapping hop);
``trimmed`` tracks join a random 18-27 s stretch of each clip, so windows straddle clip
boundaries. Each track is predicted in one process by ``load_model(model)`` (the manifest's
hop, 15.05 s) and ``load_model(model, hop_s=30.1)``, alternating which goes first. Reported per
model and track set: track quadrant agreement, the track probabilities' max and mean absolute
difference, arousal and valence side agreement, ``reliable`` flag agreement, windows per track
and CPU seconds per track (``time.process_time``, one BLAS thread, one torch thread, models
loaded and warmed up first). A 30 s clip is also predicted with both hops: its answer must be
identical (one window whatever the hop).

Usage::

    MERKIT_PRETRAINED=/work/shared/pretrained OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 \\
        OPENBLAS_NUM_THREADS=1 NUMBA_NUM_THREADS=1 nice -n 5 .venv/bin/python \\
        benchmarks/predict_hop_agreement.py --tracks 10 --clips 10 --models default,fast

Writes ``benchmarks/results/predict_hop_agreement.json`` and ``.md`` (rewritten after each
model, so a stopped run keeps the models it finished).
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
HOP = 30.1


def trimmed_tracks(n: int, clips: int, seed: int) -> list[tuple[list[str], np.ndarray]]:
    """Tracks of ``clips`` random 4QAED clips, each cut to a random 18-27 s stretch of itself."""
    from merkit.audio.decode import load_audio

    files = sorted(str(p) for p in DATA.glob("Q*/*") if p.suffix in (".ogg", ".mp3", ".opus"))
    rng = np.random.default_rng(seed + 1000)
    out = []
    for _ in range(n):
        pick = [files[i] for i in rng.choice(len(files), clips, replace=False)]
        parts = []
        for f in pick:
            y = load_audio(f, SR, normalize=False)
            length = min(len(y), round(rng.uniform(18.0, 27.0) * SR))
            start = int(rng.integers(0, len(y) - length + 1))
            parts.append(y[start : start + length])
        out.append(([Path(f).name for f in pick], np.concatenate(parts)))
    return out


def compare(base: Any, hop: Any) -> dict[str, Any]:
    labels = list(base.probabilities)
    d = np.array([abs(base.probabilities[q] - hop.probabilities[q]) for q in labels])
    top = sorted(base.probabilities.values(), reverse=True)
    return {
        "margin_default": float(top[0] - top[1]),  # how near a decision boundary the track is
        "quadrant_default": base.quadrant,
        "quadrant_hop": hop.quadrant,
        "p_max_diff": float(d.max()),
        "p_mean_diff": float(d.mean()),
        "arousal_agree": base.arousal == hop.arousal,
        "valence_agree": base.valence == hop.valence,
        "reliable_default": base.reliable,
        "reliable_hop": hop.reliable,
        "mixed_agree": base.mixed == hop.mixed,
        "windows_default": base.n_windows,
        "windows_hop": hop.n_windows,
    }


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    cpu_d = float(np.mean([r["cpu_default_s"] for r in rows]))
    cpu_h = float(np.mean([r["cpu_hop_s"] for r in rows]))
    return {
        "tracks": len(rows),
        "mean_seconds": round(float(np.mean([r["seconds"] for r in rows])), 1),
        "windows_default": sum(r["windows_default"] for r in rows),
        "windows_hop": sum(r["windows_hop"] for r in rows),
        "track_quadrant_agreement": float(
            np.mean([r["quadrant_default"] == r["quadrant_hop"] for r in rows])
        ),
        "track_p_max_diff": max(r["p_max_diff"] for r in rows),
        "track_p_mean_diff": float(np.mean([r["p_mean_diff"] for r in rows])),
        "arousal_agreement": float(np.mean([r["arousal_agree"] for r in rows])),
        "valence_agreement": float(np.mean([r["valence_agree"] for r in rows])),
        "reliable_agreement": float(
            np.mean([r["reliable_default"] == r["reliable_hop"] for r in rows])
        ),
        "mixed_agreement": float(np.mean([r["mixed_agree"] for r in rows])),
        "disagreeing_tracks_default_margins": [
            round(r["margin_default"], 3)
            for r in rows
            if r["quadrant_default"] != r["quadrant_hop"]
        ],
        "median_default_margin": round(float(np.median([r["margin_default"] for r in rows])), 3),
        "cpu_default_s_per_track": round(cpu_d, 3),
        "cpu_hop_s_per_track": round(cpu_h, 3),
        "cpu_ratio_hop_over_default": round(cpu_h / cpu_d, 3),
    }


def run_model(name: str, sets: dict[str, list[tuple[list[str], np.ndarray]]]) -> dict[str, Any]:
    import torch

    from merkit.product.predict import load_model

    torch.set_num_threads(1)  # as the other predict benchmarks (a loaded 2-core machine)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        default, hop = load_model(name), load_model(name, hop_s=HOP)
    first = next(iter(sets.values()))[0][1]
    for p in (default, hop):  # warm up: networks loaded, oneDNN weights converted
        p.predict(first[: 50 * SR], sr=SR)
    out: dict[str, Any] = {"hop_default_s": default.hop_s, "hop_s": hop.hop_s}
    # A clip of one window: the same answer whatever the hop.
    clips = sorted(DATA.glob("Q*/*.ogg"))[::250][:4]
    out["clips_identical"] = {
        p.name: default.predict(p, segments=True).model_dump()
        == hop.predict(p, segments=True).model_dump()
        for p in clips
    }
    for set_name, joined in sets.items():
        rows = []
        for k, (names, y) in enumerate(joined):
            order = (("default", default), ("hop", hop))
            if k % 2:
                order = order[::-1]
            got: dict[str, Any] = {}
            for label, predictor in order:
                t0 = time.process_time()
                result = predictor.predict(y, sr=SR)
                got[label] = (time.process_time() - t0, result)
            row = {
                "clips": names,
                "seconds": round(len(y) / SR, 2),
                **compare(got["default"][1], got["hop"][1]),
                "cpu_default_s": round(got["default"][0], 3),
                "cpu_hop_s": round(got["hop"][0], 3),
            }
            rows.append(row)
            print(name, set_name, k, row["cpu_default_s"], row["cpu_hop_s"],
                  row["quadrant_default"], row["quadrant_hop"], round(row["p_max_diff"], 4),
                  flush=True)  # fmt: skip
        out[set_name] = {"tracks": rows, "summary": summary(rows)}
    return out


def write(out: Path, record: dict[str, Any], info: dict[str, Any]) -> None:
    out.with_suffix(".json").write_text(json.dumps(record, indent=1) + "\n")
    lines = [
        "# Window hop of one window (each second once) against the default hop (issue 30.1)",
        "",
        f"`{record['command']}` (at `nice -n 5`, one thread), {record['started']} to "
        f"{record['finished']}.",
        "",
        f"Long tracks of {record['clips_per_track']} random 4QAED clips decoded at 16 kHz and "
        "joined at their own levels: `aligned` joins whole ~30 s clips (a 30.1 s window nearly "
        "coincides with one clip), `trimmed` joins a random 18-27 s stretch of each clip "
        "(windows straddle clip boundaries). Each track predicted in one process by "
        f"`load_model(model)` (hop {record['hop_default_s']} s) and "
        f"`load_model(model, hop_s={HOP})`, alternating which goes first.",
        "",
        "| model | tracks | mean length s | windows default | windows hop 30.1 | track quadrant "
        "agreement | track p max diff | track p mean diff | arousal side agreement | valence "
        "side agreement | reliable flag agreement | CPU s/track default | CPU s/track hop 30.1 "
        "| ratio |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
        "| ---: | ---: |",
    ]
    for m, r in record["models"].items():
        for set_name in ("aligned", "trimmed"):
            if set_name not in r:
                continue
            s = r[set_name]["summary"]
            lines.append(
                f"| {m} {set_name} | {s['tracks']} | {s['mean_seconds']} | "
                f"{s['windows_default']} | {s['windows_hop']} | "
                f"{100 * s['track_quadrant_agreement']:.0f} % | {s['track_p_max_diff']:.4f} | "
                f"{s['track_p_mean_diff']:.4f} | {100 * s['arousal_agreement']:.0f} % | "
                f"{100 * s['valence_agreement']:.0f} % | {100 * s['reliable_agreement']:.0f} % "
                f"| {s['cpu_default_s_per_track']:.2f} | {s['cpu_hop_s_per_track']:.2f} | "
                f"{s['cpu_ratio_hop_over_default']:.2f} |"
            )
    lines.append("")
    for m, r in record["models"].items():
        for set_name in ("aligned", "trimmed"):
            if set_name in r:
                s = r[set_name]["summary"]
                lines.append(
                    f"- `{m}` {set_name}: the default answer's top-two probability margin on the "
                    f"tracks whose quadrant changed: {s['disagreeing_tracks_default_margins']} "
                    f"(median margin over all its tracks {s['median_default_margin']})."
                )
    for m, r in record["models"].items():
        same = r["clips_identical"]
        lines.append(
            f"- `{m}`, a 30 s clip (one window) with both hops: answers identical (the whole "
            f"`model_dump()`, segments included) for {sum(same.values())} of {len(same)} clips "
            f"({', '.join(same)})."
        )
    notes = [
        "LOADED machine: 2 cores shared with other sessions; the CPU seconds are process CPU "
        "time under contention, so read the ratio, not the absolute figures.",
        "A 30.1 s hop cuts a track into about half the windows of the 15.05 s hop (plus a last "
        "window ending at the track's end when more than 1 s is left), and each window costs "
        "what it costs at the default hop, so the CPU follows the window count.",
    ]
    lines += footer(info, record["versions"], notes)
    out.with_suffix(".md").write_text("\n".join(lines))
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracks", type=int, default=10)
    parser.add_argument("--clips", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--models", default="default,fast")
    parser.add_argument("--sets", default="aligned,trimmed")
    parser.add_argument("--out", default=str(HERE / "results" / "predict_hop_agreement"))
    args = parser.parse_args()
    info, started = machine(), timestamp()
    wanted = args.sets.split(",")
    sets = {}
    if "aligned" in wanted:
        sets["aligned"] = tracks(args.tracks, args.clips, args.seed)
    if "trimmed" in wanted:
        sets["trimmed"] = trimmed_tracks(args.tracks, args.clips, args.seed)
    record: dict[str, Any] = {
        "command": command_line(),
        "started": started,
        "finished": None,
        "machine": info,
        "versions": versions(),
        "tracks": args.tracks,
        "clips_per_track": args.clips,
        "hop_default_s": None,
        "models": {},
    }
    for m in args.models.split(","):
        record["models"][m] = run_model(m, sets)
        record["hop_default_s"] = record["models"][m]["hop_default_s"]
        record["finished"] = timestamp()
        write(Path(args.out), record, info)


if __name__ == "__main__":
    main()
