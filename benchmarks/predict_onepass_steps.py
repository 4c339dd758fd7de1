"""CPU of each step of the one-pass window analysis against the same step per window (issue 30.1).

One long track (``--clips`` 4QAED clips joined at their own levels, 16 kHz), its regular 30 s
windows at a 15 s hop. Per step, ``time.process_time`` of the per-window computation (as
:func:`merkit.product.window_features.batch_features` does it) and of the one-pass one (as
:func:`~merkit.product.window_features.onepass_features` does it), one BLAS and torch thread:

1. the canonical front end (trim, band limit, level) per window vs the band limit once over the
   track and a gain per window;
2. the CRNN taggers (log-mel + three networks) per window (batches of 4) vs a log-mel and the
   first two conv blocks once per span of 8 windows, the rest per window;
3. merkit's own features (per window in both paths: not shared).

Usage::

    MERKIT_PRETRAINED=/work/shared/pretrained nice -n 19 python benchmarks/predict_onepass_steps.py

Writes ``benchmarks/results/predict_onepass_steps.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from _common import command_line, footer, machine, timestamp, versions

HERE = Path(__file__).resolve().parent
SR = 16_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=10)
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()

    import torch

    from merkit.audio.decode import load_audio
    from merkit.audio.frontend import band_limit, canonical
    from merkit.core.threads import one_blas_thread
    from merkit.features.own import extract_own_features
    from merkit.transfer.pooled import WON_CHECKPOINTS, crnn_conv_batch, crnn_span_outputs
    from merkit.transfer.won_crnn import won_logmel

    torch.set_num_threads(1)  # as the speed figures (two spin on a loaded machine)
    info, started = machine(), timestamp()
    files = sorted(p for p in Path("/work/shared/data/4qaed").glob("Q*/*.ogg"))
    rng = np.random.default_rng(args.seed)
    y = np.concatenate(
        [load_audio(files[i], SR, normalize=False) for i in rng.choice(len(files), args.clips)]
    )
    starts = list(range(0, len(y) - 30 * SR + 1, 15 * SR))
    wins = [y[s : s + 30 * SR] for s in starts]
    params = {"checkpoints": [list(c) for c in WON_CHECKPOINTS], "output": "tags",
              "log_odds": True, "precision": "bf16"}  # fmt: skip
    crnn_conv_batch(wins[:1], SR, **params)  # warm up
    rows = {}

    @one_blas_thread
    def measure() -> None:
        def clock(fn):  # type: ignore[no-untyped-def]
            t = time.process_time()
            out = fn()
            return time.process_time() - t, out

        t_front, fronts = clock(lambda: [canonical(w, SR, band_sr=14_000) for w in wins])
        t_band, banded = clock(lambda: band_limit(y, SR, 14_000))
        rows["front end"] = (t_front, t_band)

        def per_window():  # type: ignore[no-untyped-def]
            return [v for k in range(0, len(fronts), 4)
                    for v in crnn_conv_batch(fronts[k : k + 4], SR, **params)]  # fmt: skip

        def spans():  # type: ignore[no-untyped-def]
            out = []
            for k in range(0, len(starts), 8):
                group = starts[k : k + 8]
                if len(group) < 2:
                    continue
                first, last = group[0] + 8000 - 6144, group[-1] + 8000 + 464_000 + 6144
                piece = banded[first:last] / np.max(np.abs(banded[first:last]))
                lm = won_logmel(piece.astype(np.float32), None).astype(np.float16)
                at = [(s + 8000 - first) / 256 for s in group]
                out.append(crnn_span_outputs(lm.astype(np.float32), at, **params))
            return out

        rows["CRNN taggers"] = (clock(per_window)[0], clock(spans)[0])
        t_own, _ = clock(lambda: [extract_own_features(f, SR) for f in fronts])
        rows["own features"] = (t_own, t_own)

    measure()
    record = {
        "command": command_line(),
        "started": started,
        "machine": info,
        "versions": versions(),
        "track_s": len(y) / SR,
        "regular_windows": len(starts),
        "steps": {k: {"per_window_s": a, "one_pass_s": b} for k, (a, b) in rows.items()},
    }
    out = HERE / "results" / "predict_onepass_steps"
    out.with_suffix(".json").write_text(json.dumps(record, indent=1) + "\n")
    lines = [
        "# CPU of each step: per window vs one pass (issue 30.1)",
        "",
        f"`{record['command']}` (at `nice -n 19`), {started}. One track of {len(y) / SR:.0f} s "
        f"({args.clips} 4QAED clips), {len(starts)} regular windows.",
        "",
        "| step | per window (CPU s) | one pass (CPU s) | ratio |",
        "| --- | ---: | ---: | ---: |",
        *[f"| {k} | {a:.2f} | {b:.2f} | {b / a:.2f} |" for k, (a, b) in rows.items()],
    ]
    notes = [
        "LOADED machine (2 cores shared, a Table-3 training job at nice 19 not paused): read "
        "the ratios, not the absolute seconds.",
        "Own features are computed per window in both paths (their pooling over a window's "
        "frames, percentiles included, is not shared), so that row is one measurement.",
    ]
    lines += footer(info, record["versions"], notes)
    out.with_suffix(".md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
