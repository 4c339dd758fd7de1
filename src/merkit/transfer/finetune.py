"""Fine-tuning a pre-trained network whose new head is trained first ("linear probe, then tune").

A freshly initialised head behind a pre-trained body sends large, random gradients into the body
during the first fine-tuning steps, and a small learning rate needs many epochs to train the head
at all. Training the head first on the frozen body's (cached) outputs, then fine-tuning every
layer from there with a small learning rate, avoids both (Kumar et al., ICLR 2022, "LP-FT").
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

from merkit.core.protocols import ReportsTraining
from merkit.training.classifier import TorchClassifier


class ProbeThenFineTune(ClassifierMixin, BaseEstimator, ReportsTraining):
    """Fit ``probe`` (frozen body + new head), copy its head into the full network, fine-tune.

    Parameters
    ----------
    probe : estimator
        A pipeline whose last step ``head`` is a fitted-by-us :class:`TorchClassifier` with a
        :class:`~merkit.transfer.heads.LinearHead` (its ``dense`` layer is copied).
    finetune : TorchClassifier
        The full network (``model_params`` build the pre-trained body with a new head).
    init_head : callable
        ``init_head(finetune_model_params, n_classes, head_state) -> state dict`` of the full
        network: the pre-trained body with the probe's head.
    random_state : int or None
        Seeds both stages.
    """

    def __init__(
        self,
        probe: Any,
        finetune: TorchClassifier,
        init_head: Callable[..., dict[str, Any]],
        random_state: int | None = None,
    ) -> None:
        self.probe = probe
        self.finetune = finetune
        self.init_head = init_head
        self.random_state = random_state

    def fit(self, X: Any, y: Any) -> ProbeThenFineTune:
        """Train the head on the frozen body, then every layer from there."""
        from sklearn.base import clone

        probe = clone(self.probe)
        if self.random_state is not None:
            probe.set_params(head__random_state=self.random_state)
        probe.fit(X, y)
        head = probe.named_steps["head"]
        classes = head.classes_
        state = self.init_head(
            self.finetune.model_params or {}, len(classes), head.model_.dense.state_dict()
        )
        finetune = clone(self.finetune).set_params(init_state=state)
        if self.random_state is not None:
            finetune.set_params(random_state=self.random_state)
        finetune.fit(X, y)
        if not np.array_equal(finetune.classes_, classes):
            raise RuntimeError("probe and fine-tuning saw different classes")
        self.probe_ = probe
        self.classifier_ = finetune
        self.classes_ = classes
        self.history_ = finetune.history_
        return self

    def training_history(self) -> Any:
        """The fitted training history (:class:`~merkit.core.protocols.ReportsTraining`)."""
        return getattr(self, "history_", None)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities of the fine-tuned network."""
        check_is_fitted(self, "classifier_")
        return self.classifier_.predict_proba(X)

    def predict(self, X: Any) -> np.ndarray:
        """Most probable class per row."""
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


__all__ = ["ProbeThenFineTune"]
