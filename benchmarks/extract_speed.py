"""Cold log-mel extraction against pure decoding and the paper's librosa pipeline, one run.

Modes, run on the same files in the same process, interleaved block by block (the order of the
modes rotates from block to block, so a change in machine load hits every mode alike):

- ``decode``: ``soundfile.read(path, dtype="float32")``, nothing else.
- ``merkit``: ``merkit.representations.extract.compute(block, "logmel", n_jobs=1)`` into an empty
feature cache:
  hash each file (content key), look it up, decode, mix to mono, resample to 16 kHz (soxr HQ),
  peak-normalise, the 942 x 128 log-mel, float16, atomic ``.npy`` write. merkit's default path,
  which computes two whole songs at a time in two threads
  (:func:`merkit.representations.extract.threaded`).
- ``merkit-serial``: the same per-song work (:class:`merkit.representations.extract.SongJobs`) in
one thread.
- ``merkit-pipelined``: the same work split in two stages, the next two songs decoded in a
  second thread while this one computes the current one
  (:func:`merkit.representations.extract.pipelined`: the
  default before, and still the path of representations that are not thread-safe).
  Informational.
- ``librosa``: the paper's pipeline, ``librosa.load(path, sr=16000)`` +
  ``librosa.feature.melspectrogram`` (n_fft 2048, hop 512, 128 Slaney mels) + ``power_to_db``.
- ``librosa-1blas``: the same with OpenBLAS held to one thread (its idle thread otherwise spins
  after every mel product, taking a core).

Each mode runs ``--rounds`` times over every file (a fresh cache each round); wall-clock and
process CPU time (all threads) are summed per round, and the median round is reported.

The values merkit caches are checked, bit for bit, against the previous implementation of the
same representation (:func:`reference_logmel`, kept here verbatim: channel mean, peak
normalisation, frame-major STFT, sparse filterbank product).

Usage::

    python benchmarks/extract_speed.py --make-mp3 /tmp/mp3 --source /work/shared/data/4qaed
    python benchmarks/extract_speed.py --root /tmp/mp3 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import scipy.fft
import scipy.sparse
import soundfile as sf
import soxr

from _common import command_line, footer, machine, timestamp, versions
from merkit.datasets.base import AUDIO_EXTENSIONS, Dataset, FileSource, Song
from merkit.representations.cache import FeatureCache
from merkit.representations.extract import SongJobs, _song_job, compute, pipelined
from merkit.representations.logmel import LogMelConfig, mel_filterbank

HERE = Path(__file__).resolve().parent
MP3_RATES = (22_050, 32_000, 44_100)
MODES = ("decode", "merkit", "merkit-serial", "merkit-pipelined", "librosa", "librosa-1blas")
MERKIT_MODES = ("merkit", "merkit-serial", "merkit-pipelined")
INFORMATIONAL = ("merkit-pipelined", "librosa-1blas")
"""Rows shown for context only: the targets compare the `merkit`, `decode` and `librosa` rows."""
TARGET_VS_DECODE, TARGET_VS_PAPER = 1.5, 3.0
"""Issue 17: merkit cold within 1.5x of decoding alone and at least 3x the paper's pipeline."""
PREVIOUS_VERSION = "1"
"""The logmel representation's cache version before this benchmark's changes."""
SETTLE_S = 0.2
"""Untimed pause before each block: after a BLAS call (librosa's mel product) OpenBLAS keeps its
worker thread spinning on a full core for ~0.1 s, which would otherwise be charged to, and take a
core from, whichever mode runs next."""


# ---- test files ------------------------------------------------------------------------------


def make_mp3s(source: Path, out: Path, n: int) -> list[Path]:
    """MP3 re-encodes of ``n`` clips of ``source`` (n/4 per quadrant folder, sorted by name).

    Clip *i* is resampled (soxr HQ) to ``MP3_RATES[i % 3]`` and, for odd ``i // 3``, made stereo
    (the right channel slightly decorrelated: 0.9 x + 0.1 x delayed by 11 samples); it is scaled
    to a 0.9 peak and written by libsndfile/LAME at ~128-160 kbit/s CBR. Existing files are kept.
    """
    quadrants = [d for d in sorted(source.iterdir()) if d.is_dir()] or [source]
    per = max(1, n // len(quadrants))
    clips = [
        p
        for q in quadrants
        for p in sorted(p for p in q.iterdir() if p.suffix.lower() in AUDIO_EXTENSIONS)[:per]
    ][:n]
    made = []
    for i, path in enumerate(clips):
        target = out / path.parent.name / f"{path.stem}.mp3"
        made.append(target)
        if target.exists():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        y, sr = sf.read(str(path), dtype="float32", always_2d=True)
        rate, stereo = MP3_RATES[i % 3], (i // 3) % 2 == 1
        y = soxr.resample(y.mean(axis=1), sr, rate, quality="HQ").astype(np.float32)
        if stereo:
            y = np.stack([y, 0.9 * y + 0.1 * np.roll(y, 11)], axis=1)
        y *= np.float32(0.9 / max(float(np.abs(y).max()), 1e-9))
        partial = target.with_suffix(".part")
        sf.write(
            str(partial), y, rate, format="MP3", subtype="MPEG_LAYER_III",
            compression_level=0.6, bitrate_mode="CONSTANT",
        )  # fmt: skip
        partial.rename(target)
    return made


def find_files(root: Path, limit: int | None) -> list[Path]:
    paths = sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS)
    if not paths:
        sys.exit(f"no audio files under {root}")
    return paths[:limit]


# ---- the modes -------------------------------------------------------------------------------


def decode_only(paths: list[Path], _: Any) -> None:
    for path in paths:
        sf.read(str(path), dtype="float32")


def librosa_pipeline(paths: list[Path], _: Any) -> None:
    import librosa

    for path in paths:
        y, _sr = librosa.load(path, sr=16_000)
        mel = librosa.feature.melspectrogram(y=y, sr=16_000, n_fft=2048, hop_length=512, n_mels=128)
        librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=80.0)


def librosa_one_blas_thread(paths: list[Path], _: Any) -> None:
    """The paper's pipeline with OpenBLAS held to one thread (``threadpoolctl``)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        librosa_pipeline(paths, _)


def dataset_of(paths: list[Path]) -> Dataset:
    return Dataset("files", [Song(f"{i:05d}", FileSource(p), "Q1") for i, p in enumerate(paths)])


def merkit_pipelined(paths: list[Path], cache: FeatureCache) -> None:
    compute(dataset_of(paths), "logmel", cache=cache, n_jobs=1, progress=False)


def merkit_serial(paths: list[Path], cache: FeatureCache) -> None:
    jobs = SongJobs((_song_job("logmel", None, cache, 0),))
    for path in paths:
        jobs(FileSource(path))


def merkit_decode_ahead(paths: list[Path], cache: FeatureCache) -> None:
    jobs = SongJobs((_song_job("logmel", None, cache, 0),))
    for _ in pipelined(jobs, [FileSource(path) for path in paths]):
        pass


RUNNERS: dict[str, Callable[[list[Path], Any], None]] = {
    "decode": decode_only,
    "merkit": merkit_pipelined,
    "merkit-serial": merkit_serial,
    "merkit-pipelined": merkit_decode_ahead,
    "librosa": librosa_pipeline,
    "librosa-1blas": librosa_one_blas_thread,
}


# ---- the previous implementation, for the identity check -------------------------------------


def reference_logmel(path: Path) -> np.ndarray:
    """``logmel`` as merkit computed it before this benchmark's changes, stored as float16."""
    data, native = sf.read(str(path), dtype="float32", always_2d=True)
    y = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]
    if native != 16_000:
        y = np.asarray(soxr.resample(y, native, 16_000, quality="HQ"), dtype=np.float32)
    y = (y * np.float32(10.0 ** (-0.1 / 20.0) / float(np.max(np.abs(y))))).astype(np.float32)
    cfg = LogMelConfig()
    y = y[-cfg.crop_samples :]
    padded = np.pad(y, cfg.n_fft // 2, mode="constant")
    frames = np.lib.stride_tricks.sliding_window_view(padded, cfg.n_fft)[:: cfg.hop_length]
    window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(cfg.n_fft) / cfg.n_fft)).astype(np.float32)
    spectrum = scipy.fft.rfft(frames * window, axis=1)
    power = spectrum.real**2 + spectrum.imag**2
    basis_t = scipy.sparse.csr_matrix(mel_filterbank(16_000, cfg.n_fft, cfg.n_mels).T)
    mel = np.ascontiguousarray(power @ basis_t, dtype=np.float32)
    db = 10.0 * np.log10(np.maximum(mel, np.float32(1e-10)))
    db = np.maximum(db, db.max() - np.float32(80.0)).astype(np.float32)
    if len(db) > cfg.n_frames:
        db = db[-cfg.n_frames :]
    elif len(db) < cfg.n_frames:
        pad = np.full((cfg.n_frames - len(db), db.shape[1]), db.min(), dtype=np.float32)
        db = np.concatenate([db, pad])
    return db.astype(np.float16)


def identity_check(paths: list[Path], cache_root: Path) -> dict[str, Any]:
    """Compare merkit's cached values (the last round's cache) with :func:`reference_logmel`."""
    cache = FeatureCache(cache_root)
    job = _song_job("logmel", None, cache, 0)
    worst, identical = 0.0, 0
    for path in paths:
        stored = job.cached(FileSource(path))
        assert stored is not None, f"{path} is missing from the cache"
        ref = reference_logmel(path)
        identical += int(np.array_equal(stored.view(np.int16), ref.view(np.int16)))
        diff = np.abs(stored.astype(np.float32) - ref.astype(np.float32)).max()
        worst = max(worst, float(diff))
    return {
        "files": len(paths),
        "bit_identical": identical,
        "max_abs_diff_db": worst,
        "version": job.rep.version,
    }


# ---- driver ----------------------------------------------------------------------------------


def machine_busy_seconds() -> float | None:
    """CPU seconds every process on the machine has used (all CPUs), from ``/proc/stat``.

    Minus this process's own CPU time over the same interval, it is what other processes took
    while a mode ran: a pipelined mode can only run its two threads at once where that leaves a
    second CPU free. ``None`` where ``/proc/stat`` is missing (not Linux).
    """
    try:
        with open("/proc/stat") as handle:
            fields = [int(v) for v in handle.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")  # user .. steal, no guest


def wait_for_quiet(limit_s: float, threshold: float = 0.2, window_s: float = 1.0) -> bool:
    """Wait (up to ``limit_s``) until other processes use under ``threshold`` CPUs for a window.

    Returns whether the machine was quiet before the limit. The shared machine's other users come
    and go in bursts; a block that starts in a quiet moment is likelier to measure the pipelined
    mode with its second core free. What other processes took during each mode is reported
    either way.
    """
    started = time.perf_counter()
    while True:
        b0, c0 = machine_busy_seconds(), time.process_time()
        time.sleep(window_s)
        b1, c1 = machine_busy_seconds(), time.process_time()
        if b0 is None or b1 is None:
            return False
        if (b1 - b0 - (c1 - c0)) / window_s < threshold:
            return True
        if time.perf_counter() - started >= limit_s:
            return False


def run(
    paths: list[Path], rounds: int, block: int, work: Path, wait_quiet_s: float = 0.0
) -> dict[str, Any]:
    # Warm-up, not timed: imports (librosa), the cached filterbank, first-call set-up.
    for mode in MODES:
        RUNNERS[mode](paths[:1], FeatureCache(work / f"warm-{mode}"))
    blocks = [paths[i : i + block] for i in range(0, len(paths), block)]
    wall = {m: [0.0] * rounds for m in MODES}
    cpu = {m: [0.0] * rounds for m in MODES}
    others = {m: [0.0] * rounds for m in MODES}  # CPU seconds other processes used meanwhile
    loads: list[float] = []
    turn = 0
    wait = {"budget_s": wait_quiet_s, "waited_s": 0.0, "blocks": 0, "quiet_starts": 0}
    for r in range(rounds):
        caches = {m: FeatureCache(work / f"round{r}-{m}") for m in MERKIT_MODES}
        for files in blocks:
            order = MODES[turn % len(MODES) :] + MODES[: turn % len(MODES)]
            turn += 1
            for mode in order:
                loads.append(os.getloadavg()[0])
                time.sleep(SETTLE_S)  # the previous mode's idle threads stop spinning
                if wait_quiet_s > 0:
                    wait["blocks"] += 1
                    left = wait_quiet_s - wait["waited_s"]
                    if left > 0:
                        w0 = time.perf_counter()
                        wait["quiet_starts"] += wait_for_quiet(min(20.0, left))
                        wait["waited_s"] += time.perf_counter() - w0
                b0 = machine_busy_seconds()
                w0, c0 = time.perf_counter(), time.process_time()
                RUNNERS[mode](files, caches.get(mode))
                wall[mode][r] += time.perf_counter() - w0
                cpu[mode][r] += time.process_time() - c0
                b1 = machine_busy_seconds()
                if b0 is not None and b1 is not None:
                    others[mode][r] += max(0.0, (b1 - b0) - (time.process_time() - c0))
        print(
            f"round {r + 1}/{rounds}: "
            + "  ".join(f"{m} {wall[m][r]:.1f}s" for m in MODES)
            + f"  load {loads[-1]:.1f}",
            flush=True,
        )
        if r < rounds - 1:
            for cache in caches.values():
                shutil.rmtree(cache.root, ignore_errors=True)
    n = len(paths)
    modes = {
        m: {
            "wall_s_per_round": [round(x, 3) for x in wall[m]],
            "cpu_s_per_round": [round(x, 3) for x in cpu[m]],
            "wall_ms_per_clip": round(1000 * statistics.median(wall[m]) / n, 2),
            "cpu_ms_per_clip": round(1000 * statistics.median(cpu[m]) / n, 2),
            "other_processes_cpus": round(sum(others[m]) / sum(wall[m]), 2),
        }
        for m in MODES
    }
    return {
        "modes": modes,
        "load_average_1min": {
            "min": round(min(loads), 2),
            "mean": round(statistics.fmean(loads), 2),
            "max": round(max(loads), 2),
        },
        "wait_for_quiet": {**wait, "waited_s": round(wait["waited_s"], 1)},
        "last_cache": str(work / f"round{rounds - 1}-merkit"),
    }


def ratios(modes: dict[str, Any], key: str) -> dict[str, float]:
    decode, librosa = modes["decode"][key], modes["librosa"][key]
    out = {}
    for m in MERKIT_MODES:
        out[f"{m}_vs_decode"] = round(modes[m][key] / decode, 3)
        out[f"librosa_vs_{m}"] = round(librosa / modes[m][key], 3)
    out["librosa_vs_decode"] = round(librosa / decode, 3)
    one = modes["librosa-1blas"][key]
    for m in ("merkit", "merkit-serial"):
        out[f"librosa-1blas_vs_{m}"] = round(one / modes[m][key], 3)
    out["librosa-1blas_vs_decode"] = round(one / decode, 3)
    return out


def describe_files(paths: list[Path]) -> dict[str, Any]:
    kinds: dict[str, int] = {}
    seconds = 0.0
    for path in paths:
        info = sf.info(str(path))
        seconds += info.duration
        kind = f"{info.format} {info.samplerate} Hz {'stereo' if info.channels == 2 else 'mono'}"
        kinds[kind] = kinds.get(kind, 0) + 1
        path.read_bytes()  # warm the page cache: no mode pays for the first disk read
    return {"audio_seconds": round(seconds, 1), "kinds": dict(sorted(kinds.items()))}


def write_markdown(result: dict[str, Any], path: Path) -> None:
    modes, wall, cpu = result["modes"], result["ratios_wall"], result["ratios_cpu"]
    check = result["identity"]
    load = result["load_average_1min"]
    wait = result["wait_for_quiet"]
    lines = [
        "# Log-mel extraction speed: merkit cold vs decoding alone vs the paper's pipeline",
        "",
        f"Generated by `benchmarks/extract_speed.py` on {result['date']} (one run).",
        "",
        f"Command: `{result['command']}`",
        "",
        f"Files: {result['n_clips']} under `{result['root']}` "
        f"({result['files']['audio_seconds']:.0f} s of audio): "
        + ", ".join(f"{k} x{v}" for k, v in result["files"]["kinds"].items())
        + ".",
        "",
        *([result["files_note"], ""] if result.get("files_note") else []),
        f"{result['rounds']} rounds over every file; within a round the modes alternate every "
        f"{result['block']} files (rotating order). Figures are the median round, per clip. "
        f"1-minute load average during the run: {load['min']:.1f}-{load['max']:.1f} "
        f"(mean {load['mean']:.1f}) on {result['machine']['nproc']} CPUs."
        + (
            " Before each block the benchmark waited until other processes had used under 0.2 "
            f"CPUs for 1 s (at most 20 s per block, {wait['budget_s']:g} s in all): "
            f"{wait['quiet_starts']} of {wait['blocks']} blocks started in such a quiet "
            f"second; {wait['waited_s']:.0f} s of waiting in all."
            if wait["blocks"]
            else ""
        ),
        "",
        "| mode | wall ms/clip | x decode (wall) | CPU ms/clip | x decode (CPU) "
        "| other processes' CPU |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    base_wall, base_cpu = modes["decode"]["wall_ms_per_clip"], modes["decode"]["cpu_ms_per_clip"]
    for name in MODES:
        mode = modes[name]
        label = f"{name} (informational)" if name in INFORMATIONAL else name
        lines.append(
            f"| {label} | {mode['wall_ms_per_clip']:.1f} | "
            f"{mode['wall_ms_per_clip'] / base_wall:.2f} | {mode['cpu_ms_per_clip']:.1f} | "
            f"{mode['cpu_ms_per_clip'] / base_cpu:.2f} | {mode['other_processes_cpus']:.2f} |"
        )
    near, faster = wall["merkit_vs_decode"], wall["librosa_vs_merkit"]
    met = near <= TARGET_VS_DECODE and faster >= TARGET_VS_PAPER
    version = check.get("version")
    lines += [
        "",
        f"- **merkit cold / decode only: {near:.2f}x wall** "
        f"({cpu['merkit_vs_decode']:.2f}x CPU time); one thread (`merkit-serial`): "
        f"{wall['merkit-serial_vs_decode']:.2f}x wall, {cpu['merkit-serial_vs_decode']:.2f}x CPU; "
        f"the previous default (`merkit-pipelined`): {wall['merkit-pipelined_vs_decode']:.2f}x "
        "wall.",
        f"- **the paper's pipeline / merkit cold: {faster:.2f}x wall** "
        f"({cpu['librosa_vs_merkit']:.2f}x CPU); vs `merkit-serial` "
        f"{wall['librosa_vs_merkit-serial']:.2f}x wall, "
        f"{cpu['librosa_vs_merkit-serial']:.2f}x CPU.",
        f"- Issue 17's targets (merkit cold <= {TARGET_VS_DECODE:g}x decode only and the paper's "
        f"pipeline >= {TARGET_VS_PAPER:g}x merkit cold, wall, `merkit` and `librosa` rows, this "
        f"run): **{'both met' if met else 'not both met'}** "
        f"({'met' if near <= TARGET_VS_DECODE else 'missed'}, "
        f"{'met' if faster >= TARGET_VS_PAPER else 'missed'}).",
        f"- Informational: the paper's pipeline with one BLAS thread (`librosa-1blas`) / merkit "
        f"cold: {wall['librosa-1blas_vs_merkit']:.2f}x wall "
        f"({cpu['librosa-1blas_vs_merkit']:.2f}x CPU); vs `merkit-serial` "
        f"{wall['librosa-1blas_vs_merkit-serial']:.2f}x wall, "
        f"{cpu['librosa-1blas_vs_merkit-serial']:.2f}x CPU (one thread each).",
        f"- Values: {check['bit_identical']} of {check['files']} cached log-mels are bit-identical "
        f"to the previous implementation (max abs difference {check['max_abs_diff_db']:g} dB); "
        f"the representation's cache version is {version}"
        + (" as before." if version == PREVIOUS_VERSION else f" (was {PREVIOUS_VERSION})."),
    ]
    lines += footer(result["machine"], result["versions"], result["notes"])
    path.write_text("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--root", type=Path, help="folder of audio files (searched recursively)")
    parser.add_argument("--make-mp3", type=Path, help="write MP3 re-encodes here, then use them")
    parser.add_argument(
        "--source", type=Path, default=HERE.parents[1] / "shared/data/4qaed",
        help="clips --make-mp3 re-encodes (4QAED layout: Q1..Q4 folders)",
    )  # fmt: skip
    parser.add_argument("--n-mp3", type=int, default=200, help="clips --make-mp3 writes")
    parser.add_argument("--limit", type=int, default=None, help="first N files (default: all)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--block", type=int, default=20, help="files per mode before switching")
    parser.add_argument(
        "--wait-quiet", type=float, default=0.0, metavar="S",
        help="before each block wait (at most 20 s, S seconds in all) for a second in which "
        "other processes use < 0.2 CPUs",
    )  # fmt: skip
    parser.add_argument(
        "--malloc", choices=("cli", "default"), default="cli",
        help="cli: run (every mode) under the glibc malloc settings the merkit command sets for "
        "itself (heap reuse, huge pages); default: glibc's defaults",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, default=HERE / "results" / "extract_speed.json")
    args = parser.parse_args()
    if args.malloc == "cli":
        from merkit.training.runtime import malloc_reexec_environment

        env = malloc_reexec_environment()
        if env is not None:  # GLIBC_TUNABLES is read at start-up only: re-execute, as merkit does
            os.execve(sys.executable, [sys.executable, *sys.argv], env)

    files_note = None
    if args.make_mp3 is not None:
        print(f"writing MP3 re-encodes of {args.n_mp3} clips of {args.source} to {args.make_mp3}")
        make_mp3s(args.source, args.make_mp3, args.n_mp3)
        files_note = (
            f"These are MP3 re-encodes made by `--make-mp3` (libsndfile/LAME, CBR ~128-160 "
            f"kbit/s, rates {'/'.join(str(r) for r in MP3_RATES)} Hz, mono and stereo) of "
            f"{args.n_mp3} clips of `{args.source}`, which itself is a 16 kHz mono Opus "
            "re-encode of 4QAED: not the original 4QAED MP3s."
        )
    root = args.root or args.make_mp3
    if root is None:
        parser.error("give --root or --make-mp3")
    paths = find_files(root, args.limit)
    files = describe_files(paths)
    print(f"{len(paths)} files, {files['audio_seconds']:.0f} s of audio", flush=True)

    started = machine()
    with tempfile.TemporaryDirectory(prefix="extract-speed-") as work:
        timing = run(paths, args.rounds, args.block, Path(work), args.wait_quiet)
        identity = identity_check(paths, Path(timing.pop("last_cache")))
    modes = timing["modes"]
    result = {
        "benchmark": "extract_speed",
        "date": timestamp(),
        "command": command_line(),
        "root": str(root),
        "files_note": files_note,
        "n_clips": len(paths),
        "files": files,
        "rounds": args.rounds,
        "block": args.block,
        "representation": "logmel (942 x 128, 16 kHz, float16 in the cache)",
        **timing,
        "ratios_wall": ratios(modes, "wall_ms_per_clip"),
        "ratios_cpu": ratios(modes, "cpu_ms_per_clip"),
        "identity": identity,
        "glibc_tunables": os.environ.get("GLIBC_TUNABLES"),
        "machine": started,
        "versions": versions(),
        "notes": [
            "Wall: time.perf_counter; CPU: time.process_time (every thread of the process). "
            "The machine is shared: when the load exceeds the CPU count other processes take "
            "CPU time from every mode, and wall figures are high for all of them alike.",
            "`merkit` computes two whole songs at a time in two threads (decode, mixdown, "
            "resampling, log-mel, cache write: "
            "`merkit.representations.extract.threaded`, the default of "
            "`compute(..., n_jobs=1)` for thread-safe representations), converting each result "
            "to float32 as it arrives: its wall time can only beat its CPU time where a second "
            "core is free. `merkit-serial` does the same work in one thread. "
            "`merkit-pipelined` (informational) is the previous default, kept for "
            "representations that are not thread-safe: a second thread decodes songs i+1 and "
            "i+2 while this one computes song i. Each block of files is one `compute` call, so "
            "each block pays once for starting and draining its threads.",
            "Other processes' CPU: CPUs busy (`/proc/stat`, all processes) minus this process's "
            "CPU time, per second of the mode's wall time, over every round: the share of the "
            "machine's CPUs that other programs took while the mode ran.",
            "Every merkit mode starts each round with an empty cache and pays for hashing each "
            "file, the cache lookup, and writing each float16 .npy atomically.",
            "`librosa-1blas` runs the librosa mode under `threadpoolctl.threadpool_limits(1)`: "
            "librosa's mel product is a float32 GEMM, and OpenBLAS's second thread keeps "
            "spinning for ~0.1 s after each call, which more than doubles the mode's CPU time "
            "and, when another program holds the other core, its wall time too. Its CPU time is "
            "the paper's pipeline's own work in one thread.",
            "The librosa mode is the paper's per-file code path (no cache, no peak "
            "normalisation, no crop to 942 frames); librosa.load decodes with soundfile too.",
            f"malloc: GLIBC_TUNABLES={os.environ.get('GLIBC_TUNABLES') or '(unset)'} for every "
            "mode. `--malloc cli` (the default) runs under the settings the `merkit` command "
            "re-executes itself with (merkit.training.runtime.malloc_reexec_environment), so the "
            "merkit modes measure what `merkit benchmark`/`train` pay; with glibc's defaults each "
            "song's large arrays are page-faulted afresh (~1 500 faults, ~6 ms of system time "
            "per clip in one thread; see extract_speed_default_malloc.md).",
            f"Before each block the benchmark sleeps {SETTLE_S} s, untimed: after a BLAS call "
            "(the librosa mode's mel product) OpenBLAS keeps a worker thread spinning on a full "
            "core for ~0.1 s, which would otherwise be charged to the next mode and take the "
            "core a pipelined mode decodes on.",
            "Every file was read once before timing (warm page cache for all modes), and each "
            "mode ran once on the first file before timing (imports, filterbank, first calls).",
        ],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    write_markdown(result, args.out.with_suffix(".md"))
    print(json.dumps({"ratios_wall": result["ratios_wall"], "ratios_cpu": result["ratios_cpu"]}))
    print(f"wrote {args.out} and {args.out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
