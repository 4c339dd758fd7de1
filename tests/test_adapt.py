"""Few-shot adaptation: the recalibration layer learns known shifts, shrinks toward the original
model, and ``merkit adapt`` writes a normal model directory without touching the original."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.special import softmax
from typer.testing import CliRunner

from merkit.core.errors import ConfigError, DataError, ModelError
from merkit.datasets.folder import load_folder
from merkit.product.adapt import (
    RecalibratedClassifier,
    Recalibration,
    adapt_model,
    check_examples,
    fit_on_windows,
)
from merkit.product.export import save_model, train_final
from merkit.product.predict import load_model
from merkit.representations.cache import NullCache
from product_helpers import (
    BANDS,
    LOGREG,
    register_test_methods,
    synthetic_files,
    tone,
    write_wav,
)

register_test_methods()


def _shifted(n: int, shift: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities of a model whose log-odds are off by ``-shift`` on songs of known class."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(4), n // 4)
    logits = 2.0 * np.eye(4)[y] + rng.normal(0, 1.0, (len(y), 4)) - shift
    return softmax(logits, axis=1), y


def test_identity_layer_returns_the_probabilities_unchanged() -> None:
    layer = Recalibration().fit(np.full((4, 4), 0.25), np.arange(4))
    # uniform inputs, one example per class: the best offsets are 0 by symmetry
    assert layer.intercept_ == pytest.approx(np.zeros(4), abs=1e-6)
    p = np.array([[0.7, 0.1, 0.1, 0.1], [0.2, 0.3, 0.4, 0.1]])
    assert layer.transform(p) == pytest.approx(p, abs=1e-6)


def test_bias_offset_is_hand_computable_for_one_class() -> None:
    # Two classes' worth of identical inputs [0.5, 0.5, 0, 0] (clipped), 3 songs of class 0 and
    # 1 of class 1: with a tiny penalty the optimum makes p'(0) = 3/4, i.e. b0 - b1 = log 3.
    p = np.tile([0.5, 0.5, 0.0, 0.0], (4, 1))
    y = np.array([0, 0, 0, 1])
    layer = Recalibration("bias", strength=1e-6).fit(p, y)
    out = layer.transform(p[:1])[0]
    assert out[0] / (out[0] + out[1]) == pytest.approx(0.75, abs=1e-3)
    assert layer.intercept_[0] - layer.intercept_[1] == pytest.approx(np.log(3), abs=1e-2)


def test_bias_recovers_a_prior_shift_and_helps() -> None:
    shift = np.array([1.5, 0.0, -1.0, 0.0])
    p_train, y_train = _shifted(40, shift, seed=1)
    p_test, y_test = _shifted(400, shift, seed=2)
    layer = Recalibration("bias", strength=0.1).fit(p_train, y_train)
    centred = layer.intercept_ - layer.intercept_.mean()
    assert centred == pytest.approx(shift - shift.mean(), abs=0.5)
    before = np.mean(p_test.argmax(axis=1) == y_test)
    after = np.mean(layer.transform(p_test).argmax(axis=1) == y_test)
    assert after > before + 0.1


def test_strong_shrinkage_keeps_the_original_model() -> None:
    p, y = _shifted(8, np.array([2.0, 0, 0, 0]))
    weak = Recalibration("affine", strength=0.5).fit(p, y)
    strong = Recalibration("affine", strength=1e6).fit(p, y)
    assert np.abs(strong.coef_ - np.eye(4)).max() < 1e-4
    assert np.abs(strong.intercept_).max() < 1e-4
    assert np.abs(weak.intercept_).max() > 0.1
    with pytest.raises(ConfigError, match="strength"):
        Recalibration(strength=0).fit(p, y)
    with pytest.raises(ConfigError, match="kind"):
        Recalibration(kind="temperature").fit(p, y)  # type: ignore[arg-type]


def test_window_fit_weighs_each_song_once() -> None:
    # song A (class 0) has 3 identical windows, song B (class 1) one: weighted, a tie -> b0 == b1
    a = np.tile([0.5, 0.5, 0.0, 0.0], (3, 1))
    b = np.array([[0.5, 0.5, 0.0, 0.0]])
    layer = fit_on_windows([a, b], [0, 1], strength=1e-6)
    assert layer.intercept_[0] == pytest.approx(layer.intercept_[1], abs=1e-3)


def test_check_examples_names_short_quadrants() -> None:
    assert check_examples([0, 0, 1, 1, 2, 2, 3, 3]) == {"Q1": 2, "Q2": 2, "Q3": 2, "Q4": 2}
    with pytest.raises(DataError, match="Q2 has 1, Q4 has 0"):
        check_examples([0, 0, 1, 2, 2])


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    songs = synthetic_files(tmp_path_factory.mktemp("synthetic"))
    model = train_final(LOGREG, songs, cache=NullCache(), progress=False)
    return save_model(model, tmp_path_factory.mktemp("models") / "logreg")


def _examples(root: Path, per_quadrant: int) -> Path:
    for q, freq in zip(("Q1", "Q2", "Q3", "Q4"), (300.0, 900.0, 2000.0, 4000.0), strict=True):
        for k in range(per_quadrant):
            write_wav(root / q / f"{q}_{k}.wav", tone(3.0, freq=freq + 10 * k), 16_000)
    return root


def test_adapt_model_writes_a_loadable_model_and_leaves_the_original(
    model_dir: Path, tmp_path: Path
) -> None:
    before = {p.name: p.read_bytes() for p in model_dir.iterdir()}
    examples = load_folder(_examples(tmp_path / "ex", 2), name="ex")
    done = adapt_model(model_dir, examples, tmp_path / "adapted", strength=1.0)
    assert {p.name: p.read_bytes() for p in model_dir.iterdir()} == before
    assert done.counts == {"Q1": 2, "Q2": 2, "Q3": 2, "Q4": 2}
    original, adapted = load_model(model_dir), load_model(tmp_path / "adapted")
    assert isinstance(adapted.estimator, RecalibratedClassifier)
    assert "few-shot recalibration (bias" in (adapted.manifest.calibration or "")
    assert "Adapted with `merkit adapt`" in (adapted.card or "")
    assert "Q1_0" in (adapted.card or "")
    clip = tone(3.0, freq=1200.0)
    p0 = np.array(list(original.predict(clip, 16_000).probabilities.values()))
    p1 = np.array(list(adapted.predict(clip, 16_000).probabilities.values()))
    assert p1 == pytest.approx(done.recalibration.transform(p0[None])[0], abs=1e-6)
    with pytest.raises(ModelError, match="is the model being adapted"):
        adapt_model(model_dir, examples, model_dir)


def test_cli_adapt_and_its_errors(model_dir: Path, tmp_path: Path) -> None:
    from merkit.cli import app

    runner = CliRunner()
    out = tmp_path / "adapted"
    folder = _examples(tmp_path / "ex", 2)
    ok = runner.invoke(
        app,
        ["adapt", "--model", str(model_dir), "--examples", str(folder), "--out", str(out)],
    )
    assert ok.exit_code == 0, ok.output
    assert "adapted model written to" in ok.output
    assert load_model(out).manifest.method == load_model(model_dir).manifest.method
    # a CSV of examples works too
    rows = ["path,quadrant"] + [f"{p},{p.parent.name}" for p in sorted(folder.rglob("*.wav"))]
    (tmp_path / "ex.csv").write_text("\n".join(rows) + "\n")
    csv_out = tmp_path / "adapted-csv"
    args = ["adapt", "--model", str(model_dir), "--quiet", "--out", str(csv_out)]
    assert runner.invoke(app, [*args, "--examples", str(tmp_path / "ex.csv")]).exit_code == 0
    # too few examples in a quadrant
    for wav in (folder / "Q3").glob("*.wav"):
        wav.unlink()
        break
    short = runner.invoke(app, [*args, "--examples", str(folder)])
    assert short.exit_code == 1
    assert "at least 2 example songs in every quadrant; Q3 has 1" in short.output
    bad = runner.invoke(app, [*args, "--examples", str(folder), "--kind", "x"])
    assert bad.exit_code == 1 and "--kind must be one of bias, affine" in bad.output


def test_a_class_without_examples_keeps_its_original_logit() -> None:
    p, y = _shifted(40, np.array([1.5, 0.0, -1.0, 0.0]))
    keep = y != 3
    for kind in ("bias", "affine"):
        layer = Recalibration(kind, strength=0.1).fit(p[keep], y[keep])  # type: ignore[arg-type]
        assert layer.intercept_[3] == 0.0
        assert layer.coef_[3] == pytest.approx(np.eye(4)[3])
        assert np.abs(layer.intercept_[:3]).max() > 0.1


@pytest.fixture(scope="module")
def svm_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    songs = synthetic_files(tmp_path_factory.mktemp("synthetic-svm"))
    model = train_final(
        "svm-own", songs, params={"inputs": [BANDS]}, cache=NullCache(), progress=False
    )
    return save_model(model, tmp_path_factory.mktemp("models") / "svm")


def test_refit_adapts_the_svm_to_the_examples(svm_model_dir: Path, tmp_path: Path) -> None:
    before_files = {p.name: p.read_bytes() for p in svm_model_dir.iterdir()}
    examples = load_folder(_examples(tmp_path / "ex", 2), name="ex")
    done = adapt_model(svm_model_dir, examples, tmp_path / "refit", kind="refit", weight=3.0)
    assert {p.name: p.read_bytes() for p in svm_model_dir.iterdir()} == before_files
    assert done.kind == "refit" and done.weight == 3.0 and done.recalibration is None
    before, after = done.example_accuracy
    assert after > before  # the tones' layout is learnt from the examples themselves
    original, adapted = load_model(svm_model_dir), load_model(tmp_path / "refit")
    assert type(adapted.estimator) is type(original.estimator)  # a plain model, no wrapper
    assert "SVM refit (each example weighing 3 training songs)" in adapted.manifest.calibration
    assert "refitted on its own support vectors" in (adapted.card or "")
    fitted, refitted = (
        m.estimator.calibrated_classifiers_[0].estimator for m in (original, adapted)
    )
    assert refitted[-1] is not fitted[-1]  # a new SVM behind the same scaler and calibration
    assert refitted["scale"].mean_ == pytest.approx(fitted["scale"].mean_)
    wavs = sorted((tmp_path / "ex").rglob("*.wav"))
    right = [adapted.predict(wav).quadrant == wav.parent.name for wav in wavs]
    assert np.mean(right) == pytest.approx(after)  # merkit predict agrees with adapt's check


def test_refit_needs_an_svm_and_positive_weights(model_dir: Path, tmp_path: Path) -> None:
    examples = load_folder(_examples(tmp_path / "ex", 2), name="ex")
    with pytest.raises(ModelError, match="--kind refit needs a model whose classifier is an SVM"):
        adapt_model(model_dir, examples, tmp_path / "out", kind="refit")
    with pytest.raises(ConfigError, match="must be > 0"):
        adapt_model(model_dir, examples, tmp_path / "out", kind="refit", weight=0.0)
    with pytest.raises(ConfigError, match="kind must be one of bias, affine, refit"):
        adapt_model(model_dir, examples, tmp_path / "out", kind="retrain")


def test_cli_adapt_refit(svm_model_dir: Path, tmp_path: Path) -> None:
    from merkit.cli import app

    folder = _examples(tmp_path / "ex", 2)
    args = ["adapt", "--model", str(svm_model_dir), "--examples", str(folder), "--quiet"]
    ok = CliRunner().invoke(app, [*args, "--kind", "refit", "--out", str(tmp_path / "a")])
    assert ok.exit_code == 0, ok.output
    assert "SVM refitted, each example weighing 3 training songs" in ok.output
    bad = CliRunner().invoke(app, [*args, "--kind", "refit", "--weight", "0", "--out", "x"])
    assert bad.exit_code == 1 and "--weight must be > 0" in bad.output
