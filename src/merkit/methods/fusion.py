"""``fusion``: registered methods as members, combined by
:class:`~merkit.estimators.fusion.FusionClassifier`.

Without settings it is the recipe of merkit's default model (measured on 4QAED, issue 16)::

    fusion:
      members:
        - {method: svm-own, name: own, inputs: [own-features-canon], n_features: null,
           exclude_features: codec-unstable}
        - {method: svm, name: tags, inputs: [crnn-tags3-canon]}   # 150 CRNN tag log-odds
      combine: early       # late | stacking | early
      early: {grid: true, grid_step: 1, c_exponents: [-1, 3], gamma_exponents: [-11, -8],
              inner_folds: 3}

Each member is resolved exactly as the method on its own would be (its settings validated, its
inputs overridable), fitted on the training fold, and tuned inside it where its settings say so:
``grid: true`` runs the RBF SVM's own grid search of C and γ; ``tune: {svm__C: [2, 8, 32]}``
lets the fusion choose among candidates on the inner folds it uses for the weights anyway.
The fusion's inputs are the union of its members' inputs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from merkit.core.errors import ConfigError
from merkit.estimators.fusion import FusionClassifier
from merkit.methods.base import MethodSpec, feature_preprocessing
from merkit.methods.registry import register_method

DEFAULT_MEMBERS: tuple[dict[str, Any], ...] = (
    {
        "method": "svm-own",
        "name": "own",
        "inputs": ["own-features-canon"],
        "n_features": None,
        "exclude_features": "codec-unstable",
    },
    {"method": "svm", "name": "tags", "inputs": ["crnn-tags3-canon"]},
)
"""Own features (the 290 that encodings move least: all but
:data:`merkit.features.robust.CODEC_UNSTABLE`) and the three CRNN taggers' tag log-odds, both of
the canonical front end (:mod:`merkit.audio.frontend`: every encoding of a song band-limited and
trimmed
alike); the default model's inputs."""

DEFAULT_EARLY: dict[str, Any] = {
    "grid": True,
    "grid_step": 1,
    "c_exponents": (-1, 3),
    "gamma_exponents": (-11, -8),
    "inner_folds": 3,
}
"""The early-fusion SVM of the default model: C in 2^-1..2^3 and γ in 2^-11..2^-8 chosen by macro
F1 on 3 inner folds of the training data (450 standardised inputs: γ = 1/450 ≈ 2^-8.8)."""


def _member(entry: Any, index: int) -> tuple[str, str, dict[str, Any], dict[str, Any] | None]:
    """(member name, method name, settings, candidate grid) of one ``members`` entry."""
    if isinstance(entry, str):
        return entry, entry, {}, None
    if not isinstance(entry, Mapping) or not isinstance(entry.get("method"), str):
        raise ConfigError(
            f"setting 'members' entry {index + 1} must be a method name or a mapping with "
            f"'method' (and optional 'name' and the method's settings), not {entry!r}"
        )
    settings = dict(entry)
    method = settings.pop("method")
    name = settings.pop("name", method)
    tune = settings.pop("tune", None)
    if tune is not None and not (
        isinstance(tune, Mapping) and all(isinstance(v, list) and v for v in tune.values())
    ):
        raise ConfigError(
            f"member {name!r}: 'tune' must map parameters to lists of candidates, "
            f"e.g. {{svm__C: [2, 8, 32]}}, not {tune!r}"
        )
    return str(name), method, settings, tune


def build_fusion(
    members: Sequence[Any] = DEFAULT_MEMBERS,
    combine: str = "early",
    weights: Sequence[float] | None = None,
    weight_step: float = 0.1,
    scoring: str = "log_loss",
    calibration: bool = True,
    inner_cv: int = 5,
    tuning: str = "frozen",
    early: Mapping[str, Any] | None = None,
    random_state: int | None = 1,
) -> FusionClassifier:
    """Resolve each member method and combine them (settings as in :class:`FusionClassifier`).

    ``early`` sets the RBF SVM that early fusion trains on the members' concatenated inputs
    (settings of :func:`merkit.methods.svm.svm_classifier`; default :data:`DEFAULT_EARLY`).
    """
    from sklearn.pipeline import Pipeline

    from merkit.methods.resolve import resolve_method
    from merkit.methods.svm import svm_classifier

    if isinstance(members, str | Mapping) or not isinstance(members, Sequence) or not members:
        raise ConfigError("setting 'members' must be a non-empty list of member methods")
    estimators, inputs, grids = [], {}, {}
    for index, entry in enumerate(members):
        name, method, settings, tune = _member(entry, index)
        if tune:
            grids[name] = tune
        if method == "fusion":
            raise ConfigError(f"member {name!r}: a fusion cannot be a member of a fusion")
        try:
            resolved = resolve_method(method, settings)
        except ConfigError as exc:
            raise ConfigError(f"member {index + 1} ({name!r}): {exc}") from None
        if name in inputs:
            raise ConfigError(
                f"two members are named {name!r}: give each a distinct 'name' in 'members'"
            )
        estimators.append((name, resolved.estimator))
        inputs[name] = (
            dict(zip(resolved.roles, resolved.inputs, strict=True))
            if resolved.roles
            else list(resolved.inputs)
        )
    final = None
    if combine == "early":
        settings = DEFAULT_EARLY if early is None else early
        final = Pipeline([*feature_preprocessing(), ("svm", svm_classifier(**settings))])
    return FusionClassifier(
        estimators,
        inputs,
        combine=combine,  # type: ignore[arg-type]
        weights=weights,
        weight_step=weight_step,
        scoring=scoring,  # type: ignore[arg-type]
        calibration=calibration,
        inner_cv=inner_cv,
        tuning=tuning,  # type: ignore[arg-type]
        final_estimator=final,
        param_grids=grids or None,
        random_state=random_state,
    )


def fusion_inputs(estimator: FusionClassifier) -> tuple[str, ...]:
    """The union of the members' input names, in order of first use."""
    names: dict[str, None] = {}
    for spec in estimator.inputs.values():
        for name in spec.values() if isinstance(spec, Mapping) else spec:
            names[name] = None
    return tuple(names)


FUSION = register_method(
    MethodSpec(
        name="fusion",
        summary="Member methods fitted in-fold and combined (early fusion, late fusion of "
        "calibrated probabilities, or stacking); default: own features + CRNN tag log-odds",
        inputs=(),
        build=build_fusion,
        inputs_of=fusion_inputs,
        weights="the default recipe's tags: Won's MTAT, MSD and Jamendo CRNNs "
        "(merkit models download)",
    )
)
