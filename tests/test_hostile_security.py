"""Hostile cases of issue 27: nothing runs that the user did not choose.

- S1: merkit never imports from the current folder (a music or dataset folder holding a
  ``numpy.py``), in the CLI, its re-exec, its worker processes, numba's check and Ray's workers.
- S2: a model folder is code: a folder merkit did not write here is refused by ``predict`` and
  ``serve`` without ``--trust``; the shipped models are checked against digests in the code.
- S3: a manifest may name only registered representations and estimators, and is refused
  before anything it names is imported.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
from typer.testing import CliRunner

from merkit.cli import app as cli_app
from merkit.core.errors import ModelError
from merkit.product.predict import load_model
from merkit.product.shipped import SHIPPED_SHA256, shipped_model_dir
from product_helpers import music, write_wav

HOSTILE_MODULES = ("numpy", "soundfile", "scipy", "sklearn", "joblib")


def _trap(folder: Path) -> Path:
    """A music folder holding modules named like merkit's dependencies, each leaving a marker."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in HOSTILE_MODULES:
        marker = folder / f"MARKER-{name}"
        (folder / f"{name}.py").write_text(
            f"open({str(marker)!r}, 'w').write('ran')\nraise ImportError('hostile {name}')\n"
        )
    return folder


def _markers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("MARKER-*"))


def _console_script(folder: Path) -> Path:
    """The console script pip installs for ``merkit`` (``merkit.cli:main``)."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "merkit"
    script.write_text(
        f"#!{sys.executable}\nimport sys\nfrom merkit.cli import main\n"
        "if __name__ == '__main__':\n    sys.exit(main())\n"
    )
    return script


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONSAFEPATH"}
    return {**env, **extra}


# ---------------------------------------------------------------------------------------------
# S1


@pytest.mark.parametrize(
    "how",
    ["console script (re-exec)", "console script, no re-exec, 2 worker processes", "python -m"],
)
def test_S1_predict_in_a_folder_holding_numpy_py_runs_none_of_it(tmp_path: Path, how: str) -> None:
    folder = _trap(tmp_path / "music")
    songs = [write_wav(folder / f"song{i}.wav", music(4.0, index=i), 16_000) for i in (0, 1)]
    args = ["predict", songs[0].name, songs[1].name, "--model", "fast", "--format", "json"]
    env = _env()
    if how == "python -m":
        command = [sys.executable, "-m", "merkit", *args]
    else:
        command = [sys.executable, str(_console_script(tmp_path / "bin")), *args, "--quiet"]
    if "no re-exec" in how:
        env["MERKIT_NO_REEXEC"] = "1"
        command += ["--jobs", "2"]
    done = subprocess.run(
        command, cwd=folder, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert _markers(folder) == [], done.stderr[-2000:]
    assert done.returncode == 0, done.stderr[-2000:]
    answers = json.loads(done.stdout)
    predictor = load_model("fast")
    for song, answer in zip(songs, answers, strict=True):
        expected = predictor.predict(song)
        assert answer["quadrant"] == expected.quadrant
        np.testing.assert_allclose(
            list(answer["probabilities"].values()), list(expected.probabilities.values()), 1e-6
        )


def test_S1_numba_check_subprocess_ignores_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from merkit.core import numba_cache

    folder = _trap(tmp_path / "music")
    monkeypatch.chdir(folder)
    result = numba_cache._run_warm_subprocess(timeout=240)
    assert result.returncode == 0, result.stderr[-2000:]
    assert _markers(folder) == []


def test_S1_ray_is_started_outside_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``ray.init`` puts the driver's current folder on every worker's ``sys.path``; merkit starts
    it from the folder holding the merkit package (already on ``sys.path``)."""
    import merkit
    from merkit.protocol.ray_executor import RayExecutor

    folder = _trap(tmp_path / "music")
    monkeypatch.chdir(folder)
    seen: list[str] = []

    class FakeRay:
        def init(self, **options: Any) -> None:
            seen.append(os.getcwd())

    RayExecutor(num_cpus=1)._init(FakeRay())
    assert seen == [str(Path(merkit.__file__).resolve().parents[1])]
    assert os.getcwd() == str(folder)  # the user's folder is the current one again


# ---------------------------------------------------------------------------------------------
# S2


def _copy_fast(target: Path) -> Path:
    return Path(shutil.copytree(shipped_model_dir("fast"), target))


def _payload_model(model: Path, marker: Path) -> None:
    """Replace the estimator with a pickle that creates ``marker`` and update the checksum, as
    an attacker who can edit the folder would."""

    joblib.dump(_Payload(str(marker)), model / "estimator.joblib")
    manifest = json.loads((model / "manifest.json").read_text())
    digest = hashlib.sha256((model / "estimator.joblib").read_bytes()).hexdigest()
    manifest["estimator"]["sha256"] = digest
    (model / "manifest.json").write_text(json.dumps(manifest, indent=2))


class _Payload:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (os.mkdir, (self.marker,))


@pytest.mark.parametrize("command", ["predict", "serve"])
def test_S2_a_tampered_model_folder_is_refused_without_running_it(
    tmp_path: Path, command: str
) -> None:
    model = _copy_fast(tmp_path / "model")
    marker = tmp_path / "PAYLOAD-RAN"
    _payload_model(model, marker)
    song = write_wav(tmp_path / "song.wav", music(3.0), 16_000)
    args = [command, *([str(song)] if command == "predict" else []), "--model", str(model)]
    result = CliRunner().invoke(cli_app, args)
    assert result.exit_code == 1
    assert not marker.exists()
    assert "refusing to load model folder" in result.output
    assert "is code" in result.output and "--trust" in result.output
    assert "serving" not in result.output and "Traceback" not in result.output


def test_S2_a_model_merkit_wrote_loads_with_a_note_and_trust_is_remembered(
    tmp_path: Path,
) -> None:
    from merkit.product.export import save_model, train_final
    from merkit.product.trust import model_digest, trusted
    from merkit.representations.cache import NullCache
    from product_helpers import LOGREG, register_test_methods, synthetic_files

    register_test_methods()
    data = synthetic_files(tmp_path / "data", n_per_quadrant=2, duration=2.0)
    trained = train_final(LOGREG, data, cache=NullCache(), progress=False)
    model = save_model(trained, tmp_path / "mine")
    assert trusted(model) is not None and trusted(model)["how"] == "merkit"
    song = write_wav(tmp_path / "song.wav", music(3.0), 16_000)
    result = CliRunner().invoke(cli_app, ["predict", str(song), "--model", str(model)])
    assert result.exit_code == 0, result.output
    assert f"loading model folder {model} (written by merkit on" in result.stderr
    # a folder that is not ours: refused, then loaded with --trust, then remembered
    other = _copy_fast(tmp_path / "downloaded")
    assert CliRunner().invoke(cli_app, ["predict", str(song), "--model", str(other)]).exit_code
    trusting = CliRunner().invoke(cli_app, ["predict", str(song), "--model", str(other), "--trust"])
    assert trusting.exit_code == 0, trusting.output
    assert "trusted with --trust" in trusting.stderr
    assert trusted(other) is not None
    again = CliRunner().invoke(cli_app, ["predict", str(song), "--model", str(other)])
    assert again.exit_code == 0 and "(trusted by you on" in again.stderr
    # changed after it was trusted: refused again
    (other / "manifest.json").write_text((other / "manifest.json").read_text() + " ")
    assert trusted(other) is None and model_digest(other) != model_digest(model)
    assert CliRunner().invoke(cli_app, ["predict", str(song), "--model", str(other)]).exit_code


@pytest.mark.parametrize("name", sorted(SHIPPED_SHA256))
def test_S2_the_shipped_models_match_the_digests_in_the_code(name: str) -> None:
    folder = shipped_model_dir(name)
    manifest = json.loads((folder / "manifest.json").read_text())
    # Every file the loader reads is pinned (the card is prose): manifest, estimator, and any
    # layer beside them such as calibration.json.
    read = {p.name for p in folder.iterdir() if p.is_file() and p.suffix != ".md"}
    assert {"manifest.json", manifest["estimator"]["file"]} <= read
    assert set(SHIPPED_SHA256[name]) == read
    for file, digest in SHIPPED_SHA256[name].items():
        actual = hashlib.sha256((folder / file).read_bytes()).hexdigest()
        assert actual == digest, f"{name}/{file} changed: put {actual} in SHIPPED_SHA256"


@pytest.mark.parametrize("file", ["estimator.joblib", "manifest.json"])
def test_S2_a_tampered_shipped_file_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, file: str
) -> None:
    import merkit.product.shipped as shipped

    copy = _copy_fast(tmp_path / "pretrained" / "fast")
    real = shipped.shipped_model_dir
    monkeypatch.setattr(
        shipped, "shipped_model_dir", lambda name="default": copy if name == "fast" else real(name)
    )
    with open(copy / file, "ab") as handle:
        handle.write(b" ")  # one byte more: the checksum beside it would not notice the manifest
    with pytest.raises(ModelError, match="not the file this merkit was released with"):
        load_model("fast")
    song = write_wav(tmp_path / "song.wav", music(3.0), 16_000)
    result = CliRunner().invoke(cli_app, ["predict", str(song), "--model", "fast"])
    assert result.exit_code == 1 and "reinstall merkit" in result.output


@pytest.mark.parametrize("command", ["predict", "serve"])
def test_S2_help_says_a_model_folder_is_code(command: str) -> None:
    result = CliRunner().invoke(cli_app, [command, "--help"], terminal_width=200)
    text = " ".join(result.output.replace("│", " ").split())
    assert "is code (pickled Python)" in text and "--trust" in text


def test_S2_the_model_card_says_the_folder_is_code() -> None:
    from merkit.product.card import model_card
    from merkit.product.model_dir import read_manifest

    card = model_card(read_manifest(shipped_model_dir("fast")))
    assert "## Security" in card and "This model folder is code" in card
    assert "--trust" in card


# ---------------------------------------------------------------------------------------------
# S3


def _edited(tmp_path: Path, edit: Any) -> Path:
    model = _copy_fast(tmp_path / "edited")
    manifest = json.loads((model / "manifest.json").read_text())
    edit(manifest)
    (model / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return model


def _set_fn(manifest: dict[str, Any]) -> None:
    manifest["inputs"][0]["fn"] = "this:s"


def _set_class(manifest: dict[str, Any]) -> None:
    manifest["estimator"].update(format="torch", class_path="this:s")


@pytest.mark.parametrize("edit", [_set_fn, _set_class], ids=["inputs[0].fn", "class_path"])
def test_S3_a_manifest_naming_an_unregistered_function_is_refused_before_any_import(
    tmp_path: Path, edit: Any
) -> None:
    model = _edited(tmp_path, edit)
    code = textwrap.dedent(
        f"""
        import sys
        from merkit.core.errors import ModelError
        from merkit.product.predict import load_model
        try:
            load_model({str(model)!r})
        except ModelError as exc:
            print("REFUSED", exc)
        print("IMPORTED" if "this" in sys.modules else "NOT IMPORTED")
        """
    )
    done = subprocess.run(
        [sys.executable, "-P", "-c", code], capture_output=True, text=True, timeout=120, env=_env()
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "REFUSED" in done.stdout and "this:s" in done.stdout, done.stdout
    assert "registered" in done.stdout
    assert done.stdout.rstrip().endswith("NOT IMPORTED")
    assert "Beautiful is better than ugly" not in done.stdout  # `import this` prints the Zen


@pytest.mark.parametrize("command", ["predict", "serve"])
def test_S3_the_cli_refuses_it_even_with_trust(tmp_path: Path, command: str) -> None:
    model = _edited(tmp_path, _set_fn)
    song = write_wav(tmp_path / "song.wav", music(3.0), 16_000)
    args = [command, *([str(song)] if command == "predict" else []), "--model", str(model)]
    result = CliRunner().invoke(cli_app, [*args, "--trust"])
    assert result.exit_code == 1
    assert "inputs[0].fn is 'this:s'" in " ".join(result.output.split())
    assert "Beautiful is better" not in result.output and "serving" not in result.output
