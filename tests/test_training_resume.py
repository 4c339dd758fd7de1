"""Resumable training: a fit killed at any point and resumed equals an uninterrupted one, bit for
bit; unusable states are ignored with a warning; the protocol's runner resumes folds mid-fit."""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from merkit.core.errors import ModelError
from merkit.datasets.base import Dataset, Song
from merkit.methods import ResolvedMethod
from merkit.models.layers import Dropout
from merkit.protocol import ProtocolConfig, load_or_create_folds, run_method
from merkit.training import resume
from merkit.training.callbacks import BatchTransform
from merkit.training.classifier import TorchClassifier
from merkit.training.hooks import Batch, Callback, FitContext
from merkit.training.resume import partial_files, resume_scope, write_state


class Net(nn.Module):
    """Linear → BN → merkit dropout → torch dropout → Linear: BN statistics and both masks."""

    def __init__(self, n_features: int = 6, n_classes: int = 3) -> None:
        super().__init__()
        self.a = nn.Linear(n_features, 16)
        self.norm = nn.BatchNorm1d(16)
        self.drop = Dropout(0.3)
        self.drop2 = nn.Dropout(0.2)
        self.b = nn.Linear(16, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(self.drop2(self.drop(torch.relu(self.norm(self.a(x))))))


def jitter(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A per-batch transform drawing from its own generator."""
    return x + 0.1 * torch.randn(x.shape, generator=generator)


class Interrupt(Callback):
    """Raises KeyboardInterrupt mid-epoch ``epoch`` (after 2 batches), or at fit end."""

    def __init__(self, epoch: int | None) -> None:
        self.epoch, self.batches = epoch, 0

    def on_batch_end(self, ctx: FitContext, batch: Batch, loss: torch.Tensor) -> None:
        if ctx.epoch == self.epoch:
            self.batches += 1
            if self.batches == 2:
                raise KeyboardInterrupt

    def on_fit_end(self, ctx: FitContext) -> None:
        if self.epoch is None:
            raise KeyboardInterrupt


def data(n: int = 120) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    y = np.arange(n) % 3
    X = (rng.normal(size=(n, 6)) + y[:, None]).astype(np.float32)
    return X, y, np.arange(n) // 2  # two chunks per song


SCHEDULE: dict[str, Any] = dict(
    epochs=9,
    stop_train_accuracy=None,
    train_options={
        "momentum": 0.9,
        "schedule": [
            {"epoch": 3, "optimizer": "adam", "lr": 0.01},
            {"epoch": 6, "optimizer": "sgd", "lr": 0.02, "momentum": 0.5},
        ],
    },
)
EARLY: dict[str, Any] = dict(  # stops early after epoch 12, restoring epoch 9's weights
    epochs=30, lr=0.2, validation_fraction=0.25, patience=3, chunks_per_song=1
)


def estimator(settings: dict[str, Any], interrupt: int | str | None = "never") -> TorchClassifier:
    options = {"mixed_precision": False, "num_threads": 1, **settings.get("train_options", {})}
    callbacks: list[Callback] = [BatchTransform(jitter)]
    if interrupt != "never":
        callbacks.append(Interrupt(interrupt))  # type: ignore[arg-type]
    return TorchClassifier(
        model=Net,
        batch_size=16,
        device="cpu",
        random_state=7,
        callbacks=callbacks,
        **{"lr": 0.05, **settings, "train_options": options},
    )


def fit(est: TorchClassifier, folder: Path | None = None, every: float = 0.0) -> Any:
    X, y, groups = data()
    with resume_scope(folder, "fold", "key", every_seconds=every) as scope:
        est.fit(X, y, groups=groups)
    return scope


def assert_same(a: TorchClassifier, b: TorchClassifier) -> None:
    wa, wb = a.model_.state_dict(), b.model_.state_dict()
    assert list(wa) == list(wb)
    assert [k for k in wa if not torch.equal(wa[k], wb[k])] == []
    timing = ("epoch_seconds", "seconds")
    ha = {k: v for k, v in a.history_.to_dict().items() if k not in timing}
    hb = {k: v for k, v in b.history_.to_dict().items() if k not in timing}
    assert ha == hb
    X, _, _ = data()
    assert np.array_equal(a.predict_proba(X), b.predict_proba(X))


@pytest.fixture(scope="module")
def reference() -> dict[str, TorchClassifier]:
    out = {}
    for name, settings in (("schedule", SCHEDULE), ("early", EARLY)):
        est = estimator(settings)
        fit(est)
        out[name] = est
    return out


@pytest.mark.parametrize(
    ("case", "epoch"),
    [
        ("schedule", 3),
        ("schedule", 4),
        ("schedule", 8),
        ("schedule", None),
        ("early", 4),
        ("early", 10),
        ("early", None),
    ],
)
def test_interrupted_fit_resumes_bit_for_bit(
    tmp_path: Path, reference: dict[str, TorchClassifier], case: str, epoch: int | None
) -> None:
    settings = SCHEDULE if case == "schedule" else EARLY
    with pytest.raises(KeyboardInterrupt):
        fit(estimator(settings, interrupt=epoch), tmp_path)
    (path,) = partial_files(tmp_path, "fold")
    state = torch.load(path, weights_only=True)  # tensors and plain values only
    written = reference[case].history_.epochs_run if epoch is None else epoch
    assert state["epoch"] == written
    resumed = estimator(settings)
    scope = fit(resumed, tmp_path)
    assert [(r.index, r.epoch) for r in scope.resumed] == [(0, written)]
    assert_same(resumed, reference[case])
    if case == "early":  # the case exercises early stopping's patience and restore
        history = reference[case].history_
        assert (history.stop_reason, history.epochs_run, history.best_epoch) == (
            "early_stopping",
            12,
            9,
        )


def test_the_random_states_in_the_state_are_what_the_resumed_fit_draws_from(
    tmp_path: Path, reference: dict[str, TorchClassifier]
) -> None:
    """Negative control: the comparison above sees a wrong random state."""
    with pytest.raises(KeyboardInterrupt):
        fit(estimator(SCHEDULE, interrupt=4), tmp_path)
    (path,) = partial_files(tmp_path, "fold")
    state = torch.load(path, weights_only=True)
    state["random"]["torch"] = torch.Generator().manual_seed(123).get_state()
    write_state(path, state)
    resumed = estimator(SCHEDULE)
    fit(resumed, tmp_path)
    with pytest.raises(AssertionError):
        assert_same(resumed, reference["schedule"])


def test_states_are_written_at_most_every_so_many_seconds_and_after_the_last_epoch(
    tmp_path: Path,
) -> None:
    with pytest.raises(KeyboardInterrupt):
        fit(estimator(SCHEDULE, interrupt=4), tmp_path, every=3600)
    assert partial_files(tmp_path, "fold") == []  # no epoch was due yet
    with pytest.raises(KeyboardInterrupt):
        fit(estimator(SCHEDULE, interrupt=None), tmp_path, every=3600)
    (path,) = partial_files(tmp_path, "fold")
    assert torch.load(path, weights_only=True)["epoch"] == SCHEDULE["epochs"]


def test_a_truncated_state_is_ignored_with_a_warning_and_superseded(
    tmp_path: Path, reference: dict[str, TorchClassifier], caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(KeyboardInterrupt):
        fit(estimator(SCHEDULE, interrupt=4), tmp_path)
    (path,) = partial_files(tmp_path, "fold")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    again = estimator(SCHEDULE)
    with caplog.at_level(logging.WARNING, logger="merkit.training.resume"):
        scope = fit(again, tmp_path)
    assert scope.resumed == []
    assert "ignoring training state" in caplog.text and "unreadable" in caplog.text
    assert_same(again, reference["schedule"])  # trained from scratch
    assert torch.load(path, weights_only=True)["epoch"] == SCHEDULE["epochs"]


def test_a_state_of_another_fit_is_ignored_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(KeyboardInterrupt):
        fit(estimator(SCHEDULE, interrupt=4), tmp_path)
    other = {**SCHEDULE, "epochs": 5}  # another setting: another fingerprint
    expected = estimator(other)
    fit(expected)
    again = estimator(other)
    with caplog.at_level(logging.WARNING, logger="merkit.training.resume"):
        scope = fit(again, tmp_path)
    assert scope.resumed == []
    assert "fingerprint differs" in caplog.text
    assert_same(again, expected)
    # and another scope key (another fold or run) is another fingerprint too
    caplog.clear()
    with pytest.raises(KeyboardInterrupt):
        fit(estimator(SCHEDULE, interrupt=4), tmp_path)
    X, y, groups = data()
    with (
        caplog.at_level(logging.WARNING, logger="merkit.training.resume"),
        resume_scope(tmp_path, "fold", "another key", every_seconds=0) as scope,
    ):
        estimator(SCHEDULE).fit(X, y, groups=groups)
    assert scope.resumed == [] and "fingerprint differs" in caplog.text


def test_a_matching_state_that_does_not_load_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(KeyboardInterrupt):
        fit(estimator(SCHEDULE, interrupt=4), tmp_path)
    (path,) = partial_files(tmp_path, "fold")
    state = torch.load(path, weights_only=True)
    del state["model"]["a.weight"]
    write_state(path, state)
    with pytest.raises(ModelError, match=r"fold\.partial\.0\.pt matches this fit but cannot be"):
        fit(estimator(SCHEDULE), tmp_path)


def test_a_failed_write_keeps_the_previous_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "fold.partial.0.pt"
    write_state(path, {"epoch": 1})

    def broken_save(obj: Any, target: Any) -> None:
        Path(target).write_bytes(b"PK\x03\x04 half a zip")
        raise KeyboardInterrupt  # killed mid-write

    monkeypatch.setattr(resume.torch, "save", broken_save)
    with pytest.raises(KeyboardInterrupt):
        write_state(path, {"epoch": 2})
    monkeypatch.undo()
    assert torch.load(path, weights_only=True) == {"epoch": 1}
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_fits_outside_a_scope_write_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    X, y, groups = data()
    with resume_scope(tmp_path, "fold", every_seconds=0), resume_scope(None):
        estimator(SCHEDULE).fit(X, y, groups=groups)
    estimator(SCHEDULE).fit(X, y, groups=groups)
    assert list(tmp_path.iterdir()) == []


# ---- the protocol's runner ------------------------------------------------------------------


def feature_dataset(n_per_class: int = 12) -> Dataset:
    songs = [Song(f"S{q}{i:03d}", None, f"Q{q + 1}") for q in range(4) for i in range(n_per_class)]
    rng = np.random.default_rng(0)
    values = np.array([[s.label + rng.normal(0, 0.5), rng.normal()] for s in songs])
    table = pd.DataFrame(values, index=[s.song_id for s in songs], columns=["signal", "noise"])
    return Dataset(name="toy", songs=songs, tables={"top100": table})


def tiny_method() -> ResolvedMethod:
    est = TorchClassifier(
        model=Net,
        model_params={"n_features": 2},
        epochs=6,
        batch_size=8,
        stop_train_accuracy=None,
        device="cpu",
        train_options={"mixed_precision": False, "num_threads": 1, "momentum": 0.9},
    )
    return ResolvedMethod.of("tiny", est, ("table:top100",))


def test_the_runner_resumes_a_fold_mid_training_and_removes_its_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dataset = feature_dataset()
    inputs = {"table:top100": dataset.table("top100")}
    protocol = ProtocolConfig(n_splits=3, n_repeats=1)
    folds = load_or_create_folds(tmp_path / "folds", dataset, protocol)
    method = tiny_method()
    monkeypatch.setattr(resume, "DEFAULT_EVERY_SECONDS", 0.0)  # a state after every epoch
    whole = run_method(method, dataset, inputs, folds, protocol, tmp_path / "whole", progress=False)

    writes = {"n": 0}
    original = resume.write_state

    def dies_after_the_eighth(path: Path, state: dict[str, Any]) -> None:
        original(path, state)
        writes["n"] += 1
        if writes["n"] == 8:  # fold 0's six epochs, then two of fold 1's
            raise KeyboardInterrupt

    monkeypatch.setattr(resume, "write_state", dies_after_the_eighth)
    out = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        run_method(method, dataset, inputs, folds, protocol, out, progress=False)
    fold_dir = out / "tiny" / "folds"
    assert sorted(p.name for p in fold_dir.iterdir()) == ["r00_f00.json", "r00_f01.partial.0.pt"]
    monkeypatch.setattr(resume, "write_state", original)
    again = run_method(method, dataset, inputs, folds, protocol, out, progress=False)
    assert sorted(p.name for p in fold_dir.iterdir()) == [f"{f.name}.json" for f in folds]
    timing = {"seconds", "fit_seconds", "predict_seconds", "extras"}
    for a, b in zip(again.per_fold, whole.per_fold, strict=True):
        assert a.model_dump(exclude=timing) == b.model_dump(exclude=timing)
    assert again.per_fold[1].extras is not None
    assert again.per_fold[1].extras["resumed"]["fits"] == [{"fit": 0, "epoch": 2}]
    assert again.per_fold[2].extras is None and whole.per_fold[1].extras is None


class KillOnce(Callback):
    """At the start of epoch ``epoch``, SIGKILLs its own process once (while ``marker`` is
    missing), as the OOM killer would; states are written after every epoch."""

    def __init__(self, marker: str, epoch: int = 3) -> None:
        self.marker, self.epoch = marker, epoch

    def on_fit_start(self, ctx: FitContext) -> None:
        scope = resume.current_scope()
        if scope is not None:
            scope.every_seconds = 0.0  # in the worker process (no monkeypatch reaches it)

    def on_epoch_start(self, ctx: FitContext) -> None:
        if ctx.epoch == self.epoch:
            try:
                Path(self.marker).open("x").close()
            except FileExistsError:
                return
            os.kill(os.getpid(), signal.SIGKILL)


def test_a_fold_whose_worker_was_killed_is_retried_from_its_training_state(
    tmp_path: Path,
) -> None:
    from merkit.protocol.executor import ProcessExecutor

    dataset = feature_dataset()
    inputs = {"table:top100": dataset.table("top100")}
    protocol = ProtocolConfig(n_splits=3, n_repeats=1)
    folds = load_or_create_folds(tmp_path / "folds", dataset, protocol)[:1]
    marker = tmp_path / "killed"
    est = tiny_method().estimator.set_params(callbacks=[KillOnce(str(marker))])
    method = ResolvedMethod.of("tiny", est, ("table:top100",))
    killed = run_method(
        method,
        dataset,
        inputs,
        folds,
        protocol,
        tmp_path / "killed-run",
        executor=ProcessExecutor(2, retries=1),
        progress=False,
    )
    assert marker.exists()  # the first worker died at epoch 4
    (record,) = killed.per_fold
    assert record.extras == {
        "resumed": {**record.extras["resumed"], "fits": [{"fit": 0, "epoch": 3}]}
    }
    reference = run_method(
        method, dataset, inputs, folds, protocol, tmp_path / "serial", progress=False
    )  # marker exists: nobody dies
    timing = {"seconds", "fit_seconds", "predict_seconds", "extras"}
    assert record.model_dump(exclude=timing) == reference.per_fold[0].model_dump(exclude=timing)
    assert partial_files(tmp_path / "killed-run" / "tiny" / "folds", folds[0].name) == []
