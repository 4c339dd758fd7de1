"""Projected cost of Table 3's deep rows at the paper's regime, from measured training steps.

Times a few training steps of every deep model at its paper batch size (the merkit ``Trainer``,
random inputs of the real shapes, :func:`train_speed.run_worker`) and multiplies the median CPU
seconds per step by the steps a 10x1 fold of 4QAED needs at the epoch cap (810 training songs per
fold; 8 chunks per 30 s song for the chunk models). The caps are upper bounds: the 90 % training
accuracy rule stops earlier where a model fits. With ``--threads 1`` the CPU seconds are the cost
on one dedicated core, whatever the contention on the machine.

    OMP_NUM_THREADS=1 nice -n 19 python benchmarks/table3_projection.py --threads 1 --steps 3
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

HERE = Path(__file__).resolve().parent
TRAIN_SONGS = 810  # 9/10 of 4QAED's 900 songs
CHUNKS_PER_SONG = 8  # 59 049-sample chunks of a 30 s, 16 kHz clip

# stage: (train_speed case, samples per epoch, batch, epoch cap, what)
STAGES: dict[str, list[tuple[str, int, int, int, str]]] = {
    "cnn": [("cnn", TRAIN_SONGS, 150, 200, "CNN")],
    "cnn+rg / cnn+tfm / cnn+sb": [("cnn", 2 * TRAIN_SONGS, 150, 200, "CNN, original + 1 copy")],
    "cnn+deepsmote": [
        ("autoencoder", TRAIN_SONGS, 150, 150, "autoencoder, per fold"),
        ("cnn", TRAIN_SONGS + 100, 200, 150, "CNN + 100 synthetic"),
    ],
    "hybrid": [
        ("dnn", TRAIN_SONGS, 300, 100, "feature DNN"),
        ("cnn", 5 * TRAIN_SONGS, 120, 450, "CNN-H on 5 versions (CNN step cost)"),
        ("hybrid", TRAIN_SONGS, 300, 100, "fusion"),
    ],
    "shortchunk": [("shortchunk", CHUNKS_PER_SONG * TRAIN_SONGS, 50, 100, "every chunk")],
    "cnn-gru": [("cnn-gru", TRAIN_SONGS, 150, 200, "CNN + GRU(2000) x2")],
    "crnn": [("crnn", TRAIN_SONGS, 50, 200, "CRNN, paper batch 50")],
    "samplecnn": [("samplecnn", CHUNKS_PER_SONG * TRAIN_SONGS, 50, 150, "every chunk")],
}


AE_BATCH = 150


def autoencoder_step_cpu(steps: int) -> float:
    """CPU seconds of one DeepSMOTE autoencoder step (batch 150, Adam, MSE): one epoch of one
    batch to warm up, then ``steps`` epochs of one batch each, timed together."""
    import time

    import numpy as np

    from merkit.estimators.autoencoding import fit_autoencoder

    data = np.random.default_rng(0).uniform(-1, 1, (AE_BATCH, 942, 128)).astype(np.float32)
    fit_autoencoder(data, epochs=1, batch_size=AE_BATCH, device="cpu")
    start = time.process_time()
    fit_autoencoder(data, epochs=steps, batch_size=AE_BATCH, device="cpu")
    return round((time.process_time() - start) / steps, 4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3, help="timed steps after one warm-up")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--autoencoder-step-cpu",
        type=float,
        default=None,
        help="reuse this autoencoder step time (CPU s) from an earlier run instead of timing it",
    )
    parser.add_argument("--out", type=Path, default=HERE / "results" / "table3_projection.md")
    args = parser.parse_args()
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)

    import torch

    from _common import command_line, machine, timestamp, versions
    from train_speed import CASES, run_worker

    torch.set_num_threads(args.threads)
    batches = {name: batch for name, _, batch in CASES}
    cases = sorted({stage[0] for stages in STAGES.values() for stage in stages} - {"autoencoder"})
    ae_step = args.autoencoder_step_cpu or autoencoder_step_cpu(args.steps)
    timed = {"autoencoder": {"median_step_cpu_s": ae_step}}
    batches["autoencoder"] = AE_BATCH
    print(json.dumps({"case": "autoencoder", **timed["autoencoder"]}), flush=True)
    for case in cases:
        timed[case] = run_worker(case, "trainer", args.steps, "cpu")
        print(json.dumps({k: timed[case][k] for k in ("case", "median_step_cpu_s")}), flush=True)
    lines = [
        "# Table 3 at the paper's regime: projected CPU cost per 10x1 fold of 4QAED",
        "",
        f"Produced {timestamp()} by `{command_line()}` (torch on {args.threads} thread(s), bf16 "
        "autocast where the CPU has it, else float32; random inputs of the real shapes).",
        "",
        "Per stage: CPU s per sample (median step CPU s / the case's batch) x samples per epoch "
        "x epoch cap. The cap is an upper bound (the 90 % training-accuracy stop ends a fold "
        "earlier where the model fits); the per-sample cost is taken at the paper's batch of "
        "the case, and a stage with another batch (CNN-H 120, DeepSMOTE's CNN 200) reuses it.",
        "",
        "| method | stage | case (batch) | CPU s / step | samples / epoch | cap | CPU s / epoch "
        "| CPU h / fold at the cap | CPU h / 10 folds at the cap |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for method, stages in STAGES.items():
        for case, samples, _batch, cap, what in stages:
            step = timed[case]["median_step_cpu_s"]
            per_epoch = step / batches[case] * samples
            lines.append(
                f"| {method} | {what} | {case} ({batches[case]}) | {step:.3f} | {samples} | "
                f"{cap} | {per_epoch:.1f} | {per_epoch * cap / 3600:.2f} | "
                f"{per_epoch * cap * 10 / 3600:.1f} |"
            )
    lines += [
        "",
        "The autoencoder's step (batch 150, 942x128) is timed with its own trainer "
        "(`merkit.estimators.autoencoding.fit_autoencoder`, one warm-up epoch of one batch, "
        "then the timed ones; its timing includes building the model once)"
        + (
            f"; this file reuses {args.autoencoder_step_cpu} CPU s per step from an earlier run "
            "of the script (`--autoencoder-step-cpu`)."
            if args.autoencoder_step_cpu
            else "."
        ),
        "",
        f"Machine: `{json.dumps(machine())}`",
        "",
        f"Versions: `{json.dumps(versions())}`",
    ]
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
