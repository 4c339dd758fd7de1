"""What a method is: a short recipe naming its inputs and building an unfitted estimator."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sklearn.impute import SimpleImputer
from sklearn.preprocessing import StandardScaler

from merkit.errors import ConfigError


def feature_preprocessing() -> list[tuple[str, Any]]:
    """Pipeline steps every feature-table method starts with, fitted on the training fold only:
    median imputation (feature tables may hold NaN) and standardisation."""
    return [
        ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
        ("scale", StandardScaler()),
    ]


@dataclass(frozen=True)
class MethodSpec:
    """A named methodology.

    Attributes
    ----------
    name : str
        Registry key, e.g. ``"svm"``.
    summary : str
        One line for ``merkit methods`` and reports.
    inputs : tuple of str
        Representation names (computed from audio, cached) or ``table:NAME`` feature tables.
    build : callable
        ``build(**params) -> estimator``: an unfitted scikit-learn-style estimator. Data-dependent
        steps (scaling, selection, augmentation, oversampling) live inside it, so they are fitted
        on training folds only.
    paper_row : str, optional
        The row of the paper's Table 3 this method reproduces.
    paper_f1 : float, optional
        That row's Original-4QAED macro F1 (fraction).
    quick : dict
        Settings for a smoke run (``merkit benchmark --quick``), e.g. a tiny epoch cap.
    """

    name: str
    summary: str
    inputs: tuple[str, ...]
    build: Callable[..., Any]
    paper_row: str | None = None
    paper_f1: float | None = None
    quick: dict[str, Any] = field(default_factory=dict)

    @property
    def audio_only(self) -> bool:
        """True when every input can be computed from audio (so it works for any new song)."""
        return not any(name.startswith("table:") for name in self.inputs)

    def make(self, params: dict[str, Any] | None = None) -> Any:
        """Build the estimator with overrides, turning bad parameter names into a ConfigError."""
        try:
            return self.build(**(params or {}))
        except TypeError as exc:
            raise ConfigError(f"bad settings for method {self.name!r}: {exc}") from None
