"""What a method's results folder holds, read from its fold files and checked as a whole.

A method folder (``<out>/<method>/``) holds ``config.json`` (the configuration stamp) and
``folds/rRR_fFF.json``, one file per finished fold. :func:`read_method_state` reads every entry
of ``folds/`` once against the folds the protocol expects and sorts them into valid records,
damaged files, expected folds without a file, and files the protocol does not have (an extra
``r05_f07.json`` in a 3x1 run); :func:`reconcile_config` decides, from the fold files
themselves, whether a missing or damaged ``config.json`` can be rebuilt. Each fold record carries
the hash of the stamp it was made under (:func:`identity_hash`), so folds of another
configuration are refused even when ``config.json`` is gone, never relabelled.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from merkit.core.errors import ConfigError
from merkit.protocol.folds import ProtocolConfig
from merkit.protocol.records import FoldRecord, inspect_fold

log = logging.getLogger(__name__)

IDENTITY = ("dataset", "fingerprint", "protocol", "config")
"""The parts of a configuration stamp that must match for folds to be resumed or compared."""

FOLD_NAME = re.compile(r"^r\d+_f\d+$")
MAX_NAMED = 5


def identity_hash(stamp: Mapping[str, Any]) -> str:
    """sha256 of the identity part of a configuration stamp (canonical JSON)."""
    body = {key: stamp.get(key) for key in IDENTITY}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def expected_fold_names(protocol: ProtocolConfig) -> list[str]:
    """The fold names a method run under ``protocol`` writes (``r00_f00`` ...)."""
    if protocol.split is not None:
        return ["r00_f00"]
    return [
        f"r{r:02d}_f{f:02d}" for r in range(protocol.n_repeats) for f in range(protocol.n_splits)
    ]


def _names(items: Sequence[str]) -> str:
    shown = ", ".join(items[:MAX_NAMED])
    return shown + (f" and {len(items) - MAX_NAMED} more" if len(items) > MAX_NAMED else "")


@dataclass
class MethodState:
    """A method folder as found on disk.

    Attributes
    ----------
    records : dict
        Fold name -> valid record, for the folds the protocol expects.
    damaged : dict
        Fold name -> why its file is not a valid result (truncated, edited, ...).
    missing : list of str
        Expected folds without a file.
    unexpected : list of Path
        Fold files the protocol does not have (ignored, never deleted).
    not_files : list of Path
        Entries where a fold file should be that are not regular files (a folder, a FIFO).
    config : dict or None
        ``config.json`` when it is readable.
    config_problem : str or None
        ``"missing"`` or why ``config.json`` is unreadable.
    """

    method_dir: Path
    records: dict[str, FoldRecord] = field(default_factory=dict)
    damaged: dict[str, str] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    unexpected: list[Path] = field(default_factory=list)
    not_files: list[Path] = field(default_factory=list)
    config: dict[str, Any] | None = None
    config_problem: str | None = None

    @property
    def fold_dir(self) -> Path:
        return self.method_dir / "folds"

    @property
    def has_results(self) -> bool:
        """Whether any fold file of this protocol is there (valid or damaged)."""
        return bool(self.records or self.damaged)

    def check_entries(self) -> None:
        """Refuse entries merkit could never write a fold file over (a folder, a FIFO).

        Raises
        ------
        ConfigError
            Naming each such entry.
        """
        if self.not_files:
            listed = _names([str(p) for p in self.not_files])
            raise ConfigError(
                f"{listed}: not a regular file where a fold result file belongs; move it out "
                f"of {self.fold_dir} (merkit never deletes it) and rerun"
            )

    def unexpected_note(self, n_expected: int) -> str | None:
        """One line about fold files the protocol does not have, or None."""
        if not self.unexpected:
            return None
        names = _names([p.name for p in self.unexpected])
        return (
            f"{self.fold_dir} holds {len(self.unexpected)} fold file(s) this run's protocol "
            f"({n_expected} folds) does not have: {names}; they are ignored (not deleted)"
        )


def read_method_state(method_dir: Path, expected: Mapping[str, list[str] | None]) -> MethodState:
    """Read ``method_dir`` against the expected folds (fold name -> test song ids, or None).

    Nothing is logged or changed; the caller says what it does with each kind of entry.
    """
    state = MethodState(Path(method_dir))
    config_path = state.method_dir / "config.json"
    if not config_path.exists():
        state.config_problem = "missing"
    else:
        try:
            loaded = json.loads(config_path.read_text())
            if not isinstance(loaded, dict):
                raise ValueError("not a JSON object")
            state.config = loaded
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            state.config_problem = f"unreadable ({type(exc).__name__}: {exc})"
    present: set[str] = set()
    if state.fold_dir.is_dir():
        for path in sorted(state.fold_dir.iterdir()):
            if path.suffix != ".json" or not FOLD_NAME.match(path.stem):
                continue  # temporary files of atomic writes, notes a user left
            if not path.is_file():
                state.not_files.append(path)
                continue
            if path.stem not in expected:
                state.unexpected.append(path)
                continue
            present.add(path.stem)
            record, problem = inspect_fold(path, expected[path.stem])
            if record is not None:
                state.records[path.stem] = record
            else:
                state.damaged[path.stem] = problem or "invalid"
    state.missing = [name for name in expected if name not in present]
    return state


def reconcile_config(state: MethodState, stamp: dict[str, Any]) -> bool:
    """Whether ``config.json`` must be (re)written with ``stamp``; refuse what cannot be resumed.

    - No fold results: any configuration is accepted (a run that failed before its first fold
      does not block its corrected rerun).
    - A readable ``config.json`` beside fold results must match ``stamp``'s identity.
    - A missing or damaged ``config.json`` beside fold results is rebuilt (with a warning) when
      every valid fold file records this configuration's hash; folds that record another one, or
      none (files of older runs), are refused: they cannot be relabelled with these settings.
    - A valid fold that records another configuration's hash is refused either way.

    Raises
    ------
    ConfigError
        Naming the folder, the file(s) and what to do (never "delete the whole folder" while
        intact folds of this configuration are there).
    """
    method_dir = state.method_dir
    if not state.has_results:
        return state.config != stamp
    wanted = identity_hash(stamp)
    if state.config is not None:
        if {k: state.config.get(k) for k in IDENTITY} != {k: stamp[k] for k in IDENTITY}:
            raise ConfigError(
                f"{method_dir} holds results of another dataset, protocol or configuration; "
                "use a different --out folder (or delete it) instead of mixing results"
            )
        foreign = sorted(
            name
            for name, record in state.records.items()
            if record.config_sha256 not in (None, wanted)
        )
        if foreign:
            raise ConfigError(
                f"fold file(s) {_names(foreign)} in {state.fold_dir} were made with another "
                "configuration than its config.json (copied from another run?); move them out "
                "of that folder and rerun to recompute them"
            )
        return state.config.get("info") != stamp.get("info")
    foreign = sorted(n for n, r in state.records.items() if r.config_sha256 != wanted)
    config_path = method_dir / "config.json"
    if foreign:
        unrecorded = [n for n in foreign if state.records[n].config_sha256 is None]
        why = (
            "do not record the configuration that made them (written by an older merkit)"
            if len(unrecorded) == len(foreign)
            else "were made with another configuration than this run's"
        )
        raise ConfigError(
            f"{config_path} is {state.config_problem} and fold file(s) {_names(foreign)} in "
            f"{state.fold_dir} {why}: they cannot be relabelled with these settings. Restore "
            "config.json, rerun with the settings that made them, or move those fold files out "
            "of the folder to recompute them"
        )
    log.warning(
        "%s is %s; its %d fold file(s) record this run's configuration, so they are kept and "
        "config.json is written again",
        config_path,
        state.config_problem,
        len(state.records),
    )
    return True


__all__ = [
    "IDENTITY",
    "MethodState",
    "expected_fold_names",
    "identity_hash",
    "read_method_state",
    "reconcile_config",
]
