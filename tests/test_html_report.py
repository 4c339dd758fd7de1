"""The HTML report: content from persisted folds, refusal of mismatched folds, a real browser."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from merkit.cli import app
from merkit.core.errors import ConfigError
from merkit.protocol.folds import ProtocolConfig, write_json_atomic
from merkit.protocol.metrics import fold_metrics
from merkit.protocol.records import FoldMetrics, FoldRecord, write_fold
from merkit.protocol.results import load_results
from merkit.report.html import circumplex_points, render_report

SONGS = [f"s{i:02d}" for i in range(40)]
LABELS = np.arange(40) % 4


def fake_run(
    run_dir: Path,
    accuracies: dict[str, float],
    *,
    seed: int = 1,
    n_splits: int = 5,
    dataset: str = "toy",
    n_songs: int | None = None,
    regime: str | None = None,
    paper_f1: float | None = 0.5,
    n_repeats: int = 2,
) -> Path:
    """A run folder whose methods predict the true quadrant with the given per-song accuracy.

    Folds: ``n_splits`` x ``n_repeats`` of fixed permutations (``seed`` changes the test songs).
    """
    protocol = ProtocolConfig(n_splits=n_splits, n_repeats=n_repeats, random_state=seed)
    rng = np.random.default_rng(seed)
    orders = [rng.permutation(len(SONGS)) for _ in range(n_repeats)]
    for index, (method, accuracy) in enumerate(accuracies.items()):
        method_dir = run_dir / method
        info = {"n_songs": n_songs or len(SONGS), "inputs": ["table:x"], "paper_f1": paper_f1}
        if regime is not None:
            info["regime"] = regime
        stamp = {
            "dataset": dataset,
            "fingerprint": "abc",
            "protocol": protocol.model_dump(),
            "config": {"method": method, "C": 1.0},
            "info": info,
        }
        write_json_atomic(method_dir / "config.json", stamp)
        song_rng = np.random.default_rng(100 + index)
        for repeat, order in enumerate(orders):
            for fold, test in enumerate(np.array_split(order, n_splits)):
                test = np.sort(test)
                y_true = LABELS[test]
                right = song_rng.random(test.size) < accuracy
                y_pred = np.where(right, y_true, (y_true + 1) % 4)
                proba = np.full((test.size, 4), 0.1)
                proba[np.arange(test.size), y_pred] = 0.7
                record = FoldRecord(
                    repeat=repeat,
                    fold=fold,
                    seed=seed * 100_003 + repeat * 1000 + fold,
                    seconds=0.1,
                    fit_seconds=0.05,
                    predict_seconds=0.05,
                    test_ids=[SONGS[i] for i in test],
                    y_true=y_true.tolist(),
                    y_pred=y_pred.tolist(),
                    proba=proba.tolist(),
                    metrics=FoldMetrics(**fold_metrics(y_true, y_pred)),
                )
                write_fold(method_dir / "folds" / f"{record.name}.json", record)
    return run_dir


def test_report_holds_table_confusion_tests_and_provenance(tmp_path: Path) -> None:
    run = fake_run(tmp_path / "run", {"good": 0.95, "mid": 0.7, "bad": 0.3})
    html = render_report([run])
    results = load_results(run)
    # Table-3 row: mean macro F1 ± std of the folds, in percent.
    f1 = np.array([r.metrics.f1 for r in results["good"].per_fold])
    assert f"{100 * f1.mean():.2f} ± {100 * f1.std():.2f}" in html
    for section in ("results-table", "quadrant-table", "pairwise-table", "significance-matrix"):
        assert f'id="{section}"' in html
    assert html.count('class="confusion"') == 3
    assert "Friedman χ²" in html and html.count("<svg") >= 5  # spread, CD, three circumplexes
    assert "good vs mid" in html and "good is better" in html
    assert "5x2 stratified K-fold (random_state=1)" in html
    assert "scikit-posthocs" in html and "&#34;C&#34;: 1.0" in html  # settings, escaped
    # Nothing fetched: no external resource of any kind.
    assert not re.search(r"(src|href)=\"https?:|url\(https?:|@import|<link|<img", html)
    assert "<script" not in html


def test_circumplex_points_average_probabilities_over_repeats(tmp_path: Path) -> None:
    run = fake_run(tmp_path / "run", {"perfect": 1.0})
    points = circumplex_points(load_results(run)["perfect"])
    assert len(points) == len(SONGS)
    # Always right with P = 0.7 on the true class, 0.1 elsewhere: Q1 -> (0.6, 0.6), Q3 -> (-.6, -.6)
    q1 = points[points["true"] == 0]
    q3 = points[points["true"] == 2]
    assert np.allclose(q1[["valence", "arousal"]], 0.6)
    assert np.allclose(q3[["valence", "arousal"]], -0.6)


def test_report_refuses_runs_on_different_folds(tmp_path: Path) -> None:
    first = fake_run(tmp_path / "a", {"svm": 0.8})
    second = fake_run(tmp_path / "b", {"svm": 0.6}, seed=2)
    with pytest.raises(ConfigError, match=r"cannot compare b/svm with a/svm: fold r00_f00"):
        render_report([first, second])
    # The benchmark's own report names the problem instead of failing the run.
    assert "No tests: cannot compare b/svm with a/svm" in render_report(
        [first, second], strict=False
    )
    result = CliRunner().invoke(app, ["report", str(first), str(second), "--out", "x.html"])
    assert result.exit_code == 1
    assert "cannot compare b/svm with a/svm" in result.output


def test_report_cli_writes_one_file(tmp_path: Path) -> None:
    first = fake_run(tmp_path / "a", {"svm": 0.8})
    second = fake_run(tmp_path / "b", {"other": 0.6})
    out = tmp_path / "r.html"
    result = CliRunner().invoke(app, ["report", str(first), str(second), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "svm vs other" in out.read_text()
    empty = tmp_path / "empty"
    empty.mkdir()
    result = CliRunner().invoke(app, ["report", str(empty), "--out", str(out)])
    assert result.exit_code == 1 and "holds no method results" in result.output


# -- a real browser ---------------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def headless(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run headless Chromium on ``url`` with console messages logged to stderr."""
    assert CHROMIUM is not None
    return subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",  # tests often run as root in containers
            "--disable-gpu",
            "--enable-logging=stderr",
            "--v=0",
            *args,
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def console_errors(stderr: str) -> list[str]:
    """Page console errors and uncaught exceptions from Chromium's stderr log."""
    return [
        line
        for line in stderr.splitlines()
        if "CONSOLE" in line and ("ERROR" in line or "Uncaught" in line)
    ]


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (apt-get install chromium)")
def test_report_of_a_quick_run_renders_in_chromium(tmp_path: Path) -> None:
    from PIL import Image

    # The console check can fail: a page with an error is caught.
    bad = tmp_path / "bad.html"
    bad.write_text("<html><body><script>console.error('boom'); nosuch();</script></body></html>")
    assert console_errors(headless(bad.as_uri(), "--dump-dom").stderr)

    out = tmp_path / "run"
    result = CliRunner().invoke(
        app, ["benchmark", "--quick", "--methods", "svm-own", "--out", str(out), "--quiet"]
    )
    assert result.exit_code == 0, result.output
    page = out / "report.html"
    assert page.is_file()

    dom = headless(page.as_uri(), "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert console_errors(dom.stderr) == []
    for section in ('id="results-table"', 'class="confusion"', 'class="card circumplex"'):
        assert section in dom.stdout
    assert re.search(r"<td>svm-own</td><td>\d+\.\d\d</td>", dom.stdout)
    # A smoke run says so, and draws no verdict; svm-own's songs are placed by probabilities
    # calibrated in-fold (no "gives no probabilities" fallback).
    assert 'class="banner"' in dom.stdout and "SMOKE RUN" in dom.stdout
    assert "gives no probabilities" not in dom.stdout

    shot = tmp_path / "report.png"
    run = headless(page.as_uri(), f"--screenshot={shot}", "--window-size=1280,3200")
    assert run.returncode == 0 and shot.is_file(), run.stderr[-2000:]
    assert console_errors(run.stderr) == []
    pixels = np.asarray(Image.open(shot).convert("RGB")).reshape(-1, 3).astype(int)

    def has(colour: str, tolerance: int = 12) -> bool:
        rgb = np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)])
        return bool((np.abs(pixels - rgb).max(axis=1) <= tolerance).any())

    # The confusion cells (blue shades up to rgb(65,100,255)) and the four quadrant colours
    # of the circumplex dots are painted.
    assert has("#4164ff", tolerance=40)
    for colour in ("#e6a000", "#cc3311", "#3366aa", "#228833"):
        assert has(colour, tolerance=40), colour
