"""A library tagged safely: ``merkit predict --output`` streams, ``--resume`` continues, a kill -9
loses only the files in flight; and the API/CLI tidy-ups of issue 29."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from library_helpers import SLOW_LOGREG, register_slow_method
from merkit.core.errors import ConfigError
from merkit.product.export import save_model, train_final
from merkit.product.output import ResultSink, file_digest, output_format, read_output
from merkit.product.predict import PredictionFailure, PredictionResult, load_model
from merkit.representations.cache import NullCache
from product_helpers import synthetic_files, tone, write_wav

register_slow_method()
TESTS = Path(__file__).parent
N_FILES = 8


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Band energies + logistic regression (3 s windows), with a representation that can be
    slowed down (``MERKIT_TEST_DELAY``)."""
    songs = synthetic_files(tmp_path_factory.mktemp("synthetic"))
    model = train_final(SLOW_LOGREG, songs, cache=NullCache(), progress=False)
    return save_model(model, tmp_path_factory.mktemp("models") / "slow")


def _library(folder: Path) -> Path:
    for i in range(N_FILES):
        write_wav(folder / f"song{i}.wav", tone(3.0 + 0.5 * (i % 3), freq=150.0 + 90 * i), 16_000)
    return folder


def _app() -> Any:
    from merkit.cli import app

    return app


def _records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _answers(records: list[dict[str, Any]]) -> dict[str, tuple[str, dict[str, float]]]:
    return {Path(r["path"]).name: (r["quadrant"], r["probabilities"]) for r in records}


def test_sigkill_then_resume_gives_each_file_once_with_the_same_answers(
    model_dir: Path, tmp_path: Path
) -> None:
    library = _library(tmp_path / "lib")
    runner = CliRunner()
    ref = tmp_path / "ref.jsonl"
    whole = runner.invoke(_app(), ["predict", str(library), "--model", str(model_dir),
                                   "--output", str(ref)])  # fmt: skip
    assert whole.exit_code == 0, whole.output
    assert whole.stdout == ""  # answers go to the file
    assert "8 file(s) in" in whole.stderr and "files/s" in whole.stderr
    reference = _answers(_records(ref))
    assert len(reference) == N_FILES

    out = tmp_path / "out.jsonl"
    env = {**os.environ, "MERKIT_TEST_DELAY": "0.4"}
    proc = subprocess.Popen(
        [sys.executable, str(TESTS / "library_helpers.py"), "predict", str(library),
         "--model", str(model_dir), "--output", str(out), "--quiet"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if out.exists() and out.read_text().count("\n") >= 3:
            break
        time.sleep(0.05)
    assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    proc.stderr.close()  # type: ignore[union-attr]
    finished = _records(out)
    assert 3 <= len(finished) < N_FILES  # killed part-way: the finished files are kept
    # a kill in the middle of a write leaves a cut line: it is discarded on resume
    with open(out, "a") as handle:
        handle.write('{"path": "' + str(library / "song7.wav") + '", "quadrant": "Q')

    again = runner.invoke(_app(), ["predict", str(library), "--model", str(model_dir),
                                   "--output", str(out), "--resume"])  # fmt: skip
    assert again.exit_code == 0, again.output
    assert f"{len(finished)} already done, skipped" in again.stderr
    records = _records(out)  # every line parses: the cut one is gone
    assert sorted(Path(r["path"]).name for r in records) == sorted(reference)  # each once
    assert _answers(records) == reference
    for r in records:
        assert r["sha256"] == file_digest(r["path"])

    # a changed file is done again; the others are skipped
    write_wav(library / "song2.wav", tone(4.0, freq=900.0), 16_000)
    changed = runner.invoke(_app(), ["predict", str(library), "--model", str(model_dir),
                                     "--output", str(out), "--resume"])  # fmt: skip
    assert changed.exit_code == 0, changed.output
    assert "1 file(s) in" in changed.stderr and f"{N_FILES - 1} already done" in changed.stderr
    records = _records(out)
    assert len(records) == N_FILES
    song2 = next(r for r in records if r["path"].endswith("song2.wav"))
    assert song2["sha256"] == file_digest(library / "song2.wav")
    assert song2["duration_s"] == 4.0

    refused = runner.invoke(_app(), ["predict", str(library), "--model", str(model_dir),
                                     "--output", str(out)])  # fmt: skip
    assert refused.exit_code == 1
    assert refused.stderr.strip().splitlines() == [
        f"error: --output {out} already exists: add --resume to continue it (finished files "
        "are skipped), or choose another file"
    ]
    assert len(_records(out)) == N_FILES  # untouched


def test_csv_output_with_segments_resumes_a_cut_record(model_dir: Path, tmp_path: Path) -> None:
    library = _library(tmp_path / "lib")
    out = tmp_path / "tags.csv"
    runner = CliRunner()
    args = ["predict", str(library), "--model", str(model_dir), "--output", str(out), "--segments"]
    first = runner.invoke(_app(), args)
    assert first.exit_code == 0, first.output
    text = out.read_text()
    lines = text.splitlines(keepends=True)
    assert lines[0].rstrip().endswith(",sha256")
    tracks = [i for i, line in enumerate(lines) if line.startswith("track,")]
    assert len(tracks) == N_FILES
    # cut the file inside song5's two window rows (4 s: a kill between two rows)
    assert lines[tracks[5] + 2].startswith("segment,") and tracks[6] == tracks[5] + 3
    out.write_text("".join(lines[: tracks[5] + 2]))
    again = runner.invoke(_app(), [*args, "--resume"])
    assert again.exit_code == 0, again.output
    assert "3 file(s) in" in again.stderr and "5 already done, skipped" in again.stderr
    rows = read_output(out)
    assert sorted(Path(r["path"]).name for r in rows) == sorted(f"song{i}.wav" for i in range(8))
    assert out.read_text() == text  # the same bytes as the uninterrupted run


def test_resume_with_other_settings_is_refused_naming_them(model_dir: Path, tmp_path: Path) -> None:
    """Answers of another hop, model or window list would be mixed into a resumed output without
    a trace: the settings file beside it refuses that, and an output from before it existed is
    resumed and gets one."""
    from merkit.product.output import settings_path

    library = _library(tmp_path / "lib")
    out = tmp_path / "tags.jsonl"
    runner = CliRunner()
    args = ["predict", str(library), "--model", str(model_dir), "--output", str(out), "--quiet"]
    assert runner.invoke(_app(), args).exit_code == 0
    saved = json.loads(settings_path(out).read_text())
    assert saved == {
        "crnn_precision": None,
        "exact_windows": None,
        "hop": None,
        "model": str(model_dir.resolve()),
        "model_manifest_sha256": file_digest(model_dir / "manifest.json"),
        "segments": False,
    }
    text = out.read_text()
    for extra, named in [
        (["--hop", "2.0"], "hop null -> 2.0"),
        (["--segments"], "segments false -> true"),
    ]:
        refused = runner.invoke(_app(), [*args, "--resume", *extra])
        assert refused.exit_code == 1
        assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
        assert named in refused.stderr and "written with other settings" in refused.stderr
        assert out.read_text() == text  # nothing the user had was touched
    again = runner.invoke(_app(), [*args, "--resume"])
    assert again.exit_code == 0 and out.read_text() == text  # all 8 finished: skipped
    settings_path(out).unlink()  # an output written before the settings file existed
    assert runner.invoke(_app(), [*args, "--resume", "--hop", "2.0"]).exit_code == 0
    assert json.loads(settings_path(out).read_text())["hop"] == 2.0


def test_output_options_are_checked_before_any_work(model_dir: Path, tmp_path: Path) -> None:
    assert output_format(Path("a.CSV"), None) == "csv"
    assert output_format(Path("a.ndjson"), None) == "jsonl"
    assert output_format(Path("a.txt"), "json") == "jsonl"
    with pytest.raises(ConfigError, match="cannot tell the format"):
        output_format(Path("a.txt"), None)
    with pytest.raises(ConfigError, match="a table cannot be written"):
        output_format(Path("a.csv"), "table")
    with pytest.raises(ConfigError, match="does not exist"):
        ResultSink(tmp_path / "nope" / "a.jsonl", "jsonl")
    song = write_wav(tmp_path / "a.wav", tone(2.0), 16_000)
    runner = CliRunner()
    for args, message in [
        (["--resume"], "error: --resume continues an --output file; name it with --output"),
        (["--format", "xml"], "error: --format must be table, json or csv, not 'xml'"),
        (["--output", str(tmp_path / "x.txt")], "cannot tell the format from the extension"),
    ]:
        result = runner.invoke(_app(), ["predict", str(song), "--model", str(model_dir), *args])
        assert result.exit_code == 1
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert message in result.stderr


def test_help_has_no_bool_noise_nor_repeated_choices() -> None:
    result = CliRunner().invoke(_app(), ["predict", "--help"], env={"COLUMNS": "160"})
    assert result.exit_code == 0
    assert "<bool>" not in result.stdout
    assert "--resume" in result.stdout and "--output" in result.stdout
    assert result.stdout.count("table|json|csv") == 1
    assert "table | json | csv" not in result.stdout
    for command in (["benchmark", "--help"], ["data", "check", "--help"], ["--help"]):
        assert "<bool>" not in CliRunner().invoke(_app(), command).stdout


# ---------------------------------------------------------------------------------------------
# The Python API


def test_predict_takes_a_list_a_folder_and_stereo(model_dir: Path, tmp_path: Path) -> None:
    predictor = load_model(model_dir)
    library = _library(tmp_path / "lib")
    a, b = library / "song0.wav", library / "song1.wav"
    one = [predictor.predict(a), predictor.predict(b)]
    both = predictor.predict([a, b])
    assert both == one
    (library / "broken.mp3").write_text("not audio")
    folder = predictor.predict(library)
    assert len(folder) == N_FILES + 1
    failures = [r for r in folder if isinstance(r, PredictionFailure)]
    assert [Path(f.path).name for f in failures] == ["broken.mp3"]
    assert all(isinstance(r, PredictionResult) for r in folder if r not in failures)
    assert [r.path for r in folder if isinstance(r, PredictionResult)][:2] == [str(a), str(b)]

    left, right = tone(3.0, freq=220.0), tone(3.0, freq=660.0)
    mono = predictor.predict((left + right) / 2, sr=16_000)
    for stereo in (np.stack([left, right]), np.stack([left, right], axis=1)):
        mixed = predictor.predict(stereo, sr=16_000)
        assert mixed.probabilities == pytest.approx(mono.probabilities, abs=1e-6)
