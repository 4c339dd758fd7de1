"""Each training callback on tiny models where the answer is known, and the estimator params."""

from __future__ import annotations

import copy
from typing import Any

import joblib
import numpy as np
import pytest
import torch
from sklearn.base import clone
from torch import nn

from merkit.core.errors import ConfigError
from merkit.training import (
    BatchNormRecalibration,
    BatchTransform,
    Callback,
    EarlyStopping,
    FitContext,
    Freeze,
    LRSwitch,
    OptimizerSchedule,
    TrainAccuracyStop,
    TrainConfig,
    Trainer,
    clone_state,
    default_callbacks,
    malloc_reexec_environment,
    malloc_tuning_supported,
)
from merkit.training.classifier import TorchClassifier
from merkit.training.history import EpochRecord


def config(**overrides: Any) -> TrainConfig:
    settings: dict[str, Any] = {
        "epochs": 5,
        "batch_size": 16,
        "lr": 0.05,
        "device": "cpu",
        "mixed_precision": False,
        "stop_train_accuracy": None,
        "num_threads": 1,
    }
    settings.update(overrides)
    return TrainConfig(**settings)


class TinyMLP(nn.Module):
    """Linear → BN → ReLU → Linear (module level, so estimators holding it can be pickled)."""

    def __init__(self, n_features: int = 4, n_classes: int = 2, hidden: int = 8) -> None:
        super().__init__()
        self.a = nn.Linear(n_features, hidden)
        self.norm = nn.BatchNorm1d(hidden)
        self.b = nn.Linear(hidden, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(torch.relu(self.norm(self.a(x))))


def blobs(n: int = 96, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    X = (rng.normal(size=(n, 4)) + 2.0 * y[:, None]).astype(np.float32)
    return X, y.astype(np.int64)


class ScriptedAccuracy(nn.Module):
    """Predicts the label (input column 0) right for exactly ``accuracy[epoch]`` of the rows.

    Column 1 holds each row's rank r/n; a row is answered right when its rank is below the
    epoch's accuracy, so every epoch's running accuracy is known in advance.
    """

    def __init__(self, accuracy: list[float]) -> None:
        super().__init__()
        self.accuracy = accuracy
        self.epoch = 0
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        label = x[:, 0].long()
        right = x[:, 1] < self.accuracy[min(self.epoch, len(self.accuracy) - 1)] - 1e-6
        answer = torch.where(right, label, 1 - label)
        return 10.0 * nn.functional.one_hot(answer, 2).float() + 0.0 * self.weight


class SetEpoch(Callback):
    def on_epoch_start(self, ctx: FitContext) -> None:
        ctx.model.epoch = ctx.epoch


class Recorder(Callback):
    """Records the optimiser class and a copy of the weights after every epoch."""

    def __init__(self) -> None:
        self.optimizers: list[type] = []
        self.states: list[dict[str, torch.Tensor]] = []
        self.fits = 0

    def on_fit_start(self, ctx: FitContext) -> None:
        self.fits += 1

    def on_epoch_end(self, ctx: FitContext, record: EpochRecord) -> None:
        self.optimizers.append(type(ctx.optimizer))
        self.states.append(clone_state(ctx.model))


def test_default_config_gives_todays_callback_set() -> None:
    kinds = [type(cb) for cb in default_callbacks(TrainConfig(), has_validation=False)]
    assert kinds == [OptimizerSchedule, TrainAccuracyStop, BatchNormRecalibration]
    with_val = default_callbacks(TrainConfig(freeze=("a.*",)), has_validation=True)
    assert [type(cb) for cb in with_val] == [
        Freeze,
        OptimizerSchedule,
        EarlyStopping,
        TrainAccuracyStop,
        BatchNormRecalibration,
    ]


@pytest.mark.parametrize(("threshold", "expected_epochs"), [(0.90, 4), (0.95, 5), (0.5, 1)])
def test_stop_rule_stops_where_running_accuracy_first_reaches_threshold(
    threshold: float, expected_epochs: int
) -> None:
    accuracy = [0.5, 0.8, 0.89, 0.90, 0.95, 1.0]
    n = 100
    y = np.arange(n) % 2
    X = np.stack([y, np.arange(n) / n], axis=1).astype(np.float32)
    model = ScriptedAccuracy(accuracy)
    history = Trainer(config(epochs=6, stop_train_accuracy=threshold, batch_size=7)).fit(
        model, [X], y, callbacks=[SetEpoch()]
    )
    assert history.accuracy == pytest.approx(accuracy[:expected_epochs], abs=1e-12)
    assert history.epochs_run == expected_epochs
    assert history.stop_reason == "train_accuracy"


def test_schedule_switches_optimizer_class_at_the_given_epoch() -> None:
    X, y = blobs()
    recorder = Recorder()
    cfg = config(optimizer="adam", lr=1e-3, schedule=(LRSwitch(epoch=3, optimizer="sgd", lr=0.1),))
    history = Trainer(cfg).fit(TinyMLP(), [X], y, callbacks=[recorder])
    assert recorder.optimizers == [torch.optim.Adam] * 3 + [torch.optim.SGD] * 2
    assert history.lr == [1e-3] * 3 + [0.1] * 2


def test_frozen_parameters_do_not_change_and_others_do() -> None:
    X, y = blobs()
    torch.manual_seed(0)
    model = TinyMLP()
    before = clone_state(model)
    recorder = Recorder()
    Trainer(config(freeze=("a.*", "norm.*"))).fit(model, [X], y, callbacks=[recorder])
    after = clone_state(model)
    for key in ("a.weight", "a.bias", "norm.weight", "norm.bias"):
        assert torch.equal(before[key], after[key]), key
    # The frozen BatchNorm stayed in eval mode: its running statistics never moved.
    for key in ("norm.running_mean", "norm.running_var", "norm.num_batches_tracked"):
        assert torch.equal(before[key], after[key]), key
    assert not torch.equal(before["b.weight"], after["b.weight"])
    assert not model.a.weight.requires_grad and model.b.weight.requires_grad


def test_freeze_pattern_matching_nothing_is_an_error() -> None:
    X, y = blobs()
    with pytest.raises(ConfigError, match="match no parameter"):
        Trainer(config(freeze=("nope.*",))).fit(TinyMLP(), [X], y)


def test_estimator_freeze_param_excludes_parameters_from_the_optimizer() -> None:
    X, y = blobs()
    seen: list[int] = []

    class CountParams(Callback):
        def on_epoch_end(self, ctx: FitContext, record: EpochRecord) -> None:
            seen.append(sum(len(g["params"]) for g in ctx.optimizer.param_groups))

    est = TorchClassifier(
        model=TinyMLP,
        epochs=1,
        batch_size=16,
        device="cpu",
        random_state=0,
        freeze=("a.*",),
        callbacks=[CountParams()],
    ).fit(X, y)
    assert seen == [4]  # norm.weight, norm.bias, b.weight, b.bias
    assert not est.model_.a.weight.requires_grad


def test_init_state_starts_from_the_given_weights(tmp_path) -> None:
    X, y = blobs()
    torch.manual_seed(123)
    start = clone_state(TinyMLP())
    options = {"recalibrate_batchnorm": False}
    est = TorchClassifier(
        model=TinyMLP,
        epochs=0,
        device="cpu",
        random_state=0,
        init_state=start,
        train_options=options,
    ).fit(X, y)
    got = clone_state(est.model_)
    assert all(torch.equal(start[k], got[k]) for k in start)
    # Another seed builds other weights, but init_state wins; a file works the same way.
    torch.save(start, tmp_path / "start.pt")
    other = TorchClassifier(
        model=TinyMLP,
        epochs=0,
        device="cpu",
        random_state=7,
        init_state=tmp_path / "start.pt",
        train_options=options,
    ).fit(X, y)
    assert all(torch.equal(start[k], v) for k, v in clone_state(other.model_).items())
    # With training the weights move on from there.
    trained = TorchClassifier(
        model=TinyMLP, epochs=1, device="cpu", random_state=0, init_state=start
    ).fit(X, y)
    assert not torch.equal(clone_state(trained.model_)["b.weight"], start["b.weight"])


def test_init_state_mismatch_names_keys_and_shapes() -> None:
    X, y = blobs()
    wrong = clone_state(TinyMLP(hidden=5))
    wrong["extra"] = torch.zeros(1)
    with pytest.raises(ConfigError, match=r"unexpected keys \['extra'\].*a\.weight: \(5, 4\)"):
        TorchClassifier(model=TinyMLP, epochs=1, device="cpu", init_state=wrong).fit(X, y)
    with pytest.raises(ConfigError, match="init_state file not found"):
        TorchClassifier(model=TinyMLP, epochs=1, device="cpu", init_state="/no/such.pt").fit(X, y)


def test_early_stopping_restores_the_best_epochs_weights() -> None:
    X, y = blobs(n=120, seed=1)
    X = X + np.random.default_rng(5).normal(scale=3.0, size=X.shape).astype(np.float32)
    recorder = Recorder()
    model = TinyMLP()
    history = Trainer(
        config(epochs=12, lr=0.5, validation_fraction=0.3, patience=3, recalibrate_batchnorm=False)
    ).fit(model, [X], y, callbacks=[recorder])
    best = int(np.argmin(history.val_loss)) + 1
    assert history.best_epoch == best
    assert best < history.epochs_run  # the last epoch was not the best: a restore happened
    final = clone_state(model)
    assert all(torch.equal(final[k], v) for k, v in recorder.states[best - 1].items())
    assert not all(torch.equal(final[k], v) for k, v in recorder.states[-1].items())


def test_early_stopping_needs_validation() -> None:
    X, y = blobs()
    with pytest.raises(ConfigError, match="needs validation"):
        Trainer(config()).fit(TinyMLP(), [X], y, callbacks=[EarlyStopping(2)])


def zero_input(tensor: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    return torch.zeros_like(tensor)


def time_mask(tensor: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """SpecAugment-style: zero one random column per batch."""
    column = int(torch.randint(tensor.shape[1], (1,), generator=generator))
    masked = tensor.clone()
    masked[:, column] = 0
    return masked


class InputSpy(nn.Module):
    """A linear model that remembers the largest |input| it saw in train and in eval mode."""

    def __init__(self, n_features: int = 4, n_classes: int = 2) -> None:
        super().__init__()
        self.linear = nn.Linear(n_features, n_classes)
        self.seen = {"train": 0.0, "eval": 0.0}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mode = "train" if self.training else "eval"
        self.seen[mode] = max(self.seen[mode], float(x.abs().max()))
        return self.linear(x)


def test_batch_transform_applies_in_training_only() -> None:
    X, y = blobs()
    est = TorchClassifier(
        model=InputSpy,
        epochs=2,
        device="cpu",
        random_state=0,
        callbacks=[BatchTransform(zero_input)],
    ).fit(X, y)
    assert est.model_.seen["train"] == 0.0  # every training batch was masked
    est.predict_proba(X)
    assert est.model_.seen["eval"] == pytest.approx(float(np.abs(X).max()))


def test_random_batch_transform_is_reproducible_and_changes_training() -> None:
    X, y = blobs()
    params = {"model": TinyMLP, "epochs": 3, "device": "cpu", "random_state": 0}
    masked = [
        TorchClassifier(**params, callbacks=[BatchTransform(time_mask)]).fit(X, y).predict_proba(X)
        for _ in range(2)
    ]
    plain = TorchClassifier(**params).fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(masked[0], masked[1])
    assert not np.array_equal(masked[0], plain)


def test_callbacks_and_init_state_survive_clone_and_set_params() -> None:
    start = clone_state(TinyMLP())
    recorder = Recorder()
    est = TorchClassifier(
        model=TinyMLP, callbacks=[recorder], init_state=start, freeze=("a.*",), epochs=2
    )
    params = est.get_params()
    assert params["callbacks"] == [recorder] and params["init_state"] is start
    twin = clone(est)
    assert type(twin.callbacks[0]) is Recorder and twin.callbacks[0] is not recorder
    assert all(torch.equal(twin.init_state[k], start[k]) for k in start)
    assert twin.freeze == ("a.*",)
    twin.set_params(callbacks=[Recorder], init_state=None, freeze=None)
    assert twin.get_params()["callbacks"] == [Recorder] and twin.init_state is None
    # Fitting trains with a copy: the given callback object keeps no state between fits.
    X, y = blobs()
    est.set_params(device="cpu", random_state=0).fit(X, y)
    assert recorder.fits == 0 and recorder.states == []
    twin.set_params(device="cpu").fit(X, y)  # a class is instantiated per fit


def test_save_load_and_joblib_round_trip(tmp_path) -> None:
    X, y = blobs()
    est = TorchClassifier(
        model=TinyMLP,
        epochs=2,
        device="cpu",
        random_state=0,
        callbacks=[BatchTransform(time_mask)],
        init_state=clone_state(TinyMLP()),
        freeze=("a.*",),
    ).fit(X, y)
    expected = est.predict_proba(X)
    loaded = TorchClassifier.load(est.save(tmp_path / "m.pt"))
    np.testing.assert_array_equal(loaded.predict_proba(X), expected)
    assert loaded.freeze == ("a.*",) and loaded.callbacks is None  # training-only, not stored
    joblib.dump(est, tmp_path / "m.joblib")
    np.testing.assert_array_equal(joblib.load(tmp_path / "m.joblib").predict_proba(X), expected)


def test_callback_objects_are_deep_copied_not_shared() -> None:
    recorder = Recorder()
    copied = copy.deepcopy(recorder)
    assert copied is not recorder and copied.states is not recorder.states


def test_malloc_reexec_environment_is_the_one_place() -> None:
    assert malloc_reexec_environment({"MERKIT_NO_REEXEC": "1"}) is None
    assert malloc_reexec_environment({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"}) is None
    env = malloc_reexec_environment({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"})
    if malloc_tuning_supported():
        assert env is not None
        assert env["GLIBC_TUNABLES"] == (
            "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1:glibc.malloc.mmap_max=0:"
            "glibc.malloc.trim_threshold=68719476736"
        )
        assert env["MERKIT_NO_REEXEC"] == "1"
        plain = malloc_reexec_environment({}, reuse_heap=False)
        assert plain is not None and plain["GLIBC_TUNABLES"] == "glibc.malloc.hugetlb=1"
    else:
        assert env is None
