"""Train/test splits: repeated (stratified) K-fold, persisted so all methods share the folds.

A dataset's own fixed train/validate/test split (MERGE's ``tvt`` tables) is the other protocol:
see :mod:`merkit.protocol.fixed`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from sklearn.model_selection import RepeatedKFold, RepeatedStratifiedKFold, StratifiedGroupKFold

from merkit.core.atomic import atomic_file
from merkit.core.errors import ConfigError, DataError
from merkit.datasets.base import Dataset

FOLDS_FORMAT = 1


class ProtocolConfig(BaseModel):
    """The cross-validation protocol (paper: 10 folds x 10 repeats, stratified, random_state=1)."""

    model_config = ConfigDict(frozen=True)

    n_splits: int = Field(10, ge=2)
    n_repeats: int = Field(10, ge=1)
    random_state: int = 1
    stratify: bool = True
    """``False`` reproduces the repo's dummy-label splits (KFold on constant labels)."""
    split: str | None = None
    """A dataset's published split (e.g. ``"70-15-15"``) instead of K-fold: one fold whose
    training, validation and test songs the dataset names (:mod:`merkit.protocol.fixed`)."""
    leave_out: str | None = None
    """``"genre"``: one fold per genre group, trained on the other songs
    (:mod:`merkit.protocol.genre`); ``n_splits`` is then the number of groups. ``"dataset"``:
    trained on one dataset and tested on another, then back (:mod:`merkit.protocol.cross`)."""
    datasets: tuple[str, ...] | None = None
    """``leave_out="dataset"``: the names of the two datasets, in fold order (fold 0 trains on
    the first and tests on the second, fold 1 the other way)."""

    @property
    def n_folds(self) -> int:
        """Folds a method runs under this protocol (1 for a fixed split)."""
        return 1 if self.split is not None else self.n_splits * self.n_repeats

    def stamp(self) -> dict[str, object]:
        """The settings as stored in result files (``split`` only when set, so runs made before
        fixed splits existed still resume), JSON-ready."""
        return self.model_dump(mode="json", exclude_none=True)  # datasets: a list, as read back

    def describe(self) -> str:
        if self.split is not None:
            return f"fixed train/validate/test split tvt-{self.split}"
        if self.leave_out == "dataset":
            first, second = self.datasets or ("A", "B")
            return f"cross-dataset: trained on {first}, tested on {second}, and back"
        if self.leave_out is not None:
            return f"leave-one-{self.leave_out}-out ({self.n_splits} {self.leave_out} groups)"
        kind = "stratified" if self.stratify else "unstratified"
        return f"{self.n_splits}x{self.n_repeats} {kind} K-fold (random_state={self.random_state})"


@dataclass(frozen=True)
class Fold:
    """One train/test split, as row indices into ``Dataset.songs``.

    ``validate`` holds the rows of a fixed split's validation set (None for K-fold).
    """

    repeat: int
    fold: int
    train: np.ndarray
    test: np.ndarray
    validate: np.ndarray | None = None

    @property
    def name(self) -> str:
        return f"r{self.repeat:02d}_f{self.fold:02d}"


def make_folds(
    labels: np.ndarray,
    protocol: ProtocolConfig,
    groups: np.ndarray | None = None,
) -> list[Fold]:
    """Split rows ``n_repeats`` times into ``n_splits`` folds.

    Without groups this is exactly sklearn's ``RepeatedStratifiedKFold`` (or ``RepeatedKFold``
    when ``stratify`` is off); with groups, ``StratifiedGroupKFold`` reshuffled per repeat, so a
    group's songs are always on one side.

    Raises
    ------
    ConfigError
        If the split is impossible (see :func:`check_feasible`).
    """
    labels = np.asarray(labels)
    check_feasible(labels, protocol, groups)
    dummy = np.zeros((labels.size, 1))
    splits: list[tuple[int, int, np.ndarray, np.ndarray]] = []
    if groups is not None:
        for repeat in range(protocol.n_repeats):
            splitter = StratifiedGroupKFold(
                n_splits=protocol.n_splits,
                shuffle=True,
                random_state=protocol.random_state + repeat,
            )
            for fold, (train, test) in enumerate(splitter.split(dummy, labels, groups)):
                splits.append((repeat, fold, train, test))
    else:
        cls = RepeatedStratifiedKFold if protocol.stratify else RepeatedKFold
        splitter = cls(
            n_splits=protocol.n_splits,
            n_repeats=protocol.n_repeats,
            random_state=protocol.random_state,
        )
        for index, (train, test) in enumerate(splitter.split(dummy, labels)):
            splits.append((index // protocol.n_splits, index % protocol.n_splits, train, test))
    return [Fold(r, f, np.sort(tr), np.sort(te)) for r, f, tr, te in splits]


def check_feasible(
    labels: np.ndarray, protocol: ProtocolConfig, groups: np.ndarray | None = None
) -> None:
    """Refuse fold settings the songs cannot satisfy, naming the setting and the numbers.

    K-fold needs at least K songs (K groups when grouped); stratified K-fold also needs K songs
    in every quadrant that has songs, since each fold holds a share of every quadrant.

    Raises
    ------
    ConfigError
    """
    from merkit.core.labels import QUADRANTS

    k = protocol.n_splits
    labels = np.asarray(labels)
    if labels.size < k:
        raise ConfigError(f"--folds {k} needs at least {k} songs; the dataset has {labels.size}")
    if groups is not None:
        n_groups = len(np.unique(np.asarray(groups)))
        if n_groups < k:
            raise ConfigError(
                f"--folds {k} with grouped songs needs at least {k} groups; there are {n_groups}"
            )
    if protocol.stratify:
        counts = np.bincount(labels.astype(np.int64))
        present = np.flatnonzero(counts)
        smallest = present[np.argmin(counts[present])]
        if counts[smallest] < k:
            name = QUADRANTS[smallest] if smallest < len(QUADRANTS) else f"class {smallest}"
            raise ConfigError(
                f"--folds {k} stratified needs at least {k} songs per quadrant; the smallest, "
                f"{name}, has {counts[smallest]} (lower --folds, or use --unstratified)"
            )


def folds_path(folder: Path, dataset: Dataset, protocol: ProtocolConfig) -> Path:
    kind = "strat" if protocol.stratify else "unstrat"
    name = (
        f"{dataset.name}-{dataset.fingerprint()}-{protocol.n_splits}x{protocol.n_repeats}"
        f"-rs{protocol.random_state}-{kind}.json"
    )
    return folder / name


def load_or_create_folds(folder: Path, dataset: Dataset, protocol: ProtocolConfig) -> list[Fold]:
    """Folds for ``dataset`` under ``protocol``, read from ``folder`` or created and saved there.

    The file stores the song ids of every test fold, so the folds stay tied to the songs (not to
    row positions) and a dataset that changed is detected instead of silently misaligned.
    """
    path = folds_path(folder, dataset, protocol)
    ids = dataset.song_ids
    if path.is_file():
        try:
            stored = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise DataError(f"fold file {path} is corrupt ({exc}); delete it to recreate") from None
        if not isinstance(stored, dict) or stored.get("song_ids") != ids:
            raise DataError(f"fold file {path} was made for a different song list; delete it")
        position = {song: i for i, song in enumerate(ids)}
        folds = []
        all_rows = np.arange(len(ids))
        try:
            for entry in stored["folds"]:
                test = np.sort(np.array([position[s] for s in entry["test"]], dtype=np.int64))
                train = np.setdiff1d(all_rows, test)
                folds.append(Fold(int(entry["repeat"]), int(entry["fold"]), train, test))
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(
                f"fold file {path} is damaged ({type(exc).__name__}: {exc}); delete it to recreate"
            ) from None
        return folds

    folds = make_folds(dataset.labels, protocol, dataset.groups)
    payload = {
        "format": FOLDS_FORMAT,
        "dataset": dataset.name,
        "fingerprint": dataset.fingerprint(),
        "protocol": protocol.stamp(),
        "song_ids": ids,
        "folds": [
            {"repeat": f.repeat, "fold": f.fold, "test": [ids[i] for i in f.test]} for f in folds
        ],
    }
    write_json_atomic(path, payload)
    return folds


def write_json_atomic(path: Path, payload: object) -> None:
    """Write JSON so readers never see a half-written file (:func:`atomic_file`)."""
    with atomic_file(path) as temp, open(temp, "w") as out:
        json.dump(payload, out, indent=1)
