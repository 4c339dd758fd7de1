"""Does the steady-tone / constant-level check of ``merkit.signal_checks`` leave real music alone?

Every 4QAED clip is decoded at 16 kHz (raw level, as the predictor sees a window) and given to
:class:`merkit.signal_checks.SignalCheck` whole, as one window; so are a few generated non-music
signals. Recorded per signal: the median spectral steadiness, the share of energy in the
strongest ``TONE_BINS`` bins, and whether the check flags it (and why).

Usage::

    python benchmarks/signal_checks.py --root ../shared/data/4qaed [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from _common import command_line, footer, machine, timestamp, versions
from merkit.audio.decode import load_audio
from merkit.signal_checks import STEADY_SIMILARITY, TONE_BINS, TONE_ENERGY, SignalCheck

SR = 16_000


def measure(y: np.ndarray) -> dict[str, object]:
    check = SignalCheck()
    check.add(y)
    steady = float(np.median(check.steadiness)) if check.steadiness else 0.0
    reasons = check.reasons()
    return {
        "steadiness": steady,
        "tonal_fraction": check.tonal_fraction,
        "flagged": reasons[0].split(":")[0] if reasons else "",
    }


def generated() -> dict[str, np.ndarray]:
    t = np.arange(30 * SR) / SR
    rng = np.random.default_rng(0)
    sine = 0.3 * np.sin(2 * np.pi * 440 * t)
    return {
        "sine 440 Hz": sine,
        "sine + noise at -40 dB": sine + 0.003 * rng.standard_normal(t.size),
        "clipped sine (x3)": np.clip(3 * np.sin(2 * np.pi * 440 * t), -1, 1),
        "square 220 Hz": 0.5 * np.sign(np.sin(2 * np.pi * 220 * t)),
        "sawtooth 110 Hz": 0.5 * (2 * ((110 * t) % 1) - 1),
        "C major chord held": sum(0.2 * np.sin(2 * np.pi * f * t) for f in (261.6, 329.6, 392.0)),
        "beeps 1 Hz": sine * (np.sin(2 * np.pi * t) > 0),
        "DC 0.5": np.full(t.size, 0.5),
        "DC 0.5 + noise at -80 dBFS": 0.5 + 1e-4 * rng.standard_normal(t.size),
        "white noise": 0.1 * rng.standard_normal(t.size),
        "sweep 100 Hz-6 kHz": 0.3 * np.sin(2 * np.pi * (100 * t + 100 * t * t)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    info, libs, started = machine(), versions(), timestamp()
    synthetic = {name: measure(y.astype(np.float32)) for name, y in generated().items()}
    files = sorted(args.root.glob("Q[1-4]/*"))
    music = {f.name: measure(load_audio(f, SR, normalize=False)) for f in files}
    flagged = {name: m["flagged"] for name, m in music.items() if m["flagged"]}
    steadiness = np.array([m["steadiness"] for m in music.values()])
    tonal = np.array([m["tonal_fraction"] for m in music.values()])
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "signal_checks.json").write_text(
        json.dumps({"generated": synthetic, "music": music}, indent=1) + "\n"
    )
    lines = [
        "# Constant-level and steady-tone check on real music (4QAED) and generated signals",
        "",
        f"`{command_line()}`, started {started}.",
        "",
        f"Thresholds: steadiness > {STEADY_SIMILARITY} and the {TONE_BINS} strongest bins "
        f"holding > {TONE_ENERGY:.0%} of the energy (both needed); constant: variation below "
        "-60 dBFS or a mean offset holding more energy than the sound.",
        "",
        f"## 4QAED: {len(music)} clips, {len(flagged)} flagged",
        "",
        "| measure | min | median | 99th pct | max |",
        "| --- | --- | --- | --- | --- |",
        *[
            f"| {label} | {v.min():.3f} | {np.median(v):.3f} | {np.percentile(v, 99):.3f} | "
            f"{v.max():.3f} |"
            for label, v in (("steadiness", steadiness), (f"top-{TONE_BINS} energy", tonal))
        ],
        "",
        *[f"- flagged: {name}: {why}" for name, why in sorted(flagged.items())],
        "",
        "## Generated signals",
        "",
        "| signal | steadiness | top-bins energy | flagged |",
        "| --- | --- | --- | --- |",
        *[
            f"| {name} | {m['steadiness']:.3f} | {m['tonal_fraction']:.3f} | "
            f"{m['flagged'] or 'no'} |"
            for name, m in synthetic.items()
        ],
        *footer(info, libs, ["Whole clips as one window (the predictor checks each window)."]),
    ]
    (args.out / "signal_checks.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
