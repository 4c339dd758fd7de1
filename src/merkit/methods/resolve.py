"""One way from a method name and settings to an unfitted estimator, validated before any work.

``benchmark``, ``train`` and any worker call :func:`resolve_method`; it merges the smoke-run
settings, applies an ``inputs:`` override, builds the estimator and checks every setting (names,
types, values) so that a bad one fails at once, naming the method and the setting, instead of
after minutes of feature extraction or deep inside scikit-learn.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.pipeline import Pipeline

from merkit.core.errors import ConfigError
from merkit.core.inputs import parse_input, take
from merkit.core.protocols import ValidatesSettings
from merkit.methods.base import MethodSpec
from merkit.methods.registry import METHODS, get_method, suggest


@dataclass(frozen=True)
class ResolvedMethod:
    """A method ready to run: what it reads and the unfitted estimator.

    Attributes
    ----------
    spec : MethodSpec
        The registered method.
    inputs : tuple of str
        Input names (after an ``inputs:`` override), in order.
    roles : tuple of str or None
        The estimator's argument name of each input (None: one input, passed as an array).
    estimator : estimator
        Unfitted; clone it before fitting.
    settings : dict
        The effective settings the estimator was built with (quick settings merged, ``inputs``
        removed).
    """

    spec: MethodSpec
    inputs: tuple[str, ...]
    roles: tuple[str, ...] | None
    estimator: Any
    settings: dict[str, Any]
    regime: str = "full"
    """How it trains against its recipe (:mod:`merkit.methods.regime`): ``full``,
    ``reduced`` (an epoch cap or the accuracy stop lowered) or ``quick`` (smoke run)."""

    @classmethod
    def of(
        cls,
        name: str,
        estimator: Any,
        inputs: tuple[str, ...] | list[str] | Mapping[str, str],
        *,
        settings: Mapping[str, Any] | None = None,
    ) -> ResolvedMethod:
        """An unregistered method: any estimator under a name (for tests and experiments).

        ``inputs`` as in :class:`MethodSpec`; several inputs given as a sequence reach the
        estimator as a dict keyed by input name.
        """
        if isinstance(inputs, Mapping):
            names, roles = tuple(inputs.values()), tuple(inputs)
        else:
            names = tuple(inputs)
            roles = names if len(names) > 1 else None
        spec = MethodSpec(
            name,
            "",
            dict(zip(roles, names, strict=True)) if roles else names,
            build=lambda: estimator,
        )
        return cls(spec, names, roles, estimator, dict(settings or {}))

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def audio_only(self) -> bool:
        """True when every input can be computed from audio."""
        return all(parse_input(name).from_audio for name in self.inputs)

    def provenance(self) -> dict[str, Any]:
        """Details every fold record of this method carries (see :class:`MethodSpec`)."""
        return {} if self.spec.provenance is None else dict(self.spec.provenance(self.settings))

    def config(self) -> dict[str, Any]:
        """What identifies this configuration in a results folder (``<method>/config.json``)."""
        return {"inputs": list(self.inputs), "params": copy.deepcopy(self.settings)}

    def estimator_input(self, arrays: Mapping[str, Any], rows: np.ndarray) -> Any:
        """What ``fit``/``predict`` receives for ``rows``: one array, or a dict keyed by role.

        ``arrays`` maps input names (as in :attr:`inputs`) to arrays aligned with the songs.
        """
        if self.roles is None:
            return take(arrays[self.inputs[0]], rows)
        return {
            role: take(arrays[name], rows)
            for role, name in zip(self.roles, self.inputs, strict=True)
        }


def merge_settings(
    spec: MethodSpec, settings: Mapping[str, Any] | None, *, quick: bool = False
) -> dict[str, Any]:
    """The method's smoke-run settings (when ``quick``) under the explicit ``settings``.

    Nested dicts merge one level deep, so ``hybrid: {cnn: {lr: 0.1}}`` with ``--quick`` keeps the
    quick epoch cap of the CNN stage.
    """
    merged: dict[str, Any] = copy.deepcopy(dict(spec.quick)) if quick else {}
    for key, value in (settings or {}).items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def resolve_method(
    name: str, settings: Mapping[str, Any] | None = None, *, quick: bool = False
) -> ResolvedMethod:
    """Resolve a method name and its settings to inputs and a validated, unfitted estimator.

    Parameters
    ----------
    name : str
        A registered method (``merkit methods``).
    settings : mapping, optional
        The method's settings as in a ``--config`` YAML; ``inputs`` (a list of input names, or a
        mapping role -> input name for a method with several inputs) swaps its inputs;
        ``augment`` (a list of :mod:`merkit.estimators.augmentation` names) trains on augmented
        copies of
        the training songs too (``[]`` turns a method's default augmentation off).
    quick : bool
        Apply the method's smoke-run settings (e.g. a 2-epoch cap) under ``settings``.

    Returns
    -------
    ResolvedMethod

    Raises
    ------
    ConfigError
        Unknown method; unknown setting; a setting of the wrong type or with a bad value; bad
        ``inputs``. The message names the method and the setting.
    """
    spec = get_method(name)
    if settings is not None and not isinstance(settings, Mapping):
        raise ConfigError(f"settings of method {name!r} must be a mapping, not {settings!r}")
    params = merge_settings(spec, settings, quick=quick)
    if spec.inputs_of is not None:
        if "inputs" in params:
            raise ConfigError(
                f"method {name!r} takes no 'inputs' setting: its inputs are its members' inputs"
            )
        estimator = _build(spec, params)
        inputs = tuple(spec.inputs_of(estimator))
        validate_estimator(spec.name, estimator, params)
        # A dict keyed by input name, however many inputs.
        regime = _regime(spec, estimator, quick)
        return ResolvedMethod(spec, inputs, inputs, estimator, params, regime)
    inputs, roles = _inputs(spec, params.pop("inputs", None))
    augment = params.pop("augment", spec.augment)
    estimator = _build(spec, params)
    validate_estimator(spec.name, estimator, params)
    regime = _regime(spec, estimator, quick)
    if augment:
        from merkit.estimators.augmentation import augment_method, augment_setting, parse_augment

        try:
            entries = parse_augment(augment)
            if entries:
                estimator, inputs, roles = augment_method(
                    spec.name, estimator, inputs, roles, entries
                )
        except ConfigError as exc:
            raise ConfigError(f"method {spec.name!r}: {exc}") from None
        if entries:
            params = {**params, "augment": augment_setting(entries)}
    return ResolvedMethod(spec, inputs, roles, estimator, params, regime)


def _regime(spec: MethodSpec, estimator: Any, quick: bool) -> str:
    """The run's training regime against the method's recipe (its estimator with no settings)."""
    from merkit.methods.regime import training_regime

    if quick:
        return "quick"
    try:
        recipe = spec.build()
    except Exception:  # a recipe that needs settings to build has no caps to compare with
        return "full"
    return training_regime(estimator, recipe, quick=False)


def _inputs(spec: MethodSpec, override: Any) -> tuple[tuple[str, ...], tuple[str, ...] | None]:
    if override is None:
        return tuple(spec.inputs), spec.roles
    where = f"method {spec.name!r}: setting 'inputs'"
    if isinstance(override, str):
        override = [override]
    if isinstance(override, Mapping):
        if spec.roles is None or set(override) != set(spec.roles):
            expected = list(spec.roles) if spec.roles else "a list of one input name"
            raise ConfigError(f"{where} must name the roles {expected}, got {list(override)}")
        names = tuple(override[role] for role in spec.roles)
    elif isinstance(override, list | tuple):
        names = tuple(override)
        if len(names) != len(spec.inputs):
            raise ConfigError(
                f"{where} needs {len(spec.inputs)} input name(s) "
                f"({', '.join(spec.roles or spec.inputs)}), got {len(names)}: {list(names)}"
            )
    else:
        raise ConfigError(f"{where} must be a list of input names, not {override!r}")
    for value in names:
        try:
            if parse_input(value).kind == "representation":
                from merkit.representations.registry import get_representation

                get_representation(value)  # an unknown name fails now, not mid-run
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
    return names, spec.roles


def _build(spec: MethodSpec, params: dict[str, Any]) -> Any:
    """The method's estimator from its settings; ``step__param`` settings through ``set_params``.

    A setting the recipe does not take is named from the recipe's known settings (its build
    function's keywords and its estimator's parameters), never parsed out of an exception.
    """
    plain = {key: value for key, value in params.items() if "__" not in key}
    nested = {key: value for key, value in params.items() if "__" in key}
    try:
        estimator = spec.build(**plain)
    except TypeError as exc:
        known = _known(spec)
        unknown = [key for key in plain if key not in known]
        if unknown and known:
            bad = unknown[0]
            raise ConfigError(
                f"method {spec.name!r}: unknown setting {bad!r}{suggest(bad, known)}"
            ) from None
        raise ConfigError(f"method {spec.name!r}: bad settings: {exc}") from None
    except ConfigError as exc:
        raise ConfigError(f"method {spec.name!r}: {exc}") from None
    except ValueError as exc:
        raise ConfigError(f"method {spec.name!r}: bad settings: {exc}") from None
    for key, value in nested.items():
        # scikit-learn's public route to a nested parameter; one key at a time, so a refusal
        # names its setting.
        try:
            estimator.set_params(**{key: value})
        except ValueError:
            deep = sorted(estimator.get_params(deep=True))
            raise ConfigError(
                f"method {spec.name!r}: unknown setting {key!r}{suggest(key, deep)}"
            ) from None
    return estimator


def _known(spec: MethodSpec) -> list[str]:
    """Setting names of a method: its build function's keywords and its default estimator's
    (top-level and last step's) parameters."""
    names = {
        name
        for name, param in inspect.signature(spec.build).parameters.items()
        if param.kind in (param.KEYWORD_ONLY, param.POSITIONAL_OR_KEYWORD)
    }
    try:
        estimator = spec.build()
    except Exception:
        return sorted(names)
    names |= set(estimator.get_params(deep=False))
    if isinstance(estimator, Pipeline):
        names |= set(estimator[-1].get_params(deep=False))
    return sorted(names)


def validate_estimator(method: str, estimator: Any, settings: Mapping[str, Any]) -> None:
    """Check every parameter of ``estimator`` and its sub-estimators without fitting.

    An estimator that checks itself (:class:`~merkit.core.protocols.ValidatesSettings`: the
    torch classifier, the Hybrid) does so; scikit-learn estimators are checked one parameter at a
    time against their declared constraints (scikit-learn has no public call for this), so the
    bad parameter is known without reading it out of the error's text.

    Raises
    ------
    ConfigError
        Naming ``method`` and the setting (the one in ``settings`` that sets the bad parameter,
        or the parameter's path inside the estimator).
    """
    from sklearn.utils._param_validation import (
        InvalidParameterError,
        validate_parameter_constraints,
    )

    for path, sub in _estimators(estimator):
        if isinstance(sub, ValidatesSettings):  # merkit's own: TorchClassifier, the Hybrid
            try:
                sub.validate_settings()
            except ConfigError as exc:
                where = f" ({path})" if path else ""
                raise ConfigError(f"method {method!r}{where}: {exc}") from None
            continue
        # scikit-learn's own estimators declare their constraints; custom ones may not.
        constraints = getattr(type(sub), "_parameter_constraints", None)
        if not isinstance(sub, BaseEstimator) or not isinstance(constraints, dict):
            continue
        for param, value in sub.get_params(deep=False).items():
            if param not in constraints:
                continue
            try:
                validate_parameter_constraints(
                    {param: constraints[param]}, {param: value}, caller_name=type(sub).__name__
                )
            except InvalidParameterError as exc:
                setting = _setting_name(param, path, settings)
                raise ConfigError(f"method {method!r}: bad setting {setting!r}: {exc}") from None


def _estimators(estimator: Any) -> list[tuple[str, Any]]:
    """``estimator`` and every estimator among its deep parameters, with their paths."""
    found = [("", estimator)]
    get_params = getattr(estimator, "get_params", None)
    if get_params is None:
        return found
    for key, value in get_params(deep=True).items():
        if hasattr(value, "get_params") and hasattr(value, "fit"):
            found.append((key, value))
    return found


def _setting_name(param: str, path: str, settings: Mapping[str, Any]) -> str:
    """The user's setting that sets ``param`` of the sub-estimator at ``path``."""
    if param in settings:
        return param
    return f"{path}__{param}" if path else param


SELECTION_PARAMS = ("n_features_to_select", "k")
"""Parameters of feature-selection steps that count features (ReliefF's top-k, SelectKBest)."""


def check_feature_counts(method: ResolvedMethod, widths: Mapping[str, int | None]) -> None:
    """Refuse a selection step asking for more features than its input has, before any work.

    ``widths`` maps input names to their number of features (None: not known before computing,
    e.g. a variable-length representation). A method with one input is checked: every step with
    a :data:`SELECTION_PARAMS` count must ask for at most the input's width, less the columns a
    ``DropFeatures`` step removes.

    Raises
    ------
    ConfigError
        Naming the method, the setting, its value and the number of features there are.
    """
    if len(method.inputs) != 1 or widths.get(method.inputs[0]) is None:
        return
    name = method.inputs[0]
    width = int(widths[name])  # type: ignore[arg-type]
    dropped = 0
    found = _estimators(method.estimator)
    for _, sub in found:
        if type(sub).__name__ == "DropFeatures" and len(sub._names()) == width:
            from merkit.features.robust import excluded_columns, resolve_patterns

            dropped = len(excluded_columns(sub._names(), resolve_patterns(sub.exclude)))
    available = width - dropped
    for path, sub in found:
        params = sub.get_params(deep=False)
        for param in SELECTION_PARAMS:
            value = params.get(param)
            if isinstance(value, int) and not isinstance(value, bool) and value > available:
                setting = next(
                    (
                        k
                        for k, v in method.settings.items()
                        if v == value and not isinstance(v, bool)
                    ),
                    f"{path}__{param}" if path else param,
                )
                after = f" ({dropped} excluded by 'exclude_features')" if dropped else ""
                raise ConfigError(
                    f"method {method.name!r}: setting {setting!r} is {value}, but its input "
                    f"{name!r} has {available} features{after}; use at most {available} "
                    "(or 'all')"
                )


def input_widths(dataset: Any, names: Iterable[str]) -> dict[str, int | None]:
    """Features per song of each input, known before any computing (None where it is not).

    A feature table's width is its column count; a representation's comes from its declared
    shape when that is one fixed axis (e.g. ``own-features``: 317). ``dataset`` is a
    :class:`merkit.datasets.Dataset` (its ``tables``).
    """
    from merkit.representations.registry import REPRESENTATIONS

    widths: dict[str, int | None] = {}
    for name in names:
        parsed = parse_input(name)
        width = None
        if parsed.kind == "table":
            frame = dataset.tables.get(parsed.name)
            width = None if frame is None else int(frame.shape[1])
        else:
            rep = REPRESENTATIONS.get(parsed.name, None)
            shape = rep.shape(rep.sr, rep.params) if rep is not None and rep.shape else None
            if shape is not None and len(shape) == 1 and shape[0] is not None:
                width = int(shape[0])
        widths[name] = width
    return widths


def read_settings(
    path: Path | None, known: Mapping[str, Any] | None = None
) -> dict[str, dict[str, Any]]:
    """Per-method settings from a YAML file: ``{method: {setting: value}}`` (``{}`` for None).

    Parameters
    ----------
    path : Path, optional
        The YAML file.
    known : mapping, optional
        The method names allowed as keys (default: every registered method).

    Raises
    ------
    ConfigError
        Missing or invalid file, or a key that is not a method (naming the closest one).
    """
    if path is None:
        return {}
    import yaml

    if not path.is_file():
        raise ConfigError(f"config file does not exist: {path}")
    try:
        loaded = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc}") from None
    if not isinstance(loaded, dict) or not all(
        isinstance(v, dict) or v is None for v in loaded.values()
    ):
        raise ConfigError(
            f"config file {path} must map method names to settings, e.g. 'svm: {{C: 4}}'"
        )
    names = tuple(METHODS if known is None else known)
    for key in loaded:
        if key not in names:
            raise ConfigError(
                f"config file {path}: {key!r} is not a method{suggest(str(key), names)} "
                f"(methods: {', '.join(names)})"
            )
    return {str(k): dict(v or {}) for k, v in loaded.items()}


__all__ = [
    "SELECTION_PARAMS",
    "ResolvedMethod",
    "check_feature_counts",
    "input_widths",
    "merge_settings",
    "read_settings",
    "resolve_method",
    "validate_estimator",
]
