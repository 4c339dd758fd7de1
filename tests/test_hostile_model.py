"""Hostile conditions for model directories: a save killed at any instant never loses the model.

A save over an existing model must leave, at every instant, the old model or the new one complete
at ``--out``. The tests crash a forked process (``os._exit``) after every file-system call and
after every named step of the save, on the atomic-exchange path and on the fallback path, then
kill -9 real ``merkit``-style save loops at random instants.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.dummy import DummyClassifier

import merkit
from conftest import needs_crnn_weights
from merkit.core.errors import ModelError
from merkit.product.export import (
    InputSpec,
    ModelManifest,
    TrainedModel,
    TrainingData,
    library_versions,
    save_model,
)

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")

STEPS = ("staging", "estimator", "manifest", "card", "flushed")
EXCHANGE_STEPS = (*STEPS, "exchanged", "synced", "removed-old")
FALLBACK_STEPS = (*STEPS, "backed-up", "renamed", "removed-old")


def _model(seed: int) -> TrainedModel:
    """A tiny complete model; ``seed`` tells the old model (1) from the new one (2)."""
    estimator = DummyClassifier(strategy="prior").fit(np.zeros((8, 1)), np.arange(8) % 4)
    manifest = ModelManifest(
        merkit_version=merkit.__version__,
        created="2026-01-01T00:00:00+00:00",
        method="dummy",
        seed=seed,
        inputs=[
            InputSpec(
                name="own-features",
                kind="representation",
                sr=16000,
                version="2",
                dtype="float32",
                fn="merkit.features.own:extract_own_features",
            )
        ],
        window_s=30.0,
        hop_s=15.0,
        training=TrainingData(
            dataset="synthetic", n_songs=8, counts={"Q1": 2}, fingerprint="x" * 12
        ),
        libraries=library_versions(),
    )
    return TrainedModel(estimator=estimator, manifest=manifest, card=f"card {seed}\n")


def _loaded_seed(out: Path) -> int:
    """The seed of the complete model at ``out`` (fails the test when there is none)."""
    try:
        predictor = merkit.load_model(out)
    except ModelError as exc:
        pytest.fail(f"no complete model at {out} after the crash: {exc}")
    return predictor.manifest.seed


def _hidden(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


def _in_child(action: Callable[[], Any]) -> int:
    """Run ``action`` in a forked child; return its exit status (the child never returns)."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 0
        try:
            action()
        except BaseException:
            code = 3
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def _force_fallback(monkeypatch: pytest.MonkeyPatch, path: str) -> None:
    if path == "fallback":
        import merkit.core.atomic

        monkeypatch.setattr(merkit.core.atomic, "_exchange", lambda a, b: False)


@pytest.fixture
def old_model(tmp_path: Path) -> Path:
    out = tmp_path / "models" / "model"
    save_model(_model(1), out)
    assert _loaded_seed(out) == 1
    return out


# --------------------------------------------------------------------------------------------
# A crash after the n-th file-system call (independent of how the save is written)

_FS_CALLS = (
    (os, "rename"),
    (os, "replace"),
    (shutil, "rmtree"),
    (shutil, "move"),
    (Path, "rename"),
    (Path, "replace"),
    (Path, "write_text"),
    (Path, "unlink"),
)


def _crash_after_call(n: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the n-th file-system call (1-based) of this process its last."""
    count = [0]
    for owner, name in _FS_CALLS:
        original = getattr(owner, name)

        def wrapped(*args: Any, __original: Any = original, **kwargs: Any) -> Any:
            result = __original(*args, **kwargs)
            count[0] += 1
            if count[0] == n:
                os._exit(0)
            return result

        monkeypatch.setattr(owner, name, wrapped)


@pytest.mark.parametrize("path", ["exchange", "fallback"])
def test_a_crash_after_any_file_system_call_leaves_a_complete_model(
    old_model: Path, path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = old_model
    seen = set()
    for n in range(1, 40):

        def crash(n: int = n) -> None:
            _force_fallback(monkeypatch, path)
            _crash_after_call(n, monkeypatch)
            save_model(_model(2), out)
            os._exit(7)  # the save finished before the n-th call: stop trying later calls

        code = _in_child(crash)
        seed = _loaded_seed(out)
        assert seed in (1, 2)
        seen.add(seed)
        # the next save cleans what the crash left and succeeds
        save_model(_model(1), out)
        assert _loaded_seed(out) == 1
        assert _hidden(out.parent) == [], f"leftovers after crash at call {n}"
        if code == 7:
            break
    else:
        pytest.fail("the save never finished")
    assert seen == {1, 2}


@pytest.mark.parametrize(
    ("path", "steps"), [("exchange", EXCHANGE_STEPS), ("fallback", FALLBACK_STEPS)]
)
def test_a_crash_after_every_step_of_the_save_leaves_the_old_or_the_new_model(
    old_model: Path, path: str, steps: tuple[str, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    import merkit.core.atomic as atomic_dir

    out = old_model
    reached = []
    for step in steps:

        def crash(step: str = step) -> None:
            _force_fallback(monkeypatch, path)

            def hook(name: str) -> None:
                if name == step:
                    os._exit(0)

            monkeypatch.setattr(atomic_dir, "_after_step", hook)
            save_model(_model(2), out)
            os._exit(7)

        assert _in_child(crash) == 0, f"step {step!r} was never reached"
        seed = _loaded_seed(out)
        reached.append(seed)
        save_model(_model(1), out)
        assert _hidden(out.parent) == [], f"leftovers after crash at step {step}"
    # old model until the swap, the new one after it
    swap = steps.index("exchanged" if path == "exchange" else "renamed")
    assert reached == [1] * swap + [2] * (len(steps) - swap)


def test_the_exchange_path_is_atomic_on_this_system(old_model: Path) -> None:
    """renameat2(RENAME_EXCHANGE) works here (Linux), so the old model is never renamed away."""
    import merkit.core.atomic as atomic_dir

    if not sys.platform.startswith("linux"):
        pytest.skip("RENAME_EXCHANGE is Linux-only")
    a = old_model.parent / "a"
    b = old_model.parent / "b"
    a.mkdir()
    b.mkdir()
    (a / "f").write_text("a")
    (b / "f").write_text("b")
    assert atomic_dir._exchange(a, b)
    assert (a / "f").read_text() == "b" and (b / "f").read_text() == "a"


def test_a_leftover_of_a_running_save_is_not_removed(old_model: Path) -> None:
    """Only helper folders of dead processes are cleaned: a concurrent save keeps its own."""
    live = old_model.parent / f".{old_model.name}.merkit-tmp-{os.getppid()}-abcd"
    live.mkdir()
    save_model(_model(2), old_model)
    assert live.is_dir()
    assert _loaded_seed(old_model) == 2


def test_a_model_left_only_as_a_backup_is_recovered_on_load(old_model: Path) -> None:
    """After a crash between the fallback's two renames, loading puts the old model back."""
    backup = old_model.parent / f".{old_model.name}.merkit-old-999999999-dead"
    old_model.rename(backup)
    assert _loaded_seed(old_model) == 1
    assert not backup.exists()


_KILL_LOOP = """
import sys, itertools
sys.path[:0] = {paths!r}
from test_hostile_model import _model
from merkit.product.export import save_model
models = [_model(1), _model(2)]
print("ready", flush=True)
for i in itertools.count():
    save_model(models[i % 2], {out!r})
"""


@pytest.mark.slow
def test_kill_9_at_random_instants_never_loses_the_model(old_model: Path) -> None:
    rng = random.Random(0)
    script = _KILL_LOOP.format(paths=[str(Path(__file__).parent), *sys.path], out=str(old_model))
    for _ in range(4):
        proc = subprocess.Popen(
            [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        try:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == b"ready", proc.stderr.read().decode()
            time.sleep(rng.uniform(0.05, 0.6))
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        assert _loaded_seed(old_model) in (1, 2)
    save_model(_model(1), old_model)
    assert _hidden(old_model.parent) == []


# --------------------------------------------------------------------------------------------
# Library versions


def test_a_library_version_that_can_change_results_is_warned_once_per_library(
    old_model: Path,
) -> None:
    manifest_path = old_model / "manifest.json"
    raw = json.loads(manifest_path.read_text())
    running = raw["libraries"]["scikit-learn"]
    raw["libraries"]["scikit-learn"] = "0.24.2"
    raw["libraries"]["soundfile"] = "0.1.0"  # cannot change the numbers: not compared
    raw["libraries"]["torch"] = "1.0.0"  # not a torch model: not compared
    manifest_path.write_text(json.dumps(raw))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        merkit.load_model(old_model)
    from merkit.product.model_dir import ModelVersionWarning

    lines = [str(w.message) for w in caught if issubclass(w.category, ModelVersionWarning)]
    assert lines == [
        f"model {old_model}: scikit-learn 0.24.2 trained this model but scikit-learn "
        f"{running} is running; its results may differ"
    ]


@pytest.mark.parametrize(
    ("name", "method"),
    [pytest.param(None, "fusion", marks=needs_crnn_weights), ("fast", "svm-own")],
)
def test_the_shipped_models_load_without_a_version_warning(name: str | None, method: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        predictor = merkit.load_model(name)
    assert predictor.manifest.method == method


def test_the_cli_prints_a_version_mismatch_as_one_line(old_model: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from merkit.cli import app
    from product_helpers import tone, write_wav

    manifest_path = old_model / "manifest.json"
    raw = json.loads(manifest_path.read_text())
    raw["libraries"]["numpy"] = "1.0.0"
    manifest_path.write_text(json.dumps(raw))
    song = write_wav(tmp_path / "song.wav", tone(2.0), 16_000)
    args = ["predict", str(song), "--model", str(old_model), "--quiet", "--trust"]  # edited
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stderr.splitlines() if "numpy" in line]
    assert lines == [
        f"warning: model {old_model}: numpy 1.0.0 trained this model but numpy "
        f"{np.__version__} is running; its results may differ"
    ]


def test_saving_through_a_link_replaces_the_linked_model_and_keeps_the_link(
    old_model: Path,
) -> None:
    link = old_model.parent / "current"
    link.symlink_to(old_model.name)
    save_model(_model(2), link)
    assert link.is_symlink() and _loaded_seed(old_model) == 2
    assert _hidden(old_model.parent) == []
