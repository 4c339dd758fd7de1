"""Few-shot adaptation of a trained model to a user's own music (``merkit adapt``).

A model trained on 4QAED's pop/rock-heavy clips can be systematically off on other music (e.g. a
classical collection read as too sad). With a handful of labelled songs per quadrant from the
user's domain, the model is *recalibrated*, not retrained: its features and estimator stay as
they are, and a small layer on its log-probabilities is fitted to the examples,

    p'(c | x) = softmax_c( sum_k W[c, k] log p(k | x) + b[c] ),

by penalised maximum likelihood with strong shrinkage toward the identity (``W = I``, ``b = 0``:
the original model), so that eight examples cannot overturn what 900 songs taught:

``bias`` (default)
    ``W = I``; only the per-quadrant offsets ``b`` are fitted (a prior shift, Saerens et al. 2002
    style label-shift correction, learnt from labelled examples), penalty ``strength * |b|^2``.
``affine``
    ``W`` and ``b`` fitted, penalty ``strength * (|W - I|^2 + |b|^2)`` (Platt/vector scaling
    toward the identity).

The penalty is scaled by the number of examples' weight (each song counts once whatever its
windows), so ``strength`` reads as "pseudo-songs" of prior trust in the original model. The layer
runs on each window's probabilities, before windows are averaged; it is fitted on the examples'
window probabilities with each song weighted equally.

Measured on 4QAED (``benchmarks/results/4qaed_leave_one_genre_out.md``): for ``svm-own`` on each
held-out genre, 2 or 5 songs per quadrant of that genre change macro F1 by well under one point
on average (``bias``, strength 4: the default, the most conservative setting that never hurt on
average; ``affine`` and weaker shrinkage hurt with 5 songs per quadrant). What fails on an unseen
genre there is not a shift of the model's scores that such a layer can undo.

``refit`` (models whose classifier is an SVM: ``default``, ``fast``, ``svm``, ``svm-own``)
    does change the estimator: its SVM is refitted on its own support vectors plus the examples'
    windows, each song weighing ``weight`` training songs (:mod:`merkit.estimators.support_refit`);
    the
    feature transforms and the probability calibration stay as they were. The boundary moves
    near the user's songs instead of the scores shifting everywhere
    (``benchmarks/results/4qaed_adapt_refit.md`` measures it on held-out genres).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
from scipy.optimize import minimize
from scipy.special import log_softmax, softmax
from sklearn.base import BaseEstimator, ClassifierMixin

from merkit.core.errors import ConfigError, DataError, MerkitError, ModelError
from merkit.core.labels import QUADRANTS
from merkit.datasets.base import Dataset, FileSource

Kind = Literal["bias", "affine"]
KINDS: tuple[str, ...] = ("bias", "affine")
"""Kinds of :class:`Recalibration` layer."""
ADAPT_KINDS: tuple[str, ...] = (*KINDS, "refit")
"""What :func:`adapt_model` (``merkit adapt --kind``) can do: a recalibration layer, or an SVM
refit (:mod:`merkit.estimators.support_refit`)."""
MIN_PER_QUADRANT = 2
"""Fewest example songs per quadrant ``merkit adapt`` accepts."""
DEFAULT_STRENGTH = 4.0
DEFAULT_REFIT_WEIGHT = 3.0
"""How many training songs each example song weighs in an SVM refit."""
EPS = 1e-6


def _log_proba(proba: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(proba, dtype=np.float64), EPS, 1.0)
    return np.log(p / p.sum(axis=1, keepdims=True))


class Recalibration(BaseEstimator):
    """A penalised multinomial layer on a model's log-probabilities (see the module docstring).

    Parameters
    ----------
    kind : {"bias", "affine"}
        Offsets only, or offsets and a mixing matrix.
    strength : float
        Weight of the penalty toward the identity, in units of example songs.

    Attributes
    ----------
    coef_ : np.ndarray
        ``(n_classes, n_classes)`` mixing matrix ``W`` (the identity for ``bias``).
    intercept_ : np.ndarray
        ``(n_classes,)`` offsets ``b``.
    """

    def __init__(self, kind: Kind = "bias", strength: float = DEFAULT_STRENGTH) -> None:
        self.kind = kind
        self.strength = strength

    def fit(
        self,
        proba: np.ndarray,
        y: np.ndarray,
        sample_weight: np.ndarray | None = None,
    ) -> Recalibration:
        """Fit on a model's probabilities ``proba`` (n, k) of examples with labels ``y`` (0..k-1).

        ``sample_weight`` (e.g. ``1 / n_windows`` per window) defaults to 1 per row; the penalty
        is multiplied by ``strength`` whatever the total weight. A class without examples keeps
        the original model's logit (its offset and row of ``W`` stay at the identity): no
        examples is no evidence about it, not evidence against it.
        """
        if self.kind not in KINDS:
            raise ConfigError(f"recalibration kind must be one of {', '.join(KINDS)}")
        if not self.strength > 0:
            raise ConfigError(f"recalibration strength must be > 0, got {self.strength}")
        logp = _log_proba(proba)
        n, k = logp.shape
        y = np.asarray(y, dtype=np.int64)
        weight = np.ones(n) if sample_weight is None else np.asarray(sample_weight, float)
        onehot = np.eye(k)[y]
        eye = np.eye(k)
        affine = self.kind == "affine"
        seen = np.isin(np.arange(k), y).astype(np.float64)
        mask = np.concatenate([np.repeat(seen, k), seen]) if affine else seen

        def unpack(theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            if affine:
                return theta[: k * k].reshape(k, k) + eye, theta[k * k :]
            return eye, theta

        def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
            w, b = unpack(theta)
            logits = logp @ w.T + b
            log_q = log_softmax(logits, axis=1)
            nll = -float(np.sum(weight * np.sum(onehot * log_q, axis=1)))
            residual = weight[:, None] * (np.exp(log_q) - onehot)  # d nll / d logits
            grad_b = residual.sum(axis=0)
            value = nll + self.strength * float(theta @ theta)
            grad = np.concatenate([(residual.T @ logp).ravel(), grad_b]) if affine else grad_b
            return value, mask * (grad + 2 * self.strength * theta)

        size = k * k + k if affine else k
        result = minimize(loss, np.zeros(size), jac=True, method="L-BFGS-B")
        self.coef_, self.intercept_ = unpack(result.x)
        self.n_classes_ = k
        return self

    def transform(self, proba: np.ndarray) -> np.ndarray:
        """Recalibrated probabilities (rows sum to 1)."""
        return softmax(_log_proba(proba) @ self.coef_.T + self.intercept_, axis=1)


class RecalibratedClassifier(ClassifierMixin, BaseEstimator):
    """A fitted classifier whose probabilities pass through a fitted :class:`Recalibration`.

    The base estimator is used as it is (never refitted); ``predict_proba`` columns follow its
    ``classes_``.
    """

    def __init__(self, base: Any = None, recalibration: Recalibration | None = None) -> None:
        self.base = base
        self.recalibration = recalibration

    @property
    def classes_(self) -> np.ndarray:
        return np.asarray(getattr(self.base, "classes_", np.arange(len(QUADRANTS))))

    def fit(self, X: Any, y: Any) -> RecalibratedClassifier:
        """Not supported: recalibration is fitted on a trained model's outputs (:func:`adapt`)."""
        raise ConfigError("RecalibratedClassifier wraps a fitted model; use merkit.product.adapt")

    def predict_proba(self, X: Any) -> np.ndarray:
        assert self.recalibration is not None
        return self.recalibration.transform(self.base.predict_proba(X))

    def predict(self, X: Any) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


def check_examples(labels: Sequence[int], minimum: int = MIN_PER_QUADRANT) -> dict[str, int]:
    """Songs per quadrant of the examples; refuse too few in any quadrant.

    Raises
    ------
    DataError
        Naming each quadrant with fewer than ``minimum`` example songs.
    """
    values = np.asarray(labels, dtype=np.int64)
    counts = {q: int((values == i).sum()) for i, q in enumerate(QUADRANTS)}
    short = [f"{q} has {n}" for q, n in counts.items() if n < minimum]
    if short:
        raise DataError(
            f"adaptation needs at least {minimum} example songs in every quadrant; "
            + ", ".join(short)
        )
    return counts


def fit_on_windows(
    window_proba: Sequence[np.ndarray],
    labels: Sequence[int],
    *,
    kind: Kind = "bias",
    strength: float = DEFAULT_STRENGTH,
) -> Recalibration:
    """Fit a :class:`Recalibration` on each example song's window probabilities.

    Parameters
    ----------
    window_proba : sequence of np.ndarray
        One ``(n_windows, k)`` array per song, in label-column order.
    labels : sequence of int
        Each song's quadrant (0..k-1).

    Each song weighs 1 in total (``1 / n_windows`` per window).
    """
    rows = [np.atleast_2d(np.asarray(p, dtype=np.float64)) for p in window_proba]
    weight = np.concatenate([np.full(len(r), 1.0 / len(r)) for r in rows])
    y = np.concatenate([np.full(len(r), int(c)) for r, c in zip(rows, labels, strict=True)])
    return Recalibration(kind, strength).fit(np.concatenate(rows), y, sample_weight=weight)


@dataclass(frozen=True)
class Adaptation:
    """What :func:`adapt_model` did: the examples used and what was fitted to them."""

    out_dir: Path
    song_ids: list[str]
    counts: dict[str, int]
    recalibration: Recalibration | None
    """The fitted layer (``None`` for an SVM refit)."""
    example_accuracy: tuple[float, float]
    """Accuracy on the examples themselves before and after (in-sample: a sanity check only)."""
    kind: str = "bias"
    weight: float | None = None
    """Each example song's weight in an SVM refit (``None`` for a recalibration)."""


@dataclass(frozen=True)
class _Examples:
    """The examples' non-silent windows: model inputs, probabilities, song of each window."""

    inputs: dict[str, Any]
    proba: np.ndarray
    song: np.ndarray


def _example_windows(predictor: Any, examples: Dataset, progress: Any) -> _Examples:
    """Each example's windows through ``predictor`` exactly as ``merkit predict`` computes them
    (silent windows left out unless every window of the song is silent)."""
    inputs: list[dict[str, Any]] = []
    proba: list[np.ndarray] = []
    song: list[np.ndarray] = []
    for i, example in enumerate(examples.songs):
        try:
            if isinstance(example.source, FileSource):
                features, silent = predictor.window_inputs(example.source.path)
            else:  # e.g. synthetic songs: their waveform at the model's first sample rate
                sr = min(spec.sr or 22050 for spec in predictor.manifest.inputs)
                features, silent = predictor.window_inputs(example.source.load(sr), sr)
            keep = np.flatnonzero(~silent) if (~silent).any() else np.arange(len(silent))
            kept = {name: _rows(value, keep) for name, value in features.items()}
            proba.append(predictor.predict_inputs(kept))
        except MerkitError as exc:
            raise DataError(f"example {example.song_id} cannot be predicted: {exc}") from None
        inputs.append(kept)
        song.append(np.full(len(keep), i))
        if progress is not None:
            progress(example.song_id)
    stacked = {name: _concat([x[name] for x in inputs]) for name in inputs[0]}
    return _Examples(stacked, np.concatenate(proba), np.concatenate(song))


def _rows(value: Any, rows: np.ndarray) -> Any:
    return value[rows] if isinstance(value, np.ndarray) else [value[i] for i in rows]


def _concat(values: list[Any]) -> Any:
    if all(isinstance(v, np.ndarray) for v in values) and len({v.shape[1:] for v in values}) == 1:
        return np.concatenate(values)
    return [row for v in values for row in v]


def _song_accuracy(window_proba: np.ndarray, song: np.ndarray, labels: np.ndarray) -> float:
    per_song = np.array([window_proba[song == i].mean(axis=0) for i in range(len(labels))])
    return float(np.mean(per_song.argmax(axis=1) == labels))


def adapt_model(
    model: Path | str | None,
    examples: Dataset,
    out_dir: Path | str,
    *,
    kind: str = "bias",
    strength: float = DEFAULT_STRENGTH,
    weight: float = DEFAULT_REFIT_WEIGHT,
    progress: Any = None,
) -> Adaptation:
    """Adapt the model directory ``model`` to labelled ``examples``; save it to ``out_dir``.

    The examples' audio goes through the model window by window exactly as ``merkit predict``
    computes it. ``bias``/``affine`` fit a :class:`Recalibration` on those windows'
    probabilities and wrap the original estimator in a :class:`RecalibratedClassifier`;
    ``refit`` refits the estimator's SVM on its support vectors plus the windows' inputs (each
    song weighing ``weight``; :mod:`merkit.estimators.support_refit`). ``model`` is only read, never
    modified.

    Parameters
    ----------
    model : path, optional
        A model directory (``None``: the shipped default).
    examples : Dataset
        Labelled songs from the user's domain (e.g. :func:`merkit.datasets.load_dataset`
        ``("folder", DIR)``), at least :data:`MIN_PER_QUADRANT` per quadrant.
    out_dir : path
        Where the adapted model goes; must not be ``model`` itself.
    kind : {"bias", "affine", "refit"}
        What is fitted to the examples (module docstring).
    strength : float
        Recalibration: shrinkage toward the original model, in example songs.
    weight : float
        Refit: how many training songs each example song weighs.
    progress : callable, optional
        Called with each example's song id after it is predicted.

    Raises
    ------
    ConfigError
        An unknown ``kind`` or a non-positive ``strength``/``weight``.
    DataError
        Too few examples in a quadrant, or an example that cannot be predicted.
    ModelError
        ``out_dir`` is the input model, ``refit`` on a model without an SVM, or the model
        cannot be loaded or saved.
    """
    from merkit.estimators.support_refit import refit_with_examples, supports_refit
    from merkit.product.model_dir import MODEL_CARD, save_model_dir
    from merkit.product.predict import load_model
    from merkit.product.shipped import resolve_model_dir

    if kind not in ADAPT_KINDS:
        raise ConfigError(f"adaptation kind must be one of {', '.join(ADAPT_KINDS)}, not {kind!r}")
    if not (strength > 0 and weight > 0):
        raise ConfigError(f"strength and weight must be > 0, got {strength} and {weight}")
    counts = check_examples(examples.labels)
    source = resolve_model_dir(model)  # a folder, a shipped model's name, or None: the default
    out = Path(out_dir)
    if out.resolve() == source.resolve():
        raise ModelError(
            f"--out {out} is the model being adapted; write the adapted model elsewhere "
            "(the original is never modified)"
        )
    predictor = load_model(source)
    classes = [int(c) for c in np.asarray(getattr(predictor.estimator, "classes_", range(4)))]
    if classes != list(range(len(predictor.labels))):
        raise ModelError(f"model {source} has classes {classes}; adapt needs 0..3 in order")
    if kind == "refit" and not supports_refit(predictor.estimator):
        raise ModelError(
            f"--kind refit needs a model whose classifier is an SVM (default, fast, svm, "
            f"svm-own); {source} is {predictor.manifest.method!r}: use --kind bias"
        )
    windows = _example_windows(predictor, examples, progress)
    labels = np.asarray(examples.labels)
    before = _song_accuracy(windows.proba, windows.song, labels)
    layer: Recalibration | None = None
    if kind == "refit":
        per_window = 1.0 / np.bincount(windows.song)[windows.song]  # each song weighs `weight`
        estimator = refit_with_examples(
            predictor.estimator,
            predictor.estimator_input(windows.inputs),
            labels[windows.song],
            weight * per_window,
        )
        after_proba = estimator.predict_proba(predictor.estimator_input(windows.inputs))
        note = f"then an SVM refit (each example weighing {weight:g} training songs)"
    else:
        per_song = [windows.proba[windows.song == i] for i in range(len(labels))]
        layer = fit_on_windows(per_song, labels, kind=cast(Kind, kind), strength=strength)
        estimator = RecalibratedClassifier(predictor.estimator, layer)
        after_proba = layer.transform(windows.proba)
        note = f"then few-shot recalibration ({kind}, strength {strength:g})"
    after = _song_accuracy(np.asarray(after_proba), windows.song, labels)
    note += (
        f" on {len(examples)} labelled songs of {examples.name!r} "
        f"({', '.join(f'{q} {n}' for q, n in counts.items())})"
    )
    previous = predictor.manifest.calibration
    manifest = predictor.manifest.model_copy(
        update={"calibration": f"{previous}; {note}" if previous else note, "estimator": None}
    )
    done = Adaptation(
        out,
        examples.song_ids,
        counts,
        layer,
        (before, after),
        kind,
        weight if kind == "refit" else None,
    )
    card = (source / MODEL_CARD).read_text() + _card_section(source, examples, done)
    save_model_dir(estimator, manifest, card, out)
    return done


def _card_section(source: Path, examples: Dataset, done: Adaptation) -> str:
    ids = ", ".join(examples.song_ids[:40]) + (" ..." if len(examples) > 40 else "")
    layer = done.recalibration
    if layer is None:
        what = (
            "Its SVM was refitted on its own support vectors plus the examples (each song "
            f"weighing {done.weight:g} training songs); the feature transforms and the "
            "probability calibration are the original model's."
        )
        detail = "- kind `refit`"
    else:
        what = (
            "Its features and estimator are unchanged; a layer on its log-probabilities (kind "
            f"`{layer.kind}`, shrinkage strength {layer.strength:g} toward the original model) "
            "was fitted to the examples."
        )
        offsets = ", ".join(
            f"{q} {b:+.3f}" for q, b in zip(QUADRANTS, layer.intercept_, strict=True)
        )
        detail = f"- per-quadrant log-offsets: {offsets}"
    before, after = done.example_accuracy
    lines = [
        "",
        "## Adapted with `merkit adapt`",
        "",
        f"This model is `{source}` adapted with {len(examples)} labelled example songs "
        f"from `{examples.root or examples.name}` "
        f"({', '.join(f'{q}: {n}' for q, n in done.counts.items())}). {what} The "
        "cross-validated scores above are those of the original model on its training data, "
        "not of this adaptation.",
        "",
        detail,
        f"- accuracy on the examples themselves (in-sample, a sanity check only): "
        f"{100 * before:.1f} % before, {100 * after:.1f} % after",
        f"- examples: {ids}",
        "",
    ]
    return "\n".join(lines)


__all__ = [
    "ADAPT_KINDS",
    "DEFAULT_REFIT_WEIGHT",
    "DEFAULT_STRENGTH",
    "KINDS",
    "MIN_PER_QUADRANT",
    "Adaptation",
    "RecalibratedClassifier",
    "Recalibration",
    "adapt_model",
    "check_examples",
    "fit_on_windows",
]
