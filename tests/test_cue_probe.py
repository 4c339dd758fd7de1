"""The synthetic cue probe (benchmarks/cue_probe.py) and the axis-input variants
(benchmarks/axis_robust.py): the cues reach the audio, the labels follow the stated mapping, and
each variant keeps exactly the columns it says."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def probe() -> Iterator[ModuleType]:
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import cue_probe

        yield cue_probe
    finally:
        sys.path.remove(str(BENCHMARKS))


def test_a_piece_renders_the_same_samples_every_time(probe: ModuleType) -> None:
    piece = probe.cue_pieces(1)[0]
    y = probe.render(piece)
    assert y.dtype == np.float32 and len(y) == int(probe.DURATION_S * probe.SR)
    assert np.array_equal(y, probe.render(piece))
    peak_db = 20 * np.log10(np.abs(y).max())
    assert -12.01 <= peak_db <= -2.99  # the overall-level nuisance range


def test_quadrant_labels_follow_the_stated_cue_mapping(probe: ModuleType) -> None:
    pieces = probe.quadrant_pieces(5)
    assert [p.quadrant for p in pieces].count("Q2") == 5
    for p in pieces:
        high = p.quadrant in ("Q1", "Q2")
        assert (p.tempo >= 120) == high and (p.velocity >= 0.7) == high
        assert (p.articulation < 1) == high  # detached vs legato
        assert (p.mode == "major") == (p.quadrant in ("Q1", "Q4"))


def test_single_cue_sets_change_one_cue_over_the_same_seeds(probe: ModuleType) -> None:
    pieces = [p for p in probe.cue_pieces(2) if p.set == "cue-tempo"]
    assert len(pieces) == 2 * len(probe.CUE_LEVELS["tempo"])
    by_seed: dict[int, list] = {}
    for p in pieces:
        by_seed.setdefault(p.seed, []).append(p)
    for same in by_seed.values():
        assert sorted(p.tempo for p in same) == sorted(probe.CUE_LEVELS["tempo"])
        assert len({(p.velocity, p.density, p.mode, p.register) for p in same}) == 1


def test_density_and_velocity_reach_the_audio(probe: ModuleType) -> None:
    from merkit.features.own import OWN_FEATURE_NAMES, extract_own_features

    base = probe.cue_pieces(1)[0]
    onset = OWN_FEATURE_NAMES.index("rhythm.onset_rate")
    centroid = OWN_FEATURE_NAMES.index("timbre.spectral_centroid.mean")

    def feature(**cues: float) -> np.ndarray:
        return extract_own_features(probe.render(replace(base, **cues)), probe.SR)

    sparse, dense = feature(density=0.5), feature(density=4.0)
    assert dense[onset] > 2 * sparse[onset]
    soft, loud = feature(velocity=0.25), feature(velocity=0.9)
    assert loud[centroid] > 1.2 * soft[centroid]  # a harder stroke is brighter, as on a piano


def test_cue_response_reads_direction_and_size(probe: ModuleType) -> None:
    pieces = probe.cue_pieces(3)
    level = np.array([p.level if p.set == "cue-tempo" else 0 for p in pieces], dtype=float)
    p = np.column_stack([0.2 + 0.2 * level, np.full(len(pieces), 0.5)])
    tempo = probe.cue_response(pieces, p)["tempo"]
    assert tempo["arousal"]["up_fraction"] == 1.0
    assert tempo["arousal"]["delta"] == pytest.approx(0.6)
    assert tempo["arousal"]["delta_logit"] == pytest.approx(np.log(0.8 / 0.2) - np.log(0.2 / 0.8))
    assert tempo["valence"]["delta_logit"] == 0.0


def test_axis_variants_keep_the_columns_they_name(probe: ModuleType) -> None:
    import axis_robust as ar
    from merkit.estimators.axes import model_space
    from merkit.features.own import OWN_FEATURE_NAMES
    from merkit.features.robust import excluded_columns, resolve_patterns
    from merkit.product.model_dir import read_manifest
    from merkit.product.shipped import shipped_model_dir
    from merkit.transfer.pooled import tags3_names

    names = tags3_names()
    assert set(ar.INSTRUMENT_TAGS) <= set(names) and set(ar.AFFECT_TAGS) <= set(names)
    assert not set(ar.INSTRUMENT_TAGS) & set(ar.AFFECT_TAGS)
    assert "mtat:piano" in ar.INSTRUMENT_TAGS and "jamendo:instrument---piano" in ar.INSTRUMENT_TAGS
    built = ar.variants(read_manifest(shipped_model_dir("default")).params)
    rng = np.random.default_rng(0)
    n = 40
    X = {ar.OWN: rng.normal(size=(n, len(OWN_FEATURE_NAMES))), ar.TAGS: rng.normal(size=(n, 150))}
    y = np.tile([0, 1], n // 2)
    own_kept = len(OWN_FEATURE_NAMES) - len(
        excluded_columns(OWN_FEATURE_NAMES, resolve_patterns(list(ar.ROBUST_OWN_DROP)))
    )
    assert not any(
        OWN_FEATURE_NAMES[i].startswith("timbre.")
        for i in range(len(OWN_FEATURE_NAMES))
        if i not in excluded_columns(OWN_FEATURE_NAMES, resolve_patterns(list(ar.ROBUST_OWN_DROP)))
    )
    robust = built["robust"][0].fit(X, y)
    assert model_space(robust, X).shape[1] == own_kept + len(ar.AFFECT_TAGS)
    no_inst = built["no-instrument-tags"][0].fit(X, y)
    full = built["full"][0].fit(X, y)
    assert model_space(full, X).shape[1] - model_space(no_inst, X).shape[1] == len(
        ar.INSTRUMENT_TAGS
    )


def test_a_variant_learns_a_known_direction(probe: ModuleType) -> None:
    import axis_robust as ar
    from merkit.features.own import OWN_FEATURE_NAMES
    from merkit.product.model_dir import read_manifest
    from merkit.product.shipped import shipped_model_dir
    from merkit.transfer.won_crnn import MTAT_TAGS

    est = ar.variants(read_manifest(shipped_model_dir("default")).params)["robust"][0]
    piano = MTAT_TAGS.index("piano")
    rng = np.random.default_rng(1)
    n = 120
    own = rng.normal(size=(n, len(OWN_FEATURE_NAMES)))
    tags = rng.normal(size=(n, 150))
    high = rng.random(n) < 0.5
    own[:, OWN_FEATURE_NAMES.index("rhythm.onset_rate")] += np.where(high, 2.0, -2.0)
    # an instrument tag that would separate the classes perfectly: the variant cannot see it
    tags[:, piano] = np.where(high, -5.0, 5.0)  # "piano = calm"
    X = {ar.OWN: own, ar.TAGS: tags}
    model = est.fit(X, high.astype(int))
    probe_rows = {ar.OWN: np.zeros((2, len(OWN_FEATURE_NAMES))), ar.TAGS: np.zeros((2, 150))}
    probe_rows[ar.OWN][:, OWN_FEATURE_NAMES.index("rhythm.onset_rate")] = [-2.0, 2.0]
    probe_rows[ar.TAGS][:, piano] = [-5.0, 5.0]  # piano says the opposite; onset rate must win
    p = model.predict_proba(probe_rows)[:, 1]
    assert p[1] > 0.5 > p[0]


def test_mixed_set_labels_split_at_the_cue_index_median(probe: ModuleType) -> None:
    pieces = probe.mixed_pieces(40)
    index = probe.arousal_index(pieces)
    high = np.array([p.quadrant in ("Q1", "Q2") for p in pieces])
    assert high.sum() == 20 and (index[high].min() >= index[~high].max())
    assert all((p.quadrant in ("Q1", "Q4")) == (p.mode == "major") for p in pieces)


def test_mixed_summary_finds_the_cue_a_score_follows(probe: ModuleType) -> None:
    pieces = probe.mixed_pieces(40)
    tempo = np.log([p.tempo for p in pieces])
    major = np.array([p.mode == "major" for p in pieces], dtype=float)
    p = np.column_stack([1 / (1 + np.exp(-(tempo - tempo.mean()) * 5)), 0.2 + 0.6 * major])
    m = probe.mixed_summary(pieces, p)
    coef = m["arousal_coefficients"]
    assert coef["tempo"] > 1 and all(abs(coef[c]) < 1e-6 for c in ("density", "velocity"))
    assert m["valence_coefficients"]["major"] > 0 and m["spearman_valence_vs_major"] > 0.99
    assert m["relative"]["valence"] == 1.0
