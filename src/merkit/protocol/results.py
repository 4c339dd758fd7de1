"""Reading a run back: every method and every finished fold of an output folder.

Used to rebuild the summary files (``results.csv``, ``report.md``, plots) from everything an
output folder holds, and for statistics across methods.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from merkit.protocol.folds import ProtocolConfig
from merkit.protocol.runner import MethodResult
from merkit.protocol.state import expected_fold_names, read_method_state


@dataclass
class RunResults:
    """The methods of one output folder, by name (sorted), each with its valid fold records."""

    run_dir: Path
    methods: dict[str, MethodResult] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)
    """Method folder name -> why it is incomplete or unreadable (one line each)."""
    notes: list[str] = field(default_factory=list)
    """Entries that were ignored (fold files the protocol does not have)."""

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

    A method folder (a sub-folder holding ``config.json`` or ``folds/``) is read as a whole
    (:func:`merkit.protocol.state.read_method_state`): its folds are the valid fold files of the
    folds its protocol has; fold files the protocol does not have are ignored with a warning.
    A method with damaged or missing folds is kept but not ``complete``; one whose
    ``config.json`` is missing or unreadable cannot be read. Both are named, with the reason, in
    :attr:`RunResults.problems`; ignored files in :attr:`RunResults.notes` (nothing is logged:
    the caller says what it does with them).

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
    for method_dir in sorted(p for p in results.run_dir.iterdir() if p.is_dir()):
        if not ((method_dir / "config.json").exists() or (method_dir / "folds").is_dir()):
            continue
        name = method_dir.name
        state = read_method_state(method_dir, {})
        stamp = state.config
        try:
            if stamp is None:
                raise ValueError(f"config.json is {state.config_problem}")
            protocol = ProtocolConfig(**stamp["protocol"])
            dataset = str(stamp["dataset"])
        except (ValueError, KeyError, TypeError) as exc:
            results.problems[name] = (
                f"{method_dir}: {exc}; not shown (rerun the benchmark into this folder to "
                "rebuild it from the fold files)"
            )
            continue
        expected = expected_fold_names(protocol)
        state = read_method_state(method_dir, dict.fromkeys(expected))
        note = state.unexpected_note(len(expected))
        if note:
            results.notes.append(note)
        info = stamp.get("info") or {}
        records = [state.records[n] for n in expected if n in state.records]
        inputs = info.get("inputs") or (stamp.get("config") or {}).get("inputs") or []
        results.methods[name] = MethodResult(
            method=name,
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
        lacking = [*state.damaged, *state.not_files]
        if state.damaged or state.not_files or state.missing:
            parts = [f"{len(records)} of {len(expected)} folds finished"]
            parts += [
                f"fold file {state.fold_dir / (n + '.json')} is not a valid result ({why})"
                for n, why in state.damaged.items()
            ]
            parts += [f"{p} is not a regular file" for p in state.not_files]
            hint = "rerun the benchmark into this folder to compute the rest"
            if lacking:
                hint = "rerun the benchmark into this folder to recompute them"
            results.problems[name] = f"{name} is incomplete: {'; '.join(parts)}; {hint}"
    return results


__all__ = ["RunResults", "load_results"]
