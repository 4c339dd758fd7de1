"""Does a song get the same quadrant whatever its encoding?  Out-of-fold, over all 4QAED songs.

Two steps, each resumable:

``prepare``
    Re-encodes every song of the dataset (from its original file, here 16 kHz mono Opus) into
    ``--cache`` (a folder under /tmp; audio is never committed) in each of :data:`ENCODINGS` --
    MP3 at 22.05, 32 and 44.1 kHz, an Opus re-encode at 48 kHz, a 44.1 kHz stereo WAV -- and
    computes the method's inputs (e.g. ``own-features``) of every file through the merkit
    feature cache. Songs are processed in a seeded random order, one song's encodings at a time,
    so an interrupted run leaves every encoding of an unbiased sample of songs done; a file is
    written to a temporary name and renamed, so a killed encoder never leaves a half file.

``evaluate``
    10-fold stratified CV (seeded): the recipe (``--method NAME --config YAML``, resolved by
    :func:`merkit.methods.resolve_method`) is fitted on the training songs' *original* clips
    (with ``--augment-codecs``: on the originals plus every re-encode of the same training songs,
    so a song's copies never cross the train/test line) and predicts the test songs in every
    encoding. Reports the share of songs whose predicted quadrant is the same in all encodings,
    each encoding's agreement with the original, and each encoding's accuracy and macro F1.
    With ``--variance`` it also ranks the features of a single-array input by the ratio of their
    within-song variance (across encodings) to their between-song variance.

Usage::

    python benchmarks/encoding_agreement.py prepare --root ../shared/data/4qaed \\
        --cache /tmp/merkit-encodings [--method svm-own] [--limit N]
    python benchmarks/encoding_agreement.py evaluate --root ../shared/data/4qaed \\
        --cache /tmp/merkit-encodings --method svm-own [--config YAML] [--augment-codecs] \\
        [--variance] --out benchmarks/results/4qaed_encoding_agreement

The features go to merkit's feature cache ($MERKIT_CACHE), keyed by each file's content.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import pickle
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

ORIGINAL = "original"


@dataclass(frozen=True)
class Encoding:
    """One re-encode: container/codec, sample rate, channels and libsndfile's compression level.

    ``compression_level`` is libsndfile's 0 (best) .. 1 (smallest); the bitrate it gives is
    measured from the files and reported.
    """

    name: str
    format: str
    subtype: str
    sr: int
    channels: int
    suffix: str
    compression_level: float | None = None
    bitrate_mode: str | None = None


ENCODINGS: tuple[Encoding, ...] = (
    Encoding("mp3-22k-mono", "MP3", "MPEG_LAYER_III", 22_050, 1, ".mp3", 0.8, "CONSTANT"),
    Encoding("mp3-32k-mono", "MP3", "MPEG_LAYER_III", 32_000, 1, ".mp3", 0.8, "CONSTANT"),
    Encoding("mp3-44k-stereo", "MP3", "MPEG_LAYER_III", 44_100, 2, ".mp3", 0.65, "CONSTANT"),
    Encoding("opus-48k-mono", "OGG", "OPUS", 48_000, 1, ".opus.ogg", 0.8),
    Encoding("wav-44k-stereo", "WAV", "PCM_16", 44_100, 2, ".wav"),
)
"""The re-encodes made of every song (mono sources are duplicated into both stereo channels)."""


def encoded_path(cache: Path, encoding: Encoding, song_id: str) -> Path:
    return cache / encoding.name / f"{song_id}{encoding.suffix}"


def encode(source: Path, target: Path, encoding: Encoding) -> None:
    """Decode ``source``, resample (soxr HQ) and write ``target`` in ``encoding``, atomically.

    The decoded 4QAED Opus clips overshoot full scale (by up to ~1 dB): the lossy encoders take
    the float samples as they are (as ffmpeg's libmp3lame and libopus do), while 16-bit PCM is
    clipped to [-1, 1] as any decoder writing a WAV does (libsndfile would wrap around).
    """
    import soundfile as sf
    import soxr

    data, sr = sf.read(str(source), dtype="float32", always_2d=True)
    y = data.mean(axis=1)
    if sr != encoding.sr:
        y = soxr.resample(y, sr, encoding.sr, quality="HQ").astype(np.float32)
    if encoding.subtype.startswith("PCM"):
        y = np.clip(y, -1.0, 1.0)
    frames = np.repeat(y[:, None], encoding.channels, axis=1)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    options: dict[str, Any] = {}
    if encoding.compression_level is not None:
        options["compression_level"] = encoding.compression_level
    if encoding.bitrate_mode is not None:
        options["bitrate_mode"] = encoding.bitrate_mode
    sf.write(
        str(partial),
        frames,
        encoding.sr,
        format=encoding.format,
        subtype=encoding.subtype,
        **options,
    )
    partial.replace(target)


def _dataset(root: Path) -> Any:
    from merkit.datasets.fourqaed import load_4qaed

    return load_4qaed(root)


def _song_order(song_ids: list[str], seed: int) -> list[int]:
    return list(np.random.default_rng(seed).permutation(len(song_ids)))


def _jobs(input_names: tuple[str, ...], seed: int) -> list[Any]:
    """One :class:`~merkit.representations.extract.SongJob` per representation input
    (tables are refused)."""
    from merkit.core.errors import ConfigError
    from merkit.core.inputs import parse_input
    from merkit.representations.cache import FeatureCache
    from merkit.representations.extract import SongJob
    from merkit.representations.registry import get_representation

    jobs = []
    for name in input_names:
        parsed = parse_input(name)
        if parsed.kind != "representation":
            raise ConfigError(
                f"input {name!r} is a feature table, not computed from audio: a re-encode "
                "cannot change it, so this benchmark needs a method with audio inputs only"
            )
        rep = get_representation(name)
        merged = dict(rep.params)
        sr = int(merged.pop("sr", rep.sr))
        jobs.append(SongJob(rep, sr, merged, FeatureCache(), int(seed)))
    return jobs


def _resolve(args: argparse.Namespace) -> Any:
    from merkit.methods import ResolvedMethod, read_settings, resolve_method

    if args.model is not None:
        from merkit.product.model_dir import open_model_dir

        manifest, estimator = open_model_dir(args.model)
        inputs = tuple(i.name for i in manifest.inputs)
        return ResolvedMethod.of(f"model:{args.model}", estimator, inputs)
    settings = read_settings(args.config).get(args.method) if args.config else None
    return resolve_method(args.method, settings)


def prepare(args: argparse.Namespace) -> None:
    """Encode every song in every encoding and compute the method's inputs for each file."""
    from merkit.datasets.base import FileSource

    dataset = _dataset(args.root)
    resolved = _resolve(args)
    jobs = _jobs(resolved.inputs, args.seed)
    songs = dataset.songs
    order = _song_order([s.song_id for s in songs], args.seed)
    start = time.perf_counter()
    # The originals first, all of them: every fold trains on them.
    for done, index in enumerate(order, 1):
        for job in jobs:
            job(songs[index].source)
        if done % 100 == 0:
            print(f"originals: {done}/{len(order)} ({time.perf_counter() - start:.0f} s)")
    if args.limit:
        order = order[: args.limit]
    for done, index in enumerate(order, 1):
        song = songs[index]
        for encoding in ENCODINGS:
            target = encoded_path(args.cache, encoding, song.song_id)
            if not target.exists():
                encode(Path(song.source.path), target, encoding)
            for job in jobs:
                job(FileSource(target))
        if done % 10 == 0:
            elapsed = time.perf_counter() - start
            print(f"re-encodes: {done}/{len(order)} songs ({elapsed:.0f} s)", flush=True)
    print("prepare: done", flush=True)


def _arrays(
    dataset: Any, resolved: Any, source_of: Any, seed: int, original: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The method's inputs of every song with its audio taken from ``source_of(song)``.

    With ``original`` (the originals' inputs) and a method whose extra inputs are training-only
    copies (:class:`merkit.estimators.augmentation.AugmentedClassifier`), only the first input is
    computed:
    predicting reads nothing else, and the copies of re-encodes would cost a feature pass each.
    """
    from dataclasses import replace

    from merkit.datasets.base import Dataset
    from merkit.protocol.runner import resolve_inputs

    names = list(resolved.inputs)
    if original is not None and getattr(resolved.estimator, "training_only_copies", False):
        names = names[:1]
    songs = [replace(s, source=source_of(s)) for s in dataset.songs]
    view = Dataset(dataset.name, songs, root=dataset.root)
    computed = resolve_inputs(view, names, progress=False, seed=seed)
    return {name: computed.get(name, (original or {}).get(name)) for name in resolved.inputs}


def _all_arrays(
    dataset: Any, resolved: Any, args: argparse.Namespace, present: list[bool]
) -> dict[str, dict[str, Any]]:
    """Inputs of every song in the original and in each encoding (the original where missing)."""
    from merkit.datasets.base import FileSource

    ids = dataset.song_ids
    arrays = {ORIGINAL: _arrays(dataset, resolved, lambda s: s.source, args.seed)}
    for encoding in ENCODINGS:
        arrays[encoding.name] = _arrays(
            dataset,
            resolved,
            lambda s, e=encoding: (
                FileSource(encoded_path(args.cache, e, s.song_id))
                if present[ids.index(s.song_id)]
                else s.source
            ),
            args.seed,
            arrays[ORIGINAL],
        )
    return arrays


def _stack(arrays: list[Any]) -> Any:
    if isinstance(arrays[0], dict):
        return {key: _stack([a[key] for a in arrays]) for key in arrays[0]}
    if isinstance(arrays[0], list):
        return [row for part in arrays for row in part]
    return np.concatenate(arrays, axis=0)


def variance_ratio(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Within-song and between-song variance of each feature, and their ratio.

    Parameters
    ----------
    values : np.ndarray
        Shape ``(n_encodings, n_songs, n_features)``: each song's features in each encoding.

    Returns
    -------
    within, between, ratio : np.ndarray
        ``within``: the mean over songs of the variance across encodings; ``between``: the
        variance over songs of each song's mean over encodings; ``ratio = within / between``
        (``inf`` where ``between`` is 0 and ``within`` is not, 0 where both are).
    """
    values = np.asarray(values, dtype=np.float64)
    within = values.var(axis=0).mean(axis=0)
    between = values.mean(axis=0).var(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(between > 0, within / np.where(between > 0, between, 1.0), np.inf)
    ratio = np.where((between == 0) & (within == 0), 0.0, ratio)
    return within, between, ratio


def agreement(predictions: np.ndarray) -> float:
    """Share of songs (columns) whose prediction is the same in every encoding (rows)."""
    predictions = np.asarray(predictions)
    return float(np.mean(np.all(predictions == predictions[:1], axis=0)))


def evaluate(args: argparse.Namespace) -> None:
    from sklearn.base import clone
    from sklearn.metrics import accuracy_score, f1_score

    from merkit.protocol.folds import ProtocolConfig, make_folds
    from merkit.protocol.runner import _accepts

    dataset = _dataset(args.root)
    resolved = _resolve(args)
    names = [ORIGINAL, *(e.name for e in ENCODINGS)]
    ids = dataset.song_ids
    present = [all(encoded_path(args.cache, e, sid).exists() for e in ENCODINGS) for sid in ids]
    if args.limit:  # the first N songs of prepare's seeded order (runs on one song set)
        first = set(_song_order(ids, args.seed)[: args.limit])
        present = [ok and i in first for i, ok in enumerate(present)]
    keep = np.flatnonzero(present)
    print(f"{len(keep)}/{len(ids)} songs have every encoding")
    t0 = time.perf_counter()
    # Reading the inputs hashes every file (the feature cache is keyed by content): the
    # variants of one evaluation share them through a pickle beside the encodings.
    # What identifies each input's values: name, rate, parameters and version (as cache keys do).
    identity = [(j.rep.name, j.sr, j.params, j.rep.version) for j in _jobs(resolved.inputs, 0)]
    stamp = hashlib.sha256(repr((identity, keep.tolist(), args.seed)).encode()).hexdigest()
    snapshot = args.cache / f".inputs-{stamp[:16]}.pkl"
    if snapshot.exists():
        arrays = pickle.loads(snapshot.read_bytes())
    else:
        arrays = _all_arrays(dataset, resolved, args, present)
        partial = snapshot.with_suffix(".partial")
        partial.write_bytes(pickle.dumps(arrays))
        partial.replace(snapshot)
    print(f"inputs read in {time.perf_counter() - t0:.0f} s")
    labels = dataset.labels
    protocol = ProtocolConfig(n_splits=args.folds, n_repeats=1, random_state=args.seed)
    folds = make_folds(labels, protocol)
    predictions = np.full((len(names), len(ids)), -1)
    augment = _augment_names(args.augment_codecs)
    dropped: list[list[str]] = []
    if args.model is not None:
        # A trained model (e.g. the shipped one): it saw every 4QAED song, so this is in-sample.
        folds = []
        everyone = np.arange(len(ids))
        for row, name in enumerate(names):
            predictions[row] = resolved.estimator.predict(
                resolved.estimator_input(arrays[name], everyone)
            )
    for fold in folds:
        model = clone(resolved.estimator)
        train = fold.train
        # A training song's re-encodes join it in training (same group); never a test song's.
        copies = np.intersect1d(train, keep)
        x = _stack(
            [resolved.estimator_input(arrays[ORIGINAL], train)]
            + [resolved.estimator_input(arrays[e], copies) for e in augment]
        )
        y = np.concatenate([labels[train]] + [labels[copies]] * len(augment))
        groups = np.concatenate([train] + [copies] * len(augment))
        columns = None
        if args.drop_unstable is not None:
            columns, names_dropped = _stable_columns(arrays, names, resolved, copies, args)
            dropped.append(names_dropped)
            x = _select(x, columns)
        if _accepts(model.fit, "groups"):
            model.fit(x, y, groups=groups)
        else:
            model.fit(x, y)
        for row, name in enumerate(names):
            test = resolved.estimator_input(arrays[name], fold.test)
            predictions[row, fold.test] = model.predict(
                test if columns is None else _select(test, columns)
            )
        print(f"fold {fold.fold}: done ({time.perf_counter() - t0:.0f} s)", flush=True)
    pred = predictions[:, keep]
    truth = labels[keep]
    per_encoding = []
    for row, name in enumerate(names):
        per_encoding.append(
            {
                "encoding": name,
                "agreement_with_original": float(np.mean(pred[row] == pred[0])),
                "accuracy": float(accuracy_score(truth, pred[row])),
                "macro_f1": float(f1_score(truth, pred[row], average="macro")),
            }
        )
    # All songs' originals are predicted out-of-fold: accuracy on the whole dataset.
    on_all = {
        "songs": len(ids),
        "accuracy": float(accuracy_score(labels, predictions[0])),
        "macro_f1": float(f1_score(labels, predictions[0], average="macro")),
    }
    differing = [
        ids[i] for i, ok in zip(keep, np.all(pred == pred[:1], axis=0), strict=True) if not ok
    ]
    result: dict[str, Any] = {
        "method": resolved.name,
        "settings": resolved.settings,
        "augment_codecs": augment,
        "drop_unstable": args.drop_unstable,
        "dropped_per_fold": dropped,
        "folds": 0 if args.model is not None else args.folds,
        "model": None if args.model is None else str(args.model),
        "seed": args.seed,
        "songs": len(keep),
        "agreement_all": agreement(pred),
        "per_encoding": per_encoding,
        "original_all_songs": on_all,
        "seconds": round(time.perf_counter() - t0, 1),
        "songs_not_agreeing": differing,
        "song_ids": [ids[i] for i in keep],
        "predictions": {name: pred[row].tolist() for row, name in enumerate(names)},
        "encodings": [_describe(args.cache, e, [ids[i] for i in keep]) for e in ENCODINGS],
    }
    if args.variance:
        result["variance"] = _variance(arrays, names, resolved, keep, args.top)
    _write(args, result)


def _augment_names(value: str | None) -> list[str]:
    """Encodings whose copies of the training songs join training (``all`` or a comma list)."""
    from merkit.core.errors import ConfigError

    if not value:
        return []
    known = [e.name for e in ENCODINGS]
    chosen = known if value == "all" else [v.strip() for v in value.split(",") if v.strip()]
    unknown = [c for c in chosen if c not in known]
    if unknown:
        raise ConfigError(f"--augment-codecs: unknown encodings {unknown} (known: {known})")
    return chosen


def _stable_columns(
    arrays: dict[str, Any],
    names: list[str],
    resolved: Any,
    songs: np.ndarray,
    args: argparse.Namespace,
) -> tuple[dict[str, np.ndarray], list[str]]:
    """Per input, the columns whose within/between-song variance ratio over the *training*
    songs' encodings is <= the bound, and the names of the others."""
    keep: dict[str, np.ndarray] = {}  # by role where the method has roles (its input's keys)
    dropped: list[str] = []
    roles = resolved.roles or resolved.inputs
    for role, name in zip(roles, resolved.inputs, strict=True):
        values = np.stack([np.asarray(arrays[e][name])[songs] for e in names])
        if values.ndim != 3:
            raise SystemExit(f"--drop-unstable needs song-level vectors; {name} is not")
        ratio = variance_ratio(values)[2]
        keep[role] = np.flatnonzero(ratio <= args.drop_unstable)
        feature_names = _feature_names(name, values.shape[-1])
        dropped += [feature_names[j] for j in np.flatnonzero(ratio > args.drop_unstable)]
    return keep, dropped


def _select(x: Any, columns: dict[str, np.ndarray]) -> Any:
    """``x`` with only the kept columns of its one input; for a several-input ``x`` (a dict by
    role) the dropped columns are set to 0 instead, so that each member's own column
    settings (e.g. ``exclude_features`` by name) still see the full width: a constant column
    is 0 after the member's standardisation and adds nothing to an RBF kernel."""
    if not isinstance(x, dict):
        (keep,) = columns.values()
        return x[:, keep]
    out = {}
    for name, value in x.items():
        value = np.array(value, dtype=np.float32, copy=True)
        gone = np.setdiff1d(np.arange(value.shape[1]), columns[name])
        value[:, gone] = 0.0
        out[name] = value
    return out


def _describe(cache: Path, encoding: Encoding, song_ids: list[str]) -> dict[str, Any]:
    import soundfile as sf

    bits = seconds = 0.0
    for sid in song_ids:
        path = encoded_path(cache, encoding, sid)
        bits += path.stat().st_size * 8
        seconds += sf.info(str(path)).duration
    return {
        "name": encoding.name,
        "format": f"{encoding.format}/{encoding.subtype}",
        "sample_rate": encoding.sr,
        "channels": encoding.channels,
        "compression_level": encoding.compression_level,
        "bitrate_mode": encoding.bitrate_mode,
        "mean_kbps": round(bits / max(seconds, 1e-9) / 1000, 1),
    }


def _variance(
    arrays: dict[str, Any], names: list[str], resolved: Any, keep: np.ndarray, top: int
) -> list[dict[str, Any]]:
    if len(resolved.inputs) != 1:
        return []
    name = resolved.inputs[0]
    values = np.stack([np.asarray(arrays[e][name])[keep] for e in names])
    feature_names = _feature_names(name, values.shape[-1])
    within, between, ratio = variance_ratio(values)
    order = np.argsort(-ratio)[:top]
    return [
        {
            "feature": feature_names[j],
            "ratio": float(ratio[j]),
            "within": float(within[j]),
            "between": float(between[j]),
            # The mean shift of each encoding from the original, in between-song std units.
            "shift": {
                e: float((values[k, :, j] - values[0, :, j]).mean() / np.sqrt(between[j]))
                if between[j] > 0
                else 0.0
                for k, e in enumerate(names)
                if k
            },
        }
        for j in order
    ]


def _feature_names(name: str, n: int) -> list[str]:
    if name.startswith("own-features"):  # also its -bl and -canon variants
        from merkit.features.own import OWN_FEATURE_NAMES

        if len(OWN_FEATURE_NAMES) == n:
            return list(OWN_FEATURE_NAMES)
    return [f"{name}[{j}]" for j in range(n)]


def _sibling(out: Path, suffix: str) -> Path:
    """``out`` + ``suffix``: ``--out runs/x_drop0.02`` gives ``x_drop0.02.json``, where
    ``with_suffix`` would replace the ``.02``."""
    return out.with_name(out.name + suffix)


def _write(args: argparse.Namespace, result: dict[str, Any]) -> None:
    from _common import command_line, machine, versions

    result["command"] = command_line()
    result["machine"] = machine()
    result["versions"] = versions()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    _sibling(out, ".json").write_text(json.dumps(result, indent=1) + "\n")
    lines = ["encoding,agreement_with_original,accuracy,macro_f1"]
    lines += [
        f"{p['encoding']},{p['agreement_with_original']:.4f},{p['accuracy']:.4f},"
        f"{p['macro_f1']:.4f}"
        for p in result["per_encoding"]
    ]
    _sibling(out, ".csv").write_text("\n".join(lines) + "\n")
    print(json.dumps({k: result[k] for k in ("songs", "agreement_all")}))
    for p in result["per_encoding"]:
        print(p)


def report(args: argparse.Namespace) -> None:
    """Markdown of several ``evaluate`` runs (``--runs a.json b.json``) into ``--out``.md."""
    runs = [json.loads(Path(r).read_text()) for r in args.runs]
    first = runs[0]
    names = [p["encoding"] for p in first["per_encoding"]]
    lines = [
        "# Encoding agreement on 4QAED (out-of-fold)",
        "",
        f"Generated by `benchmarks/encoding_agreement.py` on {time.strftime('%Y-%m-%d %H:%M')}"
        " UTC.",
        "",
        f"Songs: {first['songs']} of {first['original_all_songs']['songs']} 4QAED songs with "
        f"every encoding ({args.note or 'all songs'}). Protocol: {first['folds']}-fold "
        f"stratified CV (seed {first['seed']}), one repeat: each fold's model is fitted on the "
        "training songs' original clips (plus, where said, re-encodes of those same training "
        "songs) and predicts the test songs in every encoding, so no prediction comes from a "
        "model that saw the song.",
        "",
        "## Encodings",
        "",
        "| name | format | rate Hz | channels | libsndfile compression | mean kbps |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
        "| original | OGG/OPUS (4QAED as distributed) | 16000 | 1 | | |",
    ]
    for e in first["encodings"]:
        lines.append(
            f"| {e['name']} | {e['format']} | {e['sample_rate']} | {e['channels']} | "
            f"{'' if e['compression_level'] is None else e['compression_level']} | "
            f"{e['mean_kbps']} |"
        )
    lines += [
        "",
        "Every re-encode is made from the decoded original (mono clips are duplicated into both "
        "stereo channels); lossy encoders take the float samples as they are, the WAV is "
        "clipped to 16-bit full scale.",
        "",
        "## Agreement",
        "",
        "| recipe | songs | re-encodes | same quadrant in original and all re-encodes | "
        + " | ".join(f"= original: {n}" for n in names[1:])
        + " | macro F1 original (all songs) |",
        "| --- | ---: | ---: | ---: | " + " | ".join("---:" for _ in names[1:]) + " | ---: |",
    ]
    for label, run in zip(args.labels or [r["method"] for r in runs], runs, strict=True):
        per = {p["encoding"]: p for p in run["per_encoding"]}
        lines.append(
            f"| {label} | {run['songs']} | {len(per) - 1} | {100 * run['agreement_all']:.2f} % | "
            + " | ".join(
                f"{100 * per[n]['agreement_with_original']:.2f}" if n in per else "–"
                for n in names[1:]
            )
            + f" | {100 * run['original_all_songs']['macro_f1']:.2f} |"
        )
    lines += [
        "",
        "## Macro F1 per encoding (the songs above)",
        "",
        "| recipe | " + " | ".join(names) + " |",
        "| --- | " + " | ".join("---:" for _ in names) + " |",
    ]
    for label, run in zip(args.labels or [r["method"] for r in runs], runs, strict=True):
        per = {p["encoding"]: p for p in run["per_encoding"]}
        lines.append(
            f"| {label} | "
            + " | ".join(f"{100 * per[n]['macro_f1']:.2f}" if n in per else "–" for n in names)
            + " |"
        )
    variance = next((r["variance"] for r in runs if r.get("variance")), None)
    if variance:
        lines += [
            "",
            "## Own features that move most with the encoding",
            "",
            "Ratio = mean over songs of the variance across the 6 encodings / variance over "
            "songs of each song's mean; shift = mean change from the original, in between-song "
            "standard deviations.",
            "",
            "| feature | ratio | " + " | ".join(f"shift {n}" for n in names[1:]) + " |",
            "| --- | ---: | " + " | ".join("---:" for _ in names[1:]) + " |",
        ]
        for v in variance:
            lines.append(
                f"| {v['feature']} | {v['ratio']:.3f} | "
                + " | ".join(f"{v['shift'][n]:+.2f}" for n in names[1:])
                + " |"
            )
    lines += ["", "## Commands", ""]
    for label, run in zip(args.labels or [r["method"] for r in runs], runs, strict=True):
        lines.append(f"- {label}: `{run['command']}` ({run['seconds']} s)")
    m = first["machine"]
    lines += [
        "",
        f"Machine: {m['cpu_model']}, nproc {m['nproc']}, {m['platform']}; 1-min load "
        f"{m['load_average'][0]:.1f} at the end of the first run.",
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in sorted(first["versions"].items())) + ".",
    ]
    if args.notes:
        lines += ["", Path(args.notes).read_text().rstrip()]
    out = Path(args.out)
    _sibling(out, ".md").write_text("\n".join(lines) + "\n")
    labelled = dict(zip(args.labels or [r["method"] for r in runs], runs, strict=True))
    _sibling(out, ".json").write_text(json.dumps(labelled, indent=1) + "\n")
    rows = ["recipe,encoding,songs,agreement_all,agreement_with_original,accuracy,macro_f1"]
    for label, run in labelled.items():
        rows += [
            f"{label},{p['encoding']},{run['songs']},{run['agreement_all']:.4f},"
            f"{p['agreement_with_original']:.4f},{p['accuracy']:.4f},{p['macro_f1']:.4f}"
            for p in run["per_encoding"]
        ]
    _sibling(out, ".csv").write_text("\n".join(rows) + "\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("step", choices=("prepare", "evaluate", "report"))
    parser.add_argument("--runs", nargs="*", default=[], help="report: evaluate JSON files")
    parser.add_argument("--labels", nargs="*", default=None, help="report: one label per run")
    parser.add_argument("--note", default=None, help="report: how the songs were chosen")
    parser.add_argument("--notes", default=None, help="report: a markdown file appended")
    parser.add_argument("--root", type=Path, default=Path("../shared/data/4qaed"))
    parser.add_argument("--cache", type=Path, default=Path("/tmp/merkit-encodings"))
    parser.add_argument("--method", default="svm-own")
    parser.add_argument("--config", type=Path, default=None)
    parser.add_argument(
        "--model",
        type=Path,
        default=None,
        help="evaluate: predict with this trained model directory instead of cross-validating "
        "--method (in-sample when it was trained on these songs)",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--folds", type=int, default=10)
    parser.add_argument(
        "--limit",
        type=int,
        default=0,
        help="the first N songs of the seeded order: prepare re-encodes, evaluate scores them",
    )
    parser.add_argument(
        "--augment-codecs",
        default=None,
        help="train on the training songs' re-encodes too: 'all' or a comma list of encodings",
    )
    parser.add_argument(
        "--drop-unstable",
        type=float,
        default=None,
        help="drop, in each fold, the features whose within/between-song variance ratio over "
        "the training songs' encodings exceeds this",
    )
    parser.add_argument("--variance", action="store_true")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--out", default="benchmarks/results/4qaed_encoding_agreement")
    parser.add_argument(
        "--encodings",
        default=None,
        help="a comma list of encodings to use instead of all of them (e.g. for a costly recipe)",
    )
    args = parser.parse_args(argv)
    if args.encodings:
        global ENCODINGS
        chosen = [n.strip() for n in args.encodings.split(",") if n.strip()]
        unknown = sorted(set(chosen) - {e.name for e in ENCODINGS})
        if unknown:
            parser.error(f"--encodings: unknown {unknown}")
        ENCODINGS = tuple(e for e in ENCODINGS if e.name in chosen)
    if args.step == "prepare":
        prepare(args)
    elif args.step == "report":
        report(args)
    else:
        evaluate(args)


if __name__ == "__main__":
    main()
