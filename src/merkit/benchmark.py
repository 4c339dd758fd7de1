"""``merkit benchmark``: methods x one dataset under one protocol, reported like Table 3."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console

from merkit.datasets.base import Dataset
from merkit.methods import get_method
from merkit.protocol.folds import ProtocolConfig, load_or_create_folds
from merkit.protocol.runner import MethodResult, resolve_inputs, run_method
from merkit.report import (
    markdown_report,
    plot_results,
    results_frame,
    results_table,
    write_csv_atomic,
)


def run_benchmark(
    dataset: Dataset,
    methods: Sequence[str],
    protocol: ProtocolConfig,
    out_dir: Path,
    *,
    params: Mapping[str, Mapping[str, Any]] | None = None,
    cache: Any = None,
    n_jobs: int = 1,
    save_models: bool = False,
    quick: bool = False,
    progress: bool = True,
    console: Console | None = None,
) -> list[MethodResult]:
    """Cross-validate each method on ``dataset``; write ``results.csv``, ``report.md`` and plots.

    Every method uses the same persisted folds (``out_dir/folds``). ``results.csv`` is rewritten
    after each method completes, and only lists completed methods. ``quick`` applies each
    method's smoke-test settings (e.g. a 2-epoch cap) under the explicit ``params``.
    """
    console = console or Console()
    specs = [get_method(name) for name in methods]  # fail on a typo before any work
    out_dir.mkdir(parents=True, exist_ok=True)
    folds = load_or_create_folds(out_dir / "folds", dataset, protocol)
    results: list[MethodResult] = []
    title = f"{dataset.name} ({len(dataset)} songs): {protocol.describe()}"
    for spec in specs:
        method_params = {**(spec.quick if quick else {}), **(params or {}).get(spec.name, {})}
        # ``inputs`` swaps a method's representations, e.g. ``cnn: {inputs: [logmel-paper]}``.
        input_names = tuple(method_params.pop("inputs", spec.inputs))
        estimator = spec.make(method_params)
        inputs = resolve_inputs(dataset, input_names, cache=cache, n_jobs=n_jobs, progress=progress)
        result = run_method(
            spec.name,
            estimator,
            dataset,
            inputs,
            folds,
            protocol,
            out_dir,
            config={"inputs": list(input_names), "params": method_params},
            save_models=save_models,
            progress=progress,
            paper_f1=spec.paper_f1,
        )
        del inputs
        results.append(result)
        frame = results_frame(results)
        write_csv_atomic(frame, out_dir / "results.csv")
        (out_dir / "report.md").write_text(markdown_report(frame, results, title))
    plot_results(results, out_dir)
    console.print(results_table(results_frame(results), title))
    return results
