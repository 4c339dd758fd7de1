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
from tests.test_html_report import fake_run

from merkit.methods import resolve_method
from merkit.methods.regime import training_caps
from merkit.protocol.comparability import paper_comparison
from merkit.protocol.folds import ProtocolConfig
from merkit.protocol.results import load_results
from merkit.report.html import render_report
from merkit.report.stats import MIN_VERDICT_FOLDS, corrected_resampled_ttest, pairwise_comparisons
from merkit.report.tables import markdown_report, results_frame, results_table

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


# -- probabilities for every method whose shipped form has them ---------------------------------


def _blobs(n_per_class: int = 30, n_features: int = 120, seed: int = 0):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(4), n_per_class)
    X = rng.normal(size=(labels.size, n_features))
    X[:, :4] += 3.0 * np.eye(4)[labels]  # four informative columns, one per quadrant
    return X.astype(np.float32), labels


def test_svm_own_fold_records_calibrated_probabilities() -> None:
    from sklearn.base import clone

    from merkit.protocol.folds import make_folds
    from merkit.protocol.runner import fit_fold

    X, labels = _blobs()
    protocol = ProtocolConfig(n_splits=3, n_repeats=1)
    fold = make_folds(labels, protocol)[0]
    method = resolve_method("svm-own")
    record = fit_fold(method, {"own-features": X}, labels, fold, protocol)
    proba = np.asarray(record.proba)
    assert proba.shape == (fold.test.size, 4)
    assert np.allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    # The predictions are the SVM's own (the F1 of earlier runs is unchanged)...
    plain = clone(method.estimator)
    plain.fit(X[fold.train], labels[fold.train])
    assert record.y_pred == plain.predict(X[fold.test]).tolist()
    # ...and the probabilities learned what the SVM did (chance is 0.25).
    svm_accuracy = (np.asarray(record.y_pred) == labels[fold.test]).mean()
    proba_accuracy = (proba.argmax(axis=1) == labels[fold.test]).mean()
    assert svm_accuracy > 0.5 and proba_accuracy >= svm_accuracy - 0.1
    # The report's arousal/valence plot then uses them instead of one-hot points.
    y = proba[:, 0] + proba[:, 1] - proba[:, 2] - proba[:, 3]
    assert len(np.unique(np.round(y, 3))) > 4


def test_in_fold_probabilities_are_fitted_on_training_songs() -> None:
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    from merkit.estimators.calibration import in_fold_probabilities

    X, labels = _blobs(n_features=6)
    train, test = np.arange(0, 120, 2), np.arange(1, 120, 2)
    model = make_pipeline(StandardScaler(), SVC()).fit(X[train], labels[train])
    first = in_fold_probabilities(model, X[train], labels[train], X[test], seed=3)
    assert np.array_equal(
        first, in_fold_probabilities(model, X[train], labels[train], X[test], seed=3)
    )
    # The calibration is fitted on training songs alone: other test rows change nothing of it.
    shifted = in_fold_probabilities(model, X[train], labels[train], X[test][::-1], seed=3)
    assert np.allclose(shifted[::-1], first)
    assert in_fold_probabilities(model, {"a": X[train]}, labels[train], X[test]) is None
    assert in_fold_probabilities(object(), X[train], labels[train], X[test]) is None


# -- tune, methods, executors -------------------------------------------------------------------


def test_tune_shows_powers_of_two_as_exponents() -> None:
    from merkit.tuning.run import annotate_powers
    from merkit.tuning.space import format_params, load_space

    space = load_space("paper", "svm-own")  # C: {log: [2^-5, 2^15]}, gamma: {log: [2^-15, 2^3]}
    assert format_params(space, {"C": 8.0, "gamma": 2.0**-15}) == "{C: 2^3, gamma: 2^-15}"
    text = "svm-own:\n  C: 8.0\n  gamma: 3.0517578125e-05\n  n_features: 64\n"
    text = annotate_powers(text, space)
    assert "gamma: 3.0517578125e-05  # 2^-15" in text and "C: 8.0  # 2^3" in text
    assert "n_features: 64\n" in text  # not a searched log range: left alone
    import yaml

    assert yaml.safe_load(text)["svm-own"]["gamma"] == 2.0**-15  # still a number


def test_methods_lists_weights_extras_and_cost() -> None:
    from rich.console import Console
    from typer.testing import CliRunner

    import merkit.cli as cli
    from merkit.methods.fold_costs import FOLD_COSTS

    cli.console = Console(record=True, width=400)
    CliRunner().invoke(cli.app, ["methods"])
    text = cli.console.export_text()
    rows = {line.split("│")[1].strip(): line for line in text.splitlines() if "│" in line}
    for name in ("crnn-mtat", "crnn-emb-rf", "artist-cnn", "crnn-mtat-ft"):
        assert "weights:" in rows[name], name
    assert "extra: openl3" in rows["openl3-rf"]
    assert "extra: research" in rows["cnn+tfm"] and "weights" not in rows["cnn"]
    seconds = FOLD_COSTS["svm"]["seconds_per_fold"]
    assert f" {float(seconds):.0f} " in rows["svm"]


def test_executor_conflicts_are_refused_before_start_up() -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from merkit.cli import app\n"
        "r = CliRunner().invoke(app, ['benchmark', '--workers', '2', '--out', 'x'])\n"
        "print(r.exit_code, 'torch' in sys.modules, 'sklearn' in sys.modules)\n"
        "print(r.output)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    first, *rest = out.stdout.splitlines()
    assert first == "1 False False", out.stdout + out.stderr
    assert "--workers applies to --executor processes or ray" in "\n".join(rest)


def test_ray_is_quiet_under_quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    import logging

    from merkit.protocol.ray_executor import RayExecutor

    calls: dict = {}

    class FakeRay:
        def init(self, **kwargs: object) -> None:
            calls.update(kwargs)

    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    monkeypatch.setattr(logging.getLogger("ray"), "level", logging.NOTSET)
    RayExecutor(quiet=True)._init(FakeRay())
    assert calls["log_to_driver"] is False
    assert logging.getLogger("ray").level == logging.ERROR
    import os

    assert os.environ["RAY_AUTH_MODE"] == "token"  # no start-up warning about it
    RayExecutor(quiet=False)._init(FakeRay())
    assert calls["log_to_driver"] is True


def test_size_curve_rows_come_by_fraction() -> None:
    from merkit.protocol.runner import MethodResult
    from merkit.report.tables import sort_results

    def result(name: str, f1: float, fraction: float) -> MethodResult:
        record = type("R", (), {"metrics": type("M", (), {"f1": f1})()})()
        made = MethodResult(name, "toy", PAPER_10X10, [], 0, 0.0, (), settings={})
        made.settings = {"train_fraction": fraction} if fraction < 1 else {}
        object.__setattr__(made, "per_fold", [record])
        return made

    rows = [
        result("svm@train0.5", 0.70, 0.5),
        result("cnn", 0.55, 1.0),
        result("svm", 0.75, 1.0),
        result("svm@train0.25", 0.60, 0.25),
    ]
    import merkit.report.tables as report

    original = report.MethodResult.summary
    try:
        report.MethodResult.summary = property(lambda self: {"f1": self.per_fold[0].metrics.f1})
        names = [r.method for r in sort_results(rows)]
    finally:
        report.MethodResult.summary = original
    assert names == ["svm@train0.25", "svm@train0.5", "svm", "cnn"]
