"""Prediction: windows over whole tracks, bounded memory, silence, bad input, and the CLI."""

from __future__ import annotations

import json
import math
import os
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
import soxr
from typer.testing import CliRunner

from conftest import make_4qaed_tree
from merkit.core.errors import AudioError, ConfigError
from merkit.core.labels import QUADRANTS
from merkit.product.export import train_final
from merkit.product.predict import (
    PredictionFailure,
    PredictionResult,
    Predictor,
    TrackStats,
    expected_windows,
    iter_windows,
    load_model,
)
from merkit.representations.cache import NullCache
from product_helpers import (
    BANDS,
    LOGREG,
    TWO_RATES,
    logreg_model_dir,
    music,
    register_test_methods,
    synthetic_files,
    tone,
    write_wav,
)

register_test_methods()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cheap model (band energies, logistic regression, 3 s windows) on synthetic songs."""
    return logreg_model_dir(tmp_path_factory)


@pytest.fixture(scope="module")
def predictor(model_dir: Path) -> Predictor:
    return load_model(model_dir)


# ---------------------------------------------------------------------------------------------
# Windows


@pytest.mark.parametrize(
    ("seconds", "spans"),
    [
        (1.2, [(0.0, 1.2)]),  # shorter than a window: the whole clip
        (3.0, [(0.0, 3.0)]),
        (3.5, [(0.0, 3.0)]),  # 0.5 s left < min(1 s, hop/2): no extra window
        (4.0, [(0.0, 3.0), (1.0, 4.0)]),  # 1 s left: a last window ending at the end
        (4.5, [(0.0, 3.0), (1.5, 4.5)]),
        (7.0, [(0.0, 3.0), (1.5, 4.5), (3.0, 6.0), (4.0, 7.0)]),
    ],
)
def test_window_placement(seconds: float, spans: list[tuple[float, float]]) -> None:
    sr = 16_000
    y = np.random.default_rng(0).uniform(-0.5, 0.5, round(seconds * sr)).astype(np.float32)
    stats = TrackStats(native_sr=sr)
    blocks = (y[i : i + 5000] for i in range(0, y.size, 5000))  # odd block size on purpose
    windows = list(iter_windows(blocks, stats, 3.0, 1.5))
    np.testing.assert_allclose([(w.start_s, w.end_s) for w in windows], spans, atol=1e-9)
    assert expected_windows(seconds, 3.0, 1.5) == len(spans)
    assert stats.duration_s == pytest.approx(seconds)
    for window, (start, end) in zip(windows, spans, strict=True):
        # cut at the track's own rate; resampling is the extraction's, per window as per clip
        assert window.sr == sr
        np.testing.assert_array_equal(window.audio, y[round(start * sr) : round(end * sr)])
        assert window.decode()[0] is window.audio
        np.testing.assert_array_equal(window.load(8000), load_like_training(window.audio, sr, 8000))


def load_like_training(y: np.ndarray, sr: int, to_sr: int) -> np.ndarray:
    """What a training clip of these samples becomes: resampled whole, then peak-normalised."""
    out = soxr.resample(y, sr, to_sr, quality="HQ").astype(np.float32)
    return out * np.float32(10 ** (-0.1 / 20) / float(np.abs(out).max()))


def test_two_sample_rates_predict_like_training(tmp_path: Path) -> None:
    songs = synthetic_files(tmp_path / "data", n_per_quadrant=2)
    model = train_final(TWO_RATES, songs, cache=NullCache(), progress=False)
    from merkit.protocol.runner import estimator_input, resolve_inputs

    inputs = resolve_inputs(songs, [s.name for s in model.manifest.inputs], cache=NullCache(),
                            progress=False)  # fmt: skip
    expected = model.estimator.predict_proba(estimator_input(inputs, np.arange(len(songs))))
    predictor = Predictor(model.manifest, model.estimator)
    got = [
        [predictor.predict(s.source.path).probabilities[q] for q in QUADRANTS] for s in songs.songs
    ]
    np.testing.assert_allclose(got, expected, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# Results


def test_result_fields_are_consistent(predictor: Predictor, tmp_path: Path) -> None:
    path = write_wav(tmp_path / "song.wav", music(5.0), 16_000)  # a steady tone is unreliable
    r = predictor.predict(path)
    p = r.probabilities
    assert list(p) == list(QUADRANTS)
    assert sum(p.values()) == pytest.approx(1.0)
    assert r.quadrant == max(p, key=p.get)
    assert r.confidence == pytest.approx(max(p.values()))
    assert r.p_high_arousal == pytest.approx(p["Q1"] + p["Q2"])
    assert r.p_positive_valence == pytest.approx(p["Q1"] + p["Q4"])
    assert r.arousal == ("high" if r.p_high_arousal >= 0.5 else "low")
    assert r.valence == ("positive" if r.p_positive_valence >= 0.5 else "negative")
    assert r.meaning == {"Q1": "happy/excited", "Q2": "angry/tense", "Q3": "sad/melancholic",
                         "Q4": "calm/serene"}[r.quadrant]  # fmt: skip
    assert (r.path, r.duration_s, r.n_windows) == (str(path), 5.0, 2)
    assert r.reliable and r.warnings == []
    assert r.segments is None


def _traced_peak(predictor: Predictor, path: Path) -> tuple[PredictionResult, int]:
    tracemalloc.start()
    try:
        result = predictor.predict(path, segments=True)
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _stereo_file(path: Path, seconds: float, sr: int = 22_050) -> Path:
    y = np.stack([tone(seconds, sr, 220.0), tone(seconds, sr, 660.0)], axis=1)
    return write_wav(path, y, sr, subtype="PCM_16")


def test_long_track_windows_and_bounded_memory(predictor: Predictor, tmp_path: Path) -> None:
    # 181 s of 22.05 kHz stereo PCM: 32 MB once decoded to float32, 11.6 MB at 16 kHz
    seconds = 181.0
    result, peak = _traced_peak(predictor, _stereo_file(tmp_path / "long.wav", seconds))
    _, peak_short = _traced_peak(predictor, _stereo_file(tmp_path / "short.wav", 30.0))
    assert result.n_windows == expected_windows(seconds, 3.0, 1.5) == 120
    assert result.duration_s == pytest.approx(seconds)
    starts = [s.start_s for s in result.segments]
    assert starts[:-1] == pytest.approx(np.arange(119) * 1.5)
    assert (result.segments[-1].start_s, result.segments[-1].end_s) == (178.0, 181.0)
    mean = np.mean([[s.probabilities[q] for q in QUADRANTS] for s in result.segments], axis=0)
    np.testing.assert_allclose([result.probabilities[q] for q in QUADRANTS], mean, atol=1e-9)
    # memory does not grow with the length: a 6x longer track peaks about as high as a 30 s one
    # (a few windows, decoding blocks and one window's feature temporaries), far below the track
    assert peak < 1.25 * peak_short + 500_000, (peak, peak_short)
    assert peak < 8_000_000, f"peak traced memory {peak / 1e6:.1f} MB"


def test_silence_is_flagged_unreliable(predictor: Predictor, tmp_path: Path) -> None:
    silent = predictor.predict(write_wav(tmp_path / "zeros.wav", np.zeros(48_000), 16_000))
    assert not silent.reliable
    assert "digital silence" in silent.warnings[0]
    assert sum(silent.probabilities.values()) == pytest.approx(1.0)  # still an answer

    hiss = 10 ** (-70 / 20) * np.random.default_rng(1).standard_normal(48_000)  # -70 dBFS RMS
    quiet = predictor.predict(hiss.astype(np.float32), sr=16_000)
    assert not quiet.reliable
    assert "RMS -70.0 dBFS" in quiet.warnings[0]

    loud = predictor.predict(music(3.0), sr=16_000)
    assert loud.reliable and loud.warnings == []


def test_silent_windows_are_left_out_of_the_average(predictor: Predictor) -> None:
    y = np.concatenate([music(3.0), np.zeros(48_000, np.float32)])  # 3 s music, 3 s silence
    r = predictor.predict(y, sr=16_000, segments=True)
    assert [s.silent for s in r.segments] == [False, False, True]  # 0-3, 1.5-4.5, 3-6
    kept = np.mean([[s.probabilities[q] for q in QUADRANTS] for s in r.segments[:2]], axis=0)
    np.testing.assert_allclose([r.probabilities[q] for q in QUADRANTS], kept, atol=1e-9)
    assert r.reliable  # the track as a whole is not silent
    assert "1 of 3 windows are silent" in r.warnings[0]


def test_bad_audio_raises_one_clear_error(predictor: Predictor, tmp_path: Path) -> None:
    with pytest.raises(AudioError, match="shorter than one second"):
        predictor.predict(tone(0.9), sr=16_000)
    with pytest.raises(AudioError, match=r"short\.wav' is shorter than one second \(0\.50 s\)"):
        predictor.predict(write_wav(tmp_path / "short.wav", tone(0.5), 16_000))
    with pytest.raises(AudioError, match="NaN or infinite"):
        predictor.predict(np.full(32_000, np.nan, np.float32), sr=16_000)
    with pytest.raises(AudioError, match="contains no samples"):
        predictor.predict(write_wav(tmp_path / "none.wav", np.zeros(0), 16_000))
    (tmp_path / "empty.mp3").write_bytes(b"")
    with pytest.raises(AudioError, match="empty"):
        predictor.predict(tmp_path / "empty.mp3")
    (tmp_path / "fake.ogg").write_bytes(os.urandom(4000))
    with pytest.raises(AudioError, match=r"fake\.ogg"):
        predictor.predict(tmp_path / "fake.ogg")
    with pytest.raises(ConfigError, match="sr="):
        predictor.predict(tone(2.0))
    with pytest.raises(ConfigError, match=r"at most 8 channels, got shape \(2, 16, 32000\)"):
        predictor.predict(np.zeros((2, 16, 32_000), np.float32), sr=16_000)
    with pytest.raises(ConfigError, match="float samples"):
        predictor.predict(np.ones(32_000, np.int16), sr=16_000)
    with pytest.raises(ConfigError, match="not list"):
        predictor.predict([0.0] * 32_000, sr=16_000)  # type: ignore[arg-type]


def test_predict_many_in_worker_processes_matches_one_process(
    predictor: Predictor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from merkit.product import predict_executors

    monkeypatch.setattr(predict_executors, "MIN_FILES_PER_PROCESS", 1)  # a worker for 3 files
    paths = [write_wav(tmp_path / f"t{i}.wav", tone(2.0 + i, freq=200.0 + 150 * i), 16_000)
             for i in range(3)]  # fmt: skip
    (tmp_path / "bad.wav").write_text("not audio")
    paths.insert(1, tmp_path / "bad.wav")
    serial = list(predictor.predict_many(paths))
    parallel = list(predictor.predict_many(paths, n_jobs=2))
    kinds = [PredictionResult, PredictionFailure, PredictionResult, PredictionResult]
    assert [type(o) for o in serial] == kinds
    assert [o.model_dump() for o in parallel] == [o.model_dump() for o in serial]


# ---------------------------------------------------------------------------------------------
# CLI


def _check_schema(value: Any, schema: dict, defs: dict) -> None:
    """A minimal JSON-schema check (types, required, enums) enough for PredictionResult."""
    if "$ref" in schema:
        schema = defs[schema["$ref"].rsplit("/", 1)[-1]]
    if "anyOf" in schema:
        errors = []
        for option in schema["anyOf"]:
            try:
                _check_schema(value, option, defs)
                return
            except AssertionError as exc:
                errors.append(str(exc))
        raise AssertionError(f"{value!r} matches none of {errors}")
    if "enum" in schema:
        assert value in schema["enum"], (value, schema["enum"])
    kind = schema.get("type")
    types = {"string": str, "boolean": bool, "integer": int, "number": (int, float),
             "array": list, "object": dict, "null": type(None)}  # fmt: skip
    if kind:
        assert isinstance(value, types[kind]), (value, kind)
        assert not (kind in ("integer", "number") and isinstance(value, bool))
    if kind == "object" and "properties" in schema:
        assert set(schema.get("required", [])) <= set(value), (schema.get("required"), value)
        assert set(value) <= set(schema["properties"]), set(value) - set(schema["properties"])
        for key, item in value.items():
            _check_schema(item, schema["properties"][key], defs)
    if kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        for item in value.values():
            _check_schema(item, schema["additionalProperties"], defs)
    if kind == "array" and "items" in schema:
        for item in value:
            _check_schema(item, schema["items"], defs)


def test_cli_batch_with_bad_files_reports_each_and_goes_on(
    app: Any, model_dir: Path, tmp_path: Path
) -> None:
    music = tmp_path / "music"
    write_wav(music / "a.wav", tone(4.0, freq=300.0), 16_000)
    write_wav(music / "sub" / "b.flac", tone(2.0, freq=500.0), 16_000, subtype="PCM_16")
    write_wav(music / "sub" / "short.wav", tone(0.4), 16_000)
    write_wav(music / "silent.wav", np.zeros(32_000), 16_000)
    (music / "empty.mp3").write_bytes(b"")
    (music / "junk.ogg").write_bytes(os.urandom(3000))
    (music / "readme.txt").write_text("skipped: not an audio extension")
    (music / ".hidden.wav").write_text("skipped: hidden")
    notes = tmp_path / "notes.wav"
    notes.write_text("named explicitly, so tried")
    args = ["predict", str(music), str(notes), str(tmp_path / "missing.wav"), "--model",
            str(model_dir), "--format", "json", "--quiet"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1, result.output
    items = json.loads(result.stdout)  # stdout holds only the JSON
    by_name = {Path(i["path"]).name: i for i in items}
    assert sorted(by_name) == sorted(
        ["a.wav", "b.flac", "short.wav", "silent.wav", "empty.mp3", "junk.ogg", "notes.wav",
         "missing.wav"]
    )  # fmt: skip
    failed = {name for name, item in by_name.items() if "error" in item}
    assert failed == {"short.wav", "empty.mp3", "junk.ogg", "notes.wav", "missing.wav"}
    assert "shorter than one second" in by_name["short.wav"]["error"]
    assert "empty (0 bytes)" in by_name["empty.mp3"]["error"]
    assert "does not exist" in by_name["missing.wav"]["error"]
    assert by_name["silent.wav"]["reliable"] is False
    assert by_name["a.wav"]["n_windows"] == 2
    # one line per failure on stderr, no traceback
    lines = [line for line in result.stderr.splitlines() if line.startswith("failed:")]
    assert len(lines) == 5
    assert "Traceback" not in result.output
    # every answer validates against the published schema
    schema = PredictionResult.model_json_schema()
    failure_schema = PredictionFailure.model_json_schema()
    for item in items:
        if "error" in item:
            _check_schema(item, failure_schema, {})
        else:
            _check_schema(item, schema, schema.get("$defs", {}))
            PredictionResult.model_validate(item)
    with pytest.raises(AssertionError):  # the checker itself rejects a wrong type
        _check_schema({**by_name["a.wav"], "n_windows": "two"}, schema, schema.get("$defs", {}))


def test_cli_table_csv_segments_and_exit_codes(app: Any, model_dir: Path, tmp_path: Path) -> None:
    song = write_wav(tmp_path / "song.wav", tone(7.0, freq=250.0), 16_000)
    runner = CliRunner()
    table = runner.invoke(app, ["predict", str(song), "--model", str(model_dir), "--segments"])
    assert table.exit_code == 0, table.output
    assert "timeline of" in table.stdout
    for clock in ("0:00.0–0:03.0", "0:01.5–0:04.5", "0:03.0–0:06.0", "0:04.0–0:07.0"):
        assert clock in table.stdout

    csv_out = runner.invoke(
        app, ["predict", str(song), "--model", str(model_dir), "--format", "csv", "--segments"]
    )
    assert csv_out.exit_code == 0
    rows = csv_out.stdout.strip().splitlines()
    assert rows[0].startswith("level,path,start_s,end_s,quadrant,meaning,p_Q1,p_Q2,p_Q3,p_Q4")
    assert [r.split(",")[0] for r in rows[1:]] == ["track"] + ["segment"] * 4

    empty = tmp_path / "empty_folder"
    empty.mkdir()
    nothing = runner.invoke(app, ["predict", str(empty), "--model", str(model_dir)])
    assert nothing.exit_code == 2
    assert "no audio files found" in nothing.stderr

    bad_model = runner.invoke(app, ["predict", str(song), "--model", str(tmp_path / "nope")])
    assert bad_model.exit_code == 1
    assert bad_model.stderr.strip().splitlines() == [
        f"error: model directory {tmp_path / 'nope'} does not exist"
    ]


def test_cli_train_then_predict(app: Any, tmp_path: Path) -> None:
    root = tmp_path / "tiny4qaed"
    make_4qaed_tree(root, per_quadrant=3)  # 1.5 s tones, 3 per quadrant
    config = tmp_path / "config.yaml"
    config.write_text(f"{LOGREG}:\n  C: 0.5\n")
    out = tmp_path / "model"
    runner = CliRunner()
    args = ["train", "--method", LOGREG, "--dataset", "4qaed", "--root", str(root), "--out",
            str(out), "--config", str(config), "--quiet", "--jobs", "1", "--cache-dir",
            str(tmp_path / "cache")]  # fmt: skip
    trained = runner.invoke(app, args)
    assert trained.exit_code == 0, trained.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["params"] == {"C": 0.5}
    assert manifest["training"]["dataset"] == "4qaed" and manifest["training"]["n_songs"] == 12
    assert (manifest["window_s"], manifest["hop_s"]) == (1.5, 0.75)
    assert "not cross-validated" in trained.stdout
    assert "Not cross-validated" in (out / "MODEL_CARD.md").read_text()

    clip = next((root / "Q2").glob("*.wav"))
    predicted = runner.invoke(app, ["predict", str(clip), "--model", str(out), "-f", "json"])
    assert predicted.exit_code == 0
    (item,) = json.loads(predicted.stdout)
    assert item["quadrant"] == "Q2"  # a training song: the tones are trivially separable

    wrong = runner.invoke(app, [*args[:-4], "--config", str(tmp_path / "missing.yaml")])
    assert wrong.exit_code == 1
    assert "config file does not exist" in wrong.stderr


def test_schema_documents_every_field() -> None:
    schema = PredictionResult.model_json_schema()
    fields = {"path", "quadrant", "meaning", "probabilities", "arousal", "valence",
              "p_high_arousal", "p_positive_valence", "confidence", "duration_s", "n_windows",
              "reliable", "warnings", "segments", "relative", "mixed", "runner_up",
              "summary", "quadrant_model", "p_high_arousal_axis", "p_positive_valence_axis",
              "familiarity", "familiar"}  # fmt: skip
    assert set(schema["properties"]) == fields
    assert all(schema["properties"][f].get("description") for f in fields)
    assert schema["properties"]["arousal"]["enum"] == ["high", "low"]
    assert math.isclose(len(schema["$defs"]["SegmentPrediction"]["properties"]), 6)
    assert sf.__name__  # soundfile imported for writing fixtures


def test_cli_train_takes_any_benchmark_yaml_and_checks_it_first(app: Any, tmp_path: Path) -> None:
    """A benchmark config (an ``inputs:`` override, other methods' sections) trains as is; a bad
    value is refused, naming the setting, before any feature is computed."""
    root = tmp_path / "tiny4qaed"
    make_4qaed_tree(root, per_quadrant=3)
    config = tmp_path / "bench.yaml"
    config.write_text(f"{LOGREG}:\n  inputs: [{BANDS}]\n  C: 0.5\nsvm:\n  C: 4\n")
    out = tmp_path / "model"
    cache = tmp_path / "cache"
    runner = CliRunner()
    args = ["train", "--method", LOGREG, "--dataset", "4qaed", "--root", str(root), "--out",
            str(out), "--config", str(config), "--quiet", "--jobs", "1", "--cache-dir",
            str(cache)]  # fmt: skip
    trained = runner.invoke(app, args)
    assert trained.exit_code == 0, trained.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["params"] == {"C": 0.5}
    assert [spec["name"] for spec in manifest["inputs"]] == [BANDS]

    # A method the file does not mention trains with its defaults, as in a benchmark.
    config.write_text("svm:\n  C: 4\n")
    other = runner.invoke(app, [*args[:8], str(tmp_path / "m2"), *args[9:]])
    assert other.exit_code == 0, other.output
    assert "no settings for method" in other.stderr

    config.write_text(f"{LOGREG}:\n  C: -1\n")
    bad = runner.invoke(app, [*args[:8], str(tmp_path / "m3"), *args[9:15], str(tmp_path / "c3")])
    assert bad.exit_code == 1
    assert "C" in bad.stderr and LOGREG in bad.stderr and "Traceback" not in bad.output
    assert not (tmp_path / "c3").exists()  # refused before any feature was computed
