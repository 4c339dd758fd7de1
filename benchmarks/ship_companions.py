"""Add arousal/valence models and the familiarity measure to a shipped model (issue 33).

Fits :func:`merkit.product.companions.add_companions` on the model's training songs from merkit's
cache (``--available-only``: the songs whose inputs are all cached, recorded as a subset in the
manifest and card) and takes the cross-validated axis accuracies from a results JSON of
``benchmarks/axes_familiarity.py``. The quadrant estimator's file is copied byte for byte.

Example::

    python benchmarks/ship_companions.py --model src/merkit/pretrained/default \\
        --root ../shared/data/4qaed --results benchmarks/results/4qaed_axes_familiarity.json \\
        --rule sides --available-only
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")


def main() -> None:
    from axes_familiarity import cached_songs, songs_from
    from merkit.datasets import load_dataset
    from merkit.product.companions import add_companions
    from merkit.product.model_dir import read_manifest

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--dataset", default="4qaed")
    parser.add_argument("--root", type=Path)
    parser.add_argument("--results", type=Path, help="axes_familiarity.py results JSON")
    parser.add_argument("--rule", default="joint", choices=["joint", "quadrant", "axes", "sides"])
    parser.add_argument("--available-only", action="store_true")
    parser.add_argument("--songs-from", type=Path, help="a fold file whose song_ids to use")
    args = parser.parse_args()
    dataset = load_dataset(args.dataset, args.root)
    if args.available_only:
        dataset = cached_songs(dataset, tuple(s.name for s in read_manifest(args.model).inputs))
    if args.songs_from:
        dataset = songs_from(dataset, args.songs_from)
    cv = None
    if args.results:
        state = json.loads(args.results.read_text())
        k = state["kfold"]
        cv = {
            "protocol": f"merkit's 10x10 stratified K-fold ({k['n_folds']} folds; "
            f"{state['meta'].get('songs', 'all songs')}); the answer's macro F1 on the "
            f"{k.get('n_quadrant_folds', 0)} folds of the first repeat",
            "source": args.results.name,
            "arousal_accuracy": k["arousal"]["accuracy"],
            "valence_accuracy": k["valence"]["accuracy"],
        }
        if "rules" in k:
            cv["quadrant_f1"] = k["rules"][args.rule]["f1"]
    manifest = add_companions(
        args.model,
        dataset,
        rule=args.rule,
        cv=cv,
        subset=args.available_only or bool(args.songs_from),
        progress=False,
    )
    print(manifest.companions.model_dump_json(indent=1))


if __name__ == "__main__":
    main()
