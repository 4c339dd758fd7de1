"""Measured compute per fold of each method, from the committed benchmark results.

Reads every ``benchmarks/results/*.csv`` written by ``merkit benchmark`` (columns ``method``,
``n_splits``, ``seconds``, ``protocol``) and writes ``src/merkit/methods/fold_costs.py``, the
table ``merkit methods`` shows (a generated module, so it ships with the package): for each
method, the mean fit + predict seconds of one fold in the run with the most folds, its protocol,
and the file it came from. Runs whose file name says ``reduced`` trained under lowered epoch
caps: their cost is a lower bound of the paper regime's.

    python benchmarks/method_costs.py
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
OUT = ROOT / "src" / "merkit" / "methods" / "fold_costs.py"


def collect(results: Path = RESULTS) -> dict[str, dict[str, object]]:
    """``{method: {seconds_per_fold, folds, protocol, source, reduced}}`` from the result CSVs."""
    best: dict[str, dict[str, object]] = {}
    for path in sorted(results.glob("*.csv")):
        with path.open(newline="") as handle:
            rows = list(csv.DictReader(handle))
        for row in rows:
            try:
                method, splits, seconds = row["method"], int(row["n_splits"]), float(row["seconds"])
            except (KeyError, TypeError, ValueError):
                continue  # not a benchmark results table (e.g. a per-genre breakdown)
            if splits <= 0 or "@train" in method:
                continue
            entry = {
                "seconds_per_fold": round(seconds / splits, 1),
                "folds": splits,
                "protocol": row.get("protocol", ""),
                "source": path.relative_to(ROOT).as_posix(),
                "reduced": "reduced" in path.stem,
            }
            if method not in best or splits > int(best[method]["folds"]):  # type: ignore[call-overload]
                best[method] = entry
    return dict(sorted(best.items()))


def main() -> None:
    costs = collect()
    body = json.dumps(costs, indent=4).replace(": true", ": True").replace(": false", ": False")
    OUT.write_text(
        '"""Measured seconds per fold of each method: written by benchmarks/method_costs.py from\n'
        'the committed benchmark results (do not edit by hand; rerun the script)."""\n\n'
        f"FOLD_COSTS: dict[str, dict[str, object]] = {body}\n"
    )
    # The project's formatter, so a regenerated file differs only where the numbers do.
    subprocess.run([sys.executable, "-m", "ruff", "format", "-q", str(OUT)], check=False)
    print(f"{OUT.relative_to(ROOT)}: {len(costs)} methods")


if __name__ == "__main__":
    main()
