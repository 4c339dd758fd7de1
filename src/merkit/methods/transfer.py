"""Transfer learning and pre-trained embeddings (paper §3.5, §3.7).

Every method here needs a checkpoint given by path (``weights: PATH`` in its settings; optional
``sha256:`` checks the file); nothing is downloaded. The frozen parts run once per song in eval
mode and their outputs are cached (:mod:`merkit.transfer.embedders`), so training a new head on
them is the same computation as training it behind the frozen network, at a fraction of the cost.

- ``crnn-mtat``: the paper's transfer of Won's MTAT CRNN: everything frozen but a new 4-way head
  (dropout 0.5 → linear on the GRU's last step), Won's Adam → SGD schedule, batch 16, 200 epochs;
  the best weights are chosen on an inner validation split of the training fold (the published
  code chose them on the test fold).
- ``crnn-mtat-ft``: Won's front end and full fine-tuning with a small learning rate.
- ``artist-cnn``: Park's frozen artist encoder + a new 4-way head on 129-frame chunks (Adam 0.01,
  batch 100, 200 epochs, the 90 % rule), songs answered by aggregating their chunks.
- ``crnn-emb-rf`` / ``artist-emb-rf``: pooled embeddings + a random forest (the paper's
  "embeddings + RF" recipe of §3.5, here on the pre-trained networks' embeddings).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sklearn.ensemble import RandomForestClassifier
from sklearn.pipeline import Pipeline

from merkit.estimators.chunked import ChunkedClassifier
from merkit.methods.base import MethodSpec
from merkit.methods.registry import register_method
from merkit.training.callbacks import BatchTransform
from merkit.training.classifier import TorchClassifier
from merkit.transfer.crops import RandomTimeCrop
from merkit.transfer.embedders import ArtistEmbedding, CRNNEmbedding, FramePooling
from merkit.transfer.finetune import ProbeThenFineTune
from merkit.transfer.won_crnn import state_with_head

HEAD = "merkit.transfer.heads:LinearHead"
CRNN_FACTORY = "merkit.transfer.won_crnn:transfer_crnn"

WON_SCHEDULE: tuple[dict[str, Any], ...] = (
    # Won's solver (the paper's code copies it): after 80 Adam epochs reload the best weights and
    # switch to SGD 1e-3 (Nesterov, momentum 0.9); reload and divide the rate by 10 at 100 and 120.
    {"epoch": 80, "optimizer": "sgd", "lr": 1e-3, "momentum": 0.9, "nesterov": True,
     "restore_best": True},
    {"epoch": 100, "optimizer": "sgd", "lr": 1e-4, "momentum": 0.9, "nesterov": True,
     "restore_best": True},
    {"epoch": 120, "optimizer": "sgd", "lr": 1e-5, "momentum": 0.9, "nesterov": True,
     "restore_best": True},
)  # fmt: skip


def _forest(n_estimators: int, random_state: int | None, n_jobs: int) -> RandomForestClassifier:
    # scikit-learn's defaults (100 trees, gini, sqrt features, bootstrap), as in the paper's RF.
    return RandomForestClassifier(
        n_estimators=n_estimators, random_state=random_state, n_jobs=n_jobs
    )


def build_crnn_emb_rf(
    weights: str | None = None,
    sha256: str | None = None,
    output: str = "conv",
    n_estimators: int = 100,
    random_state: int | None = 1,
    n_jobs: int = 1,
    num_threads: int | None = None,
) -> Pipeline:
    """CRNN embeddings (default: last conv block, mean ‖ std over time) → random forest."""
    embed = CRNNEmbedding(weights, sha256, output=output, num_threads=num_threads)  # type: ignore[arg-type]
    return Pipeline([("embed", embed), ("rf", _forest(n_estimators, random_state, n_jobs))])


def build_artist_emb_rf(
    weights: str | None = None,
    sha256: str | None = None,
    pooling: str = "mean",
    n_estimators: int = 100,
    random_state: int | None = 1,
    n_jobs: int = 1,
    num_threads: int | None = None,
) -> Pipeline:
    """Artist-encoder embeddings of the 10 chunks, pooled per song → random forest."""
    _require_h5py()
    embed = ArtistEmbedding(weights, sha256, pooling=pooling, num_threads=num_threads)  # type: ignore[arg-type]
    return Pipeline([("embed", embed), ("rf", _forest(n_estimators, random_state, n_jobs))])


def _require_h5py() -> None:
    """The artist CNN's Keras weights are read with h5py (the research extra): checked when the
    method is resolved, before any work."""
    from merkit.core.versions import require_extra

    require_extra("h5py", needed_by="the artist CNN methods")


def _head(
    *,
    dropout: float,
    epochs: int,
    batch_size: int,
    optimizer: str,
    lr: float,
    stop_train_accuracy: float | None,
    validation_fraction: float | None,
    patience: int,
    random_state: int | None,
    train_options: dict[str, Any] | None,
) -> TorchClassifier:
    return TorchClassifier(
        model=HEAD,
        model_params={"dropout": dropout},
        epochs=epochs,
        batch_size=batch_size,
        optimizer=optimizer,
        lr=lr,
        stop_train_accuracy=stop_train_accuracy,
        validation_fraction=validation_fraction,
        patience=patience,
        random_state=random_state,
        train_options=train_options,
    )


def build_crnn_mtat(
    weights: str | None = None,
    sha256: str | None = None,
    epochs: int = 200,
    batch_size: int = 16,
    lr: float = 1e-3,
    validation_fraction: float = 0.1,
    random_state: int | None = 1,
    num_threads: int | None = None,
    train_options: dict[str, Any] | None = None,
) -> Pipeline:
    """Frozen CRNN (cached GRU state) → new head (dropout 0.5, linear) with Won's schedule.

    Model selection: the lowest validation loss on ``validation_fraction`` of the training fold
    (the schedule's reloads and the final weights); ``patience`` equals ``epochs``, so the
    schedule, not early stopping, ends training.
    """
    options = {"weight_decay": 1e-4, "schedule": list(WON_SCHEDULE), **(train_options or {})}
    options["schedule"] = [s for s in options["schedule"] if s["epoch"] < epochs]
    if num_threads is not None:
        options.setdefault("num_threads", num_threads)
    head = _head(
        dropout=0.5,
        epochs=epochs,
        batch_size=batch_size,
        optimizer="adam",
        lr=lr,
        stop_train_accuracy=None,  # Won's recipe: no 90 % rule
        validation_fraction=validation_fraction,
        patience=max(epochs, 1),
        random_state=random_state,
        train_options=options,
    )
    embed = CRNNEmbedding(weights, sha256, output="gru", num_threads=num_threads)
    return Pipeline([("embed", embed), ("head", head)])


def build_crnn_mtat_ft(
    weights: str | None = None,
    sha256: str | None = None,
    epochs: int = 30,
    batch_size: int = 16,
    optimizer: str = "adam",
    lr: float = 1e-4,
    validation_fraction: float = 0.1,
    patience: int = 5,
    train_crop_frames: int | None = 625,
    probe_first: bool = True,
    probe_epochs: int = 200,
    random_state: int | None = 1,
    train_options: dict[str, Any] | None = None,
) -> TorchClassifier | ProbeThenFineTune:
    """Won's CRNN with a new 4-way head, every layer fine-tuned at a small learning rate.

    Training batches are random crops of ``train_crop_frames`` frames (625 = 10 s; Won trained
    on random crops too), a third of the cost of whole clips; validation and prediction use the
    whole 29 s input (the GRU's last step summarises any length). ``None`` trains on whole inputs.

    With ``probe_first`` the new head is first trained on the frozen network (the ``crnn-mtat``
    recipe, ``probe_epochs`` epochs on cached GRU states, selected on the same inner validation
    split) and fine-tuning starts from it, so a few epochs at a small rate suffice.
    """
    from merkit.transfer.checkpoints import check_weights_file
    from merkit.transfer.won_crnn import WHAT

    check_weights_file(weights, sha256=sha256, what=WHAT)  # before any feature extraction
    finetune = TorchClassifier(
        model=CRNN_FACTORY,
        model_params={"weights": str(weights), "sha256": sha256},
        epochs=epochs,
        batch_size=batch_size,
        optimizer=optimizer,
        lr=lr,
        stop_train_accuracy=None,
        validation_fraction=validation_fraction,
        patience=patience,
        random_state=random_state,
        train_options={"weight_decay": 1e-4, **(train_options or {})},
        callbacks=None
        if train_crop_frames is None
        else [BatchTransform(RandomTimeCrop(train_crop_frames))],
    )
    if not probe_first:
        return finetune
    probe = build_crnn_mtat(
        weights,
        sha256,
        epochs=probe_epochs,
        validation_fraction=validation_fraction,
        random_state=random_state,
        num_threads=(train_options or {}).get("num_threads"),
    )
    return ProbeThenFineTune(probe, finetune, state_with_head, random_state=random_state)


def build_artist_cnn(
    weights: str | None = None,
    sha256: str | None = None,
    epochs: int = 200,
    batch_size: int = 100,
    lr: float = 0.01,
    stop_train_accuracy: float | None = 0.90,
    aggregation: str = "mean-proba",
    random_state: int | None = 1,
    num_threads: int | None = None,
    train_options: dict[str, Any] | None = None,
) -> ChunkedClassifier:
    """Frozen artist encoder (cached 256-d chunk embeddings) → new softmax head, per chunk;
    a song's answer aggregates its 10 chunks (``aggregation``, see
    :mod:`merkit.estimators.aggregation`)."""
    _require_h5py()
    options = dict(train_options or {})
    if num_threads is not None:
        options.setdefault("num_threads", num_threads)
    head = _head(
        dropout=0.0,
        epochs=epochs,
        batch_size=batch_size,
        optimizer="adam",
        lr=lr,
        stop_train_accuracy=stop_train_accuracy,
        validation_fraction=None,
        patience=10,
        random_state=random_state,
        train_options=options or None,
    )
    embed = ArtistEmbedding(weights, sha256, num_threads=num_threads)
    return ChunkedClassifier(Pipeline([("embed", embed), ("head", head)]), aggregation=aggregation)


def build_openl3_rf(
    pooling: str = "mean-std",
    n_estimators: int = 100,
    random_state: int | None = 1,
    n_jobs: int = 1,
) -> Pipeline:
    """OpenL3 frame embeddings pooled per song (``first`` = the paper code's first frame) → RF.

    Needs the optional ``openl3`` package; without it, one message says how to install it.
    """
    from merkit.transfer.openl3_frames import require_openl3

    require_openl3()
    return Pipeline(
        [
            ("pool", FramePooling(pooling)),  # type: ignore[arg-type]
            ("rf", _forest(n_estimators, random_state, n_jobs)),
        ]
    )


WON_FRONT_END = "Won's CRNN front end: 16 kHz, n_fft 512, hop 256, 96 HTK mels to 8 kHz, power dB"
ARTIST_FRONT_END = "Park's artist CNN front end: 22.05 kHz, 10 chunks x 129 frames x 128 mels"


def _openl3_provenance(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The embedding library's version and front end, recorded in every fold of openl3-rf."""
    from merkit.representations.registry import get_representation
    from merkit.transfer.openl3_frames import openl3_version

    p = get_representation("openl3").params
    return {
        "embedding_library": f"openl3 {openl3_version()}",
        "front_end": f"{p['input_repr']}, content_type {p['content_type']}, "
        f"{p['embedding_size']}-d, hop {p['hop_size']} s (openl3 resamples to 48 kHz)",
        "pooling": settings.get("pooling", "mean-std"),
    }


def _checkpoint_provenance(front_end: str) -> Any:
    """Provenance of an embedding method: the checkpoint's file name and the front end."""

    def provenance(settings: Mapping[str, Any]) -> dict[str, Any]:
        weights = settings.get("weights")
        return {
            **({"weights": Path(weights).name} if weights else {}),
            "front_end": front_end,
            **({"weights_sha256": settings["sha256"]} if settings.get("sha256") else {}),
        }

    return provenance


OPENL3_RF = MethodSpec(
    name="openl3-rf",
    summary="OpenL3 music embeddings (mel256, 512-d) pooled per song + random forest; "
    "needs the optional openl3 package",
    inputs=("openl3",),
    build=build_openl3_rf,
    provenance=_openl3_provenance,
    extras=("openl3",),
    paper_row="OpenL3",
    paper_f1=0.5570,
)

CRNN_EMB_RF = MethodSpec(
    name="crnn-emb-rf",
    summary="Won's MTAT CRNN embeddings (conv block mean+std) + random forest; needs weights",
    inputs=("won-logmel",),
    build=build_crnn_emb_rf,
    provenance=_checkpoint_provenance(WON_FRONT_END),
    weights="Won's MTAT CRNN (crnn_mtat.pth; setting weights: PATH)",
)
ARTIST_EMB_RF = MethodSpec(
    name="artist-emb-rf",
    summary="Park's artist-CNN 256-d embeddings (mean of 10 chunks) + random forest; needs weights",
    inputs=("artist-chunks",),
    build=build_artist_emb_rf,
    provenance=_checkpoint_provenance(ARTIST_FRONT_END),
    weights="Park's artist CNN (artist_siamese_10000.h5; setting weights: PATH)",
    extras=("research",),  # h5py reads the Keras checkpoint
)
CRNN_MTAT = MethodSpec(
    name="crnn-mtat",
    summary="Won's MTAT CRNN frozen, new 4-way head, Adam->SGD schedule, inner validation",
    inputs=("won-logmel",),
    build=build_crnn_mtat,
    weights="Won's MTAT CRNN (crnn_mtat.pth; setting weights: PATH)",
    paper_row="CRNN Pre-trained MTAT",
    paper_f1=0.5021,
)
CRNN_MTAT_FT = MethodSpec(
    name="crnn-mtat-ft",
    summary="Won's MTAT CRNN with its own front end, fully fine-tuned (small lr)",
    inputs=("won-logmel",),
    build=build_crnn_mtat_ft,
    weights="Won's MTAT CRNN (crnn_mtat.pth; setting weights: PATH)",
)
ARTIST_CNN = MethodSpec(
    name="artist-cnn",
    summary="Park's artist-label encoder frozen + new 4-way head on 129-frame chunks",
    inputs=("artist-chunks",),
    build=build_artist_cnn,
    weights="Park's artist CNN (artist_siamese_10000.h5; setting weights: PATH)",
    extras=("research",),  # h5py reads the Keras checkpoint
    paper_row="Artists CNN",
    paper_f1=0.5085,
)

QUICK = {"epochs": 2}
SPECS = tuple(
    register_method(spec)
    for spec in (
        OPENL3_RF,
        CRNN_EMB_RF,
        ARTIST_EMB_RF,
        dataclasses.replace(CRNN_MTAT, quick=QUICK),
        dataclasses.replace(CRNN_MTAT_FT, quick={**QUICK, "probe_epochs": 2}),
        dataclasses.replace(ARTIST_CNN, quick=QUICK),
    )
)
