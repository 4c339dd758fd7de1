"""merkit.features.robust: dropping the own features that move with a song's encoding."""

from __future__ import annotations

import numpy as np
import pytest

from merkit.core.errors import ConfigError, DataError
from merkit.features.own import OWN_FEATURE_NAMES
from merkit.features.robust import (
    CODEC_SENSITIVE,
    CODEC_UNSTABLE,
    DropFeatures,
    excluded_columns,
    resolve_patterns,
)
from merkit.methods import resolve_method


def test_excluded_columns_matches_shell_patterns() -> None:
    names = ["a.mean", "a.std", "b.mean", "ab.mean"]
    assert excluded_columns(names, ["a.*"]).tolist() == [0, 1]
    assert excluded_columns(names, ["*.mean", "a.std"]).tolist() == [0, 1, 2, 3]
    assert excluded_columns(names, []).tolist() == []


def test_a_pattern_matching_nothing_is_refused() -> None:
    with pytest.raises(ConfigError, match="'c.\\*' matches no feature name"):
        excluded_columns(["a.mean"], ["c.*"])


def test_resolve_patterns_expands_presets() -> None:
    assert resolve_patterns("codec-sensitive") == CODEC_SENSITIVE
    assert resolve_patterns(["x.mean", "codec-sensitive"]) == ("x.mean", *CODEC_SENSITIVE)
    assert resolve_patterns(None) == ()
    with pytest.raises(ConfigError, match="exclude_features"):
        resolve_patterns(3)  # type: ignore[arg-type]


def test_codec_sensitive_preset_drops_exactly_these_own_features() -> None:
    X = np.tile(np.arange(len(OWN_FEATURE_NAMES), dtype=float), (3, 1))
    drop = DropFeatures().fit(X)
    dropped = [OWN_FEATURE_NAMES[j] for j in drop.dropped_]
    assert "timbre.spectral_contrast_6.mean" in dropped
    assert "timbre.spectral_contrast_6.std" in dropped
    assert "dynamics.rms_db.kurtosis" in dropped
    assert "timbre.spectral_contrast_5.mean" not in dropped
    assert "dynamics.rms_db.mean" not in dropped
    assert all(
        n.startswith(("timbre.spectral_contrast_6.", "timbre.spectral_flatness."))
        or n in {"timbre.spectral_flux.skew", "timbre.spectral_flux.kurtosis"}
        or n
        in {f"dynamics.{d}.{s}" for d in ("rms_db", "loudness_a_db") for s in ("skew", "kurtosis")}
        for n in dropped
    )
    out = drop.transform(X)
    # Column j held the value j: what is left is exactly the kept indices, in order.
    kept = [j for j in range(len(OWN_FEATURE_NAMES)) if j not in set(drop.dropped_)]
    assert out.shape == (3, len(kept))
    assert out[0].tolist() == kept
    assert list(drop.get_feature_names_out()) == [OWN_FEATURE_NAMES[j] for j in kept]


def test_codec_unstable_preset_adds_ten_named_features_to_codec_sensitive() -> None:
    assert resolve_patterns("codec-unstable") == CODEC_UNSTABLE
    sensitive = set(excluded_columns(OWN_FEATURE_NAMES, CODEC_SENSITIVE).tolist())
    drop = DropFeatures("codec-unstable").fit(np.zeros((2, len(OWN_FEATURE_NAMES))))
    extra = [OWN_FEATURE_NAMES[j] for j in drop.dropped_ if j not in sensitive]
    assert sensitive <= set(drop.dropped_.tolist())
    assert sorted(extra) == sorted(
        [
            "rhythm.tempogram_peak_ratio",
            "timbre.spectral_contrast_0.mean",
            "timbre.spectral_contrast_0.std",
            "timbre.spectral_contrast_1.std",
            "timbre.spectral_contrast_2.std",
            "timbre.spectral_contrast_4.std",
            "timbre.spectral_contrast_5.mean",
            "timbre.spectral_contrast_5.std",
            "tonality.chroma_rel_05.mean",
            "tonality.key_change_rate",
        ]
    )
    assert drop.transform(np.zeros((1, len(OWN_FEATURE_NAMES)))).shape == (1, 317 - 27)


def test_drop_features_checks_the_number_of_columns() -> None:
    with pytest.raises(DataError, match="3 columns but 2 feature names"):
        DropFeatures("a", feature_names=["a", "b"]).fit(np.zeros((2, 3)))
    drop = DropFeatures("a", feature_names=["a", "b"]).fit(np.zeros((2, 2)))
    assert drop.transform(np.array([[1.0, 2.0]])).tolist() == [[2.0]]
    with pytest.raises(DataError, match="fitted on 2 columns, got 3"):
        drop.transform(np.zeros((1, 3)))


def test_svm_own_exclude_features_setting_drops_before_fitting() -> None:
    resolved = resolve_method(
        "svm-own", {"exclude_features": "codec-sensitive", "n_features": "all"}
    )
    rng = np.random.default_rng(0)
    n = len(OWN_FEATURE_NAMES)
    y = np.repeat(np.arange(4), 10)
    X = rng.standard_normal((40, n))
    X[:, 0] += 3 * y  # a feature that is kept carries the class
    model = resolved.estimator.fit(X, y)
    assert model.named_steps["drop"].dropped_.size == len(
        excluded_columns(OWN_FEATURE_NAMES, CODEC_SENSITIVE)
    )
    assert model.named_steps["svm"].n_features_in_ == n - model.named_steps["drop"].dropped_.size
    assert (model.predict(X) == y).mean() > 0.9
    # Without the setting the pipeline has no drop step (saved models keep their step names).
    assert "drop" not in resolve_method("svm-own").estimator.named_steps


def test_svm_own_refuses_a_pattern_matching_no_own_feature() -> None:
    with pytest.raises(ConfigError, match="matches no feature name"):
        resolve_method("svm-own", {"exclude_features": ["timbre.no_such_thing.*"]})
