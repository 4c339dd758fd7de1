"""The shared Trainer and the sklearn TorchClassifier, on tiny models and generated data."""

from __future__ import annotations

import gc
import math
import weakref
from typing import ClassVar

import numpy as np
import pytest
import torch
from sklearn.base import clone
from torch import nn

from merkit.core.errors import ConfigError, DataError, ModelError
from merkit.training import (
    HEAP_REUSE_TUNABLES,
    MALLOC_TUNABLE,
    LRSwitch,
    TrainConfig,
    Trainer,
    cpu_env_hint,
    cpu_has_native_bf16,
    ensure_malloc_tuning,
    malloc_tuning_active,
    malloc_tuning_supported,
    resolve_device,
    seed_everything,
    stratified_holdout,
)
from merkit.training.classifier import TorchClassifier, model_reference

N_FRAMES, N_MELS = 16, 8


class BandNet(nn.Module):
    """Tiny conv classifier of (B, T, F) mel-like inputs (adds the channel axis itself)."""

    input_names: ClassVar[tuple[str, ...]] = ("logmel",)

    def __init__(self, n_classes: int = 4, width: int = 4) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, width, 3, padding=1)
        self.bn = nn.BatchNorm2d(width)
        self.drop = nn.Dropout(0.2)
        self.head = nn.Linear(width * N_MELS, n_classes)

    def forward(self, logmel: torch.Tensor) -> torch.Tensor:
        maps = torch.relu(self.bn(self.conv(logmel.unsqueeze(1))))
        return self.head(self.drop(maps.mean(dim=2).flatten(1)))


class TwoInputNet(nn.Module):
    """Features (B, 5) and a mel (B, T, F): checks that inputs arrive in input_names order."""

    input_names: ClassVar[tuple[str, ...]] = ("features", "logmel")

    def __init__(self, n_classes: int = 4) -> None:
        super().__init__()
        self.features = nn.Linear(5, 8)
        self.mel = nn.Linear(N_MELS, 8)
        self.head = nn.Linear(16, n_classes)

    def forward(self, features: torch.Tensor, logmel: torch.Tensor) -> torch.Tensor:
        assert features.shape[1:] == (5,) and logmel.shape[1:] == (N_FRAMES, N_MELS)
        fused = torch.cat([torch.relu(self.features(features)), self.mel(logmel.mean(dim=1))], 1)
        return self.head(fused)


class ConstantNet(nn.Module):
    """Ignores its input and always predicts class 0 (its bias barely moves at lr 1e-12)."""

    input_names: ClassVar[tuple[str, ...]] = ("x",)

    def __init__(self, n_classes: int = 4) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.tensor([5.0] + [0.0] * (n_classes - 1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bias.expand(len(x), -1) + 0.0 * x.flatten(1).sum(dim=1, keepdim=True)


class NoiseMLP(nn.Module):
    """An over-sized MLP that memorises random labels (validation loss rises: overfitting)."""

    input_names: ClassVar[tuple[str, ...]] = ("x",)

    def __init__(self, n_classes: int = 4) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(20, 256), nn.ReLU(), nn.Linear(256, n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def band_data(n: int, seed: int, dtype: type = np.float16) -> tuple[np.ndarray, np.ndarray]:
    """Mel-like noise where class k has a bright band at mel rows 2k and 2k + 1."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 4
    x = rng.normal(0.0, 1.0, size=(n, N_FRAMES, N_MELS))
    for k in range(4):
        x[y == k, :, 2 * k : 2 * k + 2] += 2.0
    return x.astype(dtype), y


ONE_THREAD = {"num_threads": 1}


def config(**overrides: object) -> TrainConfig:
    base: dict[str, object] = {
        "epochs": 30,
        "batch_size": 32,
        "optimizer": "adam",
        "lr": 0.01,
        "device": "cpu",
        "seed": 0,
        "num_threads": 1,  # tiny models: one thread is fastest, and robust on a busy CPU
    }
    return TrainConfig.create(**{**base, **overrides})


# ---- stop rules ------------------------------------------------------------------------------


def test_stop_rule_stops_at_first_epoch_reaching_threshold() -> None:
    x, y = band_data(256, seed=1)
    slow = {"optimizer": "sgd", "lr": 0.02, "epochs": 8}
    seed_everything(0)
    full = Trainer(config(stop_train_accuracy=None, **slow)).fit(BandNet(), (x,), y)
    assert full.epochs_run == 8 and full.stop_reason == "max_epochs"
    reached = [epoch for epoch, acc in enumerate(full.accuracy, 1) if acc >= 0.9]
    assert reached, f"toy problem never reached 90 %: {full.accuracy}"
    first = reached[0]
    assert first > 1, "the test needs a run that is below 90 % in epoch 1"

    seed_everything(0)
    stopped = Trainer(config(stop_train_accuracy=0.9, **slow)).fit(BandNet(), (x,), y)
    assert stopped.stop_reason == "train_accuracy"
    assert stopped.epochs_run == first
    assert stopped.accuracy == full.accuracy[:first]  # same seed: same trajectory until the stop
    assert all(acc < 0.9 for acc in stopped.accuracy[:-1]) and stopped.accuracy[-1] >= 0.9


def test_epoch_accuracy_is_sample_weighted_over_uneven_batches() -> None:
    # 7 of 10 rows are class 0 and the model always says 0: every epoch is exactly 70 %, whatever
    # the shuffle puts in the batches of 4, 4 and 2 (an unweighted batch mean would vary).
    x = np.zeros((10, 3), dtype=np.float32)
    y = np.array([0] * 7 + [1, 2, 3])
    cfg = {"batch_size": 4, "optimizer": "sgd", "lr": 1e-12, "epochs": 6}
    history = Trainer(config(stop_train_accuracy=0.75, **cfg)).fit(ConstantNet(), (x,), y)
    assert history.accuracy == pytest.approx([0.7] * 6, abs=1e-12)
    assert history.epochs_run == 6 and history.stop_reason == "max_epochs"
    logp = torch.log_softmax(torch.tensor([5.0, 0, 0, 0]), 0)
    hand_loss = -(7 * logp[0] + 3 * logp[1]).item() / 10
    assert history.loss[0] == pytest.approx(hand_loss, rel=1e-5)
    stopped = Trainer(config(stop_train_accuracy=0.7, **cfg)).fit(ConstantNet(), (x,), y)
    assert stopped.epochs_run == 1 and stopped.stop_reason == "train_accuracy"


def test_unreachable_threshold_runs_to_the_cap() -> None:
    x = np.zeros((10, 3), dtype=np.float32)
    y = np.array([0] * 7 + [1, 2, 3])
    cfg = config(stop_train_accuracy=1.0, epochs=4, optimizer="sgd", lr=1e-12)
    history = Trainer(cfg).fit(ConstantNet(), (x,), y)
    assert history.epochs_run == 4 and history.stop_reason == "max_epochs"
    assert len(history.loss) == len(history.lr) == len(history.epoch_seconds) == 4


# ---- learning, determinism -------------------------------------------------------------------


def test_learns_band_problem_from_memmapped_float16(tmp_path) -> None:
    x, y = band_data(400, seed=2)
    np.save(tmp_path / "x.npy", x)
    mapped = np.load(tmp_path / "x.npy", mmap_mode="r")
    x_test, y_test = band_data(200, seed=3)
    trainer = Trainer(config(epochs=20, stop_train_accuracy=None))
    seed_everything(0)
    model = BandNet()
    history = trainer.fit(model, (mapped,), y)
    assert history.loss[-1] < history.loss[0]
    proba = trainer.predict_proba(model, (x_test,))
    assert proba.shape == (200, 4)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)
    assert (proba.argmax(axis=1) == y_test).mean() > 0.9
    assert mapped.dtype == np.float16  # the source array is read, never converted in place


def test_same_seed_same_probabilities_other_seed_differs() -> None:
    x, y = band_data(120, seed=4)
    params = {"model": BandNet, "epochs": 3, "batch_size": 32, "optimizer": "adam", "lr": 0.01}
    probas = [
        TorchClassifier(**params, random_state=seed, device="cpu", train_options=ONE_THREAD)
        .fit(x, y)
        .predict_proba(x)
        for seed in (7, 7, 8)
    ]
    np.testing.assert_array_equal(probas[0], probas[1])
    assert not np.allclose(probas[0], probas[2])


def test_schedule_switches_optimizer_and_lr() -> None:
    x, y = band_data(64, seed=5)
    schedule = (LRSwitch(epoch=2, optimizer="sgd", lr=0.001, momentum=0.9, nesterov=True),)
    cfg = config(epochs=4, stop_train_accuracy=None, optimizer="adam", lr=0.01, schedule=schedule)
    history = Trainer(cfg).fit(BandNet(), (x,), y)
    assert history.lr == [0.01, 0.01, 0.001, 0.001]
    with pytest.raises(ConfigError, match="no validation"):
        bad = (LRSwitch(epoch=1, optimizer="sgd", lr=0.1, restore_best=True),)
        Trainer(config(schedule=bad)).fit(BandNet(), (x,), y)


def test_inner_validation_restores_best_weights() -> None:
    rng = np.random.default_rng(6)
    x = rng.normal(size=(160, 20)).astype(np.float32)
    y = rng.integers(0, 4, size=160)  # random labels: memorising them raises the val loss
    snapshots: list[dict[str, torch.Tensor]] = []
    seed_everything(0)
    model = NoiseMLP()
    cfg = config(epochs=60, stop_train_accuracy=None, validation_fraction=0.25, patience=3, lr=0.01)
    history = Trainer(cfg).fit(
        model,
        (x,),
        y,
        on_epoch_end=lambda _: snapshots.append(
            {k: v.clone() for k, v in model.state_dict().items()}
        ),
    )
    assert history.stop_reason == "early_stopping"
    assert len(history.val_loss) == history.epochs_run == len(snapshots)
    best = int(np.argmin(history.val_loss)) + 1
    assert history.best_epoch == best and best <= history.epochs_run - 3
    final = model.state_dict()
    for key, value in snapshots[best - 1].items():
        torch.testing.assert_close(final[key], value, rtol=0, atol=0)
    assert not torch.equal(final["net.0.weight"], snapshots[-1]["net.0.weight"])


def test_mse_loss_trains_a_reconstruction() -> None:
    rng = np.random.default_rng(14)
    x = rng.normal(size=(64, 6)).astype(np.float32)
    cfg = config(loss="mse", epochs=40, stop_train_accuracy=0.9, lr=0.05)
    seed_everything(0)
    model = nn.Sequential(nn.Linear(6, 6))
    history = Trainer(cfg).fit(model, (x,), x)  # the target is the input itself
    assert history.epochs_run == 40 and history.stop_reason == "max_epochs"  # no accuracy rule
    assert all(math.isnan(acc) for acc in history.accuracy)
    assert history.loss[-1] < 0.1 * history.loss[0]
    reconstruction = Trainer(cfg).predict_outputs(model, (x,))
    assert reconstruction.shape == x.shape
    assert np.mean((reconstruction - x) ** 2) == pytest.approx(history.loss[-1], rel=0.5)


def test_stratified_holdout_keeps_classes() -> None:
    y = np.array([0] * 8 + [1] * 4 + [2] * 2)
    train, val = stratified_holdout(y, 0.25, np.random.default_rng(0))
    assert sorted(np.bincount(y[val]).tolist()) == [1, 1, 2]
    assert set(train) | set(val) == set(range(14)) and not set(train) & set(val)
    with pytest.raises(DataError):
        stratified_holdout(np.array([0]), 0.5, np.random.default_rng(0))


# ---- errors ---------------------------------------------------------------------------------


def test_bad_settings_and_inputs_raise_merkit_errors() -> None:
    with pytest.raises(ConfigError, match="batch_size"):
        TrainConfig.create(batch_size=0)
    with pytest.raises(ConfigError, match="nesterov"):
        TrainConfig.create(nesterov=True)
    x, y = band_data(16, seed=0)
    with pytest.raises(DataError, match="differ in length"):
        Trainer(config()).fit(BandNet(), (x,), y[:-1])
    with pytest.raises(DataError, match="2 inputs"):
        Trainer(config()).fit(TwoInputNet(), (x,), y)
    with pytest.raises(ModelError, match="class index 5"):
        Trainer(config()).fit(BandNet(n_classes=4), (x,), y + 2)
    bad = x.astype(np.float32)
    bad[3, 0, 0] = np.nan
    with pytest.raises(ModelError, match="NaN"):
        Trainer(config(epochs=1)).fit(BandNet(), (bad,), y)


def test_devices() -> None:
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ConfigError):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            resolve_device("cuda")


def test_malloc_tuning_env() -> None:
    env = ensure_malloc_tuning({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2", "A": "b"})
    if malloc_tuning_supported():
        assert env["GLIBC_TUNABLES"] == "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1"
        assert malloc_tuning_active(env)
        assert not malloc_tuning_active({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"})
        kept = ensure_malloc_tuning({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"})
        assert kept["GLIBC_TUNABLES"] == "glibc.malloc.hugetlb=0"  # an explicit opt-out stays
        assert (cpu_env_hint() is None) == malloc_tuning_active()
    else:
        assert "glibc.malloc.hugetlb" not in env["GLIBC_TUNABLES"]
    assert env["A"] == "b"
    assert not malloc_tuning_active({})
    both = ensure_malloc_tuning({}, reuse_heap=True)
    if malloc_tuning_supported():
        assert both["GLIBC_TUNABLES"] == f"{MALLOC_TUNABLE}:{HEAP_REUSE_TUNABLES}"
        assert malloc_tuning_active(both, reuse_heap=True)
        assert not malloc_tuning_active(env, reuse_heap=True)


# ---- estimator ------------------------------------------------------------------------------


def test_estimator_clone_and_params_round_trip() -> None:
    est = TorchClassifier(
        model=BandNet,
        model_params={"width": 3},
        epochs=2,
        lr=0.05,
        random_state=1,
        train_options={"momentum": 0.5, **ONE_THREAD},
    )
    params = est.get_params()
    copy = clone(est)
    assert copy.get_params() == params and copy is not est
    copy.set_params(lr=0.1, epochs=5)
    assert (copy.lr, copy.epochs, est.lr) == (0.1, 5, 0.05)
    x, y = band_data(32, seed=0)
    est.fit(x, y)
    assert not hasattr(clone(est), "model_")
    with pytest.raises(ConfigError, match="repeats"):
        TorchClassifier(model=BandNet, train_options={"lr": 1.0}).fit(x, y)


def test_estimator_fit_predict_string_labels() -> None:
    x, y = band_data(240, seed=8)
    labels = np.array(["Q1", "Q2", "Q3", "Q4"])[y]
    est = TorchClassifier(
        model=BandNet,
        epochs=20,
        batch_size=32,
        optimizer="adam",
        lr=0.01,
        random_state=0,
        device="cpu",
        train_options=ONE_THREAD,
    ).fit(x, labels)
    x_test, y_test = band_data(120, seed=9)
    assert est.classes_.tolist() == ["Q1", "Q2", "Q3", "Q4"]
    assert (est.predict(x_test) == np.array(["Q1", "Q2", "Q3", "Q4"])[y_test]).mean() > 0.9
    assert est.history_.epochs_run <= 20 and est.history_.stop_reason in (
        "train_accuracy",
        "max_epochs",
    )
    assert est.model_.head.out_features == 4  # n_classes filled from the labels


def test_fit_keeps_no_reference_to_training_arrays() -> None:
    x, y = band_data(32, seed=12, dtype=np.float32)
    watcher = weakref.ref(x)
    est = TorchClassifier(
        model=BandNet, epochs=1, batch_size=16, random_state=0, train_options=ONE_THREAD
    ).fit(x, y)
    del x
    gc.collect()
    assert watcher() is None
    assert est.predict_proba(band_data(8, seed=13)[0]).shape == (8, 4)


def test_save_load_identical_probabilities(tmp_path) -> None:
    x, y = band_data(64, seed=10)
    est = TorchClassifier(
        model=BandNet,
        epochs=2,
        batch_size=16,
        random_state=0,
        device="cpu",
        train_options=ONE_THREAD,
    ).fit(x, y)
    path = est.save(tmp_path / "fold0" / "model.pt")
    torch.load(path, weights_only=True)  # loads without unpickling arbitrary objects
    loaded = TorchClassifier.load(path)
    np.testing.assert_array_equal(loaded.predict_proba(x), est.predict_proba(x))
    assert loaded.history_ == est.history_
    assert loaded.get_params()["model"] == model_reference(BandNet)
    (tmp_path / "junk.pt").write_bytes(b"not a model")
    with pytest.raises(ModelError, match=r"junk\.pt"):
        TorchClassifier.load(tmp_path / "junk.pt")
    with pytest.raises(ModelError, match="not found"):
        TorchClassifier.load(tmp_path / "missing.pt")


def test_dict_inputs_for_two_input_model() -> None:
    rng = np.random.default_rng(11)
    y = np.arange(200) % 4
    features = rng.normal(size=(200, 5)).astype(np.float32)
    features[np.arange(200), y] += 3.0
    logmel = rng.normal(size=(200, N_FRAMES, N_MELS)).astype(np.float16)
    est = TorchClassifier(
        model=TwoInputNet,
        epochs=30,
        batch_size=32,
        optimizer="adam",
        lr=0.02,
        random_state=0,
        device="cpu",
        train_options=ONE_THREAD,
    )
    est.fit({"logmel": logmel, "features": features, "unused": np.zeros(200)}, y)
    assert est.input_names_ == ("features", "logmel")
    assert (est.predict({"features": features, "logmel": logmel}) == y).mean() > 0.9
    with pytest.raises(DataError, match="missing"):
        est.predict({"features": features})
    with pytest.raises(DataError, match="2 inputs"):
        est.predict(logmel)


def test_registry_models_by_name_save_and_load(tmp_path) -> None:
    rng = np.random.default_rng(15)
    y = np.arange(16) % 4
    logmel = rng.normal(size=(16, 100, 64)).astype(np.float16)
    X = {"features": rng.normal(size=(16, 10)).astype(np.float32), "logmel": logmel}
    size = {"n_frames": 100, "n_mels": 64}
    for name, params, inputs in (
        ("cnn", size, logmel),
        ("hybrid", {"n_features": 10, **size}, X),
    ):
        est = TorchClassifier(
            model=name,
            model_params=params,
            epochs=1,
            batch_size=8,
            random_state=0,
            train_options=ONE_THREAD,
        ).fit(inputs, y)
        loaded = TorchClassifier.load(est.save(tmp_path / f"{name}.pt"))
        assert loaded.model == name and loaded.input_names_ == est.input_names_
        np.testing.assert_array_equal(loaded.predict_proba(inputs), est.predict_proba(inputs))


class OffsetBNNet(nn.Module):
    """Linear -> BatchNorm (Keras momentum) -> ReLU -> Linear, for inputs far from zero mean."""

    input_names = ("x",)

    def __init__(self, n_classes: int = 2) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Linear(4, 16),
            nn.BatchNorm1d(16, momentum=0.01, eps=1e-3),
            nn.ReLU(),
            nn.Linear(16, n_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


@pytest.mark.parametrize("recalibrate", [True, False])
def test_batchnorm_recalibration_keeps_eval_predictions_consistent(recalibrate: bool) -> None:
    # dB-like inputs: a large offset; 3 epochs x 8 batches = 24 BN updates, far too few for
    # Keras' momentum 0.99 to bring the running mean near the batch mean.
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 32)
    x = (rng.normal(size=(64, 4)) + 3.0 * y[:, None] - 60.0).astype(np.float32)
    config = TrainConfig(
        epochs=3,
        batch_size=8,
        optimizer="adam",
        lr=0.01,
        stop_train_accuracy=None,
        device="cpu",
        seed=0,
        recalibrate_batchnorm=recalibrate,
        mixed_precision=False,  # the statistics are compared with a float32 forward pass
    )
    model = OffsetBNNet()
    trainer = Trainer(config)
    trainer.fit(model, (x,), y)
    bn = model.body[1]
    accuracy = (trainer.predict_proba(model, (x,)).argmax(axis=1) == y).mean()
    if recalibrate:
        with torch.no_grad():
            hidden = model.body[0](torch.from_numpy(x))
        np.testing.assert_allclose(
            bn.running_mean.numpy(), hidden.mean(0).numpy(), rtol=1e-4, atol=1e-4
        )
        # Rows are sorted by class: only shuffled batches give the population variance.
        np.testing.assert_allclose(bn.running_var.numpy(), hidden.var(0).numpy(), rtol=0.25)
        assert bn.momentum == 0.01  # restored
        assert accuracy > 0.9
    else:
        assert accuracy < 0.75  # the eval-mode collapse the recalibration prevents


class DtypeSpy(BandNet):
    """BandNet that records the dtype of its conv output in every forward pass."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[torch.dtype] = []
        self.conv.register_forward_hook(lambda _m, _i, out: self.seen.append(out.dtype))


@pytest.mark.parametrize("mixed", [True, False])
def test_cpu_mixed_precision_follows_the_hardware(mixed: bool) -> None:
    x, y = band_data(64, seed=3)
    model = DtypeSpy()
    trainer = Trainer(config(epochs=2, mixed_precision=mixed, stop_train_accuracy=None))
    trainer.fit(model, (x,), y)
    trainer.predict_proba(model, (x,))
    bf16 = mixed and cpu_has_native_bf16()
    # Training, BatchNorm recalibration and prediction all run under the same precision.
    assert set(model.seen) == {torch.bfloat16 if bf16 else torch.float32}


@pytest.mark.skipif(
    not cpu_has_native_bf16(), reason="this CPU has no native bf16 (AMX/AVX512-BF16)"
)
def test_bf16_training_learns_and_is_reproducible() -> None:
    x, y = band_data(128, seed=4)
    test_x, test_y = band_data(64, seed=5)
    probabilities = []
    for _ in range(2):
        torch.manual_seed(0)
        model = BandNet()
        trainer = Trainer(config(mixed_precision=True))
        trainer.fit(model, (x,), y)
        probabilities.append(trainer.predict_proba(model, (test_x,)))
    assert (probabilities[0].argmax(axis=1) == test_y).mean() > 0.9
    np.testing.assert_array_equal(probabilities[0], probabilities[1])
