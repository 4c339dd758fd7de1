"""Reading a run back: every method and every finished fold of an output folder.

Used to rebuild the summary files (``results.csv``, ``report.md``, plots) from everything an
output folder holds, and for statistics across methods.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from merkit.protocol.folds import ProtocolConfig
from merkit.protocol.records import read_fold
from merkit.protocol.runner import MethodResult, finished_fold_files

log = logging.getLogger(__name__)


@dataclass
class RunResults:
    """The methods of one output folder, by name (sorted), each with its valid fold records."""

    run_dir: Path
    methods: dict[str, MethodResult] = field(default_factory=dict)

    def complete(self) -> list[MethodResult]:
        """The methods whose every fold is finished."""
        return [result for result in self.methods.values() if result.complete]

    def __getitem__(self, name: str) -> MethodResult:
        return self.methods[name]

    def __contains__(self, name: object) -> bool:
        return name in self.methods

    def __len__(self) -> int:
        return len(self.methods)


def load_results(run_dir: Path) -> RunResults:
    """Read every method folder of a benchmark output folder.

    A method folder counts when its ``config.json`` is readable; its folds are the fold files
    that pass validation (:func:`merkit.protocol.records.read_fold`; others are skipped with a
    warning). ``complete`` compares their number with the protocol's.

    Parameters
    ----------
    run_dir : Path
        A ``merkit benchmark --out`` folder.

    Returns
    -------
    RunResults
    """
    results = RunResults(Path(run_dir))
    if not results.run_dir.is_dir():
        return results
    for config_path in sorted(results.run_dir.glob("*/config.json")):
        method_dir = config_path.parent
        try:
            stamp = json.loads(config_path.read_text())
            protocol = ProtocolConfig(**stamp["protocol"])
            dataset = str(stamp["dataset"])
        except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
            log.warning(
                "%s is unreadable (%s); method %s skipped", config_path, exc, method_dir.name
            )
            continue
        info = stamp.get("info") or {}
        records = [r for r in map(read_fold, finished_fold_files(method_dir)) if r is not None]
        records.sort(key=lambda r: (r.repeat, r.fold))
        inputs = info.get("inputs") or (stamp.get("config") or {}).get("inputs") or []
        results.methods[method_dir.name] = MethodResult(
            method=method_dir.name,
            dataset=dataset,
            protocol=protocol,
            per_fold=records,
            n_total=protocol.n_folds,
            seconds=float(sum(r.seconds for r in records)),
            inputs=tuple(inputs),
            paper_f1=info.get("paper_f1"),
            settings=(stamp.get("config") or {}).get("params"),
            regime=str(info.get("regime") or "unrecorded"),
            n_songs=info.get("n_songs"),
        )
    return results


__all__ = ["RunResults", "load_results"]
