"""Training settings: :class:`TrainConfig` and the optimiser-switch step :class:`LRSwitch`.

Both are frozen pydantic models; :meth:`TrainConfig.create` reports invalid settings as one
:class:`~merkit.core.errors.ConfigError` naming each.
:func:`merkit.training.callbacks.default_callbacks`
turns a config into the callbacks that implement its rules.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from merkit.core.errors import ConfigError


class LRSwitch(BaseModel):
    """One step of an optimiser schedule: from epoch ``epoch + 1`` on, use these settings.

    ``epoch`` counts completed epochs, so ``LRSwitch(epoch=80, optimizer="sgd", lr=1e-3)`` trains
    epochs 1–80 with the initial optimiser and epochs 81… with SGD (Won et al.'s CRNN-MTAT recipe).
    Settings not given (``momentum``, ``nesterov``, ``weight_decay``) keep the config's values.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    epoch: int = Field(gt=0)
    optimizer: Literal["sgd", "adam"]
    lr: float = Field(gt=0)
    momentum: float | None = Field(default=None, ge=0)
    nesterov: bool | None = None
    weight_decay: float | None = Field(default=None, ge=0)
    restore_best: bool = False
    """Reload the best-validation-loss weights first (needs validation data)."""


class TrainConfig(BaseModel):
    """Settings of one training run (Keras-compatible defaults of the paper's recipes).

    Attributes
    ----------
    epochs : int
        Upper bound on the number of epochs (0: no training, e.g. to evaluate ``init_state``).
    batch_size : int
        Mini-batch size; the last batch of an epoch may be smaller (Keras), except that a last
        batch of one row joins the one before in a model with BatchNorm (torch cannot
        normalise a single row in training mode).
    optimizer : {"sgd", "adam"}
        Optimiser; SGD defaults to Keras' plain SGD (no momentum, no Nesterov).
    lr : float
        Learning rate.
    momentum, nesterov, weight_decay : float, bool, float
        SGD momentum / Nesterov, L2 weight decay (both optimisers).
    adam_eps : float
        Adam's epsilon (Keras: 1e-7; PyTorch's default would be 1e-8).
    stop_train_accuracy : float or None
        The paper's rule: stop after the first epoch whose training accuracy (sample-weighted
        mean of per-batch accuracy in train mode) is ≥ this. ``None`` disables it.
    validation_fraction : float or None
        Hold out this stratified fraction of the *training* rows; stop when the validation loss
        has not improved for ``patience`` epochs and restore the best weights.
    patience : int
        Epochs without validation-loss improvement before stopping.
    recalibrate_batchnorm : bool
        After training, re-estimate every trainable BatchNorm's running statistics in one pass
        over the training rows (population mean/variance). Keras' momentum 0.99 needs many
        hundreds of updates before the running statistics follow the batch statistics; with
        few steps (small folds, an epoch cap) they lag far behind and eval-mode predictions
        collapse to one class. ``False`` keeps the exact Keras behaviour.
    schedule : tuple of LRSwitch
        Optimiser switches at given epochs (strictly increasing).
    loss : {"cross_entropy", "mse"}
        Cross-entropy on logits with integer labels, or MSE against float targets (autoencoder).
    device : {"auto", "cpu", "cuda"}
        ``auto`` picks CUDA when available.
    mixed_precision : bool
        bf16 autocast for training and prediction: on CUDA (fp16 + gradient scaling where
        bf16 is unsupported) and on CPUs with native bf16 (:func:`cpu_has_native_bf16`);
        plain float32 elsewhere. ``False`` forces float32 everywhere.
    channels_last : bool
        Store 2-D conv weights (and 4-D inputs) channels-last; measured ~1.5× faster on CPU.
    num_threads : int or None
        ``torch.set_num_threads`` for the run (process-wide); ``None`` keeps torch's default.
    seed : int
        Seeds batch order, the validation split, dropout and (through the estimator) the weights.
    freeze : tuple of str
        ``fnmatch`` patterns of parameter names (``"dnn.*"``) to freeze: they get
        ``requires_grad=False``, are left out of the optimiser, and BatchNorms whose parameters
        are all frozen stay in eval mode (:class:`~merkit.training.callbacks.Freeze`).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    epochs: int = Field(default=200, ge=0)
    batch_size: int = Field(default=150, ge=1)
    optimizer: Literal["sgd", "adam"] = "sgd"
    lr: float = Field(default=0.01, gt=0)
    momentum: float = Field(default=0.0, ge=0)
    nesterov: bool = False
    weight_decay: float = Field(default=0.0, ge=0)
    adam_eps: float = Field(default=1e-7, gt=0)
    stop_train_accuracy: float | None = Field(default=0.90, gt=0, le=1)
    validation_fraction: float | None = Field(default=None, gt=0, lt=1)
    patience: int = Field(default=10, ge=1)
    schedule: tuple[LRSwitch, ...] = ()
    loss: Literal["cross_entropy", "mse"] = "cross_entropy"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    mixed_precision: bool = True
    channels_last: bool = True
    num_threads: int | None = Field(default=None, ge=1)
    seed: int = 0
    recalibrate_batchnorm: bool = True
    freeze: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        if self.nesterov and self.momentum <= 0:
            raise ValueError("nesterov=True needs momentum > 0")
        epochs = [switch.epoch for switch in self.schedule]
        if epochs != sorted(set(epochs)):
            raise ValueError(f"schedule epochs must be strictly increasing, got {epochs}")
        return self

    @classmethod
    def create(cls, **settings: Any) -> TrainConfig:
        """Build a config, reporting invalid settings as a :class:`ConfigError`.

        Raises
        ------
        ConfigError
            Naming each invalid setting and why.
        """
        try:
            return cls(**settings)
        except ValidationError as error:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'config'}: {e['msg']}"
                for e in error.errors()
            )
            raise ConfigError(f"invalid training settings: {problems}") from None


__all__ = ["LRSwitch", "TrainConfig"]
