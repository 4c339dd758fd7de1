"""The declared extension points of an estimator, one :class:`typing.Protocol` each.

:func:`merkit.protocol.runner.fit_fold` and :func:`merkit.methods.resolve.resolve_method` ask an
estimator for these by ``isinstance`` (all are ``runtime_checkable``); an estimator offers one by
implementing it (and, for readers, by naming the protocol among its bases).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class ValidatesSettings(Protocol):
    """Checks its own settings before any work (:func:`merkit.methods.resolve_method`)."""

    def validate_settings(self) -> None:
        """Raise :class:`merkit.core.errors.ConfigError` naming the first bad setting."""


@runtime_checkable
class NeedsAllSongs(Protocol):
    """Fits on every song, test songs included (a published-code compat mode that leaks).

    When :attr:`needs_all_songs` is True, ``fit`` takes ``all_songs=(X, y)`` of every song.
    """

    @property
    def needs_all_songs(self) -> bool:
        """Whether ``fit`` wants ``all_songs``."""


@runtime_checkable
class PredictsDetails(Protocol):
    """Answers the test songs and reports details in one pass (e.g. chunk-level scores)."""

    def predict_details(self, X: Any, y: Any) -> tuple[Any, Any, dict[str, Any]]:
        """``(probabilities or None, predicted labels, extras for the fold record)``."""


@runtime_checkable
class AcceptsValidation(Protocol):
    """Selects with validation songs chosen outside the fit (a fixed split's).

    ``fit`` takes ``validation=(X, y)`` when :attr:`accepts_validation` is True.
    """

    @property
    def accepts_validation(self) -> bool:
        """Whether ``fit`` takes ``validation``."""


@runtime_checkable
class ReportsAugmentation(Protocol):
    """Trained on augmented copies; after ``fit``, ``augment_info_`` says which (or None)."""

    augment_info_: dict[str, Any] | None


@runtime_checkable
class ReportsTraining(Protocol):
    """Trained by epochs; :meth:`training_history` gives the fitted history (or None)."""

    def training_history(self) -> Any:
        """The fitted :class:`merkit.training.history.TrainHistory`, or None."""


def training_history_of(estimator: Any) -> Any:
    """``estimator``'s training history if it reports one (:class:`ReportsTraining`), else None."""
    return estimator.training_history() if isinstance(estimator, ReportsTraining) else None


__all__ = [
    "AcceptsValidation",
    "NeedsAllSongs",
    "PredictsDetails",
    "ReportsAugmentation",
    "ReportsTraining",
    "ValidatesSettings",
    "training_history_of",
]
