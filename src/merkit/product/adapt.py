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

``shift`` (SVM models with a familiarity measure)
    moves every song by a feature offset before the SVM
    (:class:`merkit.estimators.align.ClassShift`:
    the mean over quadrants of the examples' mean minus the training songs' mean of that quadrant,
    in the SVM's input space, shrunk with ``prior`` pseudo-songs), then refits the SVM on the moved
    examples as ``refit`` does: for music the model answers mostly one quadrant.
``align`` (SVM models with a familiarity measure; needs the user's *unlabelled* songs,
``merkit adapt --unlabelled DIR``)
    moves and scales every column of the SVM's input space so that the unlabelled songs' mean
    and spread match the training songs' (:class:`merkit.estimators.align.FeatureAlignment`,
    shrunk with ``prior`` pseudo-rows), applied to every song the adapted model sees, then
    refits the SVM on the aligned examples: for a collection pushed off as a whole (the piano
    cue probe) whose songs are spread over the quadrants. It removes real signal from a
    collection that is mostly one quadrant (4QAED's genres), so it is chosen per collection.
``auto``
    ``refit`` or ``shift`` (with unlabelled songs: or ``align``), whichever gives the examples'
    quadrants the smaller log loss by leave-one-song-out on them (:func:`choose_kind`; ties go
    to ``refit``, then ``shift``). Measured on held-out genres and on a feature-space proxy of a
    harsher shift in ``benchmarks/results/4qaed_adapt_fewshot.md``, on the cue probe in
    ``benchmarks/results/cue_probe_adapt.md``, on MUSIFEAST-17 in
    ``benchmarks/results/musifeast17_adapt.md``.

The adapted model directory keeps the original's companions (:func:`_carry_companions`).
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
ADAPT_KINDS: tuple[str, ...] = (*KINDS, "refit", "shift", "align", "auto")
"""What :func:`adapt_model` (``merkit adapt --kind``) can do: a recalibration layer, an SVM
refit (:mod:`merkit.estimators.support_refit`), a per-quadrant feature shift then the refit
(:class:`merkit.estimators.align.ClassShift`), an alignment on unlabelled songs then the refit
(:class:`merkit.estimators.align.FeatureAlignment`), or ``auto``: one of those, chosen by
leave-one-out on the examples (:func:`choose_kind`)."""
SVM_KINDS: tuple[str, ...] = ("refit", "shift", "align", "auto")
"""The kinds that refit the model's SVM."""
MIN_UNLABELLED = 10
"""Fewest unlabelled songs ``merkit adapt --unlabelled`` accepts (their mean and spread are
estimated column by column)."""
UNLABELLED_DEFAULT: str | None = None
"""The kind ``merkit adapt --unlabelled`` fits without ``--kind`` (``None``: it asks for one).
None, because measured (``benchmarks/results/4qaed_adapt_fewshot.md``) the three-way ``auto``
loses 1.3 / 2.4 points of pooled macro F1 on held-out 4QAED genres (2 / 5 songs per quadrant)
and about 2 on the feature-space proxy against the two-way one, while gaining 5 / 7 on the
synthetic piano cue probe: not a default."""
DEFAULT_SHIFT_PRIOR = 10.0
"""Pseudo-songs of trust in "no shift" when estimating the shift from the examples."""
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
    """What was fitted (for ``auto``: the kind it chose)."""
    weight: float | None = None
    """Each example song's weight in an SVM refit (``None`` for a recalibration)."""
    requested: str | None = None
    """The kind asked for (``auto``, or the same as :attr:`kind`)."""
    shift: np.ndarray | None = None
    """The feature offset subtracted from every song (``shift``), in the model's input space."""
    leave_one_out: dict[str, int] | None = None
    """``auto``: the example songs each kind answered right when left out."""
    leave_one_out_loss: dict[str, float] | None = None
    """``auto``: each kind's summed log loss on the left-out example songs (the smallest wins)."""
    alignment: Any = None
    """The fitted :class:`merkit.estimators.align.FeatureAlignment` (``align``), else ``None``."""
    n_unlabelled: int | None = None
    """How many unlabelled songs were read (``None`` without ``unlabelled``)."""


@dataclass(frozen=True)
class _Examples:
    """The examples' non-silent windows: model inputs, probabilities, song of each window."""

    inputs: dict[str, Any]
    proba: np.ndarray
    song: np.ndarray


def _example_windows(
    predictor: Any, examples: Dataset, progress: Any, what: str = "example"
) -> _Examples:
    """Each example's windows through ``predictor`` exactly as ``merkit predict`` computes them
    (silent windows left out unless every window of the song is silent); ``what`` names the
    songs in errors."""
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
            raise DataError(f"{what} {example.song_id} cannot be predicted: {exc}") from None
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


def unlabelled_songs(unlabelled: Dataset | Sequence[Path | str] | Path | str) -> Dataset:
    """The user's unlabelled songs as a :class:`Dataset` (a dataset is kept as it is; folders
    are searched recursively for audio files, :func:`merkit.product.search.find_audio_files`).

    Raises
    ------
    DataError
        Fewer than :data:`MIN_UNLABELLED` songs, or a folder that cannot be read.
    """
    if isinstance(unlabelled, Dataset):
        dataset = unlabelled
    else:
        from merkit.datasets.base import Song
        from merkit.product.search import find_audio_files

        named = [unlabelled] if isinstance(unlabelled, str | Path) else list(unlabelled)
        files, problems = find_audio_files(named)
        if problems:
            raise DataError(problems[0][1])
        # the quadrant is a placeholder: these songs' labels are never read
        songs = [Song(str(p), FileSource(p), QUADRANTS[0]) for p in files]
        dataset = Dataset("unlabelled", songs)
    if len(dataset) < MIN_UNLABELLED:
        raise DataError(
            f"--unlabelled needs at least {MIN_UNLABELLED} songs (their features' mean and "
            f"spread are estimated from them); found {len(dataset)}"
        )
    return dataset


def _song_accuracy(window_proba: np.ndarray, song: np.ndarray, labels: np.ndarray) -> float:
    per_song = np.array([window_proba[song == i].mean(axis=0) for i in range(len(labels))])
    return float(np.mean(per_song.argmax(axis=1) == labels))


def _take(X: Any, rows: np.ndarray) -> Any:
    """Rows of an estimator input (one array or ``{role: array}``)."""
    if isinstance(X, dict):
        return {name: _rows(value, rows) for name, value in X.items()}
    return _rows(X, rows)


def _song_rows(Z: np.ndarray, song: np.ndarray, songs: np.ndarray) -> np.ndarray:
    """The mean model-space row of each song of ``songs`` (window rows ``Z``, window songs
    ``song``)."""
    return np.stack([Z[song == i].mean(axis=0) for i in songs])


@dataclass(frozen=True)
class ExampleFitter:
    """What the SVM kinds need: the model, the examples' windows in its input format and in
    its model space, and the training songs' per-quadrant means in that space."""

    estimator: Any
    X: Any
    Z: np.ndarray
    song: np.ndarray
    labels: np.ndarray
    means: np.ndarray | None
    weight: float
    prior: float
    alignment: Any = None
    """A :class:`merkit.estimators.align.FeatureAlignment` fitted on unlabelled songs (no
    labels: it stays fixed whichever examples are left out), for ``align``."""

    def fit(self, kind: str, songs: np.ndarray) -> tuple[Any, Any]:
        """``refit``, ``shift`` or ``align`` fitted on the example songs ``songs`` only: the
        adapted estimator and the transform put before its SVM (the fitted
        :class:`ClassShift` or the alignment; ``None`` for ``refit``)."""
        from merkit.estimators.align import ClassShift, aligned_copy
        from merkit.estimators.support_refit import refit_with_examples

        keep = np.flatnonzero(np.isin(self.song, songs))
        base, shift = self.estimator, None
        if kind == "shift":
            if self.means is None:  # adapt_model refuses this first; never a bare assert
                raise ModelError("--kind shift needs the model's familiarity companion")
            rows = _song_rows(self.Z, self.song, songs)
            shift = ClassShift(prior=self.prior).fit(rows, self.labels[songs], self.means)
            base = aligned_copy(self.estimator, shift)
        elif kind == "align":
            if self.alignment is None:
                raise ModelError("--kind align needs --unlabelled songs")
            shift = self.alignment
            base = aligned_copy(self.estimator, shift)
        per_window = 1.0 / np.bincount(self.song[keep])[self.song[keep]]
        estimator = refit_with_examples(
            base, _take(self.X, keep), self.labels[self.song[keep]], self.weight * per_window
        )
        return estimator, shift

    def song_proba(self, estimator: Any, songs: np.ndarray) -> np.ndarray:
        """``estimator``'s probabilities for each of ``songs`` (its windows averaged)."""
        keep = np.flatnonzero(np.isin(self.song, songs))
        proba = np.asarray(estimator.predict_proba(_take(self.X, keep)))
        song = self.song[keep]
        return np.stack([proba[song == i].mean(axis=0) for i in songs])

    def song_answers(self, estimator: Any, songs: np.ndarray) -> np.ndarray:
        """The quadrant code ``estimator`` answers for each of ``songs`` (windows averaged)."""
        return self.song_proba(estimator, songs).argmax(axis=1)


def choose_kind(fitter: ExampleFitter) -> tuple[str, dict[str, int], dict[str, float]]:
    """``refit``, ``shift`` or (with ``fitter.alignment``) ``align`` for the examples of
    ``fitter``, by leave-one-song-out on them.

    Each example song is answered by each kind fitted on the other examples (the shift
    re-estimated without it; the alignment, fitted without labels, kept); the kind whose
    probabilities for the left-out songs' quadrants have the smallest summed log loss wins,
    ties go to ``refit``, then ``shift``. The log loss, not the count of right answers: on 20
    examples the counts tie or differ by one song, and the count kept ``refit`` where ``shift``
    was better (pooled macro F1 %, 2 / 5 songs per quadrant, by count → by log loss:
    MUSIFEAST-17 46.6 / 49.5 → 49.4 / 51.6, ``benchmarks/results/musifeast17_adapt.md``;
    harsher feature-space shift 64.1 / 66.3 → 65.2 / 67.4; held-out 4QAED genres 71.4 / 72.1 →
    71.1 / 71.3, ``4qaed_adapt_fewshot.md``; piano cue probe 52.5 / 59.7 → 52.6 / 59.7,
    ``cue_probe_adapt.md``). Returns the kind, each kind's count of songs answered right and
    its summed log loss.
    """
    n = len(fitter.labels)
    order = ["refit", "shift"] + (["align"] if fitter.alignment is not None else [])
    right = dict.fromkeys(order, 0)
    loss = dict.fromkeys(order, 0.0)
    for i in range(n):
        others = np.delete(np.arange(n), i)
        for kind in order:
            estimator, _ = fitter.fit(kind, others)
            proba = fitter.song_proba(estimator, np.array([i]))[0]
            right[kind] += int(proba.argmax() == fitter.labels[i])
            loss[kind] -= float(np.log(max(float(proba[fitter.labels[i]]), LOSS_FLOOR)))
    chosen = min(order, key=lambda k: (round(loss[k], 9), order.index(k)))
    return chosen, right, loss


LOSS_FLOOR = 1e-12
"""Smallest probability :func:`choose_kind`'s log loss counts (a sure wrong answer costs ~27.6)."""


def default_kind(predictor: Any) -> str:
    """What ``merkit adapt`` fits when no ``--kind`` is given: the best kind the model supports.

    ``auto`` for an SVM model with a familiarity measure (the shipped ``default``, every
    ``merkit train`` SVM model), ``refit`` for another SVM model (the shipped ``fast``),
    ``bias`` for the rest. Measured
    in ``benchmarks/results/4qaed_adapt_fewshot.md`` (pooled macro F1 %, 5 songs per quadrant):
    on held-out 4QAED genres ``auto`` 72.1 and ``refit`` 72.9 against ``bias`` 71.5; on the
    harsher (feature-space) shift where the model answers nearly one quadrant, ``auto`` 66.3 and
    ``refit`` 62.6 against ``bias`` 16.7.
    """
    from merkit.estimators.support_refit import supports_refit

    if not supports_refit(predictor.estimator):
        return "bias"
    return "auto" if predictor.familiarity is not None else "refit"


def adapt_model(
    model: Path | str | None,
    examples: Dataset,
    out_dir: Path | str,
    *,
    kind: str | None = None,
    strength: float = DEFAULT_STRENGTH,
    weight: float = DEFAULT_REFIT_WEIGHT,
    prior: float = DEFAULT_SHIFT_PRIOR,
    progress: Any = None,
    unlabelled: Dataset | Sequence[Path | str] | Path | str | None = None,
) -> Adaptation:
    """Adapt the model directory ``model`` to labelled ``examples``; save it to ``out_dir``.

    The examples' audio goes through the model window by window exactly as ``merkit predict``
    computes it. ``bias``/``affine`` fit a :class:`Recalibration` on those windows'
    probabilities and wrap the original estimator in a :class:`RecalibratedClassifier`;
    ``refit`` refits the estimator's SVM on its support vectors plus the windows' inputs (each
    song weighing ``weight``; :mod:`merkit.estimators.support_refit`); ``shift`` first moves the
    examples by the offset between their per-quadrant means and the training songs' in the
    model's input space (:class:`merkit.estimators.align.ClassShift`, shrunk with ``prior``
    pseudo-songs, applied to every song the adapted model sees), then refits the SVM on the
    moved examples; ``align`` moves and scales every song's model-space columns so that the
    ``unlabelled`` songs' mean and spread match the training songs'
    (:class:`merkit.estimators.align.FeatureAlignment`, prior ``prior``), then refits the SVM on
    the aligned examples; ``auto`` chooses among ``refit``, ``shift`` and, given
    ``unlabelled``, ``align`` (:func:`choose_kind`).
    ``model`` is only read, never modified.

    The model's companions are carried over (:func:`_carry_companions`): the familiarity
    measure keeps its training songs and threshold and adds the examples' windows (in the
    adapted model's input space) to its reference songs, so the user's own music is not
    flagged as unlike the training music; the axis models are kept, moved by the same shift
    for ``shift``. The folder is recorded in the trust list (:mod:`merkit.product.trust`):
    merkit wrote it here, so ``merkit predict`` loads it without ``--trust``.

    Parameters
    ----------
    model : path, optional
        A model directory (``None``: the shipped default).
    examples : Dataset
        Labelled songs from the user's domain (e.g. :func:`merkit.datasets.load_dataset`
        ``("folder", DIR)``), at least :data:`MIN_PER_QUADRANT` per quadrant.
    out_dir : path
        Where the adapted model goes; must not be ``model`` itself.
    kind : {"bias", "affine", "refit", "shift", "align", "auto"}, optional
        What is fitted to the examples (module docstring); default: the best the model
        supports (:func:`default_kind`).
    strength : float
        Recalibration: shrinkage toward the original model, in example songs.
    weight : float
        Refit (and shift, auto): how many training songs each example song weighs.
    prior : float
        Shift: shrinkage of the offset toward 0, in pseudo-songs; align: shrinkage of the
        unlabelled songs' mean and spread toward the training songs', in pseudo-rows (windows).
    progress : callable, optional
        Called with each example's song id after it is predicted (then each unlabelled one's).
    unlabelled : Dataset or paths, optional
        The user's unlabelled songs (files or folders, searched recursively; may include the
        examples), at least :data:`MIN_UNLABELLED`, for ``align`` and ``auto``. Their windows go
        through exactly the examples' path; their labels, if any, are never read.

    Raises
    ------
    ConfigError
        An unknown ``kind`` or a non-positive ``strength``/``weight`` or negative ``prior``;
        ``align`` without ``unlabelled``, ``unlabelled`` with a kind that does not use them, or
        without a kind (:data:`UNLABELLED_DEFAULT`).
    DataError
        Too few examples in a quadrant or unlabelled songs, or a song that cannot be predicted.
    ModelError
        ``out_dir`` is the input model, an SVM kind on a model without an SVM, ``shift`` on a
        model without a familiarity measure (its training songs' rows), or the model cannot be
        loaded or saved.
    """
    from merkit.estimators.axes import model_space
    from merkit.estimators.support_refit import supports_refit
    from merkit.product.model_dir import MODEL_CARD, save_model_dir
    from merkit.product.predict import load_model
    from merkit.product.shipped import resolve_model_dir

    if kind is not None and kind not in ADAPT_KINDS:
        raise ConfigError(f"adaptation kind must be one of {', '.join(ADAPT_KINDS)}, not {kind!r}")
    if not (strength > 0 and weight > 0):
        raise ConfigError(f"strength and weight must be > 0, got {strength} and {weight}")
    if not prior >= 0:
        raise ConfigError(f"prior must be >= 0, got {prior}")
    counts = check_examples(examples.labels)
    if kind == "align" and unlabelled is None:
        raise ConfigError(
            "--kind align needs your unlabelled songs: --unlabelled DIR (a folder of at least "
            f"{MIN_UNLABELLED} songs of the same collection; it may hold the examples too)"
        )
    others = None if unlabelled is None else unlabelled_songs(unlabelled)
    source = resolve_model_dir(model)  # a folder, a shipped model's name, or None: the default
    out = Path(out_dir)
    if out.resolve() == source.resolve():
        raise ModelError(
            f"--out {out} is the model being adapted; write the adapted model elsewhere "
            "(the original is never modified)"
        )
    predictor = load_model(source)
    if kind is None and others is not None:
        kind = UNLABELLED_DEFAULT
        if kind is None:
            raise ConfigError(
                "with --unlabelled, name the kind: --kind align (a collection the model answers "
                "nearly all one or two quadrants, spanning the emotion plane) or --kind auto "
                "(refit, shift or align by leave-one-out); neither is the default, see "
                "docs/adapt.md"
            )
    kind = kind or default_kind(predictor)
    if others is not None and kind not in ("align", "auto"):
        raise ConfigError(
            f"--unlabelled is used by --kind align and auto only, not by --kind {kind}"
        )
    classes = [int(c) for c in np.asarray(getattr(predictor.estimator, "classes_", range(4)))]
    if classes != list(range(len(predictor.labels))):
        raise ModelError(f"model {source} has classes {classes}; adapt needs 0..3 in order")
    if kind in SVM_KINDS and not supports_refit(predictor.estimator):
        raise ModelError(
            f"--kind {kind} needs a model whose classifier is an SVM (default, fast, svm, "
            f"svm-own); {source} is {predictor.manifest.method!r}: use --kind bias"
        )
    if kind in ("shift", "align", "auto") and predictor.familiarity is None:
        raise ModelError(
            f"--kind {kind} needs the training songs' rows of a familiarity measure, and "
            f"{source} has none (models from merkit train have one): use --kind refit"
        )
    windows = _example_windows(predictor, examples, progress)
    labels = np.asarray(examples.labels)
    before = _song_accuracy(windows.proba, windows.song, labels)
    layer: Recalibration | None = None
    shift: Any = None
    loo: dict[str, int] | None = None
    loo_loss: dict[str, float] | None = None
    alignment: Any = None
    if others is not None:
        from merkit.estimators.align import FeatureAlignment

        read = _example_windows(predictor, others, progress, what="unlabelled song")
        target = model_space(predictor.estimator, predictor.estimator_input(read.inputs))
        alignment = FeatureAlignment(prior=prior).fit(predictor.familiarity.reference_, target)
    if kind in SVM_KINDS:
        X = predictor.estimator_input(windows.inputs)
        means = None
        if kind in ("shift", "auto"):
            from merkit.estimators.align import source_class_means

            means = source_class_means(
                predictor.estimator, predictor.familiarity.reference_, len(classes)
            )
        fitter = ExampleFitter(
            predictor.estimator,
            X,
            model_space(predictor.estimator, X),
            windows.song,
            labels,
            means,
            weight,
            prior,
            alignment,
        )
        chosen = kind
        if kind == "auto":
            chosen, loo, loo_loss = choose_kind(fitter)
        estimator, shift = fitter.fit(chosen, np.arange(len(labels)))
        after_proba = estimator.predict_proba(X)
        refit = f"an SVM refit (each example weighing {weight:g} training songs)"
        note = f"then {refit}"
        if chosen == "align":
            note = (
                f"then a feature alignment on {len(others or [])} unlabelled songs (prior "
                f"{prior:g}) and {refit}"
            )
        elif shift is not None:
            note = (
                "then a per-quadrant feature shift (prior "
                f"{prior:g} pseudo-songs, offset norm {np.linalg.norm(shift.offset_):.3f}) and "
                + note[5:]
            )
        if loo is not None:
            note += (
                f", kind {chosen} chosen by leave-one-out (log loss: {_loss_text(loo_loss)}; "
                f"right: {_loo_text(loo)})"
            )
    else:
        per_song = [windows.proba[windows.song == i] for i in range(len(labels))]
        layer = fit_on_windows(per_song, labels, kind=cast(Kind, kind), strength=strength)
        estimator = RecalibratedClassifier(predictor.estimator, layer)
        after_proba = layer.transform(windows.proba)
        note = f"then few-shot recalibration ({kind}, strength {strength:g})"
        chosen = kind
    after = _song_accuracy(np.asarray(after_proba), windows.song, labels)
    note += (
        f" on {len(examples)} labelled songs of {examples.name!r} "
        f"({', '.join(f'{q} {n}' for q, n in counts.items())})"
    )
    previous = predictor.manifest.calibration
    manifest = predictor.manifest.model_copy(
        update={
            "calibration": f"{previous}; {note}" if previous else note,
            "estimator": None,
            "companions": None,
        }
    )
    done = Adaptation(
        out,
        examples.song_ids,
        counts,
        layer,
        (before, after),
        chosen,
        weight if kind in SVM_KINDS else None,
        requested=kind,
        shift=None if shift is None or chosen == "align" else np.asarray(shift.offset_),
        leave_one_out=loo,
        leave_one_out_loss=loo_loss,
        alignment=shift if chosen == "align" else None,
        n_unlabelled=None if others is None else len(others),
    )
    carried = _carry_companions(predictor, estimator, windows, shift)
    card = (source / MODEL_CARD).read_text() + _card_section(source, examples, done, carried)
    save_model_dir(estimator, manifest, card, out)
    if carried is not None:
        from merkit.product.companion_files import save_companions

        objects, update = carried
        save_companions(out, objects, update)
    import contextlib

    from merkit.product.trust import record_trust

    with contextlib.suppress(OSError, MerkitError):  # unwritable list: predict asks for --trust
        record_trust(out, "merkit")  # merkit wrote it here: `merkit predict` may load it
    return done


def _loo_text(loo: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in loo.items())


def _loss_text(loss: dict[str, float] | None) -> str:
    return ", ".join(f"{k} {v:.2f}" for k, v in (loss or {}).items())


def _carry_companions(
    predictor: Any, estimator: Any, windows: _Examples, shift: Any
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The original model's companions for the adapted model (``None`` when it has none).

    Familiarity: the same thresholds (calibrated on held-out training songs), its reference
    rows and training range extended with the examples' windows in the adapted model's input
    space (:meth:`merkit.estimators.axes.Familiarity.extended`); that only shortens distances
    and widens the range, so no song familiar before becomes unfamiliar, and songs like the
    user's examples become familiar. Refitting it on the examples alone is not possible: a
    threshold needs many held-out songs, and a handful of examples would flag everything else.

    Axis models: kept as trained (a handful of examples cannot refit them); for ``shift`` and
    ``align`` each is moved by the same transform (``shift``: the fitted offset or alignment)
    when its input space is the quadrant model's (checked on the examples), so all three
    models see the user's music where the training music was. For the
    kinds that leave the axes as trained, the answer rule becomes ``sides`` (the adapted
    quadrant model's own sums decide; the axis models' probabilities are still reported), so
    the unadapted axes cannot undo the adaptation.
    """
    from merkit.estimators.align import FeatureAlignment, aligned_copy
    from merkit.estimators.axes import AxisModels, model_space

    companions = predictor.manifest.companions
    if companions is None:
        return None
    X = predictor.estimator_input(windows.inputs)
    objects: dict[str, Any] = {}
    axes = predictor.axes
    rule = companions.rule
    axes_note = "kept as trained"
    if axes is not None:
        moved = False
        if shift is not None:
            quadrant_space = model_space(predictor.estimator, X)
            same = all(
                np.allclose(model_space(m, X), quadrant_space, atol=1e-6)
                for m in (axes.arousal, axes.valence)
            )
            if same:
                axes = AxisModels(
                    aligned_copy(axes.arousal, shift), aligned_copy(axes.valence, shift), rule
                )
                moved = True
                what = "alignment" if isinstance(shift, FeatureAlignment) else "shift"
                axes_note = f"moved by the same feature {what}"
        if not moved:
            rule = "sides"
            axes_note += "; answer rule `sides` (the adapted quadrant model decides)"
            axes = AxisModels(axes.arousal, axes.valence, rule="sides")
        objects["axes"] = axes
    familiarity = predictor.familiarity
    familiarity_note = ""
    if familiarity is not None:
        rows = model_space(estimator, X)
        objects["familiarity"] = familiarity.extended(rows)
        familiarity_note = (
            f"; adapted: the {len(rows)} windows of the {int(windows.song.max()) + 1} example "
            "songs (in the adapted model's input space) added to the reference songs and the "
            "training range, the thresholds kept"
        )
    update = {
        "rule": rule,
        "n_songs": companions.n_songs,
        "recipe": f"{companions.recipe}; adapted: {axes_note}",
        "familiarity_recipe": companions.familiarity_recipe + familiarity_note,
        "cv": companions.cv,
    }
    return objects, update


def _card_section(
    source: Path,
    examples: Dataset,
    done: Adaptation,
    carried: tuple[dict[str, Any], dict[str, Any]] | None = None,
) -> str:
    ids = ", ".join(examples.song_ids[:40]) + (" ..." if len(examples) > 40 else "")
    layer = done.recalibration
    if layer is None:
        what = (
            "Its SVM was refitted on its own support vectors plus the examples (each song "
            f"weighing {done.weight:g} training songs); the feature transforms and the "
            "probability calibration are the original model's."
        )
        detail = f"- kind `{done.kind}`"
        if done.shift is not None:
            what = (
                "Every song it sees is first moved by a feature offset (in the SVM's input "
                "space, after the model's own scalers): the mean over the quadrants of how far "
                "the examples of each quadrant lie from the training songs of that quadrant, "
                "shrunk toward 0. " + what
            )
            detail += f" (offset norm {np.linalg.norm(done.shift):.3f})"
        if done.alignment is not None:
            what = (
                "Every song it sees is first moved and scaled, column by column in the SVM's "
                "input space, so that the user's unlabelled songs "
                f"({done.n_unlabelled}) have the training songs' mean and spread "
                f"(shrunk toward no change with {done.alignment.prior:g} pseudo-rows). " + what
            )
        if done.leave_one_out is not None:
            detail += (
                f", chosen by `--kind {done.requested}` by leave-one-out on the examples "
                f"(summed log loss, the smallest wins: {_loss_text(done.leave_one_out_loss)}; "
                f"songs answered right: {_loo_text(done.leave_one_out)}; ties go to refit, "
                "then shift)"
            )
        if done.n_unlabelled is not None:
            detail += f"; {done.n_unlabelled} unlabelled songs read"
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
    if carried is None:
        companions = "The original model has no axis models or familiarity measure."
    else:
        update = carried[1]
        companions = (
            "Its arousal/valence models and familiarity measure are the original model's, "
            f"carried over: axes {update['recipe'].rsplit('adapted: ', 1)[-1]}; familiarity "
            "with the examples added to its reference songs (threshold unchanged), so music "
            "like the examples is not flagged as unfamiliar."
        )
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
        companions,
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
    "DEFAULT_SHIFT_PRIOR",
    "DEFAULT_STRENGTH",
    "KINDS",
    "MIN_PER_QUADRANT",
    "MIN_UNLABELLED",
    "SVM_KINDS",
    "UNLABELLED_DEFAULT",
    "Adaptation",
    "ExampleFitter",
    "RecalibratedClassifier",
    "Recalibration",
    "adapt_model",
    "check_examples",
    "choose_kind",
    "default_kind",
    "fit_on_windows",
    "unlabelled_songs",
]
