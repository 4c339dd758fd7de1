"""Own features through merkit.audio.dsp vs through librosa, and the shipped model's answers, on
4QAED.

merkit's own features compute their spectra, filter banks, onsets and beats with
:mod:`merkit.audio.dsp` (numpy/scipy) instead of librosa, so that a prediction never compiles
librosa's
numba functions. This script runs every 4QAED clip through the model's prediction path twice:
once as shipped, once with ``merkit.features.own``'s ``dsp`` module replaced by a shim that calls
the librosa functions it used before. It reports how many feature vectors are bit-identical, the
largest relative difference of each feature, how many songs get the same quadrant, and the CPU
time of the feature extraction each way.

Usage::

    python benchmarks/own_dsp_agreement.py [--root ../shared/data/4qaed] [--limit N]

Writes ``benchmarks/results/own_dsp_agreement.md`` and ``.json`` (``--out`` to change).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from _common import command_line, footer, machine, timestamp, versions

HERE = Path(__file__).resolve().parent


def librosa_dsp() -> SimpleNamespace:
    """The librosa calls own features made before merkit.audio.dsp, behind its signatures."""
    import librosa

    def beat_track(env: np.ndarray, *, sr: float, hop_length: int, bpm: float) -> np.ndarray:
        _, beats = librosa.beat.beat_track(
            onset_envelope=env, sr=sr, hop_length=hop_length, bpm=bpm, units="frames"
        )
        return np.asarray(beats, dtype=int)

    def pitch_tuning(freqs: np.ndarray) -> float:
        freqs = np.asarray(freqs)
        return float(librosa.pitch_tuning(freqs)) if np.any(freqs > 0) else 0.0

    return SimpleNamespace(
        stft=lambda y, *, n_fft, hop_length: librosa.stft(
            y, n_fft=n_fft, hop_length=hop_length, window="hann", center=True
        ),
        fft_frequencies=librosa.fft_frequencies,
        a_weighting=librosa.A_weighting,
        mel_filterbank=lambda *, sr, n_fft, n_mels: librosa.filters.mel(
            sr=sr, n_fft=n_fft, n_mels=n_mels
        ).astype(np.float32),
        chroma_filterbank=lambda *, sr, n_fft, tuning: librosa.filters.chroma(
            sr=sr, n_fft=n_fft, tuning=tuning
        ).astype(np.float32),
        onset_strength=lambda S, *, hop_length, lag: librosa.onset.onset_strength(
            S=S, hop_length=hop_length, lag=lag
        ),
        onset_detect=lambda env, *, sr, hop_length: librosa.onset.onset_detect(
            onset_envelope=env, sr=sr, hop_length=hop_length, units="frames"
        ).astype(int),
        power_to_db=librosa.power_to_db,
        mfcc=lambda S, *, n_mfcc: librosa.feature.mfcc(S=S, n_mfcc=n_mfcc),
        delta=lambda data, *, width, order: librosa.feature.delta(data, width=width, order=order),
        beat_track=beat_track,
        abs2=librosa.util.abs2,
        pitch_tuning=pitch_tuning,
        tonnetz=lambda chroma: librosa.feature.tonnetz(chroma=chroma),
        softmask=lambda X, R, *, power: librosa.util.softmask(X, R, power=power, split_zeros=True),
    )


def run(root: Path, limit: int | None) -> dict[str, Any]:
    from merkit.audio import dsp
    from merkit.audio.decode import load_audio
    from merkit.features import own
    from merkit.product.predict import load_model

    files = sorted(p for p in root.glob("Q*/*") if p.is_file())[:limit]
    original = own.extract_own_features
    captured: list[np.ndarray] = []
    cpu = {"dsp": 0.0, "librosa": 0.0}
    backend = {"name": "dsp"}

    def recording(y: np.ndarray, sr: int, **kwargs: Any) -> np.ndarray:
        tic = time.process_time()
        value = original(y, sr, **kwargs)
        cpu[backend["name"]] += time.process_time() - tic
        captured.append(value)
        return value

    own.extract_own_features = recording  # type: ignore[assignment]  # the predictor loads this
    predictor = load_model()

    def through(name: str, module: Any, y: np.ndarray) -> tuple[str, list[np.ndarray]]:
        own.dsp = module
        for cached in (own._mel_basis, own._a_weights, own._chroma_basis, own._band_indicators):
            cached.cache_clear()
        backend["name"] = name
        captured.clear()
        quadrant = predictor.predict(y, 16000).quadrant
        return quadrant, list(captured)

    shim = librosa_dsp()
    # warm both (lazy imports, numba compilation, filter banks) outside the timing
    warm = load_audio(files[0], 16000)
    through("librosa", shim, warm)
    through("dsp", dsp, warm)
    cpu = {"dsp": 0.0, "librosa": 0.0}
    n_windows = 0
    identical = same_quadrant = 0
    worst = np.zeros(len(own.OWN_FEATURE_NAMES))
    differing: list[str] = []
    for i, path in enumerate(files):
        y = load_audio(path, 16000)
        q_dsp, f_dsp = through("dsp", dsp, y)
        q_ref, f_ref = through("librosa", shim, y)
        n_windows += len(f_dsp)
        a, b = np.stack(f_dsp).astype(np.float64), np.stack(f_ref).astype(np.float64)
        if np.array_equal(a, b):
            identical += 1
        else:
            rel = np.abs(a - b) / np.maximum(np.abs(b), 1e-30)
            worst = np.maximum(worst, np.where(a == b, 0.0, rel).max(axis=0))
        same_quadrant += q_dsp == q_ref
        if q_dsp != q_ref:
            differing.append(f"{path.name}: {q_ref} (librosa) vs {q_dsp} (dsp)")
        if (i + 1) % 100 == 0:
            print(f"{i + 1}/{len(files)} songs, {identical} identical", flush=True)
    own.dsp = dsp
    own.extract_own_features = original  # type: ignore[assignment]
    order = np.argsort(-worst)[:10]
    return {
        "n_songs": len(files),
        "n_windows": n_windows,
        "identical_vectors": identical,
        "max_relative_difference": float(worst.max()),
        "largest": {own.OWN_FEATURE_NAMES[i]: float(worst[i]) for i in order if worst[i] > 0},
        "same_quadrant": int(same_quadrant),
        "differing_songs": differing,
        "cpu_s_per_window": {k: v / max(n_windows, 1) for k, v in cpu.items()},
    }


def markdown(result: dict[str, Any], info: dict[str, Any], vers: dict[str, str]) -> str:
    n = result["n_songs"]
    cpu = result["cpu_s_per_window"]
    lines = [
        "# Own features without librosa: agreement with the librosa-based extractor",
        "",
        f"Generated by `benchmarks/own_dsp_agreement.py` on {timestamp()}.",
        "",
        f"Command: `{command_line()}`",
        "",
        "Each 4QAED clip (16 kHz, as the shipped model reads it) goes through `merkit`'s",
        "prediction path with the shipped default model (`svm-own`) twice: own features computed",
        "with `merkit.audio.dsp` (numpy/scipy, as shipped) and with the librosa functions it "
        "replaced.",
        "",
        "| | value |",
        "| --- | ---: |",
        f"| songs | {n} |",
        f"| windows (feature vectors) | {result['n_windows']} |",
        f"| bit-identical feature vectors (songs) | {result['identical_vectors']} / {n} |",
        f"| max relative difference, all 317 features | {result['max_relative_difference']:.3g} |",
        f"| same quadrant from the shipped model | {result['same_quadrant']} / {n} |",
        f"| feature CPU s per window, merkit.audio.dsp | {cpu['dsp']:.3f} |",
        f"| feature CPU s per window, librosa (warm numba cache) | {cpu['librosa']:.3f} |",
        "",
    ]
    if result["largest"]:
        lines += ["Largest differences:", ""]
        lines += [f"- `{k}`: {v:.3g}" for k, v in result["largest"].items()]
        lines.append("")
    if result["differing_songs"]:
        lines += ["Songs with a different quadrant:", ""]
        lines += [f"- {s}" for s in result["differing_songs"]]
        lines.append("")
    notes = [
        "CPU time is the feature extraction alone (process time, one thread), both backends "
        "warmed up first; the machine is shared, so the ratio means more than the values.",
    ]
    return "\n".join(lines + footer(info, vers, notes))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=HERE.parent.parent / "shared/data/4qaed")
    parser.add_argument("--limit", type=int, default=None, help="first N songs only")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "own_dsp_agreement")
    args = parser.parse_args(argv)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        result = run(args.root, args.limit)
    info, vers = machine(), versions()
    args.out.with_suffix(".json").write_text(
        json.dumps({"result": result, "machine": info, "versions": vers}, indent=2) + "\n"
    )
    args.out.with_suffix(".md").write_text(markdown(result, info, vers))
    print(markdown(result, info, vers))


if __name__ == "__main__":
    main()
