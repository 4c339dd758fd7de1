"""``merkit adapt --unlabelled`` and ``--kind align``: the user's unlabelled songs align the
model's input space onto the training songs' before the SVM refit; ``auto`` chooses it only
where the leave-one-out on the examples says it helps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.signal import butter, lfilter
from typer.testing import CliRunner

from merkit.core.errors import ConfigError, DataError
from merkit.datasets.folder import load_folder
from merkit.datasets.synthetic import load_synthetic
from merkit.product.adapt import MIN_UNLABELLED, adapt_model
from merkit.product.predict import load_model
from product_helpers import (
    register_test_methods,
    svm_model_with_companions,
    write_wav,
)

register_test_methods()

CUTOFF = 1000.0
"""The user's music: other songs of the same kinds through a 1 kHz low-pass: every band above
it loses energy, and its songs' spread in those bands shrinks (the collection is shifted and
scaled away from the training songs in the model's input space); the unadapted model answers
every one of them Q1 or the like (25 % right)."""


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return svm_model_with_companions(tmp_path_factory)


def _collection(
    root: Path, *, cutoff: float | None, seed: int, n_per_quadrant: int
) -> tuple[Path, Path, list[Path]]:
    """2 labelled examples per quadrant, the whole collection (examples included) as the
    unlabelled folder, and the songs that are not examples (scored)."""
    held = []
    b, a = butter(2, cutoff or 1.0, fs=16_000)
    songs = load_synthetic(n_per_quadrant=n_per_quadrant, seed=seed, duration=3.0).songs
    for i, song in enumerate(songs):
        assert song.source is not None
        y = song.source.load(16_000)
        y = (y if cutoff is None else lfilter(b, a, y)).astype(np.float32)
        path = write_wav(root / "all" / song.quadrant / f"{song.song_id}.wav", y, 16_000)
        if i < 8:  # quadrants cycle Q1..Q4: the first 8 songs are 2 per quadrant
            write_wav(root / "examples" / song.quadrant / f"{song.song_id}.wav", y, 16_000)
        else:
            held.append(path)
    return root / "examples", root / "all", held


@pytest.fixture(scope="module")
def dull_music(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[Path]]:
    return _collection(tmp_path_factory.mktemp("dull"), cutoff=CUTOFF, seed=1, n_per_quadrant=10)


@pytest.fixture(scope="module")
def same_music(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[Path]]:
    """The training songs themselves: a collection the model already knows."""
    return _collection(tmp_path_factory.mktemp("same"), cutoff=None, seed=0, n_per_quadrant=6)


def _accuracy(model: Path, songs: list[Path]) -> float:
    predictor = load_model(model)
    return float(np.mean([predictor.predict(p).quadrant == p.parent.name for p in songs]))


def test_align_learns_a_shifted_and_scaled_collection(
    model_dir: Path, dull_music: tuple[Path, Path, list[Path]], tmp_path: Path
) -> None:
    examples, unlabelled, held = dull_music
    dataset = load_folder(examples, name="user")
    seen: list[str] = []
    done = adapt_model(
        model_dir,
        dataset,
        tmp_path / "align",
        kind="align",
        unlabelled=unlabelled,
        progress=seen.append,
    )
    assert done.kind == "align" and done.alignment is not None and done.shift is None
    assert done.n_unlabelled == 40 and len(seen) == 8 + 40  # examples, then unlabelled songs
    adapt_model(model_dir, dataset, tmp_path / "refit", kind="refit")
    unadapted = _accuracy(model_dir, held)
    refit = _accuracy(tmp_path / "refit", held)
    aligned = _accuracy(tmp_path / "align", held)
    # measured: 25 % unadapted, refit 47 %, align 62.5 % of the 32 held-back songs
    assert unadapted <= 0.3
    assert aligned >= refit + 0.1
    assert aligned >= unadapted + 0.3
    adapted = load_model(tmp_path / "align")
    assert "feature alignment on 40 unlabelled songs" in (adapted.manifest.calibration or "")
    assert "unlabelled songs (40) have the training songs' mean and spread" in (adapted.card or "")
    # the companions move with it: the axes see the same aligned rows, the examples are known
    assert adapted.manifest.companions is not None
    assert adapted.manifest.companions.rule == "joint"
    result = adapted.predict(held[0])
    assert result.p_high_arousal_axis is not None and result.familiarity is not None
    assert adapted.predict(sorted(examples.rglob("*.wav"))[0]).familiar is True


def test_auto_with_unlabelled_picks_align_only_where_the_collection_is_shifted(
    model_dir: Path,
    dull_music: tuple[Path, Path, list[Path]],
    same_music: tuple[Path, Path, list[Path]],
    tmp_path: Path,
) -> None:
    examples, unlabelled, _ = dull_music
    done = adapt_model(
        model_dir, load_folder(examples), tmp_path / "q", kind="auto", unlabelled=unlabelled
    )
    assert done.leave_one_out is not None and set(done.leave_one_out) == {"refit", "shift", "align"}
    assert done.kind == "align"
    assert "ties go to refit, then shift" in (load_model(tmp_path / "q").card or "")
    examples, unlabelled, _ = same_music
    same = adapt_model(
        model_dir, load_folder(examples), tmp_path / "s", kind="auto", unlabelled=unlabelled
    )
    assert same.kind == "refit"
    without = adapt_model(model_dir, load_folder(examples), tmp_path / "w", kind="auto")
    assert without.leave_one_out is not None and set(without.leave_one_out) == {"refit", "shift"}
    assert without.n_unlabelled is None


def test_unlabelled_errors_are_one_clear_line(
    model_dir: Path, dull_music: tuple[Path, Path, list[Path]], tmp_path: Path
) -> None:
    from merkit.cli import app

    examples, unlabelled, _ = dull_music
    runner = CliRunner()
    args = ["adapt", "--model", str(model_dir), "--examples", str(examples), "--quiet"]
    ok = runner.invoke(
        app,
        [*args, "--out", str(tmp_path / "o"), "--unlabelled", str(unlabelled), "--kind", "auto"],
    )
    assert ok.exit_code == 0, ok.output
    assert "kind align chosen by leave-one-out (log loss: refit " in ok.output
    assert "; right: refit " in ok.output
    assert "features aligned on 40 unlabelled songs" in ok.output
    predicted = runner.invoke(
        app, ["predict", str(sorted(unlabelled.rglob("*.wav"))[-1]), "--model", str(tmp_path / "o")]
    )
    assert predicted.exit_code == 0, predicted.output
    unnamed = runner.invoke(
        app, [*args, "--out", str(tmp_path / "u"), "--unlabelled", str(unlabelled)]
    )
    assert unnamed.exit_code == 1 and "Traceback" not in unnamed.output
    assert "with --unlabelled, name the kind: --kind align" in unnamed.output
    assert len(unnamed.output.strip().splitlines()) == 1
    bare = runner.invoke(app, [*args, "--out", str(tmp_path / "b"), "--kind", "align"])
    assert bare.exit_code == 1 and "Traceback" not in bare.output
    assert "--kind align needs your unlabelled songs: --unlabelled DIR" in bare.output
    assert len(bare.output.strip().splitlines()) == 1
    few = tmp_path / "few"
    for p in sorted(unlabelled.rglob("*.wav"))[: MIN_UNLABELLED - 1]:
        write_wav(few / p.name, np.zeros(16_000, np.float32), 16_000)
    short = runner.invoke(
        app, [*args, "--out", str(tmp_path / "f"), "--kind", "align", "--unlabelled", str(few)]
    )
    assert short.exit_code == 1 and "Traceback" not in short.output
    assert f"--unlabelled needs at least {MIN_UNLABELLED} songs" in short.output
    assert f"found {MIN_UNLABELLED - 1}" in short.output
    with pytest.raises(ConfigError, match="--unlabelled is used by --kind align and auto only"):
        adapt_model(
            model_dir, load_folder(examples), tmp_path / "r", kind="refit", unlabelled=unlabelled
        )
    with pytest.raises(DataError, match="needs at least"):
        adapt_model(model_dir, load_folder(examples), tmp_path / "r", kind="auto", unlabelled=[few])
    for name in ("b", "f", "u"):
        assert not (tmp_path / name).exists()
