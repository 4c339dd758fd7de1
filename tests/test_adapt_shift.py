"""``merkit adapt --kind shift`` and ``--kind auto``: a per-quadrant feature shift learnt from a
few labelled songs, then the SVM refit; the adapted folder keeps its companions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.signal import butter, lfilter
from typer.testing import CliRunner

from merkit.core.errors import ConfigError, DataError, ModelError
from merkit.datasets.base import Dataset, FileSource, Song
from merkit.datasets.folder import load_folder
from merkit.datasets.synthetic import load_synthetic
from merkit.product.adapt import adapt_model
from merkit.product.export import save_model, train_final
from merkit.product.predict import load_model
from merkit.representations.cache import NullCache
from product_helpers import (
    BANDS,
    register_test_methods,
    svm_model_with_companions,
    synthetic_files,
    write_wav,
)

register_test_methods()

CUTOFF = 2000.0
"""The user's music: other songs of the same kinds through a 2 kHz low-pass (every band
above it loses energy, the higher the more: a known direction of shift in feature space)."""


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return svm_model_with_companions(tmp_path_factory)


@pytest.fixture(scope="module")
def user_music(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    """A folder of 2 labelled examples per quadrant, and the user's other songs."""
    root = tmp_path_factory.mktemp("user")
    others = []
    b, a = butter(2, CUTOFF, fs=16_000)
    for i, song in enumerate(load_synthetic(n_per_quadrant=6, seed=1, duration=3.0).songs):
        assert song.source is not None
        y = lfilter(b, a, song.source.load(16_000)).astype(np.float32)
        if i < 8:  # quadrants cycle Q1..Q4: the first 8 songs are 2 per quadrant
            write_wav(root / "examples" / song.quadrant / f"{song.song_id}.wav", y, 16_000)
        else:
            others.append(
                write_wav(root / "others" / song.quadrant / f"{song.song_id}.wav", y, 16_000)
            )
    return root / "examples", others


def _accuracy(model: Path, songs: list[Path]) -> float:
    predictor = load_model(model)
    return float(np.mean([predictor.predict(p).quadrant == p.parent.name for p in songs]))


def test_shift_moves_the_users_music_back_and_answers_it_better(
    model_dir: Path, user_music: tuple[Path, list[Path]], tmp_path: Path
) -> None:
    examples, others = user_music
    before_files = {p.name: p.read_bytes() for p in model_dir.iterdir()}
    dataset = load_folder(examples, name="user")
    done = adapt_model(model_dir, dataset, tmp_path / "shift", kind="shift")
    assert {p.name: p.read_bytes() for p in model_dir.iterdir()} == before_files
    assert done.kind == "shift" and done.shift is not None
    refit = adapt_model(model_dir, dataset, tmp_path / "refit", kind="refit")
    assert refit.shift is None
    # the low-passed songs sit lower on the mean log energy of the upper bands (columns 1..7
    # of the test representation, standardised), the more so the higher the band
    assert (done.shift[1:8] < 0).all()
    assert done.shift[7] < done.shift[4] < done.shift[2]
    unadapted = _accuracy(model_dir, others)
    shifted = _accuracy(tmp_path / "shift", others)
    assert shifted > unadapted
    assert shifted >= _accuracy(tmp_path / "refit", others)
    adapted = load_model(tmp_path / "shift")
    assert "per-quadrant feature shift" in (adapted.manifest.calibration or "")
    assert "moved by a feature offset" in (adapted.card or "")


def test_adapted_folders_keep_their_companions(
    model_dir: Path, user_music: tuple[Path, list[Path]], tmp_path: Path
) -> None:
    examples, others = user_music
    dataset = load_folder(examples, name="user")
    original = load_model(model_dir)
    assert original.familiarity is not None
    for kind in ("shift", "refit", "bias"):
        adapt_model(model_dir, dataset, tmp_path / kind, kind=kind)
        adapted = load_model(tmp_path / kind)
        assert adapted.axes is not None and adapted.familiarity is not None, kind
        assert adapted.manifest.companions is not None
        assert adapted.manifest.companions.rule == ("joint" if kind == "shift" else "sides")
        assert "carried over" in (adapted.card or "")
        result = adapted.predict(others[0])
        assert result.p_high_arousal_axis is not None
        assert result.familiarity is not None and result.reliable is not None
        # the examples themselves are part of the reference now: familiar
        example = sorted(examples.rglob("*.wav"))[0]
        assert adapted.predict(example).familiar is True
        extended = adapted.familiarity
        assert extended.threshold_ == original.familiarity.threshold_
        assert len(extended.reference_) > len(original.familiarity.reference_)
    # noise is still unlike the training music
    noise = np.random.default_rng(0).normal(scale=0.3, size=3 * 16000).astype(np.float32)
    assert load_model(tmp_path / "shift").predict(noise, sr=16000).familiar is False


def test_auto_chooses_by_leave_one_out_and_says_so(
    model_dir: Path, user_music: tuple[Path, list[Path]], tmp_path: Path
) -> None:
    examples, _ = user_music
    done = adapt_model(model_dir, load_folder(examples, name="user"), tmp_path / "a", kind="auto")
    assert done.requested == "auto" and done.kind in ("refit", "shift")
    assert done.leave_one_out is not None and set(done.leave_one_out) == {"refit", "shift"}
    assert all(0 <= v <= 8 for v in done.leave_one_out.values())
    loss = done.leave_one_out_loss
    assert loss is not None and set(loss) == {"refit", "shift"}
    assert all(v >= 0 for v in loss.values())
    # the smaller summed log loss wins; a tie goes to refit
    assert done.kind == ("shift" if round(loss["shift"], 9) < round(loss["refit"], 9) else "refit")
    assert "chosen by `--kind auto` by leave-one-out" in (load_model(tmp_path / "a").card or "")


def test_shift_errors_are_one_clear_line(
    model_dir: Path, user_music: tuple[Path, list[Path]], tmp_path: Path
) -> None:
    from merkit.cli import app

    examples, _ = user_music
    runner = CliRunner()
    args = ["adapt", "--model", str(model_dir), "--quiet", "--out", str(tmp_path / "o")]
    ok = runner.invoke(app, [*args, "--examples", str(examples), "--kind", "shift"])
    assert ok.exit_code == 0, ok.output
    assert "features shifted (prior 10)" in ok.output
    predicted = runner.invoke(
        app,
        [
            "predict",
            str(sorted(examples.rglob("*.wav"))[0]),
            "--model",
            str(tmp_path / "o"),
            "--format",
            "json",
        ],
    )  # merkit wrote the adapted folder here: trusted without --trust
    assert predicted.exit_code == 0, predicted.output
    assert "written by merkit" in predicted.output
    for field in ('"p_high_arousal_axis"', '"familiarity"', '"reliable"'):
        assert field in predicted.output
    auto = runner.invoke(app, [*args, "--examples", str(examples), "--kind", "auto"])
    assert auto.exit_code == 0 and "chosen by leave-one-out" in auto.output
    bad = runner.invoke(app, [*args, "--examples", str(examples), "--kind", "shifty"])
    assert bad.exit_code == 1
    assert "--kind must be one of bias, affine, refit, shift, align, auto" in bad.output
    assert "Traceback" not in bad.output
    import shutil

    short = shutil.copytree(examples, tmp_path / "short")
    sorted((short / "Q3").glob("*.wav"))[0].unlink()
    few = runner.invoke(app, [*args, "--examples", str(short), "--kind", "shift"])
    assert few.exit_code == 1 and "Traceback" not in few.output
    assert "at least 2 example songs in every quadrant; Q3 has 1" in few.output
    assert len(few.output.strip().splitlines()) == 1
    one = Dataset(
        "short", [Song(p.stem, FileSource(p), p.parent.name) for p in examples.rglob("*.wav")][1:]
    )
    with pytest.raises(DataError, match="at least 2 example songs in every quadrant"):
        adapt_model(model_dir, one, tmp_path / "x", kind="shift")
    with pytest.raises(ConfigError, match="prior must be >= 0"):
        adapt_model(model_dir, load_folder(examples), tmp_path / "x", kind="shift", prior=-1)


def test_shift_needs_a_familiarity_measure(
    user_music: tuple[Path, list[Path]], tmp_path_factory: pytest.TempPathFactory
) -> None:
    songs = synthetic_files(tmp_path_factory.mktemp("bare"), n_per_quadrant=3)
    model = train_final(
        "svm-own", songs, params={"inputs": [BANDS]}, cache=NullCache(), progress=False
    )
    bare = save_model(model, tmp_path_factory.mktemp("models") / "bare")
    out = tmp_path_factory.mktemp("out") / "o"
    with pytest.raises(ModelError, match="needs the training songs' rows"):
        adapt_model(bare, load_folder(user_music[0]), out, kind="shift")


def test_without_a_kind_an_svm_model_with_familiarity_adapts_by_auto(
    model_dir: Path, user_music: tuple[Path, list[Path]], tmp_path: Path
) -> None:
    """The default kind is the best the model supports (measured in 4qaed_adapt_fewshot.md)."""
    from types import SimpleNamespace

    from sklearn.linear_model import LogisticRegression

    from merkit.product.adapt import default_kind

    examples, _ = user_music
    done = adapt_model(model_dir, load_folder(examples, name="user"), tmp_path / "d")
    assert done.requested == "auto" and done.leave_one_out is not None
    predictor = load_model(model_dir)
    assert default_kind(predictor) == "auto"
    no_familiarity = SimpleNamespace(estimator=predictor.estimator, familiarity=None)
    assert default_kind(no_familiarity) == "refit"
    assert default_kind(SimpleNamespace(estimator=LogisticRegression(), familiarity=None)) == "bias"
