"""An opt-in window hop for prediction (issue 30 item 1): ``load_model(..., hop_s=)``,
``Predictor(hop_s=)`` and ``merkit predict --hop``."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from merkit.core.errors import ConfigError
from merkit.core.labels import QUADRANTS
from merkit.product import predict as predict_module
from merkit.product.predict import Predictor, expected_windows, load_model
from product_helpers import (
    logreg_model_dir,
    register_test_methods,
    tone,
    write_wav,
)

register_test_methods()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cheap model (band energies, logistic regression, 3 s windows every 1.5 s)."""
    return logreg_model_dir(tmp_path_factory)


def _spans(result: Any) -> list[tuple[float, float]]:
    return [(s.start_s, s.end_s) for s in result.segments]


@pytest.mark.parametrize(
    ("hop", "seconds", "spans"),
    [
        # hop = window: windows that touch, each second once
        (3.0, 7.0, [(0.0, 3.0), (3.0, 6.0)]),  # 1 s left is not > min(1 s, hop/2): no window
        (3.0, 7.5, [(0.0, 3.0), (3.0, 6.0), (4.5, 7.5)]),  # 1.5 s left: one ending at the end
        (2.0, 7.0, [(0.0, 3.0), (2.0, 5.0), (4.0, 7.0)]),
        (1.5, 7.0, [(0.0, 3.0), (1.5, 4.5), (3.0, 6.0), (4.0, 7.0)]),  # the manifest's hop
    ],
)
def test_a_custom_hop_cuts_the_hand_computed_windows(
    model_dir: Path, tmp_path: Path, hop: float, seconds: float, spans: list
) -> None:
    predictor = load_model(model_dir, hop_s=hop)
    assert (predictor.window_s, predictor.hop_s, predictor.manifest.hop_s) == (3.0, hop, 1.5)
    result = predictor.predict(write_wav(tmp_path / "t.wav", tone(seconds), 16_000), segments=True)
    assert result.n_windows == len(spans) == expected_windows(seconds, 3.0, hop)
    np.testing.assert_allclose(_spans(result), spans, atol=1e-9)
    mean = np.mean([[s.probabilities[q] for q in QUADRANTS] for s in result.segments], axis=0)
    np.testing.assert_allclose([result.probabilities[q] for q in QUADRANTS], mean, atol=1e-9)


def test_default_hop_is_unchanged_and_a_clip_is_the_same_whatever_the_hop(
    model_dir: Path, tmp_path: Path
) -> None:
    default = load_model(model_dir)
    assert default.custom_hop_s is None and default.hop_s == default.manifest.hop_s == 1.5
    long = write_wav(tmp_path / "long.wav", tone(10.0, freq=300.0), 16_000)
    clip = write_wav(tmp_path / "clip.wav", tone(2.5, freq=500.0), 16_000)  # one window
    base = default.predict(long, segments=True).model_dump()
    assert base == load_model(model_dir, hop_s=None).predict(long, segments=True).model_dump()
    assert base == load_model(model_dir, hop_s=1.5).predict(long, segments=True).model_dump()
    wider = load_model(model_dir, hop_s=3.0).predict(long, segments=True)
    assert wider.n_windows == 3 < base["n_windows"] == 6
    one = default.predict(clip, segments=True).model_dump()
    for hop in (1.0, 2.0, 3.0):
        assert load_model(model_dir, hop_s=hop).predict(clip, segments=True).model_dump() == one


@pytest.mark.parametrize("bad", [0, -1.0, math.nan, math.inf, "x", True])
def test_a_bad_hop_is_one_clear_error_before_anything_loads(
    model_dir: Path, monkeypatch: pytest.MonkeyPatch, bad: Any
) -> None:
    def never(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the model was opened before the hop was checked")

    monkeypatch.setattr(predict_module, "_open_model_dir", never)
    with pytest.raises(ConfigError, match="hop_s must be a positive number of seconds"):
        load_model(model_dir, hop_s=bad)
    with pytest.raises(ConfigError, match=r"hop_s \(0.001 s\) is below 1 s"):
        load_model(model_dir, hop_s=0.001)  # thousands of windows a track: refused, not slow


def test_a_hop_longer_than_the_window_is_refused_before_the_estimator_loads(
    model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def never(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the estimator was loaded before the hop was checked")

    monkeypatch.setattr(predict_module, "_open_model_dir", never)
    with pytest.raises(ConfigError, match=r"hop_s \(3.5 s\) is longer than the model's 3 s window"):
        load_model(model_dir, hop_s=3.5)
    monkeypatch.undo()
    predictor = load_model(model_dir)
    with pytest.raises(ConfigError, match="gaps"):
        Predictor(predictor.manifest, predictor.estimator, hop_s=3.01)


def test_worker_processes_use_the_hop_and_match_serial(model_dir: Path, tmp_path: Path) -> None:
    predictor = load_model(model_dir, hop_s=3.0)
    paths = [write_wav(tmp_path / f"t{i}.wav", tone(4.0 + 2 * i, freq=200.0 + 150 * i), 16_000)
             for i in range(3)]  # fmt: skip
    serial = [o.model_dump() for o in predictor.predict_many(paths, segments=True)]
    parallel = [o.model_dump() for o in predictor.predict_many(paths, segments=True, n_jobs=2)]
    assert parallel == serial
    # the workers cut at the hop asked for, not the manifest's (which gives more windows)
    assert [o["n_windows"] for o in serial] == [expected_windows(s, 3.0, 3.0) for s in (4, 6, 8)]
    assert [o["n_windows"] for o in serial] != [expected_windows(s, 3.0, 1.5) for s in (4, 6, 8)]


def test_one_pass_with_a_custom_hop_cuts_the_same_windows(model_dir: Path, tmp_path: Path) -> None:
    path = write_wav(tmp_path / "t.wav", tone(10.5, freq=250.0), 16_000)
    exact = load_model(model_dir, hop_s=3.0, exact_windows=True).predict(path, segments=True)
    onepass = load_model(model_dir, hop_s=3.0, exact_windows=False).predict(path, segments=True)
    assert _spans(onepass) == _spans(exact) == [(0.0, 3.0), (3.0, 6.0), (6.0, 9.0), (7.5, 10.5)]
    assert onepass.quadrant == exact.quadrant


def test_cli_hop(app: Any, model_dir: Path, tmp_path: Path) -> None:
    path = write_wav(tmp_path / "t.wav", tone(7.5), 16_000)
    args = ["predict", str(path), "--model", str(model_dir), "--format", "json", "--segments"]
    got = CliRunner().invoke(app, [*args, "--hop", "3"])
    assert got.exit_code == 0, got.output
    (answer,) = json.loads(got.stdout)
    assert answer["n_windows"] == 3
    assert [(s["start_s"], s["end_s"]) for s in answer["segments"]] == [
        (0.0, 3.0),
        (3.0, 6.0),
        (4.5, 7.5),
    ]
    for bad, message in (("0", "--hop must be a positive"), ("4", "--hop (4 s) is longer than")):
        got = CliRunner().invoke(app, [*args, "--hop", bad])
        assert got.exit_code != 0
        assert message in got.output and "Traceback" not in got.output
