"""Hybrid Augmented (paper §3.2): a feature DNN and an augmented CNN, fused by a small DNN.

Per fold, on that fold's training songs only:

1. the feature DNN is trained on standardised handcrafted features;
2. CNN-H is trained on the training songs' log-mels plus their four classic augmentations
   (time shift, pitch shift, time stretch, ±10 dB);
3. both are loaded into :class:`~merkit.models.hybrid.HybridNet`, the DNN frozen, and the CNN
   and the 400→200→100→4 head are trained on the original log-mels and features.

The paper's intent (both branches pre-trained) is the default; ``cnn_init="scratch"`` reproduces
the authors' ensemble script, where the CNN weights are never loaded.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted

from merkit.core.errors import ConfigError, DataError
from merkit.core.protocols import ReportsTraining, ValidatesSettings
from merkit.methods.base import MethodSpec, feature_preprocessing
from merkit.methods.registry import register_method
from merkit.models import build_model
from merkit.training.classifier import TorchClassifier
from merkit.training.data import clone_state


class HybridClassifier(ClassifierMixin, BaseEstimator, ReportsTraining, ValidatesSettings):
    """The three-stage Hybrid Augmented method as one estimator.

    ``X`` is a dict of three row-aligned arrays, in this order: handcrafted features
    ``(n, n_features)``, log-mels ``(n, 942, 128)`` and augmented log-mels ``(n, k, 942, 128)``
    (``k`` copies per song; pass ``augment=False`` to skip them). Whatever their keys, they are
    taken in that order, so ``inputs`` can be overridden (e.g. merkit's own features).

    Parameters
    ----------
    dnn, cnn, fusion : dict, optional
        TorchClassifier settings of each stage, over the defaults below.
    augment : bool
        Train CNN-H on the augmented copies too (the paper's "Augmented").
    cnn_init : {"pretrained", "scratch"}
        Load the stage-2 CNN-H into the fusion network (paper), or start it from scratch (code).
    freeze_cnn : bool
        Also freeze the CNN branch during fusion (only the head trains).
    random_state : int, optional
        Seeds all three stages.
    verbose : int
        ``> 0`` shows training progress.
    """

    DNN_DEFAULTS: ClassVar[dict[str, Any]] = {
        "epochs": 100,
        "batch_size": 300,
        "optimizer": "sgd",
        "lr": 0.01,
    }
    # The paper gives no CNN pre-training recipe; these are the authors' code's.
    CNN_DEFAULTS: ClassVar[dict[str, Any]] = {
        "epochs": 450,
        "batch_size": 120,
        "optimizer": "adam",
        "lr": 0.005,
    }
    FUSION_DEFAULTS: ClassVar[dict[str, Any]] = {
        "epochs": 100,
        "batch_size": 300,
        "optimizer": "sgd",
        "lr": 0.01,
    }

    def __init__(
        self,
        dnn: dict[str, Any] | None = None,
        cnn: dict[str, Any] | None = None,
        fusion: dict[str, Any] | None = None,
        augment: bool = True,
        cnn_init: Literal["pretrained", "scratch"] = "pretrained",
        freeze_cnn: bool = False,
        random_state: int | None = None,
        verbose: int = 0,
    ) -> None:
        self.dnn = dnn
        self.cnn = cnn
        self.fusion = fusion
        self.augment = augment
        self.cnn_init = cnn_init
        self.freeze_cnn = freeze_cnn
        self.random_state = random_state
        self.verbose = verbose

    STAGES: ClassVar[tuple[str, ...]] = ("dnn", "cnn", "fusion")
    #: TorchClassifier parameters the Hybrid sets itself in every stage.
    _OWN: ClassVar[frozenset[str]] = frozenset({"model", "random_state", "verbose"})

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Parameters; with ``deep``, also each stage's effective settings as
        ``<stage>__<setting>`` (``cnn__lr``: the stage defaults under ``cnn``).

        ``deep=False`` returns exactly the ``__init__`` parameters (what :func:`~sklearn.clone`
        copies).
        """
        params = super().get_params(deep=deep)
        if deep:
            for stage, settings in self.stage_settings().items():
                params.update({f"{stage}__{key}": value for key, value in settings.items()})
        return params

    def set_params(self, **params: Any) -> HybridClassifier:
        """Set parameters, including one stage's setting as ``<stage>__<setting>``.

        ``cnn__lr=0.001`` sets ``lr`` in (a copy of) ``cnn``; a setting is any
        :class:`~merkit.training.classifier.TorchClassifier` parameter (``model__…`` and
        ``train__…`` included) but ``model``, ``random_state`` and ``verbose``, which the Hybrid
        sets itself. Plain parameters are set first.

        Raises
        ------
        ValueError
            Naming the parameter, for an unknown stage setting or parameter.
        """
        nested = {
            key: params.pop(key)
            for key in list(params)
            if key.partition("__")[0] in self.STAGES and key.partition("__")[2]
        }
        super().set_params(**params)
        updated = {
            stage: dict(own if isinstance(own := getattr(self, stage), Mapping) else {})
            for stage in self.STAGES
        }
        for key, value in nested.items():
            stage, _, name = key.partition("__")
            if name.partition("__")[0] in self._OWN:
                raise ValueError(
                    f"Invalid parameter {key!r} for estimator {type(self).__name__}: "
                    f"the Hybrid sets {name.partition('__')[0]!r} of every stage itself"
                )
            try:
                TorchClassifier().set_params(**{name: value})
            except ValueError:
                raise ValueError(
                    f"Invalid parameter {key!r} for estimator {type(self).__name__}: "
                    f"{name!r} is not a training setting of stage {stage!r}"
                ) from None
            updated[stage][name] = value
        for stage in {key.partition("__")[0] for key in nested}:
            setattr(self, stage, updated[stage])
        return self

    def validate_settings(self) -> None:
        """Check ``cnn_init`` and each stage's settings by building its classifier
        (:class:`~merkit.core.protocols.ValidatesSettings`).

        Raises
        ------
        ConfigError
            Naming the setting (``cnn_init``, or the stage and its bad training setting).
        """
        if self.cnn_init not in ("pretrained", "scratch"):
            raise ConfigError(
                f"setting 'cnn_init' must be 'pretrained' or 'scratch', not {self.cnn_init!r}"
            )
        for stage, model in (("dnn", "dnn"), ("cnn", "cnn-h"), ("fusion", "dnn")):
            overrides = getattr(self, stage)
            if overrides is not None and not isinstance(overrides, Mapping):
                raise ConfigError(f"setting {stage!r} must be a mapping of training settings")
            classifier = TorchClassifier(model=model)
            for key, value in {**self.stage_settings()[stage]}.items():
                if key.partition("__")[0] in self._OWN:
                    raise ConfigError(f"setting {stage!r}: {key!r} is set by the Hybrid itself")
                try:
                    classifier.set_params(**{key: value})
                except ValueError:
                    raise ConfigError(
                        f"setting {stage!r}: unknown training setting {key!r}"
                    ) from None
            try:
                classifier.validate_settings()
            except ConfigError as exc:
                raise ConfigError(f"setting {stage!r}: {exc}") from None

    def stage_settings(self) -> dict[str, dict[str, Any]]:
        """Each stage's effective TorchClassifier settings (its defaults under ``dnn``/``cnn``/
        ``fusion``), also ``get_params(deep=True)``'s ``<stage>__<setting>`` entries."""
        defaults = {
            "dnn": self.DNN_DEFAULTS,
            "cnn": self.CNN_DEFAULTS,
            "fusion": self.FUSION_DEFAULTS,
        }
        # A non-mapping override is refused by validate_settings/fit, not while listing params.
        return {
            stage: {**base, **(own if isinstance(own := getattr(self, stage), Mapping) else {})}
            for stage, base in defaults.items()
        }

    def _split(self, X: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        if not isinstance(X, dict) or len(X) not in (2, 3):
            raise DataError("hybrid needs a dict of [features, logmel(, augmented logmels)] arrays")
        arrays = list(X.values())
        features, mels = np.asarray(arrays[0]), arrays[1]
        augmented = arrays[2] if len(arrays) == 3 else None
        if features.ndim != 2:
            raise DataError(
                f"hybrid: first input must be a feature table, got shape {features.shape}"
            )
        return features, mels, augmented

    def _stage(
        self,
        defaults: dict[str, Any],
        overrides: dict[str, Any] | None,
        model: Any,
        seed_offset: int,
        **extra: Any,
    ) -> TorchClassifier:
        seed = None if self.random_state is None else int(self.random_state) + seed_offset
        settings = {**defaults, **(overrides or {}), **extra}
        # Nested keys (``train__momentum``) through set_params, the rest as constructed before.
        nested = {key: settings.pop(key) for key in list(settings) if "__" in key}
        stage = TorchClassifier(model=model, random_state=seed, verbose=self.verbose, **settings)
        return stage.set_params(**nested) if nested else stage

    def fit(self, X: Any, y: np.ndarray) -> HybridClassifier:
        if self.cnn_init not in ("pretrained", "scratch"):
            raise ConfigError(f"cnn_init must be 'pretrained' or 'scratch', not {self.cnn_init!r}")
        features, mels, augmented = self._split(X)
        y = np.asarray(y)
        self.scaler_: Pipeline = Pipeline(feature_preprocessing())
        scaled = self.scaler_.fit_transform(features).astype(np.float32)
        n_features = scaled.shape[1]

        # Stage 1: feature DNN.
        dnn = self._stage(
            self.DNN_DEFAULTS, self.dnn, "dnn", 1, model_params={"n_features": n_features}
        ).fit(scaled, y)

        # Stage 2: CNN-H on originals + augmented copies of the *training* songs only.
        cnn_state = None
        if self.cnn_init == "pretrained":
            train_mels, train_y = np.asarray(mels), y
            if self.augment and augmented is not None:
                copies = np.asarray(augmented)
                k = copies.shape[1]
                train_mels = np.concatenate([train_mels, copies.reshape(-1, *copies.shape[2:])])
                train_y = np.concatenate([y, np.repeat(y, k)])
            shape = {"n_frames": int(np.shape(mels)[1]), "n_mels": int(np.shape(mels)[2])}
            cnn = self._stage(self.CNN_DEFAULTS, self.cnn, "cnn-h", 2, model_params=shape)
            cnn.fit(train_mels, train_y)
            cnn_state = cnn.model_.state_dict()
            del train_mels, cnn

        # Stage 3: fusion, DNN frozen. The head is initialised here, from the global torch
        # generator as left by stage 2, and the whole assembled network is the fusion's
        # init_state (the stage re-seeds before training, so its own build draws are unused).
        shape = {
            "n_features": n_features,
            "n_frames": int(np.shape(mels)[1]),
            "n_mels": int(np.shape(mels)[2]),
            "n_classes": len(np.unique(y)),
            "freeze_dnn": True,
            "freeze_cnn": self.freeze_cnn,
        }
        network = build_model("hybrid", **shape)
        network.load_branches(dnn_state=dnn.model_.state_dict(), cnn_state=cnn_state)
        self.fusion_ = self._stage(
            self.FUSION_DEFAULTS,
            self.fusion,
            "hybrid",
            3,
            model_params=shape,
            init_state=clone_state(network),
        )
        del network
        self.fusion_.fit({"features": scaled, "logmel": mels}, y)
        self.classes_ = self.fusion_.classes_
        self.history_ = self.fusion_.history_
        return self

    def training_history(self) -> Any:
        """The fitted training history (:class:`~merkit.core.protocols.ReportsTraining`)."""
        return getattr(self, "history_", None)

    def predict_proba(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "fusion_")
        features, mels, _ = self._split(X)
        scaled = self.scaler_.transform(features).astype(np.float32)
        return self.fusion_.predict_proba({"features": scaled, "logmel": mels})

    def predict(self, X: Any) -> np.ndarray:
        proba = self.predict_proba(X)  # first: raises NotFittedError before classes_ is read
        return self.classes_[np.argmax(proba, axis=1)]


def build_hybrid(**params: Any) -> HybridClassifier:
    return HybridClassifier(**params)


HYBRID = register_method(
    MethodSpec(
        name="hybrid",
        summary="Hybrid Augmented: feature DNN (top-100) + CNN-H pre-trained on classic "
        "augmentations, fused by a 400-200-100-4 head",
        inputs={"features": "table:top100", "logmel": "logmel", "augmented": "classic-aug"},
        build=build_hybrid,
        paper_row="Hybrid Augmented",
        paper_f1=0.6804,
        quick={stage: {"epochs": 2} for stage in ("dnn", "cnn", "fusion")},
        extras=("research",),  # merkit.representations.augmented imports audiomentations
    )
)

HYBRID_OWN = register_method(
    MethodSpec(
        name="hybrid-own",
        summary="Hybrid Augmented on merkit's own features (audio only)",
        inputs={"features": "own-features", "logmel": "logmel", "augmented": "classic-aug"},
        build=build_hybrid,
        quick={stage: {"epochs": 2} for stage in ("dnn", "cnn", "fusion")},
        extras=("research",),  # merkit.representations.augmented imports audiomentations
    )
)
