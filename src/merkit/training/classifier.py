"""scikit-learn-compatible wrapper around a registered torch model and the :class:`Trainer`.

``TorchClassifier(model="cnn")`` behaves like any sklearn classifier: ``fit(X, y)`` with ``X`` a
single array (single-input models) or a dict of arrays keyed by the model's ``input_names``,
``predict_proba``/``predict``, ``get_params``/``set_params``/``clone``. Fitted models are saved
with :meth:`TorchClassifier.save` and restored with :meth:`TorchClassifier.load` (plain
``torch.save`` of tensors and Python values, loadable with ``weights_only=True``).
"""

from __future__ import annotations

import copy
import gc
from collections.abc import Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted
from torch import nn

from merkit.core.atomic import atomic_file
from merkit.core.errors import ConfigError, DataError, ModelError
from merkit.core.protocols import AcceptsValidation, ReportsTraining, ValidatesSettings
from merkit.models.factory import ModelSpec, accepts, model_reference, resolve_factory
from merkit.training.config import TrainConfig
from merkit.training.data import clone_state
from merkit.training.history import TrainHistory
from merkit.training.hooks import Callback
from merkit.training.init_state import STATE_FORMAT, InitState, load_init_state, read_init_state
from merkit.training.loop import Trainer
from merkit.training.runtime import seed_everything
from merkit.training.sampling import RandomChunks

STATE_VERSION: int = 1


def _fresh_callbacks(callbacks: Sequence[Callback | type[Callback]] | None) -> list[Callback]:
    """Per-fit copies (classes are instantiated), so no state leaks between fits or clones."""
    fresh: list[Callback] = []
    for item in callbacks or ():
        callback = item() if isinstance(item, type) else copy.deepcopy(item)
        if not isinstance(callback, Callback):
            raise ConfigError(f"callbacks must be merkit Callback objects, got {item!r}")
        fresh.append(callback)
    return fresh


class TorchClassifier(
    ClassifierMixin, BaseEstimator, AcceptsValidation, ReportsTraining, ValidatesSettings
):
    """A torch classifier trained with merkit's :class:`~merkit.training.Trainer`.

    Parameters
    ----------
    model : str or callable
        Registry name (see :data:`merkit.models.MODELS`), ``"module:Factory"`` reference, or a
        callable returning a module whose ``forward`` takes the inputs in ``input_names`` order
        and returns logits.
    model_params : dict, optional
        Keyword arguments for the model factory. ``n_classes`` is filled in from the labels
        when the factory accepts it and it is not given.
    epochs, batch_size, optimizer, lr
        See :class:`~merkit.training.TrainConfig` (defaults: the paper's baseline CNN recipe).
    stop_train_accuracy : float or None
        The paper's 90 % training-accuracy stop rule; ``None`` disables it.
    validation_fraction : float or None
        Inner stratified validation split of the training rows for early stopping.
    patience : int
        Early-stopping patience (epochs), used with ``validation_fraction``.
    device : {"auto", "cpu", "cuda"}
        Where to train and predict.
    random_state : int, RandomState or None
        Seeds weights, batch order, dropout and the validation split.
    verbose : int
        ``> 0`` shows progress bars.
    input_names : tuple of str, optional
        Keys of ``X`` to feed the model, in order; defaults to the model's ``input_names``.
    train_options : dict, optional
        Any other :class:`~merkit.training.TrainConfig` field (``momentum``, ``weight_decay``,
        ``adam_eps``, ``schedule``, ``mixed_precision``, ``channels_last``, ``num_threads``, …).
    callbacks : list of Callback (or Callback classes), optional
        Extra training callbacks (:mod:`merkit.training.callbacks`), e.g. a
        :class:`~merkit.training.callbacks.BatchTransform`. Stored as given; every ``fit``
        trains with deep copies (classes are instantiated), so no state leaks between fits.
    init_state : dict of tensors, or path, optional
        Weights loaded into the freshly built network before training: a state dict, a file
        of one, or a file saved by :meth:`save`. Keys and shapes must match exactly.
    freeze : tuple of str, optional
        ``fnmatch`` patterns of parameter names to freeze (e.g. ``("dnn.*",)``); see
        :class:`~merkit.training.callbacks.Freeze`.
    chunks_per_song : int, optional
        Train each epoch on this many random chunks of every song instead of on every row
        (:class:`~merkit.training.sampling.RandomChunks`); needs ``groups`` in :meth:`fit`
        (a :class:`~merkit.estimators.chunked.ChunkedClassifier` passes them). ``None``: every row,
        every epoch.

    Attributes
    ----------
    classes_ : ndarray
        Sorted class labels; columns of :meth:`predict_proba`.
    model_ : nn.Module
        The trained network.
    history_ : TrainHistory
        Per-epoch loss/accuracy, epochs run and why training stopped.
    input_names_ : tuple of str
        The input keys used.
    """

    def __init__(
        self,
        model: ModelSpec = "cnn",
        model_params: dict[str, Any] | None = None,
        epochs: int = 200,
        batch_size: int = 150,
        optimizer: str = "sgd",
        lr: float = 0.01,
        stop_train_accuracy: float | None = 0.90,
        validation_fraction: float | None = None,
        patience: int = 10,
        device: str = "auto",
        random_state: int | np.random.RandomState | None = None,
        verbose: int = 0,
        input_names: tuple[str, ...] | None = None,
        train_options: dict[str, Any] | None = None,
        callbacks: list[Callback | type[Callback]] | None = None,
        init_state: InitState | None = None,
        freeze: tuple[str, ...] | None = None,
        chunks_per_song: int | None = None,
    ) -> None:
        self.model = model
        self.model_params = model_params
        self.epochs = epochs
        self.batch_size = batch_size
        self.optimizer = optimizer
        self.lr = lr
        self.stop_train_accuracy = stop_train_accuracy
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.device = device
        self.random_state = random_state
        self.verbose = verbose
        self.input_names = input_names
        self.train_options = train_options
        self.callbacks = callbacks
        self.init_state = init_state
        self.freeze = freeze
        self.chunks_per_song = chunks_per_song

    accepts_validation: ClassVar[bool] = True
    """``fit`` takes ``validation=(X, y)`` (:class:`~merkit.core.protocols.AcceptsValidation`)."""

    # ---- nested parameters -----------------------------------------------------------------

    #: Estimator parameters that are :class:`TrainConfig` fields: ``train__<name>`` sets them.
    _TRAIN_PARAMS: ClassVar[tuple[str, ...]] = (
        "epochs",
        "batch_size",
        "optimizer",
        "lr",
        "stop_train_accuracy",
        "validation_fraction",
        "patience",
        "device",
        "freeze",
    )

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Parameters; with ``deep``, also every ``model_params`` entry as ``model__<key>`` and
        every ``train_options`` entry as ``train__<key>``.

        ``deep=False`` returns exactly the ``__init__`` parameters (what :func:`~sklearn.clone`
        copies), so the dict forms stay the stored state.
        """
        params = super().get_params(deep=deep)
        if deep:
            # A non-mapping value (scikit-learn's checks set any type) is refused at fit, not here.
            for prefix, settings in (("model", self.model_params), ("train", self.train_options)):
                if isinstance(settings, Mapping):
                    params.update({f"{prefix}__{key}": value for key, value in settings.items()})
        return params

    def set_params(self, **params: Any) -> TorchClassifier:
        """Set parameters, including nested ``model__<key>`` and ``train__<key>`` ones.

        ``model__<key>`` sets one keyword of the model factory (in a copy of ``model_params``);
        ``train__<key>`` sets one :class:`~merkit.training.TrainConfig` field: the estimator
        parameter of that name where there is one (``train__lr`` is ``lr``), else an entry of
        (a copy of) ``train_options``. Plain parameters are set first.

        Raises
        ------
        ValueError
            For a ``train__<key>`` that is no training setting, or any unknown parameter
            (scikit-learn's message, naming the parameter).
        """
        nested = {k: params.pop(k) for k in list(params) if k.startswith(("model__", "train__"))}
        super().set_params(**params)
        model_params = dict(self.model_params if isinstance(self.model_params, Mapping) else {})
        train_options = dict(self.train_options if isinstance(self.train_options, Mapping) else {})
        for key, value in nested.items():
            prefix, name = key.split("__", 1)
            if prefix == "model":
                model_params[name] = value
            elif name in self._TRAIN_PARAMS:
                setattr(self, name, value)
            elif name in TrainConfig.model_fields and name != "seed":
                train_options[name] = value
            else:
                raise ValueError(
                    f"Invalid parameter {key!r} for estimator {type(self).__name__}: "
                    f"{name!r} is not a training setting"
                )
        if any(k.startswith("model__") for k in nested):
            self.model_params = model_params
        if any(k.startswith("train__") and k[7:] not in self._TRAIN_PARAMS for k in nested):
            self.train_options = train_options
        return self

    # ---- configuration ---------------------------------------------------------------------

    def validate_settings(self) -> None:
        """Check every setting without training (:class:`~merkit.core.protocols.ValidatesSettings`).

        Raises
        ------
        ConfigError
            Naming the bad training settings, or an unknown model name.
        """
        from pydantic import ValidationError

        try:
            self._config()
            if isinstance(self.model, str):
                self._names()  # an unknown model name fails here, not after extraction
        except ValidationError as exc:
            fields = ", ".join(".".join(map(str, e["loc"])) + f": {e['msg']}" for e in exc.errors())
            raise ConfigError(f"invalid training settings: {fields}") from None

    def _seed(self) -> int:
        if isinstance(self.random_state, (int, np.integer)):
            return int(self.random_state)
        return int(check_random_state(self.random_state).randint(2**31 - 1))

    def _config(self, seed: int = 0) -> TrainConfig:
        options = dict(self.train_options or {})
        explicit = {
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "optimizer": self.optimizer,
            "lr": self.lr,
            "stop_train_accuracy": self.stop_train_accuracy,
            "validation_fraction": self.validation_fraction,
            "patience": self.patience,
            "device": self.device,
            "seed": seed,
        }
        if self.freeze:
            explicit["freeze"] = tuple(self.freeze)
        if self.chunks_per_song is not None:
            RandomChunks((), self.chunks_per_song)  # checks the value
        clash = sorted(set(options) & set(explicit))
        if clash:
            raise ConfigError(
                f"train_options repeats estimator parameters {clash}; set them directly"
            )
        return TrainConfig.create(**explicit, **options)

    def _build(self, n_classes: int, n_features: int | None = None) -> nn.Module:
        factory = resolve_factory(self.model)
        params = dict(self.model_params or {})
        if "n_classes" not in params and accepts(factory, "n_classes"):
            params["n_classes"] = n_classes
        # Feature models size their input layer from the data (e.g. top-100 vs own features).
        if n_features is not None and "n_features" not in params and accepts(factory, "n_features"):
            params["n_features"] = n_features
        try:
            network = factory(**params)
        except TypeError as error:
            raise ConfigError(
                f"model {self.model!r}: bad model_params {sorted(params)}: {error}"
            ) from error
        if not isinstance(network, nn.Module):
            raise ConfigError(f"model {self.model!r} did not build a torch module")
        return network

    def _names(self) -> tuple[str, ...] | None:
        if self.input_names is not None:
            return tuple(self.input_names)
        names = getattr(resolve_factory(self.model), "input_names", None)
        return None if names is None else tuple(names)

    def _inputs(self, X: Any, names: tuple[str, ...] | None) -> tuple[np.ndarray, ...]:
        if isinstance(X, Mapping):
            if names is None:
                if len(X) != 1:
                    raise ConfigError(
                        f"model {self.model!r} declares no input_names; pass one array or set "
                        f"input_names (got keys {sorted(X)})"
                    )
                return (np.asarray(next(iter(X.values()))),)
            if len(names) == 1 and names[0] not in X and len(X) == 1:
                return (np.asarray(next(iter(X.values()))),)
            missing = [name for name in names if name not in X]
            if missing:
                raise DataError(
                    f"model {self.model!r} needs inputs {list(names)}; missing {missing} "
                    f"(got {sorted(X)})"
                )
            arrays = tuple(np.asarray(X[name]) for name in names)
        else:
            if names is not None and len(names) != 1:
                raise DataError(
                    f"model {self.model!r} takes {len(names)} inputs {list(names)}: pass a dict "
                    "of arrays keyed by these names"
                )
            arrays = (np.asarray(X),)
        for name, array in zip(names or ("X",) * len(arrays), arrays, strict=False):
            # numpy would silently drop imaginary parts, read strings as bytes, etc.
            if array.dtype.kind in "cUSMmV":
                raise DataError(f"input {name!r} must be numeric, got dtype {array.dtype}")
            if array.ndim < 2:
                raise DataError(
                    f"input {name!r} must have a row axis and at least one feature axis, "
                    f"got shape {array.shape} (a single row needs shape (1, n_features))"
                )
        lengths = {len(array) for array in arrays}
        if len(lengths) != 1:
            sizes = {name: len(array) for name, array in zip(names or (), arrays, strict=False)}
            raise DataError(f"inputs differ in number of rows: {sizes}")
        return arrays

    # ---- sklearn API -----------------------------------------------------------------------

    def fit(
        self, X: Any, y: Any, groups: Any = None, validation: tuple[Any, Any] | None = None
    ) -> TorchClassifier:
        """Train a fresh model on ``X``, ``y``.

        Parameters
        ----------
        X : ndarray or dict of ndarray
            One array for single-input models, else arrays keyed by input name (row-aligned;
            float16/float32 and memory maps are fine).
        y : array-like
            Class labels (any sortable values).
        groups : array-like of int, optional
            The song of each row, for ``chunks_per_song``; ignored otherwise.
        validation : (X, y), optional
            Validation songs chosen outside this fit (a fixed train/validate/test split): early
            stopping with best-weight restore selects on them (``patience``), instead of the
            training-accuracy rule or a ``validation_fraction`` split of the training rows.

        Returns
        -------
        TorchClassifier
            ``self``.
        """
        labels = np.asarray(y)
        if labels.ndim != 1:
            raise DataError(f"labels must be one-dimensional, got shape {labels.shape}")
        classes, encoded = np.unique(labels, return_inverse=True)
        if len(classes) < 2:
            raise DataError(f"need at least two classes to train, got {classes.tolist()}")
        names = self._names()
        inputs = self._inputs(X, names)
        if len(inputs[0]) != len(labels):
            raise DataError(f"X has {len(inputs[0])} rows but y has {len(labels)} labels")
        seed = self._seed()
        config = self._config(seed)
        seed_everything(seed)  # the weights' initialisation draws from torch's global RNG
        width = inputs[0].shape[1] if inputs[0].ndim == 2 else None
        network = self._build(len(classes), width)
        if self.init_state is not None:
            load_init_state(network, self.init_state)
        callbacks = _fresh_callbacks(self.callbacks)
        if self.chunks_per_song is not None:
            if groups is None:
                raise ConfigError(
                    "chunks_per_song needs the song of every row: pass groups to fit "
                    "(ChunkedClassifier does)"
                )
            callbacks.append(RandomChunks(groups, self.chunks_per_song))
        held = None if validation is None else self._validation(validation, classes, names)
        trainer = Trainer(config)
        history = trainer.fit(
            network,
            inputs,
            encoded.astype(np.int64),
            progress=self.verbose > 0,
            validation=held,
            callbacks=callbacks,
        )
        self.classes_ = classes
        self.model_ = network
        self.history_ = history
        self.input_names_ = names
        self.n_features_in_ = width
        del inputs, encoded
        gc.collect()  # no reference to the training arrays survives fit
        return self

    def _validation(
        self, validation: tuple[Any, Any], classes: np.ndarray, names: tuple[str, ...] | None
    ) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
        """Explicit validation data as the trainer takes it: inputs and encoded labels."""
        val_x, val_y = validation
        val_labels = np.asarray(val_y)
        unknown = sorted(set(val_labels.tolist()) - set(classes.tolist()))
        if unknown:
            raise DataError(f"validation labels {unknown} are not among the training classes")
        val_inputs = self._inputs(val_x, names)
        if len(val_inputs[0]) != len(val_labels):
            raise DataError(
                f"validation X has {len(val_inputs[0])} rows but y has {len(val_labels)} labels"
            )
        return val_inputs, np.searchsorted(classes, val_labels).astype(np.int64)

    def training_history(self) -> Any:
        """The fitted training history (:class:`~merkit.core.protocols.ReportsTraining`)."""
        return getattr(self, "history_", None)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities ``(n, n_classes)``, columns in ``classes_`` order."""
        check_is_fitted(self, "model_")
        inputs = self._inputs(X, self.input_names_)
        return Trainer(self._config()).predict_proba(self.model_, inputs, self.batch_size)

    def predict(self, X: Any) -> np.ndarray:
        """Most probable class label per row."""
        proba = self.predict_proba(X)  # first: raises NotFittedError before classes_ is read
        return self.classes_[np.argmax(proba, axis=1)]

    # ---- persistence -----------------------------------------------------------------------

    def _params_for_state(self) -> dict[str, Any]:
        params = self.get_params(deep=False)
        params["model"] = model_reference(self.model)
        if not isinstance(params["random_state"], (int, type(None))):
            params["random_state"] = None
        if params["input_names"] is not None:
            params["input_names"] = list(params["input_names"])
        if params["freeze"] is not None:
            params["freeze"] = list(params["freeze"])
        # Training-only parameters: the saved weights supersede init_state, callbacks (arbitrary
        # objects) cannot be stored in a weights_only file. A path stays as a plain string.
        params["callbacks"] = None
        init = params["init_state"]
        params["init_state"] = str(init) if isinstance(init, (str, PathLike)) else None
        return params

    def get_state(self) -> dict[str, Any]:
        """Everything needed to rebuild the fitted estimator (tensors and plain Python values).

        Returns
        -------
        dict
            ``format``, ``version``, ``params``, ``classes``, ``input_names``, ``state_dict``
            (CPU tensors), ``history``.
        """
        check_is_fitted(self, "model_")
        return {
            "format": STATE_FORMAT,
            "version": STATE_VERSION,
            "params": self._params_for_state(),
            "classes": self.classes_.tolist(),
            "input_names": None if self.input_names_ is None else list(self.input_names_),
            "n_features_in": getattr(self, "n_features_in_", None),
            "state_dict": clone_state(self.model_),
            "history": self.history_.to_dict(),
        }

    def set_state(self, state: Mapping[str, Any]) -> TorchClassifier:
        """Restore a fitted estimator from :meth:`get_state`'s dict (parameters included).

        Raises
        ------
        ModelError
            If the dict is not a TorchClassifier state or its weights do not fit the model.
        """
        if not isinstance(state, Mapping) or state.get("format") != STATE_FORMAT:
            raise ModelError("not a merkit TorchClassifier state")
        if state.get("version") != STATE_VERSION:
            raise ModelError(
                f"TorchClassifier state version {state.get('version')} is not supported "
                f"(this merkit reads version {STATE_VERSION})"
            )
        params = dict(state["params"])
        for key in ("input_names", "freeze"):
            if params.get(key) is not None:
                params[key] = tuple(params[key])
        self.set_params(**params)
        classes = np.asarray(state["classes"])
        width = state.get("n_features_in")
        network = self._build(len(classes), width)
        try:
            network.load_state_dict(state["state_dict"], strict=True)
        except RuntimeError as error:
            detail = " ".join(str(error).split())[:400]
            raise ModelError(f"saved weights do not fit model {self.model!r}: {detail}") from None
        self.model_ = Trainer(self._config()).prepare(network)
        self.classes_ = classes
        names = state.get("input_names")
        self.input_names_ = None if names is None else tuple(names)
        self.history_ = TrainHistory.from_dict(state.get("history", {}))
        self.n_features_in_ = width
        return self

    def save(self, path: str | PathLike[str]) -> Path:
        """Write the fitted estimator to ``path`` (``torch.save`` of :meth:`get_state`)."""
        target = Path(path)
        with atomic_file(target) as temp:  # a crash never leaves a half-written model
            torch.save(self.get_state(), temp)
        return target

    @classmethod
    def load(cls, path: str | PathLike[str], *, device: str | None = None) -> TorchClassifier:
        """Read an estimator written by :meth:`save` (``weights_only`` safe loading).

        Parameters
        ----------
        path : path-like
            The saved file.
        device : str, optional
            Override the saved ``device`` parameter (e.g. ``"cpu"``).

        Raises
        ------
        ModelError
            Missing, corrupt or incompatible file.
        """
        source = Path(path)
        if not source.is_file():
            raise ModelError(f"model file not found: {source}")
        try:
            state = torch.load(source, map_location="cpu", weights_only=True)
        except Exception as error:  # unpickling errors come in many types
            raise ModelError(f"cannot read model file {source}: {error}") from None
        if isinstance(state, dict) and device is not None:
            state = {**state, "params": {**state.get("params", {}), "device": device}}
        try:
            return cls().set_state(state)
        except ModelError as error:
            raise ModelError(f"{source}: {error}") from None


__all__ = [
    "TorchClassifier",
    "load_init_state",
    "model_reference",
    "read_init_state",
    "resolve_factory",
]
