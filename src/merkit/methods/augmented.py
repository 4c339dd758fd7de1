"""The baseline CNN trained on augmented copies of its training songs (paper §3.6, Table 3).

Each recipe is the DL baseline (SGD lr 0.01, batch 150, the 90 % training-accuracy stop rule)
with a default ``augment`` list (:mod:`merkit.estimators.augmentation`): per fold, the training set
holds
every training song's original log-mel and its copies; test songs are predicted on originals.
Every setting is overridable from YAML like the baseline's, e.g.
``cnn+classic: {augment: [{classic: {copies: [pitch_shifted, time_stretched]}}]}``.
"""

from __future__ import annotations

import dataclasses

from merkit.methods.base import MethodSpec
from merkit.methods.deep import CNN, QUICK
from merkit.methods.registry import register_method


def _augmented_cnn(
    name: str, augment: str, summary: str, *, paper_row: str | None, paper_f1: float | None
) -> MethodSpec:
    return register_method(
        dataclasses.replace(
            CNN,
            name=name,
            summary=summary,
            augment=(augment,),
            paper_row=paper_row,
            paper_f1=paper_f1,
            quick=QUICK,
            extras=("research",),  # audiomentations makes the copies
        )
    )


CNN_TFM = _augmented_cnn(
    "cnn+tfm",
    "tfm",
    "DL baseline CNN + one TFM copy per training song (time mask + band-stop)",
    paper_row="Baseline + TFM",
    paper_f1=0.6203,
)
CNN_SB = _augmented_cnn(
    "cnn+sb",
    "sb",
    "DL baseline CNN + one seven-band parametric EQ copy per training song",
    paper_row="Baseline + SB",
    paper_f1=0.6212,
)
CNN_RG = _augmented_cnn(
    "cnn+rg",
    "rg",
    "DL baseline CNN + one random-gain (±12 dB) copy per training song",
    paper_row="Baseline + RG",
    paper_f1=0.6224,
)
CNN_CLASSIC = _augmented_cnn(
    "cnn+classic",
    "classic",
    "DL baseline CNN + the four classic copies per training song (shift, pitch, stretch, dB)",
    paper_row=None,
    paper_f1=None,
)
