"""``merkit benchmark``: methods x one dataset under one protocol, reported like Table 3."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console

from merkit.core.errors import DataError
from merkit.datasets.base import Dataset
from merkit.datasets.check import empty_quadrants
from merkit.methods.resolve import ResolvedMethod, check_feature_counts, input_widths
from merkit.protocol.cross import LEAVE_OUT as CROSS
from merkit.protocol.cross import cross_dataset as join_for_cross
from merkit.protocol.cross import cross_folds, direction_markdown, direction_table
from merkit.protocol.curves import fraction_folds, fraction_method
from merkit.protocol.executor import Executor
from merkit.protocol.fixed import fixed_split_folds, protocol_for
from merkit.protocol.folds import ProtocolConfig, check_feasible, load_or_create_folds
from merkit.protocol.genre import genre_protocol, load_or_create_genre_folds
from merkit.protocol.models import check_saveable
from merkit.protocol.runner import MethodResult, is_per_repeat, resolve_inputs, run_method
from merkit.report.html import write_annotations, write_report
from merkit.report.tables import results_frame, results_table, update_summaries
from merkit.tuning.nested import resolve_tuned

DATASETS_WITHOUT_TABLES = ("synthetic", "merge", "musifeast17")
"""Registered datasets that ship no feature tables: their default method reads audio only."""


CROSS_DATASET = "cross-dataset"
"""``--protocol`` name of training on one dataset, testing on another (:mod:`.protocol.cross`)."""
CROSS_TABLE = "cross_dataset"
"""Stem of the per-direction tables a cross-dataset run writes (``.csv``, ``.md``)."""


def default_methods(dataset: str, protocol: str | None = None) -> list[str]:
    """The methods a benchmark of ``dataset`` runs when none is named: the paper's SVM on the
    dataset's feature table (``svm``), or ``svm-own`` (merkit's own features from audio) for a
    dataset without tables (:data:`DATASETS_WITHOUT_TABLES`) and for ``--protocol
    cross-dataset`` (two datasets share no feature table)."""
    if protocol == CROSS_DATASET:
        return ["svm-own"]
    return ["svm-own"] if dataset in DATASETS_WITHOUT_TABLES else ["svm"]


def roots_for_protocol(protocol: str, roots: Sequence[Any]) -> None:
    """Refuse a number of ``--root`` options the protocol cannot use: ``cross-dataset`` takes
    exactly two (trained on the first, tested on the second, and back), every other one at most
    one.

    Raises
    ------
    ConfigError
    """
    from merkit.core.errors import ConfigError

    if protocol == CROSS_DATASET and len(roots) != 2:
        raise ConfigError(
            f"--protocol cross-dataset needs two --root options (dataset A, then dataset B), "
            f"got {len(roots)}"
        )
    if protocol != CROSS_DATASET and len(roots) > 1:
        raise ConfigError(
            f"--root is given {len(roots)} times; only --protocol cross-dataset takes two"
        )


def dataset_per_root(dataset: str, protocol: str, n_roots: int) -> list[str]:
    """The ``--dataset`` name of each ``--root``: one name for all, or, with ``--protocol
    cross-dataset``, two comma-separated names (``-d 4qaed,musifeast17``), one per root.

    Raises
    ------
    ConfigError
        Several names outside cross-dataset, or not one name per root.
    """
    from merkit.core.errors import ConfigError

    names = [n.strip() for n in dataset.split(",")]
    if len(names) == 1:
        return names * max(n_roots, 1)
    if protocol != CROSS_DATASET:
        raise ConfigError(
            f"--dataset {dataset!r} names several datasets; only --protocol "
            "cross-dataset takes two (A,B)"
        )
    if len(names) != n_roots or not all(names):
        raise ConfigError(
            f"--dataset {dataset!r}: cross-dataset takes one name, or two (A,B) for its two "
            "--root options"
        )
    return names


def cross_dataset(
    first: Dataset, second: Dataset, *, seed: int = 1, labels: tuple[str, str] | None = None
) -> tuple[Dataset, ProtocolConfig]:
    """The joined dataset and protocol of ``--protocol cross-dataset``: trained on ``first``,
    tested on ``second``, and back (:func:`merkit.protocol.cross.cross_dataset`)."""
    return join_for_cross(first, second, labels=labels, random_state=seed)


def resolve_methods(
    names: Sequence[str],
    settings: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    quick: bool = False,
    augment: str | None = None,
) -> list[ResolvedMethod]:
    """Every method of a benchmark resolved and its settings validated, before any work.

    ``augment`` (``merkit benchmark --augment tfm,rg``) replaces each method's ``augment``
    setting. Methods whose settings hold ``tune:`` are wrapped by :func:`resolve_tuned`.
    """
    settings = dict(settings or {})
    if augment is not None:
        for name in names:
            settings[name] = {**settings.get(name, {}), "augment": augment}
    return [resolve_tuned(name, settings.get(name), quick=quick) for name in names]


def benchmark_protocol(
    name: str,
    dataset: Dataset | None = None,
    *,
    folds: int = 10,
    repeats: int = 10,
    seed: int = 1,
    stratify: bool = True,
    quick: bool = False,
) -> ProtocolConfig:
    """The protocol of a ``--protocol`` name: ``kfold`` (``folds`` x ``repeats``, 3 x 1 with
    ``quick``), ``logo-genre`` (one fold per genre group of ``dataset``) or a fixed split
    (``tvt-70-15-15``, ``tvt-40-30-30``). ``logo-genre`` needs the ``dataset``; without it the
    name alone is checked.

    Raises
    ------
    ConfigError
        An unknown name.
    """
    named = protocol_for(name, seed)  # refuses an unknown name
    if name == "kfold":
        if quick:
            folds, repeats = 3, 1
        return ProtocolConfig(
            n_splits=folds, n_repeats=repeats, random_state=seed, stratify=stratify
        )
    if name == "logo-genre" and dataset is not None:
        return genre_protocol(dataset, seed)
    return named


def run_benchmark(
    dataset: Dataset,
    methods: Sequence[str | ResolvedMethod],
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

    ``methods`` are names, or methods resolved already (:func:`resolve_methods`). Every method
    uses the same persisted folds (``out_dir/folds``), or the dataset's published
    split when ``protocol.split`` is set (:mod:`merkit.protocol.fixed`). Every method is resolved
    and its settings validated, and the fold settings checked, before any work. After each method
    the summary files are rebuilt from everything finished in ``out_dir`` (methods of earlier
    runs included). ``quick`` applies each method's smoke-test settings (e.g. a 2-epoch cap)
    under the explicit ``params``. A method whose settings hold ``tune: {space: …}`` is tuned
    inside each outer training fold (:mod:`merkit.tuning.nested`). ``train_fractions`` (e.g.
    ``[0.25, 0.5, 1]``) also trains each method on nested stratified subsets of every training
    fold, tested on the same full test folds (:mod:`merkit.protocol.curves`).

    With ``protocol.leave_out == "genre"`` the folds are one per genre group
    (:mod:`merkit.protocol.genre`), persisted in ``out_dir/folds`` the same way. With
    ``"dataset"`` (``dataset`` and ``protocol`` from :func:`cross_dataset`) the two folds train
    on one dataset and test on the other; ``out_dir/cross_dataset.csv`` and ``.md`` then hold one
    row per method and direction (trained on, tested on, macro P/R/F1).
    """
    console = console or Console()
    resolved = [
        method
        if not isinstance(method, str)
        else resolve_tuned(method, (params or {}).get(method), quick=quick)
        for method in methods
    ]
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
    if protocol.leave_out == CROSS:
        fixed = cross_folds(dataset, protocol)
    elif protocol.leave_out is not None:
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
    if protocol.leave_out == CROSS:
        console.print(write_cross_tables(out_dir, run.complete() or results), markup=False)
    return results


def write_cross_tables(out_dir: Path, results: Sequence[MethodResult]) -> str:
    """``out_dir/cross_dataset.csv`` and ``.md``: one row per method and direction; returns
    the Markdown."""
    from merkit.core.atomic import write_text_atomic

    table = direction_table(results)
    text = direction_markdown(table)
    write_text_atomic(out_dir / f"{CROSS_TABLE}.csv", table.to_csv(index=False))
    write_text_atomic(out_dir / f"{CROSS_TABLE}.md", text)
    return text


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
