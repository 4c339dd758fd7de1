"""Deep methods under the protocol: the Hybrid's stages never see a test song; runs repeat."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from merkit.datasets.base import Dataset, Song
from merkit.methods import ResolvedMethod, get_method, hybrid, resolve_method
from merkit.protocol import ProtocolConfig, load_or_create_folds, run_method
from merkit.training.classifier import TorchClassifier

N_FRAMES, N_MELS = 116, 128  # the smallest input the baseline CNN trunk takes
TINY = {"epochs": 2, "batch_size": 8, "stop_train_accuracy": None, "device": "cpu"}


def toy_dataset(per_class: int = 6) -> Dataset:
    songs = [Song(f"T{q}{i:02d}", None, f"Q{q + 1}") for q in range(4) for i in range(per_class)]
    return Dataset(name="toy", songs=songs)


def toy_inputs(dataset: Dataset, copies: int = 2) -> dict[str, np.ndarray]:
    """Features, mels and augmented mels in which cell [0, 0] carries the song's row number."""
    rng = np.random.default_rng(0)
    n = len(dataset)
    labels = dataset.labels
    features = rng.normal(size=(n, 5)) + labels[:, None]
    mels = rng.normal(size=(n, N_FRAMES, N_MELS)).astype(np.float16) + labels[:, None, None]
    mels[:, 0, 0] = np.arange(n)
    augmented = np.repeat(mels[:, None], copies, axis=1) + 0.5
    augmented[:, :, 0, 0] = np.arange(n)[:, None]
    return {"table:top100": features, "logmel": mels, "classic-aug": augmented}


class RecordingClassifier(TorchClassifier):
    """Records which songs (mel cell [0, 0]) each training stage is fitted on."""

    seen: list[tuple[str, set[int]]] = []  # noqa: RUF012 - shared across clones on purpose

    def fit(self, X: Any, y: Any) -> RecordingClassifier:
        mels = X.get("logmel") if isinstance(X, dict) else X
        if np.ndim(mels) == 3:
            RecordingClassifier.seen.append(
                (
                    "fusion" if self.model == "hybrid" else self.model,
                    set(np.asarray(mels)[:, 0, 0].astype(int).tolist()),
                )
            )
        return super().fit(X, y)


def test_no_hybrid_stage_is_fitted_on_a_test_song(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hybrid, "TorchClassifier", RecordingClassifier)
    RecordingClassifier.seen = []
    dataset = toy_dataset()
    inputs = toy_inputs(dataset)
    protocol = ProtocolConfig(n_splits=3, n_repeats=1)
    folds = load_or_create_folds(tmp_path / "folds", dataset, protocol)
    estimator = hybrid.HybridClassifier(dnn=TINY, cnn=TINY, fusion=TINY)
    fitted: list[hybrid.HybridClassifier] = []
    original_fit = hybrid.HybridClassifier.fit

    def keep(self: hybrid.HybridClassifier, X: Any, y: Any) -> hybrid.HybridClassifier:
        fitted.append(self)
        return original_fit(self, X, y)

    monkeypatch.setattr(hybrid.HybridClassifier, "fit", keep)
    roles = dict(zip(hybrid.HYBRID.roles or (), hybrid.HYBRID.inputs, strict=True))
    method = ResolvedMethod.of("hybrid", estimator, roles)
    run_method(method, dataset, inputs, folds, protocol, tmp_path, progress=False)

    # Stage 2 (CNN-H on originals + copies) and stage 3 (fusion) per fold: mels of train songs only.
    assert [name for name, _ in RecordingClassifier.seen] == ["cnn-h", "fusion"] * 3
    for k, fold in enumerate(folds):
        train = set(fold.train.tolist())
        for _, songs in RecordingClassifier.seen[2 * k : 2 * k + 2]:
            assert songs == train
        # Stage 1 (feature DNN): its scaler was fitted on exactly the training rows.
        scaler = fitted[k].scaler_[-1]
        np.testing.assert_allclose(scaler.mean_, inputs["table:top100"][fold.train].mean(axis=0))


def test_hybrid_uses_augmented_copies_of_training_songs(monkeypatch: pytest.MonkeyPatch) -> None:
    sizes: list[int] = []

    class Sized(TorchClassifier):
        def fit(self, X: Any, y: Any) -> Sized:
            sizes.append(len(y))
            return super().fit(X, y)

    monkeypatch.setattr(hybrid, "TorchClassifier", Sized)
    dataset = toy_dataset(per_class=3)
    inputs = toy_inputs(dataset, copies=4)
    hybrid.HybridClassifier(dnn=TINY, cnn=TINY, fusion=TINY, random_state=0).fit(
        inputs, dataset.labels
    )
    assert sizes == [12, 12 * 5, 12]  # DNN, CNN-H on originals + 4 copies each, fusion
    sizes.clear()
    hybrid.HybridClassifier(dnn=TINY, fusion=TINY, cnn_init="scratch").fit(inputs, dataset.labels)
    assert sizes == [12, 12]  # the authors' code: no CNN pre-training


def test_cnn_method_gives_identical_scores_for_one_seed(tmp_path: Path) -> None:
    dataset = toy_dataset(per_class=4)
    inputs = {"logmel": toy_inputs(dataset)["logmel"]}
    protocol = ProtocolConfig(n_splits=2, n_repeats=1)
    folds = load_or_create_folds(tmp_path / "folds", dataset, protocol)
    params = {**TINY, "model_params": {"n_frames": N_FRAMES, "n_mels": N_MELS}}
    runs = []
    for name in ("a", "b"):
        result = run_method(
            ResolvedMethod.of(name, resolve_method("cnn", params).estimator, ("logmel",)),
            dataset,
            inputs,
            folds,
            protocol,
            tmp_path,
            save_models=True,
            progress=False,
        )
        runs.append([r.proba for r in result.per_fold])
    assert runs[0] == runs[1]
    assert len(list((tmp_path / "a" / "models").glob("*.pt"))) == 2
    record = json.loads((tmp_path / "a" / "folds" / "r00_f00.json").read_text())
    assert record["training"]["epochs_run"] == 2


def test_dnn_method_sizes_its_input_from_the_feature_table(tmp_path: Path) -> None:
    dataset = toy_dataset(per_class=8)
    rng = np.random.default_rng(1)
    features = rng.normal(size=(len(dataset), 5)) + 3.0 * dataset.labels[:, None]  # separable
    model = get_method("dnn").make({"epochs": 80, "batch_size": 16, "lr": 0.05, "device": "cpu"})
    model.fit(features, dataset.labels)
    network = model.named_steps["dnn"]
    assert network.n_features_in_ == 5
    assert (model.predict(features) == dataset.labels).mean() >= 0.9
    restored = TorchClassifier.load(network.save(tmp_path / "dnn.pt"))
    scaled = model[:-1].transform(features)
    np.testing.assert_allclose(
        restored.predict_proba(scaled), model.predict_proba(features), rtol=1e-6
    )


def test_quick_benchmark_caps_deep_training(tmp_path: Path) -> None:
    import pandas as pd

    from merkit.benchmark import run_benchmark

    dataset = toy_dataset(per_class=6)
    rng = np.random.default_rng(2)
    table = rng.normal(size=(len(dataset), 4)) + dataset.labels[:, None]
    dataset.tables["top100"] = pd.DataFrame(table, index=dataset.song_ids)
    protocol = ProtocolConfig(n_splits=3, n_repeats=1)
    settings = {"dnn": {"device": "cpu", "batch_size": 8, "stop_train_accuracy": None}}
    results = run_benchmark(
        dataset, ["dnn"], protocol, tmp_path, params=settings, quick=True, progress=False
    )
    assert [r.training.epochs_run for r in results[0].per_fold] == [2, 2, 2]
    written = pd.read_csv(tmp_path / "results.csv")
    assert written.loc[0, "method"] == "dnn" and written.loc[0, "n_splits"] == 3
