"""What a method is: a short recipe naming its inputs and building an unfitted estimator."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sklearn.impute import SimpleImputer
from sklearn.preprocessing import StandardScaler

from merkit.core.errors import ConfigError
from merkit.core.inputs import parse_input


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
    inputs : tuple of str, or mapping of str to str
        Input names (:mod:`merkit.core.inputs`: representations computed from audio, or
        ``table:NAME`` feature tables). A method with several inputs maps each of its estimator's
        argument names (roles, e.g. ``features``, ``logmel``) to an input name; the protocol then
        hands the estimator a dict keyed by role (several inputs given as a sequence are keyed by
        input name). A single-input method names just its input and gets a plain array.
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
    provenance : callable, optional
        ``provenance(settings) -> dict``: details every fold record of this method carries in
        its ``extras`` (e.g. an embedding library's version and front end), so that a results
        row says what produced it.
    augment : tuple
        Default training-set augmentations (:mod:`merkit.estimators.augmentation`), e.g.
        ``("tfm",)``;
        the ``augment`` setting replaces them.
    inputs_of : callable, optional
        For a method whose inputs depend on its settings (``fusion``): ``inputs_of(estimator)``
        gives the input names of the built estimator, which then gets a dict keyed by input
        name; ``inputs`` is empty.
    weights : str, optional
        The pre-trained checkpoint the method needs, in words (``merkit methods`` shows it).
    extras : tuple of str
        The pip extras the method needs beyond the core install (``research``, ``openl3``).
    roles : tuple of str or None
        Set from a mapping ``inputs``: the estimator's argument name of each input, in order.
    """

    name: str
    summary: str
    inputs: tuple[str, ...] | Mapping[str, str]
    build: Callable[..., Any]
    paper_row: str | None = None
    paper_f1: float | None = None
    quick: dict[str, Any] = field(default_factory=dict)
    provenance: Callable[[Mapping[str, Any]], dict[str, Any]] | None = None
    augment: tuple[Any, ...] = ()
    inputs_of: Callable[[Any], tuple[str, ...]] | None = None
    weights: str | None = None
    extras: tuple[str, ...] = ()

    roles: tuple[str, ...] | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        # A mapping declaration is stored as ``inputs`` (names, in order) plus ``roles``.
        if isinstance(self.inputs, Mapping):
            object.__setattr__(self, "roles", tuple(self.inputs))
            object.__setattr__(self, "inputs", tuple(self.inputs.values()))
        else:
            object.__setattr__(self, "inputs", tuple(self.inputs))
        for name in self.inputs:
            parse_input(name)
        if self.roles is None and len(self.inputs) > 1:
            # Several inputs given as a sequence: the estimator's dict is keyed by input name.
            object.__setattr__(self, "roles", tuple(self.inputs))

    @property
    def input_names(self) -> tuple[str, ...]:
        """The input names, in order."""
        return tuple(self.inputs)

    @property
    def audio_only(self) -> bool:
        """True when every input can be computed from audio (so it works for any new song)."""
        return all(parse_input(name).from_audio for name in self.inputs)

    def make(self, params: dict[str, Any] | None = None) -> Any:
        """Build the estimator with overrides, turning bad parameter names into a ConfigError."""
        try:
            return self.build(**(params or {}))
        except TypeError as exc:
            raise ConfigError(f"bad settings for method {self.name!r}: {exc}") from None
