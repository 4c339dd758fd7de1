"""Training-set augmentation for any method: copies of a fold's training songs, added at fit time.

An *augmentation* is named in a method's settings (``augment: [tfm, rg]``) or on the command line
(``merkit benchmark --augment tfm,rg``). Two kinds exist:

* **copies** (``tfm``, ``sb``, ``rg``, ``classic`` ...): per-song augmented log-mels, a
  stochastic representation of :mod:`merkit.representations.registry` (computed from audio by
  :mod:`merkit.representations.augmented`, cached per song). The protocol computes them once per
  repeat with that
  repeat's seed, so a song's copy is the same in every fold of a repeat and differs between
  repeats (:func:`merkit.protocol.runner.repeat_seed`).
* **fit-time** (``specaugment``; DeepSMOTE can register the same way): a function that wraps the
  inner estimator, e.g. adding a per-batch callback.

:class:`AugmentedClassifier` is the estimator: ``fit`` receives the fold's training songs only
(the protocol takes rows by song), stacks each song's original with its copies, gives every copy
its source song's group id and fits the inner estimator; ``predict`` uses the originals only.
So no copy of a test song can reach training, by construction.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, MetaEstimatorMixin, clone
from sklearn.utils.validation import check_is_fitted

from merkit.core.errors import ConfigError, DataError
from merkit.core.protocols import AcceptsValidation, ReportsAugmentation, ReportsTraining
from merkit.core.registry import Registry

ORIGINAL = "original"
"""Role of the original input in the dict an :class:`AugmentedClassifier` receives."""

COPY_INPUT = "logmel"
"""The input whose copies the built-in augmentations make (default ``LogMelConfig`` log-mels)."""


@dataclass(frozen=True)
class Augmentation:
    """A named augmentation.

    Attributes
    ----------
    name : str
        Key in settings, e.g. ``"tfm"``.
    description : str
        One line for listings and reports.
    representation : str or None
        Copy kind: the stochastic representation holding each song's copies (shape
        ``(n_frames, n_mels)`` for one copy, ``(k, n_frames, n_mels)`` for ``k``).
    copy_names : tuple of str
        Names of the ``k`` copies in order (one name for a single copy).
    wrap : callable or None
        Fit-time kind: ``wrap(estimator, **options) -> estimator``, applied to a clone of the
        inner estimator before it is fitted.
    options : tuple of str
        Option names the entry accepts (``{name: {option: value}}`` in settings).
    for_input : str
        The input a copy kind's copies match (the method must read exactly this input).
    needs : str or None
        An optional library the copies need (``"audiomentations"``: the research extra); a
        setting naming the augmentation without it fails before any work, in one line.
    """

    name: str
    description: str
    representation: str | None = None
    copy_names: tuple[str, ...] = ()
    wrap: Callable[..., Any] | None = None
    options: tuple[str, ...] = ()
    for_input: str = COPY_INPUT
    needs: str | None = None

    def __post_init__(self) -> None:
        if (self.representation is None) == (self.wrap is None):
            raise ValueError(f"augmentation {self.name!r}: give exactly one of representation/wrap")

    @property
    def makes_copies(self) -> bool:
        return self.representation is not None


AUGMENTATIONS: Registry[Augmentation] = Registry("augmentation")
"""Every registered augmentation by name."""


def register_augmentation(aug: Augmentation) -> Augmentation:
    """Add ``aug`` to :data:`AUGMENTATIONS` (names are unique) and return it."""
    return AUGMENTATIONS.register(aug.name, aug)


def get_augmentation(name: str) -> Augmentation:
    """The augmentation called ``name``; ConfigError listing the known ones."""
    return AUGMENTATIONS.get(name)


AugmentEntry = tuple[str, dict[str, Any]]


def parse_augment(value: Any) -> tuple[AugmentEntry, ...]:
    """Normalise an ``augment`` setting to ``((name, options), ...)``.

    Accepts ``None``, ``"tfm,rg"``, ``["tfm", "rg"]`` or entries with options such as
    ``[{"classic": {"copies": ["pitch_shifted"]}}]``.

    Raises
    ------
    ConfigError
        Unknown names, unknown options, a name given twice, or a malformed value.
    """
    if value is None:
        return ()
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, Mapping):
        value = [{name: options} for name, options in value.items()]
    if not isinstance(value, Sequence):
        raise ConfigError(f"setting 'augment' must be a list of augmentation names, not {value!r}")
    entries: list[AugmentEntry] = []
    for item in value:
        if isinstance(item, str):
            name, options = item, {}
        elif isinstance(item, Mapping) and len(item) == 1:
            name, options = next(iter(item.items()))
            options = dict(options or {})
        else:
            raise ConfigError(
                f"setting 'augment': each entry is a name or {{name: {{option: value}}}}, "
                f"not {item!r}"
            )
        aug = get_augmentation(str(name))
        if aug.needs is not None:
            from merkit.core.versions import require_extra

            require_extra(aug.needs, needed_by=f"the {aug.name} augmentation")
        unknown = sorted(set(options) - set(aug.options))
        if unknown:
            allowed = ", ".join(aug.options) or "none"
            raise ConfigError(
                f"augmentation {name!r}: unknown option(s) {unknown} (options: {allowed})"
            )
        if "copies" in options:
            _copy_indices(aug, options["copies"])  # checks the names
        entries.append((aug.name, options))
    names = [name for name, _ in entries]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ConfigError(f"setting 'augment' names {twice} more than once")
    return tuple(entries)


def augment_setting(entries: Sequence[AugmentEntry]) -> list[Any]:
    """The JSON form of parsed entries (names, or ``{name: options}`` when options are given)."""
    return [{name: dict(options)} if options else name for name, options in entries]


def _copy_indices(aug: Augmentation, copies: Any) -> list[int]:
    """Positions of the chosen copies: all (None), the first ``n`` (int) or by name."""
    total = len(aug.copy_names)
    if copies is None:
        return list(range(total))
    if isinstance(copies, int) and not isinstance(copies, bool):
        if not 1 <= copies <= total:
            raise ConfigError(f"augmentation {aug.name!r}: copies must be 1..{total}, not {copies}")
        return list(range(copies))
    if isinstance(copies, str):
        copies = [copies]
    if not isinstance(copies, Sequence) or not copies:
        raise ConfigError(f"augmentation {aug.name!r}: copies must be a number or a list of names")
    bad = [c for c in copies if c not in aug.copy_names]
    if bad:
        raise ConfigError(
            f"augmentation {aug.name!r}: unknown copies {bad} (choose from {list(aug.copy_names)})"
        )
    return [aug.copy_names.index(c) for c in copies]


def input_roles(entries: Sequence[AugmentEntry]) -> dict[str, str]:
    """Role -> representation of the copy inputs an augmented method reads (role = entry name)."""
    roles: dict[str, str] = {}
    for name, _ in entries:
        aug = get_augmentation(name)
        if aug.representation is not None:
            roles[name] = aug.representation
    return roles


def augment_method(
    method: str,
    estimator: Any,
    inputs: tuple[str, ...],
    roles: tuple[str, ...] | None,
    entries: Sequence[AugmentEntry],
) -> tuple[AugmentedClassifier, tuple[str, ...], tuple[str, ...]]:
    """Wrap a method's estimator in an :class:`AugmentedClassifier` and add the copy inputs.

    Returns
    -------
    estimator, inputs, roles
        The wrapper, and the method's inputs and roles with the copy inputs appended.

    Raises
    ------
    ConfigError
        When the method cannot take the copies (it reads several inputs, or another input than
        the one the copies are made of).
    """
    if roles is not None or len(inputs) != 1:
        raise ConfigError(
            f"it reads several inputs {list(inputs)}; augmentation needs a method with one input"
        )
    for name, _ in entries:
        aug = get_augmentation(name)
        if aug.makes_copies and inputs[0] != aug.for_input:
            raise ConfigError(
                f"it reads {inputs[0]!r}, but augmentation {name!r} makes copies of "
                f"{aug.for_input!r}; it cannot augment this method"
            )
    copies = input_roles(entries)
    wrapper = AugmentedClassifier(estimator, augment=augment_setting(entries))
    return wrapper, (inputs[0], *copies.values()), (ORIGINAL, *copies)


def _accepts(function: Any, keyword: str) -> bool:
    try:
        return keyword in inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False


def library_version(package: str) -> str | None:
    """Installed version of ``package`` (None when it is not installed)."""
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


class AugmentedClassifier(
    MetaEstimatorMixin,
    ClassifierMixin,
    BaseEstimator,
    AcceptsValidation,
    ReportsAugmentation,
    ReportsTraining,
):
    """Fit ``estimator`` on the training songs plus their augmented copies; predict on originals.

    ``X`` is a dict: ``"original"`` holds the songs' own input ``(n, ...)``; each copy-kind
    augmentation's name holds its copies ``(n, ...)`` (one per song) or ``(n, k, ...)``. Row ``i``
    of every array is song ``i``. :meth:`predict_proba` reads only ``"original"`` (or a plain
    array).

    Parameters
    ----------
    estimator : estimator
        The method's own estimator (cloned at fit).
    augment : list
        Augmentation entries (:func:`parse_augment`), e.g. ``["tfm"]`` or
        ``[{"classic": {"copies": ["pitch_shifted"]}}]``.

    Attributes
    ----------
    estimator_ : estimator
        The fitted inner estimator.
    augment_info_ : dict
        What was trained on: the entries, copies per song, training rows, audiomentations version.
    history_ : TrainHistory or None
        The inner estimator's history, when it has one.
    """

    training_only_copies = True
    """Prediction needs only the original input (a saved model records just that one)."""

    def __init__(self, estimator: Any, augment: Any = ("tfm",)) -> None:
        self.estimator = estimator
        self.augment = augment

    def _original(self, X: Any) -> Any:
        if isinstance(X, Mapping):
            if ORIGINAL not in X:
                raise DataError(f"augmented method needs an {ORIGINAL!r} input, got {sorted(X)}")
            return X[ORIGINAL]
        return X

    def training_set(
        self, X: Any, y: Any, groups: Any = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Originals followed by every chosen copy: ``(X_train, y_train, groups)``.

        ``groups`` (default: the row number) is repeated for each copy, so a copy keeps its
        source song's group.
        """
        entries = parse_augment(self.augment)
        original = np.asarray(self._original(X))
        labels = np.asarray(y)
        n = len(original)
        if len(labels) != n:
            raise DataError(f"X has {n} rows but y has {len(labels)} labels")
        song = np.arange(n) if groups is None else np.asarray(groups)
        parts, ys, gs = [original], [labels], [song]
        for name, options in entries:
            aug = get_augmentation(name)
            if not aug.makes_copies:
                continue
            if not isinstance(X, Mapping) or name not in X:
                raise DataError(f"augmentation {name!r}: its copies are missing from the input")
            copies = np.asarray(X[name])
            if copies.ndim == original.ndim:
                copies = copies[:, None]
            if len(copies) != n or copies.shape[2:] != original.shape[1:]:
                raise DataError(
                    f"augmentation {name!r}: copies of shape {copies.shape} do not match the "
                    f"originals' {original.shape}"
                )
            chosen = _copy_indices(aug, options.get("copies"))
            for index in chosen:
                parts.append(copies[:, index])
                ys.append(labels)
                gs.append(song)
        return np.concatenate(parts), np.concatenate(ys), np.concatenate(gs)

    accepts_validation: ClassVar[bool] = True
    """``fit`` takes ``validation=(X, y)`` (:class:`~merkit.core.protocols.AcceptsValidation`)."""

    def training_history(self) -> Any:
        """The fitted training history (:class:`~merkit.core.protocols.ReportsTraining`)."""
        return getattr(self, "history_", None)

    def fit(
        self, X: Any, y: Any, groups: Any = None, validation: tuple[Any, Any] | None = None
    ) -> AugmentedClassifier:
        """Fit on the originals of ``X`` and their copies (see :meth:`training_set`)."""
        entries = parse_augment(self.augment)
        inner = clone(self.estimator)
        fraction = inner.get_params().get("validation_fraction")
        if validation is None and fraction is not None:
            # Hold out whole songs (originals only) here: the trainer's own split of rows would
            # put a song's copy in training and its original in validation.
            X, y, validation = self._song_holdout(X, y, float(fraction), inner)
            inner.set_params(validation_fraction=None)
            groups = None if groups is None else np.asarray(groups)[self.holdout_train_]
        x_train, y_train, g_train = self.training_set(X, y, groups)
        for name, options in entries:
            aug = get_augmentation(name)
            if not aug.makes_copies:
                inner = aug.wrap(inner, **options)  # type: ignore[misc]
        fit_options: dict[str, Any] = {}
        if _accepts(inner.fit, "groups"):
            fit_options["groups"] = g_train
        if validation is not None:
            if not _accepts(inner.fit, "validation"):  # e.g. a fixed split's validation songs
                raise ConfigError("the augmented estimator does not take validation songs")
            fit_options["validation"] = (self._original(validation[0]), validation[1])
        n_songs = len(np.asarray(y))
        inner.fit(x_train, y_train, **fit_options)
        self.estimator_ = inner
        self.classes_ = getattr(inner, "classes_", np.unique(y_train))
        self.history_ = getattr(inner, "history_", None)
        self.augment_info_ = {
            "augment": augment_setting(entries),
            "songs": int(n_songs),
            "training_rows": len(y_train),
            "copies_per_song": (len(y_train) - n_songs) / max(n_songs, 1),
            "audiomentations": library_version("audiomentations"),
        }
        return self

    def _song_holdout(
        self, X: Any, y: Any, fraction: float, inner: Any
    ) -> tuple[Any, np.ndarray, tuple[Any, np.ndarray]]:
        """Split songs into training (with their copies) and validation (originals only)."""
        from merkit.training.data import stratified_holdout

        labels = np.asarray(y)
        seed = inner.get_params().get("random_state")
        rng = np.random.default_rng(seed if isinstance(seed, int | np.integer) else None)
        train, held = stratified_holdout(labels, fraction, rng)
        self.holdout_train_ = train
        if isinstance(X, Mapping):
            kept = {key: np.asarray(value)[train] for key, value in X.items()}
        else:
            kept = np.asarray(X)[train]
        return kept, labels[train], (np.asarray(self._original(X))[held], labels[held])

    def predict_proba(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "estimator_")
        return self.estimator_.predict_proba(self._original(X))

    def predict(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "estimator_")
        return self.estimator_.predict(self._original(X))


# --------------------------------------------------------------------------------------------
# Built-in augmentations

_CLASSIC_NAMES = ("time_shifted", "pitch_shifted", "time_stretched", "db_shifted")

for _aug in (
    Augmentation(
        "tfm",
        "audiomentations TimeMask (0-50 %, hard edges) + BandStopFilter, one copy",
        representation="aug-tfm",
        copy_names=("tfm",),
        needs="audiomentations",
    ),
    Augmentation(
        "sb",
        "audiomentations SevenBandParametricEQ (±12 dB), one copy",
        representation="aug-sb",
        copy_names=("sb",),
        needs="audiomentations",
    ),
    Augmentation(
        "rg",
        "audiomentations Gain (±12 dB), one copy",
        representation="aug-rg",
        copy_names=("rg",),
        needs="audiomentations",
    ),
    Augmentation(
        "tanh",
        "audiomentations TanhDistortion, one copy (not in the paper)",
        representation="aug-tanh",
        copy_names=("tanh",),
        needs="audiomentations",
    ),
    Augmentation(
        "classic",
        "time shift ≤5 s, pitch ±2 st, stretch 0.5/1.5, ±10 dB: four copies",
        representation="classic-aug",
        copy_names=_CLASSIC_NAMES,
        options=("copies",),
    ),
    Augmentation(
        "classic-compat",
        "the classic copies as the authors' code draws them (pitch always +2 st)",
        representation="classic-aug-compat",
        copy_names=_CLASSIC_NAMES,
        options=("copies",),
    ),
    Augmentation(
        "classic-gentle",
        "the classic copies with gentler stretch rates 0.8/1.25",
        representation="classic-aug-gentle",
        copy_names=_CLASSIC_NAMES,
        options=("copies",),
    ),
    Augmentation(
        "codec",
        "the own features after an MP3 (22.05 kHz, ~40 kb/s) and an Opus round trip",
        representation="codec-own-features",
        copy_names=("mp3-22k", "opus-48k"),
        options=("copies",),
        for_input="own-features",
    ),
):
    register_augmentation(_aug)

__all__ = [
    "AUGMENTATIONS",
    "Augmentation",
    "AugmentedClassifier",
    "SpecAugmentMask",
    "add_specaugment",
    "augment_method",
    "augment_setting",
    "get_augmentation",
    "parse_augment",
    "register_augmentation",
]


# ---- SpecAugment-style masking of log-mel batches: a fit-time augmentation (per-batch callback).
# Registered as ``specaugment`` in :mod:`merkit.estimators.augmentation`; it wraps a torch
# estimator by adding
# a :class:`~merkit.training.callbacks.BatchTransform`, so each batch is masked afresh.


@dataclass
class SpecAugmentMask:
    """Mask random time and frequency bands of a ``(B, T, F)`` log-mel batch (SpecAugment).

    Each example gets ``time_masks`` time bands of width uniform in ``[0, max_time]`` frames
    and ``freq_masks`` mel bands of width uniform in ``[0, max_freq]`` bins, set to that
    example's minimum (silence on a dB log-mel, whatever its floor).
    """

    time_masks: int = 2
    max_time: int = 40
    freq_masks: int = 2
    max_freq: int = 16

    def __post_init__(self) -> None:
        for name in ("time_masks", "max_time", "freq_masks", "max_freq"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ConfigError(f"specaugment: {name} must be an integer >= 0, not {value!r}")

    def __call__(self, batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if batch.ndim != 3:
            shape = tuple(batch.shape)
            raise DataError(f"specaugment needs (batch, time, mel) inputs, got {shape}")
        out = batch.clone()
        n, frames, bins = out.shape
        floor = out.amin(dim=(1, 2))
        for axis, count, widest, size in (
            (1, self.time_masks, self.max_time, frames),
            (2, self.freq_masks, self.max_freq, bins),
        ):
            for _ in range(count):
                width = torch.randint(0, min(widest, size) + 1, (n,), generator=generator)
                start = (torch.rand(n, generator=generator) * (size - width + 1)).long()
                index = torch.arange(size)
                mask = (index[None] >= start[:, None]) & (index[None] < (start + width)[:, None])

                mask = mask.to(out.device)
                if axis == 1:
                    out = torch.where(mask[:, :, None], floor[:, None, None], out)
                else:
                    out = torch.where(mask[:, None, :], floor[:, None, None], out)
        return out


def add_specaugment(estimator: Any, **options: Any) -> Any:
    """Add a :class:`SpecAugmentMask` batch callback to a TorchClassifier (fit-time kind)."""
    from merkit.training.callbacks import BatchTransform

    if not hasattr(estimator, "callbacks"):
        raise ConfigError(
            f"specaugment needs a torch estimator with callbacks, not {type(estimator).__name__}"
        )
    mask = SpecAugmentMask(**options)
    estimator.set_params(
        callbacks=[*(estimator.callbacks or []), BatchTransform(mask, seed_offset=7_919)]
    )
    return estimator


register_augmentation(
    Augmentation(
        "specaugment",
        "SpecAugment-style time/frequency masks on each training batch",
        wrap=add_specaugment,
        options=("time_masks", "max_time", "freq_masks", "max_freq"),
    )
)
