"""CPU of merkit's own features per clip before and after a change, and their bit identity.

The baseline is ``src/merkit/features/own.py`` (with the ``merkit.audio.dsp`` and
``merkit.audio.rhythm`` it imports) as of ``--baseline``, loaded from git into a module of its own;
the current one is the checkout's. Both run in this process on the same clips, alternating which
goes first clip by clip, under one BLAS and OpenMP thread (``merkit.core.threads.thread_limits``),
timed by ``time.process_time``:

1. ``extract_own_features`` on every clip's canonical front end (``own-features-canon``, the
   default model's input): the CPU per clip, and whether the two vectors are equal
   (``np.array_equal``, NaN positions included);
2. each step of the extractor alone (input check, the shared analysis, every feature family, the
   summary), the same clips, and whether every descriptor series before the summary is equal;
3. the bit-identity check again on the plain decoded clips (``own-features``).

Usage (normal priority, about a minute on the 2-core machine)::

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 \\
        python benchmarks/own_features_speed.py --baseline 2f7a98c

Writes ``benchmarks/results/own_features_speed.md``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from _common import command_line, footer, machine, timestamp, versions

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SR = 16_000
DATA = Path("/work/shared/data/4qaed")
# the last main commit before the own-feature speed-ups of issue 30
DEFAULT_BASELINE = "2f7a98c"
STEPS = (
    "_check_input",
    "_analyse",
    "_dynamics",
    "_timbre",
    "_rhythm",
    "_tonality",
    "_harmony",
    "_articulation",
    "_summarise",
)


def load_baseline(ref: str) -> types.ModuleType:
    """``merkit.features.own`` as of git ``ref``, importing ``dsp`` and ``rhythm`` of ``ref``."""
    package = types.ModuleType("_own_baseline")
    package.__path__ = []
    sys.modules[package.__name__] = package
    sources = {
        "dsp": "src/merkit/audio/dsp.py",
        "rhythm": "src/merkit/audio/rhythm.py",
        "own": "src/merkit/features/own.py",
    }
    for name, path in sources.items():
        text = subprocess.run(
            ["git", "show", f"{ref}:{path}"], cwd=REPO, check=True, capture_output=True, text=True
        ).stdout
        if name == "own":
            line = "from merkit.audio import dsp, rhythm"
            if line not in text:
                raise SystemExit(f"{ref}:{path} does not import dsp and rhythm as expected")
            text = text.replace(line, "from _own_baseline import dsp, rhythm")
        module = types.ModuleType(f"_own_baseline.{name}")
        sys.modules[module.__name__] = module
        exec(compile(text, f"{ref}:{path}", "exec"), module.__dict__)
        setattr(package, name, module)
    return package.own


def timed(fn: Callable[..., Any], *args: Any) -> tuple[Any, float]:
    start = time.process_time()
    result = fn(*args)
    return result, time.process_time() - start


def step_times(own: types.ModuleType, y: np.ndarray) -> tuple[dict[str, float], dict[str, Any]]:
    """CPU seconds of each step of ``own.extract_own_features`` (the same calls, one by one), and
    every descriptor (frame series or scalar) and array of the shared analysis they computed."""
    out: dict[str, float] = {}
    samples, out["_check_input"] = timed(own._check_input, y, SR)
    a, out["_analyse"] = timed(own._analyse, samples, SR)
    families = []
    for name in ("_dynamics", "_timbre", "_rhythm"):
        values, out[name] = timed(getattr(own, name), a)
        families.append(values)
    (tonal, tonnetz), out["_tonality"] = timed(own._tonality, a)
    harmony, out["_harmony"] = timed(own._harmony, a, tonnetz)
    articulation, out["_articulation"] = timed(own._articulation, a)
    values = own._all_values([*families, tonal, harmony, articulation])
    with np.errstate(all="ignore"):
        _, out["_summarise"] = timed(own._summarise, values)
    arrays = {f"analysis.{f}": getattr(a, f) for f in ("S", "power", "mel_power", "onset_env")}
    return out, {**values, **arrays, "analysis.onsets": a.onsets, "tonnetz": tonnetz}


def unequal(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """Names whose values are not bit-identical (``np.array_equal``, NaN positions included)."""
    if before.keys() != after.keys():
        return sorted(set(before) ^ set(after))
    return [
        name
        for name in before
        if not np.array_equal(np.asarray(before[name]), np.asarray(after[name]), equal_nan=True)
    ]


def median_ms(values: list[float]) -> float:
    return 1000.0 * float(np.median(values))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default=DEFAULT_BASELINE, help="git ref of the baseline")
    parser.add_argument("--per-quadrant", type=int, default=15, help="clips of each quadrant")
    args = parser.parse_args()

    from merkit.audio.decode import load_audio
    from merkit.audio.frontend import canonical
    from merkit.core.threads import thread_limits
    from merkit.features import own as current

    with thread_limits(1):  # one BLAS and OpenMP thread, as a prediction computes features
        run(args, load_audio, canonical, current)


def run(args: argparse.Namespace, load_audio: Any, canonical: Any, current: Any) -> None:
    """The measurement and its results file (see the module docstring)."""

    info, started = machine(), timestamp()
    baseline = load_baseline(args.baseline)
    impls = {"before": baseline, "after": current}
    files = [
        p
        for q in ("Q1", "Q2", "Q3", "Q4")
        for p in sorted((DATA / q).glob("*.ogg"))[: args.per_quadrant]
    ]
    plain = [load_audio(p, SR) for p in files]
    canon = [canonical(y, SR) for y in plain]
    for own in impls.values():  # warm-up: imports, filterbank caches
        own.extract_own_features(canon[0], SR)

    total: dict[str, list[float]] = {k: [] for k in impls}
    steps: dict[str, dict[str, list[float]]] = {k: {s: [] for s in STEPS} for k in impls}
    differing: list[str] = []
    for i, (path, y) in enumerate(zip(files, canon, strict=True)):
        order = list(impls) if i % 2 == 0 else list(impls)[::-1]
        vectors = {}
        for key in order:
            vectors[key], seconds = timed(impls[key].extract_own_features, y, SR)
            total[key].append(seconds)
        if not np.array_equal(vectors["before"], vectors["after"], equal_nan=True):
            differing.append(f"canon {path.parent.name}/{path.name}")
    series_differing: set[str] = set()
    n_series = 0
    for i, y in enumerate(canon):
        computed = {}
        for key in list(impls) if i % 2 == 0 else list(impls)[::-1]:
            seconds_by_step, computed[key] = step_times(impls[key], y)
            for step, seconds in seconds_by_step.items():
                steps[key][step].append(seconds)
        series_differing.update(unequal(computed["before"], computed["after"]))
        n_series = len(computed["after"])
    for path, y in zip(files, plain, strict=True):
        before = baseline.extract_own_features(y, SR)
        if not np.array_equal(before, current.extract_own_features(y, SR), equal_nan=True):
            differing.append(f"plain {path.parent.name}/{path.name}")

    n = len(files)
    lines = [
        "# CPU of merkit's own features per clip, before and after (issue 30)",
        "",
        f"`OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 {command_line()}`, "
        f"{started}, normal priority. Baseline: `{args.baseline}` "
        "(own.py, dsp.py, rhythm.py from git); after: this checkout. "
        f"{n} 4QAED clips ({args.per_quadrant} per quadrant, the first by name), decoded by "
        "`merkit.audio.decode.load_audio` at 16 kHz; the two implementations alternate clip by "
        "clip in one process, one BLAS thread, `time.process_time`.",
        "",
        "## `extract_own_features` on the canonical front end (CPU per clip)",
        "",
        "| | before (ms) | after (ms) | after / before |",
        "| --- | ---: | ---: | ---: |",
    ]
    for label, reduce in (("median", np.median), ("mean", np.mean)):
        b, a = 1000 * float(reduce(total["before"])), 1000 * float(reduce(total["after"]))
        lines.append(f"| {label} | {b:.1f} | {a:.1f} | {a / b:.2f} |")
    lines += [
        "",
        "## Each step alone (median CPU per clip, the same clips)",
        "",
        "| step | before (ms) | after (ms) | after / before |",
        "| --- | ---: | ---: | ---: |",
    ]
    for step in STEPS:
        b, a = median_ms(steps["before"][step]), median_ms(steps["after"][step])
        lines.append(f"| `{step}` | {b:.1f} | {a:.1f} | {a / b:.2f} |")
    sums = {k: 1000 * float(np.median(np.sum(list(steps[k].values()), axis=0))) for k in impls}
    lines.append(
        f"| sum of the steps | {sums['before']:.1f} | {sums['after']:.1f} | "
        f"{sums['after'] / sums['before']:.2f} |"
    )
    lines += [
        "",
        "## Bit identity",
        "",
        f"- Clips checked: {n} canonical front ends and the same {n} plain decodes "
        f"({2 * n} vectors of {len(current.OWN_FEATURE_NAMES)} features); all equal: "
        f"{'yes' if not differing else 'no'}.",
    ]
    if differing:
        lines.append("- Differing: " + ", ".join(differing))
    lines.append(
        f"- Before the summary, on the {n} canonical front ends: all {n_series} descriptors "
        "(frame series and scalars) and arrays of the shared analysis (magnitude and power STFT, "
        "mel power, onset envelope and frames, tonnetz) equal: "
        + ("yes." if not series_differing else "no: " + ", ".join(sorted(series_differing)))
    )
    lines += footer(
        info,
        versions(),
        [
            "`_harmony` includes the dissonance; `_articulation` includes the HPSS; "
            "`_analyse` is the STFT, mel spectrogram, onset envelope and onsets.",
            "The 2 cores are shared with other work of the session: compare the two columns, "
            "measured alternately in one process, rather than the absolute values.",
        ],
    )
    out = HERE / "results" / "own_features_speed.md"
    out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
