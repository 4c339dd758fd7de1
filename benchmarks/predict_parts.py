"""CPU of each part of predicting one 30 s clip, against the whole prediction (issue 30's floor).

For each of ``--clips`` 4QAED clips (16 kHz mono Opus), in one process with one BLAS and torch
thread, ``time.process_time`` of:

1. ``predict``: the whole ``Predictor.predict(path)`` of the loaded model (what the issue's per-clip
   target is about);
2. ``decode``: decoding the file and mixing it down (:func:`merkit.audio.decode.decode_mono`, the
   issue's floor), then each part of the model's inputs on that audio as the predictor plans them
   (:func:`merkit.product.window_features.plan_inputs`):
3. ``front end``: the canonical front end of the ``*-canon`` inputs (once: they share it);
4. one row per input's inner function (``own-features``, ``crnn-tags3``: the three CRNN taggers);
5. ``estimator``: the quadrant model, the axis models and the familiarity measure on those inputs.

``other`` is ``predict`` less the parts (signal checks, windowing, the result's assembly).
The parts run in the same order on each clip, the whole prediction first; medians over clips.

Usage::

    MERKIT_PRETRAINED=/work/shared/pretrained python benchmarks/predict_parts.py --model default

Writes ``benchmarks/results/predict_parts_<model>.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from _common import command_line, footer, machine, timestamp, versions

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default", help="shipped model name or folder")
    parser.add_argument("--clips", type=int, default=20)
    parser.add_argument("--root", type=Path, default=Path("/work/shared/data/4qaed"))
    parser.add_argument("--target", type=float, default=None, help="issue 30's CPU s per clip")
    args = parser.parse_args()

    import torch

    from merkit.audio.decode import conform, decode_mono
    from merkit.audio.frontend import canonical
    from merkit.core.threads import one_blas_thread
    from merkit.product.predict import load_model
    from merkit.product.window_features import plan_inputs

    torch.set_num_threads(1)
    info, started = machine(), timestamp()
    predictor = load_model(args.model)
    plans = plan_inputs(predictor._computed_inputs())
    if plans is None:
        raise SystemExit(f"{args.model}: its inputs cannot be planned part by part")
    files = sorted(args.root.glob("Q*/*.ogg"))
    step = max(1, len(files) // args.clips)
    clips = files[::step][: args.clips]
    predictor.predict(str(clips[0]))  # warm up: imports, filterbanks, first calls

    @one_blas_thread  # as the predictor computes
    def parts(path: Path) -> dict[str, float]:
        out: dict[str, float] = {}

        def clock(name: str, fn: Any) -> Any:
            t = time.process_time()
            value = fn()
            out[name] = out.get(name, 0.0) + time.process_time() - t
            return value

        clock("predict", lambda: predictor.predict(str(path)))
        y, native = clock("decode", lambda: decode_mono(path))
        inputs: dict[str, np.ndarray] = {}
        fronts: dict[Any, np.ndarray] = {}
        for plan in plans:
            audio = conform(y, native, plan.sr)
            if plan.front is not None:
                key = (plan.sr, plan.front)
                if key not in fronts:
                    fronts[key] = clock(
                        "front end", lambda a=audio, p=plan: canonical(a, p.sr, **dict(p.front))
                    )
                audio = fronts[key].copy()
            value = clock(
                plan.rep.name,
                lambda a=audio, p=plan: p.rep.fn(a, p.sr, seed=0, **p.params),
            )
            inputs[plan.name] = np.asarray(value).astype(plan.dtype).astype(np.float32)[None]
        clock("estimator", lambda: predictor.predict_inputs(inputs))
        clock("estimator", lambda: predictor.predict_axes(inputs))
        clock("estimator", lambda: predictor.familiarity_of(inputs))
        return out

    rows = [parts(p) for p in clips]
    names = list(rows[0])
    median = {n: float(np.median([r[n] for r in rows])) for n in names}
    other = float(np.median([r["predict"] - sum(r[n] for n in names[1:]) for r in rows]))
    record = {
        "command": command_line(),
        "started": started,
        "machine": info,
        "versions": versions(),
        "model": args.model,
        "clips": [p.name for p in clips],
        "per_clip": rows,
        "median_s": median,
        "median_other_s": other,
        "target_s": args.target,
    }
    out = HERE / "results" / f"predict_parts_{Path(args.model).name}"
    out.with_suffix(".json").write_text(json.dumps(record, indent=1) + "\n")
    total = median["predict"]
    lines = [
        f"# CPU of each part of a 30 s clip's prediction, model `{args.model}` (issue 30)",
        "",
        f"`{record['command']}`, {started}. {len(clips)} 4QAED clips (16 kHz mono Opus, every "
        f"{step}th by name); one process, one BLAS and torch thread, `time.process_time`; "
        "median over clips.",
        "",
        "| part | CPU ms per clip | share of `predict` |",
        "| --- | ---: | ---: |",
        *[f"| {n} | {1000 * median[n]:.1f} | {100 * median[n] / total:.0f} % |" for n in names],
        f"| other (`predict` less the parts) | {1000 * other:.1f} | {100 * other / total:.0f} % |",
    ]
    notes = [
        "`predict` is the whole `Predictor.predict(path)`; the rows below it recompute its parts "
        "on the same clip: `decode` (`decode_mono`: soundfile and the mixdown), the canonical "
        "front end once, each input's inner function on it, and the quadrant model, axis models "
        "and familiarity measure together as `estimator`.",
    ]
    if args.target is not None:
        fixed = median["decode"]
        notes.append(
            f"Issue 30's target for this model: {1000 * args.target:.0f} ms per clip; decoding "
            f"alone is {1000 * fixed:.1f} ms of it here ({100 * fixed / args.target:.0f} %)."
        )
    lines += footer(info, record["versions"], notes)
    out.with_suffix(".md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
