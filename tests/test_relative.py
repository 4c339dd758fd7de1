"""``merkit predict --relative``: arousal/valence scores from probabilities, robust centring within
the collection, quadrants from the signs; refused for too small a collection."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from merkit.core.errors import ConfigError
from merkit.product.prediction import PredictionResult
from merkit.product.relative import (
    MIN_FILES,
    av_scores,
    quadrant_of,
    relative_placements,
    robust_standardize,
    with_relative,
)


def test_scores_from_probabilities_by_hand() -> None:
    proba = np.array([[0.4, 0.3, 0.2, 0.1], [0.1, 0.1, 0.1, 0.7], [0.25] * 4])
    arousal, valence = av_scores(proba)
    # 0.4+0.3-0.2-0.1 = 0.4; 0.1+0.1-0.1-0.7 = -0.6; 0
    assert arousal == pytest.approx([0.4, -0.6, 0.0])
    # 0.4+0.1-0.3-0.2 = 0.0; 0.1+0.7-0.1-0.1 = 0.6; 0
    assert valence == pytest.approx([0.0, 0.6, 0.0])


def test_robust_standardize_by_hand() -> None:
    # median 3, |deviations| 2 1 0 1 97 -> MAD 1, spread 1.4826: the outlier does not set the scale
    z = robust_standardize(np.array([1.0, 2.0, 3.0, 4.0, 100.0]))
    assert z == pytest.approx(np.array([-2, -1, 0, 1, 97]) / 1.4826)
    # MAD 0 (most values equal): the standard deviation scales instead
    values = np.array([0.0, 0.0, 0.0, 0.0, 1.0])
    assert robust_standardize(values) == pytest.approx(values / np.std(values))
    # all equal: only centred
    assert robust_standardize(np.full(4, 0.3)) == pytest.approx(np.zeros(4))


def test_quadrant_from_signs() -> None:
    assert [quadrant_of(a, v) for a, v in [(1, 1), (1, -1), (-1, -1), (-1, 1), (0, 0)]] == [
        "Q1",
        "Q2",
        "Q3",
        "Q4",
        "Q1",
    ]


def _calm_collection() -> np.ndarray:
    """Ten piano-like songs the model calls calm (Q4) or sad (Q3), none excited or tense."""
    rows = [
        [0.05, 0.05, 0.20, 0.70],  # a -0.80, v 0.50
        [0.10, 0.05, 0.15, 0.70],  # a -0.70, v 0.60
        [0.15, 0.05, 0.10, 0.70],  # a -0.60, v 0.70
        [0.20, 0.10, 0.10, 0.60],  # a -0.40, v 0.60
        [0.25, 0.15, 0.10, 0.50],  # a -0.20, v 0.50
        [0.05, 0.05, 0.70, 0.20],  # a -0.80, v -0.50
        [0.05, 0.10, 0.65, 0.20],  # a -0.70, v -0.50
        [0.10, 0.20, 0.50, 0.20],  # a -0.40, v -0.40
        [0.15, 0.25, 0.40, 0.20],  # a -0.20, v -0.30
        [0.20, 0.25, 0.35, 0.20],  # a -0.10, v -0.20
    ]
    return np.array(rows)


def test_relative_placement_by_hand() -> None:
    proba = _calm_collection()
    assert set(proba.argmax(axis=1)) == {2, 3}  # absolutely: all low arousal
    placed = relative_placements(proba)
    arousal = np.array([-0.8, -0.7, -0.6, -0.4, -0.2, -0.8, -0.7, -0.4, -0.2, -0.1])
    valence = np.array([0.5, 0.6, 0.7, 0.6, 0.5, -0.5, -0.5, -0.4, -0.3, -0.2])
    # arousal median -0.5, |dev| .3 .2 .1 .1 .3 .3 .2 .1 .3 .4 -> MAD 0.25
    # valence median 0.15, |dev| .35 .45 .55 .45 .35 .65 .65 .55 .45 .35 -> MAD 0.45
    assert [p.arousal_score for p in placed] == pytest.approx(arousal)
    assert [p.valence_score for p in placed] == pytest.approx(valence)
    assert [p.relative_arousal for p in placed] == pytest.approx((arousal + 0.5) / (1.4826 * 0.25))
    assert [p.relative_valence for p in placed] == pytest.approx((valence - 0.15) / (1.4826 * 0.45))
    assert [p.quadrant for p in placed] == [
        "Q4", "Q4", "Q4", "Q1", "Q1", "Q3", "Q3", "Q2", "Q2", "Q2",
    ]  # fmt: skip
    assert placed[3].meaning == "happy/excited" and placed[3].arousal == "high"


def test_too_few_songs_are_refused() -> None:
    with pytest.raises(ConfigError, match=f"at least {MIN_FILES} predicted songs"):
        relative_placements(_calm_collection()[:9])


def _result(path: str, proba: np.ndarray) -> PredictionResult:
    quadrants = ("Q1", "Q2", "Q3", "Q4")
    best = quadrants[int(np.argmax(proba))]
    return PredictionResult(
        path=path,
        quadrant=best,
        meaning="",
        probabilities=dict(zip(quadrants, proba.tolist(), strict=True)),
        arousal="low",
        valence="positive",
        p_high_arousal=float(proba[:2].sum()),
        p_positive_valence=float(proba[0] + proba[3]),
        confidence=float(proba.max()),
        duration_s=30.0,
        n_windows=1,
        reliable=True,
    )


def test_with_relative_keeps_the_absolute_answer() -> None:
    results = [_result(f"{i}.wav", p) for i, p in enumerate(_calm_collection())]
    placed = with_relative(results)
    assert [r.quadrant for r in placed] == [r.quadrant for r in results]
    assert placed[3].relative is not None and placed[3].relative.quadrant == "Q1"
    assert placed[0].model_dump(mode="json")["relative"]["quadrant"] == "Q4"


def test_cli_relative_refuses_a_small_folder_before_predicting(tmp_path: Path) -> None:
    from conftest import write_tone
    from merkit.cli import app

    for i in range(3):
        write_tone(tmp_path / f"{i}.wav", 440.0 + i)
    result = CliRunner().invoke(app, ["predict", str(tmp_path), "--relative"])
    assert result.exit_code == 1
    assert "--relative needs at least 10 audio files" in result.output
    assert "found 3" in result.output


def test_cli_relative_on_a_collection(tmp_path: Path) -> None:
    import csv
    import io

    from merkit.cli import app
    from merkit.product.export import save_model, train_final
    from merkit.representations.cache import NullCache
    from product_helpers import LOGREG, register_test_methods, synthetic_files, tone, write_wav

    register_test_methods()
    songs = synthetic_files(tmp_path / "syn")
    model = train_final(LOGREG, songs, cache=NullCache(), progress=False)
    model_dir = save_model(model, tmp_path / "model")
    folder = tmp_path / "collection"
    for i in range(10):
        write_wav(folder / f"song{i}.wav", tone(3.0, freq=200.0 + 150 * i), 16_000)
    args = ["predict", str(folder), "--model", str(model_dir), "--quiet", "--format", "csv"]
    result = CliRunner().invoke(app, [*args, "--relative"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == 10
    proba = np.array([[float(r[f"p_{q}"]) for q in ("Q1", "Q2", "Q3", "Q4")] for r in rows])
    expected = relative_placements(proba)
    assert [r["relative_quadrant"] for r in rows] == [p.quadrant for p in expected]
    assert [float(r["relative_arousal"]) for r in rows] == pytest.approx(
        [p.relative_arousal for p in expected], abs=1e-3
    )
    # the median splits the collection: both halves of each axis are populated
    signs = {float(r["relative_arousal"]) >= 0 for r in rows}
    assert signs == {True, False}
    plain = CliRunner().invoke(app, args)
    assert plain.exit_code == 0
    assert all(r["relative_quadrant"] == "" for r in csv.DictReader(io.StringIO(plain.stdout)))


def test_cli_relative_skipped_when_files_fail(tmp_path: Path) -> None:
    from conftest import write_tone
    from merkit.cli import app

    for i in range(9):
        write_tone(tmp_path / f"{i}.wav", 440.0 + 50 * i)
    write_tone(tmp_path / "short.wav", 440.0, seconds=0.5)  # shorter than 1 s: fails
    result = CliRunner().invoke(app, ["predict", str(tmp_path), "--relative", "-f", "json"])
    assert result.exit_code == 1  # one file failed
    assert "--relative skipped: only 9 of 10 files were predicted" in result.output
    assert '"relative": null' in result.stdout
