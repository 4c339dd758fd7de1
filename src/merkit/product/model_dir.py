"""The model directory: its layout, manifest schemas, saving, reading and checks.

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
    What the model is for and what it is not (:mod:`merkit.product.card`).

:func:`save_model_dir` assembles a directory beside its destination and swaps it in atomically
(:mod:`merkit.core.atomic`): a kill at any instant leaves the old or the new model complete.

:func:`open_model_dir` checks the format, merkit version, input representations and checksum, and
warns when a library that computes the model's numbers runs in another version
(:mod:`merkit.core.versions`).

A model directory is code: loading it runs pickled Python (joblib) or torch deserialisation.
Load model directories you trust, like any Python package; the CLI refuses folders merkit did not
write here unless the user trusts them (:mod:`merkit.trust`), and a manifest may name only
registered representations and estimators (:func:`check_registered`).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import inspect
import json
import shutil
import warnings
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from merkit.core import atomic as atomic_dir
from merkit.core.errors import ConfigError, MerkitError, ModelError
from merkit.core.labels import QUADRANT_MEANINGS, QUADRANTS
from merkit.core.moved import current_path, load_joblib
from merkit.core.versions import (
    LIBRARIES,
    RESULT_LIBRARIES,
    ModelVersionWarning,
    library_versions,
    merkit_version,
    version_mismatches,
)
from merkit.registered import check_registered

MODEL_FORMAT = 1
"""Version of the model-directory layout this merkit writes and reads."""

MANIFEST = "manifest.json"
MODEL_CARD = "MODEL_CARD.md"
JOBLIB_FILE = "estimator.joblib"
TORCH_FILE = "estimator.pt"

# ---------------------------------------------------------------------------------------------
# Manifest


class InputSpec(BaseModel):
    """One input of the model, exactly as it was computed for training.

    Attributes
    ----------
    name : str
        Representation name (:mod:`merkit.representations.registry`) or ``table:NAME`` for a
        feature table.
    kind : {"representation", "table"}
        Tables come with a dataset and cannot be computed for a new song.
    role : str, optional
        The estimator's argument this input is passed as, for a method with several inputs
        (``None``: the input is passed by its name, or alone as an array).
    sr, params, version, dtype, fn :
        The representation's sample rate, keyword parameters, version, storage dtype and function
        (``None`` for tables). Prediction uses these stored values, not the registry defaults.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    kind: Literal["representation", "table"]
    role: str | None = None
    sr: int | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    version: str | None = None
    dtype: str | None = None
    fn: str | None = None

    @field_validator("fn")
    @classmethod
    def _current_fn(cls, fn: str | None) -> str | None:
        # a model saved before the package move names its function by the old module path
        return None if fn is None else current_path(fn)


class EstimatorFile(BaseModel):
    """Where the fitted estimator is stored and how to read it back."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    format: Literal["joblib", "torch"]
    file: str
    class_path: str = Field(description="'module:QualName' of the estimator class")
    sha256: str

    @field_validator("class_path")
    @classmethod
    def _current_class_path(cls, class_path: str) -> str:
        return current_path(class_path)  # an old module path (before the package move) too


class TrainingData(BaseModel):
    """The songs the final model saw."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    dataset: str
    n_songs: int
    counts: dict[str, int]
    fingerprint: str
    median_duration_s: float | None = None


class CvComparison(BaseModel):
    """The method against another one run on the same folds: corrected resampled t-test."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    other: str
    n_folds: int
    other_f1: float
    delta_f1: float
    ci_low: float
    ci_high: float
    t: float
    p: float


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
    comparisons: list[CvComparison] = Field(default_factory=list)


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


def jsonable(value: Any) -> Any:
    """A JSON round trip (numpy scalars to numbers, tuples to lists, paths to text)."""

    def default(obj: Any) -> Any:
        if isinstance(obj, np.generic):
            return obj.item()
        if isinstance(obj, np.ndarray):
            return obj.tolist()
        return str(obj)

    return json.loads(json.dumps(value, default=default))


# ---------------------------------------------------------------------------------------------
# Saving


def is_model_dir(path: Path) -> bool:
    """Whether ``path`` holds a complete model directory (manifest, estimator file and card)."""
    try:
        raw = json.loads((path / MANIFEST).read_text())
        estimator = raw["estimator"]["file"]
    except (OSError, ValueError, TypeError, KeyError):
        return False
    return (path / str(estimator)).is_file() and (path / MODEL_CARD).is_file()


def save_model_dir(
    estimator: Any, manifest: ModelManifest, card: str, out_dir: Path | str
) -> ModelManifest:
    """Write a model directory at ``out_dir`` (see the module docstring).

    The directory is assembled in a hidden folder beside ``out_dir``, flushed to disk and swapped
    in atomically: a kill at any instant leaves the previous model or the new one complete at
    ``out_dir``. An existing *model directory* at ``out_dir`` is replaced; any other existing
    non-empty folder is refused. Hidden folders left by a killed earlier save are removed first.

    Returns
    -------
    ModelManifest
        ``manifest`` with the estimator file and its checksum filled in.

    Raises
    ------
    ModelError
        ``out_dir`` is a non-empty folder that is not a model directory, or writing fails.
    """
    out_dir = Path(out_dir)
    if out_dir.is_symlink():
        out_dir = out_dir.resolve()  # replace the model the link points to, keep the link
    with contextlib.suppress(OSError):  # a folder we cannot list: the checks below say
        atomic_dir.recover_dir(out_dir, is_model_dir)
        atomic_dir.clean_leftovers(out_dir)
    if out_dir.exists() and (
        not out_dir.is_dir() or (any(out_dir.iterdir()) and not (out_dir / MANIFEST).is_file())
    ):
        raise ModelError(
            f"refusing to overwrite {out_dir}: it exists and is not a merkit model directory"
        )
    staging: Path | None = None
    try:
        staging = atomic_dir.staging_dir(out_dir)
        atomic_dir.step("staging")
        info = _save_estimator(estimator, staging)
        atomic_dir.step("estimator")
        manifest = manifest.model_copy(update={"estimator": info})
        (staging / MANIFEST).write_text(manifest.model_dump_json(indent=2) + "\n")
        atomic_dir.step("manifest")
        (staging / MODEL_CARD).write_text(card)
        atomic_dir.step("card")
        atomic_dir.fsync_tree(staging)
        atomic_dir.step("flushed")
        atomic_dir.replace_dir(staging, out_dir)
    except OSError as exc:
        raise ModelError(f"cannot write the model directory {out_dir}: {exc}") from None
    finally:
        if staging is not None and staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return manifest


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


# ---------------------------------------------------------------------------------------------
# Reading


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
        # a save killed halfway through the fallback swap leaves the old model as a backup
        with contextlib.suppress(OSError):
            atomic_dir.recover_dir(path, is_model_dir)
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
    running = merkit_version()
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


def check_inputs(manifest: ModelManifest, path: Path) -> None:
    """Check that this merkit computes every input representation, in the recorded version.

    Raises
    ------
    ModelError
        An unknown representation or another version of it.
    """
    from merkit.representations.registry import get_representation

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


def load_estimator(info: EstimatorFile, path: Path) -> Any:
    """Load the fitted estimator of the model directory ``path`` after checking its SHA-256.

    Raises
    ------
    ModelError
        A damaged file or one that cannot be deserialised here.
    """
    file = path / info.file
    if info.sha256 != _sha256(file):
        raise ModelError(f"{file} is damaged: its checksum differs from the one in {MANIFEST}")
    try:
        if info.format == "joblib":
            with warnings.catch_warnings():
                # a different scikit-learn version is reported once by open_model_dir, not mid-load
                warnings.simplefilter("ignore")
                return load_joblib(file)  # classes pickled under old module paths load too
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


def open_model_dir(path: Path | str, *, inputs: bool = True) -> tuple[ModelManifest, Any]:
    """Read, check and load a model directory: its manifest and fitted estimator.

    Warns (:class:`ModelVersionWarning`, one line per library) when a library that computes the
    model's numbers runs in another major.minor version than the one that trained it.

    Parameters
    ----------
    path : path
        A model directory.
    inputs : bool
        Check the input representations against this merkit (:func:`check_inputs`).

    Raises
    ------
    ModelError
        The directory, its manifest or one of its files is missing, damaged, or from an
        incompatible merkit version; the message says which.
    """
    path = Path(path)
    manifest = read_manifest(path)
    assert manifest.estimator is not None  # checked by read_manifest
    for name in (manifest.estimator.file, MODEL_CARD):
        if not (path / name).is_file():
            raise ModelError(f"model {path} is incomplete: {name} is missing")
    if inputs:
        check_registered(manifest, path / MANIFEST)  # before anything it names is imported
        check_inputs(manifest, path)
    torch_model = manifest.estimator.format == "torch"
    for line in version_mismatches(manifest.libraries, torch=torch_model):
        warnings.warn(f"model {path}: {line}", ModelVersionWarning, stacklevel=3)
    return manifest, load_estimator(manifest.estimator, path)


__all__ = [
    "JOBLIB_FILE",
    "LIBRARIES",
    "MANIFEST",
    "MODEL_CARD",
    "MODEL_FORMAT",
    "RESULT_LIBRARIES",
    "TORCH_FILE",
    "CvComparison",
    "CvScores",
    "EstimatorFile",
    "InputSpec",
    "ModelManifest",
    "ModelVersionWarning",
    "TrainingData",
    "check_inputs",
    "default_model_dir",
    "is_model_dir",
    "jsonable",
    "library_versions",
    "load_estimator",
    "merkit_version",
    "open_model_dir",
    "read_manifest",
    "save_model_dir",
    "version_mismatches",
]
