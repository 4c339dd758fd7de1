"""Reports that never overstate (issue 31): regimes, paper numbers only where comparable, power.

Each test builds what a researcher would see (a run folder, its table, its HTML report) and checks
what it claims: the paper's Table 3 number sits only beside a comparable result, smoke and reduced
runs carry a banner, a comparison on too few folds draws no verdict, intervals stay on the scale
that exists, rows come best first.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps

from merkit.html_report import render_report
from merkit.methods import resolve_method
from merkit.methods.regime import training_caps
from merkit.protocol.comparability import paper_comparison
from merkit.protocol.folds import ProtocolConfig
from merkit.protocol.results import load_results
from merkit.report import markdown_report, results_frame, results_table
from merkit.stats import MIN_VERDICT_FOLDS, corrected_resampled_ttest, pairwise_comparisons
from tests.test_html_report import fake_run

PAPER_10X10 = ProtocolConfig(n_splits=10, n_repeats=10)


# -- regime ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "settings", "quick", "regime"),
    [
        ("cnn", None, False, "full"),
        ("cnn", {"epochs": 300}, False, "full"),  # training longer is still the recipe's regime
        ("cnn", {"epochs": 30}, False, "reduced"),
        ("cnn", {"stop_train_accuracy": 0.5}, False, "reduced"),
        ("cnn", None, True, "quick"),
        ("dnn", {"epochs": 10}, False, "reduced"),  # inside a pipeline step
        ("hybrid", {"cnn": {"epochs": 10}}, False, "reduced"),  # inside a stage's dict
        ("hybrid", {"cnn": {"lr": 0.1}}, False, "full"),
        ("cnn+rg", {"epochs": 30}, False, "reduced"),  # inside the augmentation wrapper
        ("svm", None, False, "full"),
        ("svm-own", None, True, "quick"),
    ],
)
def test_regime_is_read_from_the_settings(
    name: str, settings: dict | None, quick: bool, regime: str
) -> None:
    assert resolve_method(name, settings, quick=quick).regime == regime


def test_training_caps_finds_every_stage() -> None:
    caps = training_caps(resolve_method("hybrid").estimator)
    assert caps == {"dnn__epochs": 100.0, "cnn__epochs": 450.0, "fusion__epochs": 100.0}


# -- paper comparability -----------------------------------------------------------------------


def test_paper_number_only_for_the_papers_setting() -> None:
    ok = dict(paper_f1=0.6062, dataset="4qaed", n_songs=900, protocol=PAPER_10X10, regime="full")
    assert paper_comparison(**ok) is None
    assert paper_comparison(**{**ok, "regime": "unrecorded"}) is None  # runs before regimes
    reasons = {
        "no row": paper_comparison(**{**ok, "paper_f1": None}),
        "synthetic": paper_comparison(**{**ok, "dataset": "synthetic"}),
        "subset": paper_comparison(**{**ok, "n_songs": 450}),
        "quick": paper_comparison(**{**ok, "regime": "quick"}),
        "reduced": paper_comparison(**{**ok, "regime": "reduced"}),
        "3x1": paper_comparison(**{**ok, "protocol": ProtocolConfig(n_splits=3, n_repeats=1)}),
        "10x1": paper_comparison(**{**ok, "protocol": ProtocolConfig(n_splits=10, n_repeats=1)}),
        "unstratified": paper_comparison(
            **{**ok, "protocol": ProtocolConfig(n_splits=10, n_repeats=10, stratify=False)}
        ),
        "genre": paper_comparison(
            **{**ok, "protocol": ProtocolConfig(n_splits=7, n_repeats=1, leave_out="genre")}
        ),
    }
    assert reasons["no row"] == "no Table 3 row"
    assert "not synthetic" in reasons["synthetic"]
    assert "450-song subset" in reasons["subset"]
    assert "quick smoke run" in reasons["quick"]
    assert "lower bound" in reasons["reduced"]
    assert "3x1 stratified folds" in reasons["3x1"]
    assert "10x1" in reasons["10x1"] and "10x10" in reasons["10x1"]
    assert "unstratified" in reasons["unstratified"]
    assert "leave-one-genre-out" in reasons["genre"]


def test_quick_synthetic_table_has_banner_and_no_paper_number(tmp_path: Path) -> None:
    run = fake_run(
        tmp_path / "run",
        {"cnn": 0.6, "svm-own": 0.9},
        n_splits=3,
        dataset="synthetic",
        regime="quick",
        paper_f1=0.6062,
    )
    results = load_results(run).complete()
    frame = results_frame(results)
    assert list(frame["method"]) == ["svm-own", "cnn"]  # best first, not by name
    assert frame["paper_f1"].isna().all()
    assert set(frame["regime"]) == {"quick"}
    assert all("not synthetic" in note for note in frame["paper_note"])
    text = markdown_report(frame, results, "t")
    assert "60.62" not in text and "SMOKE RUN" in text and "| quick |" in text
    from rich.console import Console

    console = Console(record=True, width=200)
    console.print(results_table(frame, "t"))
    shown = console.export_text()
    assert "SMOKE RUN" in shown and "60.62" not in shown and "not synthetic" in shown
    html = render_report([run])
    assert 'class="banner"' in html and "SMOKE RUN" in html
    assert "60.62" not in html
    # 3 folds x 2 repeats: numbers for inspection, no verdict, no Friedman.
    assert 'id="underpowered"' in html and "is better" not in html
    assert "underpowered (6 folds &lt; 10): no verdict" in html
    assert "Friedman χ²" not in html


def test_10x10_4qaed_report_shows_paper_number_and_verdicts(tmp_path: Path) -> None:
    run = tmp_path / "run"
    fake_run(
        run, {"good": 0.95, "mid": 0.7, "bad": 0.3}, n_splits=10, n_repeats=10, dataset="4qaed",
        n_songs=900, regime="full", paper_f1=0.6062,
    )  # fmt: skip
    frame = results_frame(load_results(run).complete())
    assert (frame["paper_f1"] == 0.6062).all() and (frame["paper_note"] == "").all()
    html = render_report([run])
    assert "60.62" in html and "SMOKE RUN" not in html and 'id="underpowered"' not in html
    assert "good is better (p &lt; 0.05)" in html
    assert "Friedman χ²" in html


def test_reduced_run_banner_names_its_rows(tmp_path: Path) -> None:
    run = fake_run(tmp_path / "r", {"cnn": 0.6}, dataset="4qaed", n_songs=900, regime="reduced")
    html = render_report([run])
    assert "REDUCED TRAINING" in html and "(cnn)" in html
    assert "lower bound" in html


# -- statistics that know their power ----------------------------------------------------------


def test_verdicts_need_enough_folds() -> None:
    rng = np.random.default_rng(0)
    for n_folds, verdict in ((3, False), (MIN_VERDICT_FOLDS, True)):
        import pandas as pd

        scores = pd.DataFrame(
            {"a": 0.8 + rng.normal(0, 0.005, n_folds), "b": 0.5 + rng.normal(0, 0.005, n_folds)}
        )
        (comparison,) = pairwise_comparisons(scores, 1 / 9)
        assert comparison.p_holm < 0.05  # a huge difference...
        assert comparison.significant is verdict  # ...is only called on enough folds
        assert comparison.underpowered is (not verdict)
        expected = "a is better (p < 0.05)" if verdict else "underpowered (3 folds < 10)"
        assert comparison.verdict.startswith(expected)


def test_interval_stays_on_the_scale_of_f1_differences() -> None:
    import pandas as pd

    # Three folds of wildly varying differences: the raw t interval runs past ±1.
    scores = pd.DataFrame({"a": [0.9, 0.1, 0.95], "b": [0.05, 0.9, 0.1]})
    d = (scores["a"] - scores["b"]).to_numpy()
    raw = corrected_resampled_ttest(d, 0.5)
    assert raw.ci_low < -1  # what the old report printed as e.g. [-126.60, 13.64]
    (comparison,) = pairwise_comparisons(scores, 0.5)
    assert comparison.corrected.ci_low == -1.0
    assert comparison.corrected.ci_high == pytest.approx(min(raw.ci_high, 1.0))
    # Hand check of the raw half-width: t(0.975, 2) * sqrt((1/3 + 0.5) * var(d, ddof=1)).
    half = sps.t.ppf(0.975, 2) * np.sqrt((1 / 3 + 0.5) * d.var(ddof=1))
    assert raw.ci_high - d.mean() == pytest.approx(half)
