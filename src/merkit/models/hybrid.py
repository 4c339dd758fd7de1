"""The Hybrid fusion model (paper §3.2): a feature DNN and CNN-H fused by a small DNN."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import torch
from torch import Tensor, nn

from merkit.core.errors import ModelError
from merkit.models.cnn import CNNH, N_FRAMES, N_MELS
from merkit.models.dnn import N_FEATURES, FeatureDNN
from merkit.models.layers import batch_norm_1d, keras_init_


class HybridNet(nn.Module):
    """Concatenate [DNN Dense-100 ⊕ CNN-H Dense-300] → BN → Dense 200 → Dense 100 → Dense 4.

    The fusion head's Dense layers use ``he_normal`` (as in the reference). Each branch's own
    classifier stays in the module (so :meth:`load_branches` takes whole pre-trained state dicts)
    but is unused here and gets no gradient.

    A frozen branch has ``requires_grad=False`` and is kept in eval mode even while the hybrid
    trains (:meth:`train` is overridden), like a Keras layer with ``trainable=False``: its BN
    uses the running statistics and its dropout is off. The trainer should hand the optimiser
    only parameters with ``requires_grad``; frozen ones get no gradient either way.

    Parameters
    ----------
    n_features : int
        Inputs of the DNN branch.
    n_classes : int
        Output classes.
    n_frames, n_mels : int
        Log-mel size of the CNN branch.
    freeze_dnn : bool
        Freeze the DNN branch (the reference freezes the pre-trained DNN).
    freeze_cnn : bool
        Freeze the CNN branch (the reference trains it).
    """

    input_names: ClassVar[tuple[str, ...]] = ("features", "logmel")
    model_name: ClassVar[str] = "hybrid"

    def __init__(
        self,
        n_features: int = N_FEATURES,
        n_classes: int = 4,
        n_frames: int = N_FRAMES,
        n_mels: int = N_MELS,
        *,
        freeze_dnn: bool = True,
        freeze_cnn: bool = False,
    ) -> None:
        super().__init__()
        self.dnn = FeatureDNN(n_features, n_classes)
        self.cnn = CNNH(n_classes, n_frames, n_mels)
        fused = self.dnn.embedding_size + self.cnn.dense.out_features
        self.head = nn.Sequential(
            batch_norm_1d(fused),
            nn.Linear(fused, 200),
            nn.ReLU(),
            nn.Linear(200, 100),
            nn.ReLU(),
            nn.Linear(100, n_classes),
        )
        keras_init_(self.head, linear="he_normal")
        self.freeze_dnn = freeze_dnn
        self.freeze_cnn = freeze_cnn
        self._apply_freeze()

    def _frozen_branches(self) -> list[nn.Module]:
        return [
            branch
            for branch, frozen in ((self.dnn, self.freeze_dnn), (self.cnn, self.freeze_cnn))
            if frozen
        ]

    def _apply_freeze(self) -> None:
        for branch, frozen in ((self.dnn, self.freeze_dnn), (self.cnn, self.freeze_cnn)):
            branch.requires_grad_(not frozen)
        self.train(self.training)

    def set_frozen(self, *, dnn: bool | None = None, cnn: bool | None = None) -> None:
        """Change which branches are frozen (``None`` leaves a branch as it is)."""
        if dnn is not None:
            self.freeze_dnn = dnn
        if cnn is not None:
            self.freeze_cnn = cnn
        self._apply_freeze()

    def train(self, mode: bool = True) -> HybridNet:
        """Set training mode, keeping frozen branches in eval mode."""
        super().train(mode)
        for branch in self._frozen_branches():
            branch.eval()
        return self

    def load_branches(
        self,
        dnn_state: Mapping[str, Tensor] | None = None,
        cnn_state: Mapping[str, Tensor] | None = None,
    ) -> None:
        """Load pre-trained branch weights (state dicts of a ``dnn`` and a ``cnn-h``).

        Parameters
        ----------
        dnn_state, cnn_state : mapping, optional
            ``state_dict()`` of a :class:`FeatureDNN` / :class:`CNNH` of matching size; ``None``
            keeps that branch as it is (e.g. a CNN trained from scratch).

        Raises
        ------
        ModelError
            If a state dict does not fit its branch (missing/unexpected keys, other sizes).
        """
        for name, branch, state in (("dnn", self.dnn, dnn_state), ("cnn-h", self.cnn, cnn_state)):
            if state is None:
                continue
            try:
                branch.load_state_dict(state, strict=True)
            except RuntimeError as error:
                detail = " ".join(str(error).split())[:400]
                raise ModelError(
                    f"hybrid: the {name} weights do not fit the {name} branch: {detail}"
                ) from error

    def forward(self, features: Tensor, logmel: Tensor) -> Tensor:
        fused = torch.cat([self.dnn.embed(features), self.cnn.embed(logmel)], dim=1)
        return self.head(fused)
