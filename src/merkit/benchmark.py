"""``merkit benchmark``: methods x one dataset under one protocol, reported like Table 3."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console

from merkit.core.errors import DataError
from merkit.datasets.base import Dataset
from merkit.datasets.check import empty_quadrants
from merkit.methods.resolve import check_feature_counts, input_widths
from merkit.protocol.curves import fraction_folds, fraction_method
from merkit.protocol.executor import Executor
from merkit.protocol.fixed import fixed_split_folds
from merkit.protocol.folds import ProtocolConfig, check_feasible, load_or_create_folds
from merkit.protocol.genre import load_or_create_genre_folds
from merkit.protocol.models import check_saveable
from merkit.protocol.runner import MethodResult, is_per_repeat, resolve_inputs, run_method
from merkit.report.html import write_annotations, write_report
from merkit.report.tables import results_frame, results_table, update_summaries
from merkit.tuning.nested import resolve_tuned


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
    executor: Executor | None = None,
    train_fractions: Sequence[float] | None = None,
) -> list[MethodResult]:
    """Cross-validate each method on ``dataset``; write the summaries and ``report.html``.

    Every method uses the same persisted folds (``out_dir/folds``), or the dataset's published
    split when ``protocol.split`` is set (:mod:`merkit.protocol.fixed`). Every method is resolved
    and its settings validated, and the fold settings checked, before any work. After each method
    the summary files are rebuilt from everything finished in ``out_dir`` (methods of earlier
    runs included). ``quick`` applies each method's smoke-test settings (e.g. a 2-epoch cap)
    under the explicit ``params``. A method whose settings hold ``tune: {space: …}`` is tuned
    inside each outer training fold (:mod:`merkit.tuning.nested`). ``train_fractions`` (e.g.
    ``[0.25, 0.5, 1]``) also trains each method on nested stratified subsets of every training
    fold, tested on the same full test folds (:mod:`merkit.protocol.curves`).

    With ``protocol.leave_out == "genre"`` the folds are one per genre group
    (:mod:`merkit.protocol.genre`), persisted in ``out_dir/folds`` the same way.
    """
    console = console or Console()
    resolved = [resolve_tuned(name, (params or {}).get(name), quick=quick) for name in methods]
    if save_models:
        for method in resolved:
            check_saveable(method.name, method.estimator)
    empty = empty_quadrants(dataset)
    if empty:  # macro F1 over three quadrants would read as a 4-class result
        raise DataError(f"dataset {dataset.name!r}: " + "; ".join(empty))
    widths = input_widths(dataset, {name for method in resolved for name in method.inputs})
    for method in resolved:
        check_feature_counts(method, widths)  # e.g. n_features 100000 of 317: refused now
    fixed = fixed_split_folds(dataset, protocol) if protocol.split is not None else None
    if fixed is None and protocol.leave_out is None:
        check_feasible(dataset.labels, protocol, dataset.groups)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_annotations(out_dir, dataset.songs)  # MERGE's arousal/valence, for the report
    if protocol.leave_out is not None:
        fixed = load_or_create_genre_folds(out_dir / "folds", dataset, protocol)
    folds = fixed or load_or_create_folds(out_dir / "folds", dataset, protocol)
    results: list[MethodResult] = []
    title = f"{dataset.name} ({len(dataset)} songs): {protocol.describe()}"
    _fill_cache(dataset, resolved, cache, n_jobs, progress, executor)
    for method in resolved:
        # Augmented copies (stochastic inputs) are computed per repeat by run_method.
        fixed_inputs = [name for name in method.inputs if not is_per_repeat(name)]
        inputs = resolve_inputs(
            dataset,
            fixed_inputs,
            cache=cache,
            n_jobs=n_jobs,
            progress=progress,
            mapper=getattr(executor, "song_mapper", None),  # songs as tasks on a cluster
        )
        for fraction in train_fractions or (1.0,):
            subsets = fraction_folds(folds, dataset.labels, fraction, protocol)
            result = run_method(
                fraction_method(method, fraction, subsets),
                dataset,
                inputs,
                subsets,
                protocol,
                out_dir,
                executor=executor,
                save_models=save_models,
                progress=progress,
                cache=cache,
                n_jobs=n_jobs,
            )
            results.append(result)
            update_summaries(out_dir, title, plots=False)
        del inputs
    run = update_summaries(out_dir, title)
    if run.complete():
        # The same persisted folds as the summaries; methods on other folds are named, not tested.
        write_report([out_dir], out_dir / "report.html", strict=False)
    console.print(results_table(results_frame(run.complete() or results), title))
    return results


def _fill_cache(
    dataset: Dataset,
    resolved: Sequence[Any],
    cache: Any,
    n_jobs: int,
    progress: bool,
    executor: Executor | None,
) -> None:
    """One pass over the songs for every representation the methods read (one decode each).

    Each method then reads its inputs from the cache. Skipped where it would not help: fewer than
    two representations, no cache to keep them in, or songs computed on a cluster.
    """
    from merkit.core.inputs import parse_input
    from merkit.representations.cache import NullCache
    from merkit.representations.extract import fill_cache

    names = [
        name
        for method in resolved
        for name in method.inputs
        if parse_input(name).kind != "table" and not is_per_repeat(name)
    ]
    if len(set(names)) < 2 or isinstance(cache, NullCache):
        return
    if getattr(executor, "song_mapper", None) is not None:
        return
    fill_cache(dataset, names, cache=cache, n_jobs=n_jobs, progress=progress)
