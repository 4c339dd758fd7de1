"""Search spaces: which settings of a method a search varies, read from a small YAML schema.

A space file::

    method: svm-own          # optional; must match --method when given
    sampler: grid            # grid | tpe | random (default: grid when every setting is finite)
    trials: 40               # default number of trials (grid: every point by default)
    inner_folds: 5           # inner stratified K-fold on the training songs
    inner_repeats: 1
    settings: {}             # fixed settings of the method, under the searched ones
    params:
      C: {log: [2^-5, 2^15], step: 4}   # log scale; ``step`` is the factor between grid points
      gamma: {log: [2^-15, 2^3]}        # without ``step``: continuous (samplers only)
      n_features: [25, 50, 100, all]    # a list: categorical choices
      lr: {float: [0.001, 0.1]}         # linear scale (``step`` optional)
      batch_size: {int: [16, 256], step: 16}
      cnn.lr: [0.001, 0.01]             # a dotted name sets a key of a nested setting

Numbers may be written ``2^-5`` (or ``2**-5``). Every error names the file and the bad key.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from merkit.core.errors import ConfigError

SAMPLERS = ("grid", "tpe", "random")
TOP_KEYS = ("method", "sampler", "trials", "inner_folds", "inner_repeats", "settings", "params")
KINDS = ("log", "float", "int")
_POWER = re.compile(r"^\s*([-+]?\d+(?:\.\d+)?)\s*(?:\^|\*\*)\s*([-+]?\d+(?:\.\d+)?)\s*$")
MAX_GRID = 100_000


@dataclass(frozen=True)
class Param:
    """One searched setting: categorical ``choices``, or a ``kind`` range ``low``..``high``."""

    name: str
    choices: tuple[Any, ...] | None = None
    kind: str | None = None
    low: float = 0.0
    high: float = 0.0
    step: float | None = None

    @property
    def finite(self) -> bool:
        """Whether the setting has a finite list of values (a grid can enumerate it)."""
        return self.choices is not None or self.step is not None or self.kind == "int"

    def values(self) -> list[Any]:
        """Every value of a finite setting, in order (ranges include both ends when on-step)."""
        if self.choices is not None:
            return list(self.choices)
        if self.kind == "log":
            assert self.step is not None
            count = math.floor(math.log(self.high / self.low) / math.log(self.step) + 1e-9)
            return [self.low * self.step**i for i in range(count + 1)]
        step = self.step if self.step is not None else 1
        count = math.floor((self.high - self.low) / step + 1e-9)
        values = [self.low + step * i for i in range(count + 1)]
        return [round(v) for v in values] if self.kind == "int" else values

    def suggest(self, trial: Any) -> Any:
        """Draw this setting's value for an Optuna trial."""
        if self.choices is not None:
            # Optuna stores categorical choices by index; values must be plain scalars.
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.kind == "int":
            step = int(self.step) if self.step is not None else 1
            return trial.suggest_int(self.name, int(self.low), int(self.high), step=step)
        if self.kind == "log" and self.step is not None:
            # a log grid as the exponent of the step factor, so samplers stay on the grid
            return trial.suggest_categorical(self.name, self.values())
        if self.kind == "log":
            return trial.suggest_float(self.name, self.low, self.high, log=True)
        return trial.suggest_float(self.name, self.low, self.high, step=self.step)


@dataclass(frozen=True)
class SearchSpace:
    """A parsed space file (see the module docstring)."""

    params: tuple[Param, ...]
    method: str | None = None
    sampler: str = "grid"
    trials: int | None = None
    inner_folds: int = 5
    inner_repeats: int = 1
    settings: dict[str, Any] = field(default_factory=dict)
    source: str = "<space>"

    @property
    def finite(self) -> bool:
        return all(p.finite for p in self.params)

    def grid(self) -> dict[str, list[Any]]:
        """Optuna's ``GridSampler`` search space: every value of every setting."""
        return {p.name: p.values() for p in self.params}

    def grid_size(self) -> int:
        return math.prod(len(v) for v in self.grid().values())

    def n_trials(self, requested: int | None) -> int:
        """Trials to run: ``requested``, else the file's ``trials``, else the grid's size."""
        if requested is not None:
            return requested
        if self.trials is not None:
            return self.trials
        if self.sampler == "grid":
            return self.grid_size()
        raise ConfigError(f"{self.source}: give 'trials' (or --trials) for sampler {self.sampler}")

    def first_point(self) -> dict[str, Any]:
        """One point of the space (each setting's first or lowest value), for validation."""
        return {p.name: p.values()[0] if p.finite else p.low for p in self.params}

    def settings_for(self, point: Mapping[str, Any]) -> dict[str, Any]:
        """The method's settings at ``point``: the fixed ``settings`` with the point's values set
        (dotted names into nested mappings)."""
        merged = copy.deepcopy(self.settings)
        for name, value in point.items():
            apply_setting(merged, name, value)
        return merged

    def describe(self) -> dict[str, Any]:
        """A JSON-able summary (written beside the best settings)."""
        return {
            "sampler": self.sampler,
            "inner_folds": self.inner_folds,
            "inner_repeats": self.inner_repeats,
            "params": {p.name: p.values() if p.finite else [p.low, p.high] for p in self.params},
            "source": self.source,
        }


def apply_setting(settings: dict[str, Any], name: str, value: Any) -> None:
    """Set ``name`` (``a.b`` for key ``b`` of the nested mapping ``a``) in ``settings``."""
    *parents, leaf = name.split(".")
    target = settings
    for part in parents:
        child = target.get(part)
        if child is None:
            child = target[part] = {}
        elif not isinstance(child, dict):
            raise ConfigError(f"setting {name!r}: {part!r} is not a mapping of settings")
        target = child
    target[leaf] = value


def power_of_two(value: Any) -> int | None:
    """``k`` when ``value`` is exactly ``2**k`` (a float or int, not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        return None
    mantissa, exponent = math.frexp(float(value))
    return exponent - 1 if mantissa == 0.5 else None


def format_value(param: Param | None, value: Any) -> str:
    """A searched value as people read it: ``2^-15`` on a base-2 log range, else ``repr``-ish.

    A ``log`` range whose bounds are powers of two (``C: {log: [2^-5, 2^15]}``) is a search over
    exponents, so its values are shown as exponents; everything else as written (``0.01``).
    """
    if (
        param is not None
        and param.kind == "log"
        and power_of_two(param.low) is not None
        and power_of_two(param.high) is not None
    ):
        exponent = power_of_two(value)
        if exponent is not None:
            return f"2^{exponent}"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def format_params(space: SearchSpace, params: dict[str, Any]) -> str:
    """``{C: 2^3, gamma: 2^-15, lr: 0.01}``: a point of ``space`` as :func:`format_value` shows."""
    by_name = {p.name: p for p in space.params}
    shown = ", ".join(f"{k}: {format_value(by_name.get(k), v)}" for k, v in params.items())
    return "{" + shown + "}"


def parse_number(value: Any, where: str) -> float:
    """A number from YAML: int, float, or a power written ``2^-5`` / ``2**-5``."""
    if isinstance(value, bool):
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        match = _POWER.match(value)
        if match:
            return float(match.group(1)) ** float(match.group(2))
        try:
            return float(value)
        except ValueError:
            pass
    raise ConfigError(f"{where}: expected a number (e.g. 0.01, 1e-3 or 2^-5), got {value!r}")


def _choice(value: Any, where: str) -> Any:
    if isinstance(value, str):
        match = _POWER.match(value)
        if match:
            return parse_number(value, where)
        return value
    if value is None or isinstance(value, bool | int | float):
        return value
    raise ConfigError(f"{where}: choices must be numbers, strings, booleans or null, got {value!r}")


def parse_param(name: str, spec: Any, source: str) -> Param:
    """One entry of ``params`` (see the module docstring)."""
    where = f"{source}: params.{name}"
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{source}: params keys must be setting names, got {name!r}")
    if isinstance(spec, list | tuple):
        if not spec:
            raise ConfigError(f"{where}: the list of choices is empty")
        choices = tuple(_choice(v, where) for v in spec)
        if len(set(map(repr, choices))) != len(choices):
            raise ConfigError(f"{where}: the choices repeat a value: {list(choices)}")
        return Param(name, choices=choices)
    if not isinstance(spec, Mapping):
        raise ConfigError(
            f"{where}: expected a list of choices or a range such as {{log: [2^-5, 2^15]}}, "
            f"got {spec!r}"
        )
    kinds = [k for k in spec if k in KINDS]
    unknown = [k for k in spec if k not in (*KINDS, "step")]
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r} (use one of {KINDS} and 'step')")
    if len(kinds) != 1:
        raise ConfigError(f"{where}: give exactly one range kind of {KINDS}, got {kinds}")
    kind = kinds[0]
    bounds = spec[kind]
    if not isinstance(bounds, list | tuple) or len(bounds) != 2:
        raise ConfigError(f"{where}.{kind}: expected [low, high], got {bounds!r}")
    low, high = (parse_number(b, f"{where}.{kind}") for b in bounds)
    if not low < high:
        raise ConfigError(f"{where}.{kind}: low must be below high, got [{low}, {high}]")
    if kind == "log" and low <= 0:
        raise ConfigError(f"{where}.log: the range must be positive, got [{low}, {high}]")
    if kind == "int" and (low != int(low) or high != int(high)):
        raise ConfigError(f"{where}.int: bounds must be integers, got [{low}, {high}]")
    step = None
    if "step" in spec:
        step = parse_number(spec["step"], f"{where}.step")
        if kind == "log" and step <= 1:
            raise ConfigError(f"{where}.step: a log step is a factor above 1, got {step}")
        if kind != "log" and step <= 0:
            raise ConfigError(f"{where}.step: must be positive, got {step}")
        if kind == "int" and step != int(step):
            raise ConfigError(f"{where}.step: must be an integer, got {step}")
    return Param(name, kind=kind, low=low, high=high, step=step)


def _positive_int(value: Any, key: str, source: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{source}: {key!r} must be an integer >= {minimum}, got {value!r}")
    return value


def parse_space(data: Any, source: str = "<space>") -> SearchSpace:
    """A :class:`SearchSpace` from the loaded YAML mapping.

    Raises
    ------
    ConfigError
        Naming ``source`` and the bad key: unknown top-level keys, a bad range or choice list,
        an unknown sampler, or a grid over a continuous range.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: a search space must be a mapping with 'params'")
    unknown = [k for k in data if k not in TOP_KEYS]
    if unknown:
        raise ConfigError(f"{source}: unknown key {unknown[0]!r} (allowed: {', '.join(TOP_KEYS)})")
    raw = data.get("params")
    if not isinstance(raw, Mapping) or not raw:
        raise ConfigError(f"{source}: 'params' must map setting names to values or ranges")
    params = tuple(parse_param(str(name), spec, source) for name, spec in raw.items())
    finite = all(p.finite for p in params)
    sampler = data.get("sampler", "grid" if finite else "tpe")
    if sampler not in SAMPLERS:
        raise ConfigError(f"{source}: 'sampler' must be one of {SAMPLERS}, got {sampler!r}")
    if sampler == "grid" and not finite:
        bad = next(p.name for p in params if not p.finite)
        raise ConfigError(
            f"{source}: params.{bad} is a continuous range; a grid needs a list or a 'step' "
            "(or use sampler: tpe)"
        )
    settings = data.get("settings") or {}
    if not isinstance(settings, Mapping):
        raise ConfigError(f"{source}: 'settings' must be a mapping of the method's settings")
    method = data.get("method")
    if method is not None and not isinstance(method, str):
        raise ConfigError(f"{source}: 'method' must be a method name, got {method!r}")
    trials = data.get("trials")
    space = SearchSpace(
        params=params,
        method=method,
        sampler=sampler,
        trials=None if trials is None else _positive_int(trials, "trials", source),
        inner_folds=_positive_int(data.get("inner_folds", 5), "inner_folds", source, 2),
        inner_repeats=_positive_int(data.get("inner_repeats", 1), "inner_repeats", source),
        settings=copy.deepcopy(dict(settings)),
        source=source,
    )
    if sampler == "grid" and space.grid_size() > MAX_GRID:
        raise ConfigError(
            f"{source}: the grid has {space.grid_size()} points (more than {MAX_GRID}); "
            "coarsen a 'step' or use sampler: tpe"
        )
    return space


def with_sampler(space: SearchSpace, sampler: str | None) -> SearchSpace:
    """``space`` searched by another sampler (``None``: unchanged).

    Raises
    ------
    ConfigError
        An unknown sampler, or a grid over a continuous range (naming the setting).
    """
    if sampler is None or sampler == space.sampler:
        return space
    if sampler not in SAMPLERS:
        raise ConfigError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
    if sampler == "grid" and not space.finite:
        bad = next(p.name for p in space.params if not p.finite)
        raise ConfigError(
            f"{space.source}: params.{bad} is a continuous range; a grid needs a step"
        )
    from dataclasses import replace

    return replace(space, sampler=sampler)


def shipped_spaces() -> dict[str, str]:
    """Method name -> file name of the spaces shipped in ``merkit/spaces``."""
    folder = resources.files("merkit") / "spaces"
    return {
        Path(entry.name).stem: entry.name
        for entry in folder.iterdir()
        if entry.name.endswith(".yaml")
    }


def load_space(spec: str | Path | Mapping[str, Any], method: str | None = None) -> SearchSpace:
    """A search space from a YAML path, an inline mapping, or ``"paper"`` (the space shipped
    for ``method``: the values the paper's authors tried).

    Raises
    ------
    ConfigError
        Missing or invalid file, no shipped space for ``method``, a ``method:`` in the file that
        differs from ``method``, or any schema error (naming the key).
    """
    import yaml

    if isinstance(spec, Mapping):
        space = parse_space(spec, "tune.space")
    elif str(spec) == "paper":
        if method is None:
            raise ConfigError("space 'paper' needs the method's name")
        files = shipped_spaces()
        if method not in files:
            raise ConfigError(
                f"no shipped search space for method {method!r} "
                f"(shipped: {', '.join(sorted(files))}); pass a space YAML"
            )
        text = (resources.files("merkit") / "spaces" / files[method]).read_text()
        space = parse_space(yaml.safe_load(text), f"merkit/spaces/{files[method]}")
    else:
        path = Path(spec)
        if not path.is_file():
            raise ConfigError(f"search space file does not exist: {path}")
        try:
            loaded = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise ConfigError(f"search space {path} is not valid YAML: {exc}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"search space {path} cannot be read: {exc}") from None
        space = parse_space(loaded, str(path))
    if method is not None and space.method is not None and space.method != method:
        raise ConfigError(
            f"{space.source}: the space is for method {space.method!r}, not {method!r}"
        )
    return space


__all__ = [
    "Param",
    "SearchSpace",
    "apply_setting",
    "load_space",
    "parse_number",
    "parse_space",
    "shipped_spaces",
    "with_sampler",
]
