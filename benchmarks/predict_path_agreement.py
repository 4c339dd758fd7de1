"""Agreement of this tree's predictor with the one at a previous revision (issue 28.3 / 30.1).

The predictor of this tree cuts windows at the file's own rate and hands each to training's
extraction (resampled and peak-normalised per window, as a training clip); the previous one
resampled the whole track in a stream and cut windows at the model's rate. For 16 kHz files the
two must agree exactly; for files at another rate the windows' edges are resampled differently.

Measured on 4QAED clips (16 kHz Opus), long tracks made by joining 10 clips (16 kHz FLAC), and
the same tracks as 44.1 kHz stereo 16-bit WAV: per file, whether the final quadrant agrees, the
largest difference of a track probability and of a window probability, and the window counts.
Each side runs in its own process (``PYTHONPATH`` = that revision's ``src``).

Usage::

    nice -n 19 python benchmarks/predict_path_agreement.py --against main --model fast \\
        --clips 40 --tracks 3

Writes ``benchmarks/results/predict_path_agreement_<model>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from _common import footer, machine, versions

HERE = Path(__file__).resolve().parent
QUADRANTS = ("Q1", "Q2", "Q3", "Q4")


def side(args: argparse.Namespace) -> None:
    """Predict every file of ``--files`` (a JSON list) and print the probabilities as JSON."""
    from merkit import load_model  # a public name in every layout

    predictor = load_model(args.model)
    out = []
    for path in json.loads(Path(args.files).read_text()):
        r = predictor.predict(path, segments=True)
        out.append(
            {
                "path": path,
                "quadrant": r.quadrant,
                "p": [r.probabilities[q] for q in QUADRANTS],
                "windows": [[s.probabilities[q] for q in QUADRANTS] for s in r.segments],
            }
        )
    print(json.dumps(out))


def make_files(folder: Path, root: Path, n_clips: int, n_tracks: int) -> dict[str, list[str]]:
    import soundfile as sf
    import soxr

    lists = [sorted((root / q).glob("*.ogg")) for q in QUADRANTS]
    clips = [lists[i % 4][i // 4] for i in range(n_clips + 10 * n_tracks)]
    groups: dict[str, list[str]] = {"4QAED clips (16 kHz Opus)": [str(c) for c in clips[:n_clips]]}
    t16, t44 = [], []
    for t in range(n_tracks):
        parts = clips[n_clips + 10 * t : n_clips + 10 * (t + 1)]
        y = np.concatenate([sf.read(p, dtype="float32")[0] for p in parts])
        path = folder / f"joined{t}.flac"
        sf.write(path, y, 16_000, subtype="PCM_16")
        t16.append(str(path))
        y44 = soxr.resample(y, 16_000, 44_100)
        path = folder / f"joined{t}-44k.wav"
        sf.write(path, np.stack([y44, y44], axis=1) * 0.9, 44_100, subtype="PCM_16")
        t44.append(str(path))
    groups["joined 10 clips (16 kHz FLAC, ~5 min)"] = t16
    groups["joined 10 clips (44.1 kHz stereo WAV, ~5 min)"] = t44
    return groups


def run_side(src: Path | None, model: str, files: Path) -> list[dict[str, Any]]:
    env = dict(os.environ, MERKIT_NO_REEXEC="1", OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    if src is not None:
        env["PYTHONPATH"] = str(src)
    command = [sys.executable, __file__, "--side", "--model", model, "--files", str(files)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--against", default="main")
    parser.add_argument("--model", default="fast")
    parser.add_argument("--root", type=Path, default=HERE.parents[1] / "shared/data/4qaed")
    parser.add_argument("--clips", type=int, default=40)
    parser.add_argument("--tracks", type=int, default=3)
    parser.add_argument("--side", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--files", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.side:
        side(args)
        return
    started = machine()
    revision = subprocess.run(
        ["git", "-C", str(HERE.parent), "rev-parse", "--short", args.against],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        groups = make_files(folder, args.root, args.clips, args.tracks)
        listing = folder / "files.json"
        listing.write_text(json.dumps([p for paths in groups.values() for p in paths]))
        archive = subprocess.run(
            ["git", "-C", str(HERE.parent), "archive", revision, "src"],
            capture_output=True, check=True,
        ).stdout  # fmt: skip
        (folder / "old").mkdir()
        subprocess.run(["tar", "-x", "-C", str(folder / "old")], input=archive, check=True)
        new = {r["path"]: r for r in run_side(None, args.model, listing)}
        old = {r["path"]: r for r in run_side(folder / "old" / "src", args.model, listing)}
    rows = []
    for name, paths in groups.items():
        same = sum(new[p]["quadrant"] == old[p]["quadrant"] for p in paths)
        track = max(float(np.max(np.abs(np.subtract(new[p]["p"], old[p]["p"])))) for p in paths)
        windows_equal = all(len(new[p]["windows"]) == len(old[p]["windows"]) for p in paths)
        window = max(
            float(np.max(np.abs(np.subtract(new[p]["windows"], old[p]["windows"]))))
            for p in paths
            if len(new[p]["windows"]) == len(old[p]["windows"])
        )
        identical = all(new[p]["windows"] == old[p]["windows"] for p in paths)
        rows.append(
            {
                "files": name,
                "n": len(paths),
                "same_quadrant": same,
                "max_track_p_diff": track,
                "max_window_p_diff": window,
                "same_window_count": windows_equal,
                "bit_identical": identical,
            }
        )
    out = args.out or HERE / "results" / f"predict_path_agreement_{args.model}.json"
    result = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": shlex.join([Path(sys.executable).name, *sys.argv]),
        "against": f"{args.against} ({revision})",
        "model": args.model,
        "rows": rows,
        "machine": started,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        f"# Predictor agreement: this tree against {result['against']}, model `{args.model}`",
        "",
        f"Generated by `benchmarks/predict_path_agreement.py` on {result['date']}.",
        "",
        f"Command: `{result['command']}`",
        "",
        "| files | n | same final quadrant | max diff, track p | max diff, window p | "
        "same windows | bit-identical |",
        "| --- | ---: | ---: | ---: | ---: | --- | --- |",
        *(
            f"| {r['files']} | {r['n']} | {r['same_quadrant']}/{r['n']} | "
            f"{r['max_track_p_diff']:.2e} | {r['max_window_p_diff']:.2e} | "
            f"{'yes' if r['same_window_count'] else 'NO'} | "
            f"{'yes' if r['bit_identical'] else 'no'} |"
            for r in rows
        ),
        "",
        "Both sides in their own process, one thread (`OMP_NUM_THREADS=OPENBLAS_NUM_THREADS=1`).",
    ]
    lines += footer(started, versions(), [])
    out.with_suffix(".md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
