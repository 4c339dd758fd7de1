"""Train one final model on a whole dataset and export it as a self-contained model directory.

A model directory holds everything a prediction needs except merkit's code:

``manifest.json``
    :class:`ModelManifest`: format version, the merkit version that made it, the method and its
    settings, every input representation with its sample rate, parameters and version, the label
    names and meanings, the window length and hop used on whole tracks, the training data and the
    library versions.
``estimator.joblib`` or ``estimator.pt``
    The fitted estimator: scikit-learn estimators through joblib, estimators with their own
    ``save(path)`` / ``load(path)`` (merkit's torch classifiers) through those. Its SHA-256 is in
    the manifest, so a damaged file is reported instead of half-loaded.
``MODEL_CARD.md``
    What the model is for and what it is not: training data, the method's cross-validated scores
    (read from a benchmark ``results.csv``, never estimated here), intended use and limits.

Loading runs pickled code (joblib) or torch deserialisation: load model directories you trust,
like any Python package.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib
import importlib.metadata
import inspect
import json
import math
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from merkit.datasets.base import Dataset
from merkit.errors import ConfigError, DataError, MerkitError, ModelError
from merkit.labels import QUADRANT_MEANINGS, QUADRANTS

if TYPE_CHECKING:
    from merkit.predict import Predictor

MODEL_FORMAT = 1
"""Version of the model-directory layout this merkit writes and reads."""

MANIFEST = "manifest.json"
MODEL_CARD = "MODEL_CARD.md"
JOBLIB_FILE = "estimator.joblib"
TORCH_FILE = "estimator.pt"

DEFAULT_WINDOW_S = 30.0
"""Window length for whole tracks when the training clips' lengths cannot be read."""

LIBRARIES = ("numpy", "scikit-learn", "torch", "librosa", "soundfile", "soxr")


# ---------------------------------------------------------------------------------------------
# Manifest


class InputSpec(BaseModel):
    """One input of the model, exactly as it was computed for training.

    Attributes
    ----------
    name : str
        Representation name (``merkit.representations``) or ``table:NAME`` for a feature table.
    kind : {"representation", "table"}
        Tables come with a dataset and cannot be computed for a new song.
    sr, params, version, dtype, fn :
        The representation's sample rate, keyword parameters, version, storage dtype and function
        (``None`` for tables). Prediction uses these stored values, not the registry defaults.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    kind: Literal["representation", "table"]
    sr: int | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    version: str | None = None
    dtype: str | None = None
    fn: str | None = None


class EstimatorFile(BaseModel):
    """Where the fitted estimator is stored and how to read it back."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    format: Literal["joblib", "torch"]
    file: str
    class_path: str = Field(description="'module:QualName' of the estimator class")
    sha256: str


class TrainingData(BaseModel):
    """The songs the final model saw."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    dataset: str
    n_songs: int
    counts: dict[str, int]
    fingerprint: str
    median_duration_s: float | None = None


class CvScores(BaseModel):
    """Cross-validated scores of the method on the training data, read from a ``results.csv``.

    All scores are fractions (0-1), means over the protocol's folds.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: str
    dataset: str
    protocol: str
    n_splits: int | None = None
    f1: float
    f1_std: float | None = None
    precision: float | None = None
    recall: float | None = None
    accuracy: float | None = None
    f1_per_quadrant: dict[str, float] = Field(default_factory=dict)
    caveats: list[str] = Field(default_factory=list)


class ModelManifest(BaseModel):
    """Everything ``manifest.json`` records about a model (see the module docstring)."""

    model_config = ConfigDict(extra="forbid")

    format_version: int = MODEL_FORMAT
    merkit_version: str
    created: str
    method: str
    method_summary: str = ""
    params: dict[str, Any] = Field(default_factory=dict)
    seed: int = 0
    calibration: str | None = Field(
        None, description="How probabilities were calibrated, when the method gives none itself"
    )
    inputs: list[InputSpec]
    labels: list[str] = Field(default_factory=lambda: list(QUADRANTS))
    label_meanings: dict[str, str] = Field(default_factory=lambda: dict(QUADRANT_MEANINGS))
    window_s: float = Field(gt=0)
    hop_s: float = Field(gt=0)
    training: TrainingData
    cv: CvScores | None = None
    estimator: EstimatorFile | None = None
    libraries: dict[str, str | None] = Field(default_factory=dict)

    @property
    def audio_only(self) -> bool:
        """True when every input can be computed from audio, i.e. the model can predict any song."""
        return all(spec.kind == "representation" for spec in self.inputs)


# ---------------------------------------------------------------------------------------------
# Training


@dataclass
class TrainedModel:
    """A fitted final model in memory: the estimator, its manifest and its model card text."""

    estimator: Any
    manifest: ModelManifest
    card: str

    def predictor(self) -> Predictor:
        """A :class:`merkit.predict.Predictor` for this model, without saving it."""
        from merkit.predict import Predictor

        return Predictor(self.manifest, self.estimator)


def train_final(
    method: str,
    dataset: Dataset,
    *,
    params: dict[str, Any] | None = None,
    cache: Any = None,
    n_jobs: int = 1,
    progress: bool = True,
    cv_results: Path | None = None,
    seed: int = 0,
    window_s: float | None = None,
    hop_s: float | None = None,
) -> TrainedModel:
    """Fit ``method`` on every song of ``dataset`` for prediction on new songs.

    The estimator is ``spec.make(params)`` fitted on all songs; its inputs are computed (and cached)
    exactly as the benchmark computes them. Two changes make it a product model: every
    ``random_state`` inside it is set to ``seed``, and an estimator without ``predict_proba`` (an
    RBF SVM) is wrapped in scikit-learn's ``CalibratedClassifierCV`` (Platt's sigmoid fitted on
    out-of-fold decision values of a seeded stratified 5-fold split, then one estimator refitted on
    all songs: ``ensemble=False``), because predictions report class probabilities.

    Methods that need a ``table:`` input train too, but the model is marked not audio-only and
    predicting a new song with it is refused.

    Parameters
    ----------
    method : str
        A registered method name (``merkit methods``).
    dataset : Dataset
        Training songs; every quadrant must have at least one.
    params : dict, optional
        The method's settings (as in a benchmark ``--config``).
    cache : FeatureCache, optional
        Representation cache (default: merkit's).
    n_jobs : int
        Processes for feature extraction.
    progress : bool
        Show progress bars.
    cv_results : Path, optional
        A benchmark ``results.csv`` holding this method's cross-validated scores on this dataset,
        quoted in the model card. Without it the card says the method was not cross-validated.
    seed : int
        Seed of every random choice in the estimator.
    window_s, hop_s : float, optional
        Window length and hop for whole tracks. Default: the median training clip length rounded to
        0.1 s (or 30 s when it cannot be read from the audio headers), and half of it.

    Returns
    -------
    TrainedModel

    Raises
    ------
    ConfigError
        Unknown method, bad settings or window, unusable ``cv_results``.
    DataError
        A quadrant without songs, or problems reading the data.
    """
    from merkit.methods import get_method
    from merkit.protocol.runner import estimator_input, resolve_inputs

    spec = get_method(method)
    params = dict(params or {})
    missing = [q for q, n in dataset.counts().items() if n == 0]
    if missing:
        raise DataError(
            f"dataset {dataset.name!r} has no songs in {', '.join(missing)}; "
            "a final model needs examples of all four quadrants"
        )
    median = _median_duration(dataset)
    window, hop = _window_settings(window_s, hop_s, median)
    cv = read_cv_results(cv_results, spec.name, dataset, params) if cv_results else None
    inputs_spec = [_input_spec(name) for name in spec.inputs]

    estimator = spec.make(params)
    _seed_everything(estimator, seed)
    calibration = None
    if not hasattr(estimator, "predict_proba"):
        if len(spec.inputs) > 1:
            raise ConfigError(
                f"method {spec.name!r} gives no class probabilities and has several inputs, "
                "which merkit cannot calibrate; a product model must give probabilities"
            )
        estimator, calibration = _calibrated(estimator, dataset, seed)
    inputs = resolve_inputs(dataset, spec.inputs, cache=cache, n_jobs=n_jobs, progress=progress)
    features = estimator_input(inputs, np.arange(len(dataset)))
    del inputs
    estimator.fit(features, dataset.labels)

    manifest = ModelManifest(
        merkit_version=_merkit_version(),
        created=dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
        method=spec.name,
        method_summary=spec.summary,
        params=_jsonable(params),
        seed=seed,
        calibration=calibration,
        inputs=inputs_spec,
        window_s=window,
        hop_s=hop,
        training=TrainingData(
            dataset=dataset.name,
            n_songs=len(dataset),
            counts=dataset.counts(),
            fingerprint=dataset.fingerprint(),
            median_duration_s=median,
        ),
        cv=cv,
        libraries=library_versions(),
    )
    return TrainedModel(estimator=estimator, manifest=manifest, card=model_card(manifest))


def _input_spec(name: str) -> InputSpec:
    if name.startswith("table:"):
        return InputSpec(name=name, kind="table")
    from merkit.representations import get_representation

    rep = get_representation(name)
    return InputSpec(
        name=name,
        kind="representation",
        sr=rep.sr,
        params=_jsonable(rep.params),
        version=rep.version,
        dtype=rep.dtype,
        fn=rep.fn,
    )


def _seed_everything(estimator: Any, seed: int) -> None:
    """Set every ``random_state`` of a scikit-learn-style estimator, at any nesting depth."""
    get_params = getattr(estimator, "get_params", None)
    if get_params is None:
        return
    updates = {
        key: seed for key in get_params(deep=True) if key.rsplit("__", 1)[-1] == "random_state"
    }
    if updates:
        estimator.set_params(**updates)


def _calibrated(estimator: Any, dataset: Dataset, seed: int) -> tuple[Any, str]:
    """Wrap a classifier without ``predict_proba`` in a seeded Platt (sigmoid) calibration."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.model_selection import StratifiedKFold

    n_splits = min(5, min(dataset.counts().values()))
    if n_splits < 2:
        raise DataError(
            f"calibrating probabilities needs at least 2 songs per quadrant in {dataset.name!r}"
        )
    cv = StratifiedKFold(n_splits, shuffle=True, random_state=seed)
    wrapped = CalibratedClassifierCV(estimator, method="sigmoid", cv=cv, ensemble=False)
    return wrapped, f"Platt sigmoid on out-of-fold decision values ({n_splits}-fold, seed {seed})"


def _median_duration(dataset: Dataset) -> float | None:
    """Median clip length in seconds from headers or source attributes; None if unknown."""
    from merkit.audio import audio_info

    durations: list[float] = []
    for song in dataset.songs:
        source = song.source
        path = getattr(source, "path", None)
        length = getattr(source, "duration", None)
        try:
            if path is not None:
                durations.append(audio_info(path).duration)
            elif isinstance(length, int | float):
                durations.append(float(length))
        except MerkitError:
            continue  # an unreadable header: the feature extraction will name the file
    if not durations:
        return None
    return float(np.median(durations))


def _window_settings(
    window_s: float | None, hop_s: float | None, median: float | None
) -> tuple[float, float]:
    if window_s is None:
        window_s = (
            DEFAULT_WINDOW_S if median is None else max(1.0, math.ceil(round(median * 10, 6)) / 10)
        )
    if not window_s >= 1.0:
        raise ConfigError(f"the window must be at least 1 s long, got {window_s}")
    hop_s = window_s / 2 if hop_s is None else hop_s
    if not 0 < hop_s <= window_s:
        raise ConfigError(f"the hop must be in (0, window] = (0, {window_s}], got {hop_s}")
    return float(window_s), float(hop_s)


def _jsonable(value: Any) -> Any:
    """A JSON round trip (numpy scalars to numbers, tuples to lists, paths to text)."""

    def default(obj: Any) -> Any:
        if isinstance(obj, np.generic):
            return obj.item()
        if isinstance(obj, np.ndarray):
            return obj.tolist()
        return str(obj)

    return json.loads(json.dumps(value, default=default))


def _merkit_version() -> str:
    import merkit

    return merkit.__version__


def library_versions() -> dict[str, str | None]:
    """Installed versions of the libraries a model's numbers depend on (None: not installed)."""
    versions: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    import platform

    versions["python"] = platform.python_version()
    return versions


# ---------------------------------------------------------------------------------------------
# Cross-validation results for the card


def read_cv_results(
    path: Path, method: str, dataset: Dataset, params: dict[str, Any] | None = None
) -> CvScores:
    """This method's row of a benchmark ``results.csv``, checked against the training data.

    The benchmark writes ``<out>/results.csv`` and ``<out>/<method>/config.json``; when the latter
    exists, a different song list or settings becomes a caveat printed in the model card.

    Raises
    ------
    ConfigError
        The file is missing or unreadable, has no row for ``method``, or that row is on another
        dataset.
    """
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"cross-validation results file does not exist: {path}")
    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read cross-validation results {path}: {exc}") from None
    needed = {"method", "dataset", "f1"}
    if not needed <= set(frame.columns):
        raise ConfigError(
            f"{path} is not a merkit benchmark results.csv (it lacks columns "
            f"{', '.join(sorted(needed - set(frame.columns)))})"
        )
    rows = frame[frame["method"] == method]
    if rows.empty:
        listed = ", ".join(map(str, frame["method"])) or "none"
        raise ConfigError(f"{path} has no results for method {method!r} (it lists: {listed})")
    row = rows.iloc[-1]
    if str(row["dataset"]) != dataset.name:
        raise ConfigError(
            f"{path}: the results of {method!r} are on dataset {row['dataset']!r}, "
            f"but the model is trained on {dataset.name!r}"
        )

    def number(column: str) -> float | None:
        value = row.get(column)
        return None if value is None or pd.isna(value) else float(value)

    n_splits = number("n_splits")
    return CvScores(
        source=path.name,
        dataset=str(row["dataset"]),
        protocol=str(row.get("protocol", "unknown protocol")),
        n_splits=None if n_splits is None else int(n_splits),
        f1=float(row["f1"]),
        f1_std=number("f1_std"),
        precision=number("precision"),
        recall=number("recall"),
        accuracy=number("accuracy"),
        f1_per_quadrant={q: v for q in QUADRANTS if (v := number(f"f1_{q}")) is not None},
        caveats=_cv_caveats(path.parent / method / "config.json", dataset, params or {}),
    )


def _cv_caveats(config_path: Path, dataset: Dataset, params: dict[str, Any]) -> list[str]:
    if not config_path.is_file():
        return []
    try:
        stamp = json.loads(config_path.read_text())
    except (json.JSONDecodeError, OSError):
        return [f"{config_path.name} beside the results could not be read"]
    caveats = []
    if stamp.get("fingerprint") not in (None, dataset.fingerprint()):
        caveats.append(
            "the cross-validation ran on a different list of songs than this model was trained on"
        )
    cv_params = (stamp.get("config") or {}).get("params")
    if cv_params is not None and cv_params != _jsonable(params):
        caveats.append(
            f"the cross-validation used the settings {cv_params}, this model {_jsonable(params)}"
        )
    return caveats


# ---------------------------------------------------------------------------------------------
# Model card


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f} %"


def model_card(manifest: ModelManifest) -> str:
    """The Markdown model card of a manifest (every number comes from the manifest)."""
    m = manifest
    lines = [
        f"# merkit model card: `{m.method}`",
        "",
        f"Made by merkit {m.merkit_version} on {m.created}. "
        f"Method: {m.method_summary or m.method}.",
        "",
        "## What it does",
        "",
        "Given a song (any length, any format merkit can decode), it answers which of Russell's "
        "four arousal/valence quadrants the music expresses, with a probability for each:",
        "",
        *[f"- **{q}**: {m.label_meanings.get(q, '')}" for q in m.labels],
        "",
        "and the arousal and valence sides they imply: P(high arousal) = P(Q1) + P(Q2), "
        "P(positive valence) = P(Q1) + P(Q4).",
        "",
        f"Whole tracks are cut into {m.window_s:g} s windows every {m.hop_s:g} s; each window is "
        "peak-normalised on its own (as each training clip was) and the window probabilities are "
        "averaged.",
        "",
        "## Model",
        "",
        "| | |",
        "|---|---|",
        f"| method | `{m.method}` |",
        f"| settings | `{json.dumps(m.params, sort_keys=True)}` |",
        f"| seed | {m.seed} |",
        f"| probabilities | {m.calibration or 'from the estimator itself'} |",
        f"| inputs | {', '.join(_describe_input(i) for i in m.inputs)} |",
        f"| works from audio alone | {'yes' if m.audio_only else 'no: needs a feature table'} |",
        f"| libraries | {', '.join(f'{k} {v}' for k, v in m.libraries.items() if v)} |",
        "",
        "## Training data",
        "",
        _training_text(m.training),
        "",
        "| quadrant | songs |",
        "|---|---:|",
        *[f"| {q} ({m.label_meanings.get(q, '')}) | {n} |" for q, n in m.training.counts.items()],
        f"| total | {m.training.n_songs} |",
        "",
        f"Song-list fingerprint: `{m.training.fingerprint}`.",
        "",
        "## Cross-validated scores",
        "",
        *_cv_lines(m.cv, m.method),
        "",
        "## Intended use",
        "",
        "- Tagging or browsing music collections by mood, playlist seeding, research baselines.",
        "- Coarse, perceived emotion: what the music expresses to typical listeners, not what a "
        "given person feels (induced emotion).",
        "",
        "## Limits",
        "",
        *_limit_lines(m),
        "",
    ]
    return "\n".join(lines)


def _describe_input(spec: InputSpec) -> str:
    if spec.kind == "table":
        return f"`{spec.name}` (a feature table of the training dataset)"
    return f"`{spec.name}` ({spec.sr} Hz, version {spec.version})"


def _training_text(training: TrainingData) -> str:
    text = f"Dataset `{training.dataset}`: {training.n_songs} songs"
    if training.median_duration_s is not None:
        text += f", median clip length {training.median_duration_s:.1f} s"
    text += "."
    if training.dataset.lower().startswith("4qaed"):
        text += (
            " 4QAED (Panda, Malheiro & Paiva, 2018) holds ~30 s song previews from the AllMusic "
            "API, labelled with a quadrant derived from AllMusic mood tags."
        )
    elif training.dataset == "synthetic":
        text += (
            " The synthetic dataset is generated music (merkit.datasets.synthetic): a model "
            "trained on it is a demonstration, not a model of real songs."
        )
    return text


def _cv_lines(cv: CvScores | None, method: str) -> list[str]:
    if cv is None:
        return [
            "Not cross-validated: no benchmark results were given when this model was made "
            f"(`merkit benchmark --methods {method}` then `merkit train ... --cv-results "
            "results.csv`).",
        ]
    splits = f", {cv.n_splits} train/test splits" if cv.n_splits else ""
    std = f" ± {100 * cv.f1_std:.2f}" if cv.f1_std is not None else ""
    lines = [
        f"Method `{method}` on `{cv.dataset}`, {cv.protocol}{splits} (from `{cv.source}`); "
        "means over test folds:",
        "",
        "| macro F1 | precision | recall | accuracy |",
        "|---:|---:|---:|---:|",
        f"| {100 * cv.f1:.2f}{std} % | {_pct(cv.precision)} | {_pct(cv.recall)} | "
        f"{_pct(cv.accuracy)} |",
    ]
    if cv.f1_per_quadrant:
        lines += [
            "",
            "| " + " | ".join(f"F1 {q}" for q in cv.f1_per_quadrant) + " |",
            "|" + "---:|" * len(cv.f1_per_quadrant),
            "| " + " | ".join(_pct(v) for v in cv.f1_per_quadrant.values()) + " |",
        ]
    lines += [
        "",
        "These scores estimate how the *method* does on songs it was not trained on. This model "
        "was then trained on every song, so no held-out score of this exact model exists.",
    ]
    lines += [f"- Caveat: {c}." for c in cv.caveats]
    return lines


def _limit_lines(m: ModelManifest) -> list[str]:
    lines = []
    if m.training.dataset.lower().startswith("4qaed"):
        lines += [
            "- Trained on ~30 s AllMusic previews, mostly Western popular music; other styles "
            "(classical, non-Western traditions, film scores) and other recording conditions "
            "are out of its experience.",
        ]
    lines += [
        f"- Only four coarse quadrants ({', '.join(f'{q} {m.label_meanings[q]}' for q in m.labels)}"
        "); songs near the arousal or valence border are genuinely ambiguous, and the "
        "probabilities are not calibrated to listener agreement.",
        "- Perceived, not induced, emotion; one label per clip in training, so long tracks "
        "whose mood changes are summarised by an average (`--segments` shows the timeline).",
        "- Lyrics are heard only as sound: the model does not understand words.",
        "- Silent or near-silent audio (below −60 dBFS RMS) gets an answer flagged unreliable.",
        "- Not for decisions about people (health, hiring, surveillance).",
    ]
    if m.calibration:
        lines.append(
            "- Probabilities are calibrated after the fact (see Model); for borderline songs the "
            "most probable quadrant can differ from the uncalibrated classifier's decision that "
            "the cross-validation scored."
        )
    if not m.audio_only:
        lines.append("- Needs a precomputed feature table: it cannot predict songs from audio.")
    return lines


# ---------------------------------------------------------------------------------------------
# Saving and loading


def save_model(model: TrainedModel, out_dir: Path | str) -> Path:
    """Write ``model`` as a model directory (see the module docstring).

    The directory is assembled beside ``out_dir`` and moved into place at the end, so a failure
    never leaves half a model. An existing *model directory* at ``out_dir`` is replaced; any other
    existing non-empty folder is refused.

    Returns
    -------
    Path
        ``out_dir``.

    Raises
    ------
    ModelError
        ``out_dir`` is a non-empty folder that is not a model directory, or writing fails.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and (
        not out_dir.is_dir() or (any(out_dir.iterdir()) and not (out_dir / MANIFEST).is_file())
    ):
        raise ModelError(
            f"refusing to overwrite {out_dir}: it exists and is not a merkit model directory"
        )
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        staging.chmod(0o755)  # mkdtemp makes it private; a model directory is meant to be shared
        info = _save_estimator(model.estimator, staging)
        manifest = model.manifest.model_copy(update={"estimator": info})
        (staging / MANIFEST).write_text(manifest.model_dump_json(indent=2) + "\n")
        (staging / MODEL_CARD).write_text(model.card)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        staging.rename(out_dir)
    except OSError as exc:
        raise ModelError(f"cannot write the model directory {out_dir}: {exc}") from None
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    model.manifest = manifest
    return out_dir


def _class_path(obj: Any) -> str:
    cls = type(obj)
    return f"{cls.__module__}:{cls.__qualname__}"


def _save_estimator(estimator: Any, folder: Path) -> EstimatorFile:
    if callable(getattr(estimator, "save", None)) and callable(
        getattr(type(estimator), "load", None)
    ):
        path = folder / TORCH_FILE
        estimator.save(path)
        fmt: Literal["joblib", "torch"] = "torch"
    else:
        import joblib

        path = folder / JOBLIB_FILE
        joblib.dump(estimator, path, compress=3)
        fmt = "joblib"
    if not path.is_file():
        raise ModelError(f"the estimator's save() did not write {path.name}")
    return EstimatorFile(
        format=fmt, file=path.name, class_path=_class_path(estimator), sha256=_sha256(path)
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def default_model_dir() -> Path:
    """Where the model shipped inside the package lives (``merkit/pretrained/default``)."""
    from importlib.resources import files

    return Path(str(files("merkit") / "pretrained" / "default"))


def _compatible(made_by: str, running: str) -> bool:
    """Same major.minor version: the model-directory contract may change between minor versions."""
    return made_by.split(".")[:2] == running.split(".")[:2]


def read_manifest(path: Path | str) -> ModelManifest:
    """Read and validate ``manifest.json`` of a model directory (no estimator loading).

    Raises
    ------
    ModelError
        Missing directory or manifest, unparseable manifest, or one from an incompatible format or
        merkit version.
    """
    path = Path(path)
    if not path.exists():
        raise ModelError(f"model directory {path} does not exist")
    if not path.is_dir():
        raise ModelError(f"{path} is not a model directory (it is a file)")
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        raise ModelError(f"{path} is not a merkit model directory: {MANIFEST} is missing")
    try:
        raw = json.loads(manifest_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(f"{manifest_path} is not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise ModelError(f"{manifest_path} does not hold a JSON object")
    running = _merkit_version()
    fmt = raw.get("format_version")
    made_by = str(raw.get("merkit_version", "an unknown version"))
    if fmt != MODEL_FORMAT or not _compatible(made_by, running):
        raise ModelError(
            f"model {path} was made by merkit {made_by} (model format {fmt}); this is merkit "
            f"{running}, which reads format {MODEL_FORMAT} from merkit "
            f"{'.'.join(running.split('.')[:2])}.x: retrain it with 'merkit train' or install "
            f"merkit {made_by}"
        )
    try:
        manifest = ModelManifest.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'manifest'}: {e['msg']}"
            for e in exc.errors()[:5]
        )
        raise ModelError(f"{manifest_path} is invalid: {problems}") from None
    if manifest.estimator is None:
        raise ModelError(f"{manifest_path} names no estimator file")
    return manifest


def _check_inputs(manifest: ModelManifest, path: Path) -> None:
    from merkit.representations import get_representation

    for spec in manifest.inputs:
        if spec.kind != "representation":
            continue
        try:
            rep = get_representation(spec.name)
        except ConfigError:
            raise ModelError(
                f"model {path} needs the representation {spec.name!r}, which this merkit "
                "does not have"
            ) from None
        if rep.version != spec.version:
            raise ModelError(
                f"model {path} was trained on representation {spec.name!r} version "
                f"{spec.version}; this merkit computes version {rep.version}: retrain the model"
            )


def _load_estimator(info: EstimatorFile, path: Path) -> Any:
    file = path / info.file
    if info.sha256 != _sha256(file):
        raise ModelError(f"{file} is damaged: its checksum differs from the one in {MANIFEST}")
    try:
        if info.format == "joblib":
            import joblib

            with warnings.catch_warnings():
                # a different scikit-learn version is reported by the check below, not mid-load
                warnings.simplefilter("ignore")
                return joblib.load(file)
        module_name, _, qualname = info.class_path.partition(":")
        cls: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            cls = getattr(cls, part)
        if "device" in inspect.signature(cls.load).parameters:
            # a model trained on a GPU must also load where there is none
            return cls.load(file, device="auto")
        return cls.load(file)
    except MerkitError:
        raise
    except Exception as exc:  # unpickling/deserialising can fail in many library-specific ways
        raise ModelError(
            f"cannot load {file}: {type(exc).__name__}: {exc} (it was saved with "
            f"{info.class_path}; library versions may differ)"
        ) from None


def load_model(path: Path | str | None = None, *, check_inputs: bool = True) -> Predictor:
    """Load a model directory for prediction.

    Parameters
    ----------
    path : path, optional
        A directory written by :func:`save_model` / ``merkit train``. ``None`` loads the default
        model shipped inside the package.
    check_inputs : bool
        Check that this merkit knows every input representation, in the same version (turned off
        only where that was checked already, e.g. in worker processes).

    Returns
    -------
    Predictor

    Raises
    ------
    ModelError
        The directory, its manifest or one of its files is missing, damaged, or from an
        incompatible merkit version; the message says which.
    """
    from merkit.predict import Predictor

    if path is None:
        path = default_model_dir()
        if not (path / MANIFEST).is_file():
            raise ModelError(
                f"no default model is installed (expected {path}); pass a model directory "
                "made with 'merkit train'"
            )
    path = Path(path)
    manifest = read_manifest(path)
    assert manifest.estimator is not None  # checked by read_manifest
    for name in (manifest.estimator.file, MODEL_CARD):
        if not (path / name).is_file():
            raise ModelError(f"model {path} is incomplete: {name} is missing")
    if check_inputs:
        _check_inputs(manifest, path)
    estimator = _load_estimator(manifest.estimator, path)
    return Predictor(manifest, estimator, model_dir=path)


__all__ = [
    "MODEL_FORMAT",
    "CvScores",
    "EstimatorFile",
    "InputSpec",
    "ModelManifest",
    "TrainedModel",
    "TrainingData",
    "default_model_dir",
    "library_versions",
    "load_model",
    "model_card",
    "read_cv_results",
    "read_manifest",
    "save_model",
    "train_final",
]
