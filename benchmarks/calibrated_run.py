"""Run methods under a protocol *as ``merkit train`` ships them*: probabilities included.

A method without ``predict_proba`` (e.g. ``svm-own``'s SVC) stores no probabilities in its fold
records, but the model ``merkit train`` exports wraps it in a seeded Platt calibration
(:func:`merkit.product.export._calibrated`). This script runs that wrapped estimator as the method
``<name>+platt`` into a ``merkit benchmark`` folder (same persisted folds, resumable), so its
records hold the probabilities a shipped model gives, e.g. for ``benchmarks/genre_shift.py``'s
adaptation table. Methods that have probabilities already run unchanged under their own name.

Example::

    python benchmarks/calibrated_run.py --dataset 4qaed --root ../shared/data/4qaed \\
        --methods svm-own --protocol logo-genre --out runs/logo-genre
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
from pathlib import Path

from merkit.datasets import load_dataset
from merkit.methods import read_settings, resolve_method
from merkit.methods.resolve import MethodSpec
from merkit.product.export import _calibrated
from merkit.protocol.folds import ProtocolConfig, load_or_create_folds
from merkit.protocol.genre import genre_protocol, load_or_create_genre_folds
from merkit.protocol.runner import resolve_inputs, run_method
from merkit.representations.cache import FeatureCache


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="4qaed")
    parser.add_argument("--root", type=Path)
    parser.add_argument("--methods", default="svm-own")
    parser.add_argument("--config", type=Path, help="YAML of per-method settings")
    parser.add_argument("--protocol", default="logo-genre", help="logo-genre | kfold")
    parser.add_argument("--folds", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0, help="seed of the calibration's folds")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--cache-dir", type=Path)
    parser.add_argument("--subset", type=Path, help="file of song ids to keep (4qaed layout)")
    args = parser.parse_args()

    options = {"subset": args.subset} if args.subset else {}
    dataset = load_dataset(args.dataset, args.root, **options)
    if args.protocol == "logo-genre":
        protocol = genre_protocol(dataset)
        folds = load_or_create_genre_folds(args.out / "folds", dataset, protocol)
    elif args.protocol == "kfold":
        protocol = ProtocolConfig(n_splits=args.folds, n_repeats=args.repeats)
        folds = load_or_create_folds(args.out / "folds", dataset, protocol)
    else:
        raise SystemExit(f"--protocol must be logo-genre or kfold, not {args.protocol!r}")
    settings = read_settings(args.config)
    cache = FeatureCache(args.cache_dir)
    for name in [m.strip() for m in args.methods.split(",") if m.strip()]:
        resolved = resolve_method(name, settings.get(name))
        if not hasattr(resolved.estimator, "predict_proba"):
            extra = {}
            if "n_inputs" in inspect.signature(_calibrated).parameters:  # merkit with multi-input
                extra["n_inputs"] = len(resolved.inputs)  # calibration (a logistic layer)
            wrapped, how = _calibrated(resolved.estimator, dataset, args.seed, **extra)
            spec = dataclasses.replace(resolved.spec, name=f"{name}+platt")
            assert isinstance(spec, MethodSpec)
            resolved = dataclasses.replace(
                resolved,
                spec=spec,
                estimator=wrapped,
                settings={**resolved.settings, "calibration": how},
            )
        inputs = resolve_inputs(dataset, list(resolved.inputs), cache=cache, progress=False)
        result = run_method(resolved, dataset, inputs, folds, protocol, args.out, progress=False)
        summary = result.summary
        print(f"{resolved.name}: {len(result.per_fold)} folds, macro F1 {100 * summary['f1']:.2f}")


if __name__ == "__main__":
    main()
