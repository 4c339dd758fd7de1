"""The shipped models' answers on 50 4QAED clips, to compare a tree before and after a refactoring.

Runs the public API only (``merkit.load_model``), so the same script serves both trees. Writes one
JSON file: for each shipped model (``default``, ``fast``) and clip, the four probabilities as
exact float64 (``float.hex``), and with ``--inputs`` the digest of the model's window inputs.
``--compare A B``
compares two such files and prints a Markdown table.

Usage::

    MERKIT_PRETRAINED=/work/shared/pretrained nice -n 19 python benchmarks/structure_check.py \
        --root /work/shared/data/4qaed --out /tmp/before.json
    python benchmarks/structure_check.py --compare /tmp/before.json /tmp/after.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import command_line, machine, timestamp, versions

PER_QUADRANT = {"Q1": 13, "Q2": 13, "Q3": 12, "Q4": 12}
MODELS = ("default", "fast")


def clips(root: Path) -> list[Path]:
    """The first clips (sorted by file name) of each quadrant folder: 50 in all."""
    found = []
    for quadrant, n in PER_QUADRANT.items():
        found += sorted((root / quadrant).glob("*.ogg"))[:n]
    return found


def digest(inputs: dict[str, object]) -> str:
    sha = hashlib.sha256()
    for name in sorted(inputs):
        value = inputs[name]
        arrays = value if isinstance(value, list) else [value]
        sha.update(name.encode())
        for array in arrays:
            array = np.ascontiguousarray(array)
            sha.update(str(array.dtype).encode() + str(array.shape).encode() + array.tobytes())
    return sha.hexdigest()


def run(root: Path, out: Path, *, with_inputs: bool) -> None:
    import merkit

    songs = clips(root)
    result: dict[str, object] = {
        "command": command_line(),
        "when": timestamp(),
        "machine": machine(),
        "versions": versions(),
        "git_commit": subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=False
        ).stdout.strip(),
        "merkit_file": merkit.__file__,
        "clips": [f"{p.parent.name}/{p.name}" for p in songs],
        "models": {},
    }
    for name in MODELS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = merkit.load_model(name)
        rows = {}
        for i, path in enumerate(songs):
            answer = model.predict(path)
            row = {
                "quadrant": answer.quadrant,
                "probabilities": {q: float(p).hex() for q, p in answer.probabilities.items()},
            }
            if with_inputs:
                features, _ = model.window_inputs(path)
                row["inputs_sha256"] = digest(features)
            rows[f"{path.parent.name}/{path.name}"] = row
            print(f"{name} {i + 1}/{len(songs)} {path.name} {answer.quadrant}", flush=True)
        result["models"][name] = rows  # type: ignore[index]
    out.write_text(json.dumps(result, indent=1) + "\n")


def compare(before: Path, after: Path) -> int:
    a, b = (json.loads(p.read_text()) for p in (before, after))
    lines = [
        "| model | clips | probabilities identical | inputs identical | quadrants identical |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    differ = 0
    for name in MODELS:
        ra, rb = a["models"][name], b["models"][name]
        keys = sorted(set(ra) | set(rb))
        same_p = sum(
            ra.get(k, {}).get("probabilities") == rb.get(k, {}).get("probabilities") for k in keys
        )
        recorded = [k for k in keys if "inputs_sha256" in ra.get(k, {})]
        same_x = sum(ra[k]["inputs_sha256"] == rb.get(k, {}).get("inputs_sha256") for k in recorded)
        same_q = sum(ra.get(k, {}).get("quadrant") == rb.get(k, {}).get("quadrant") for k in keys)
        differ += (len(keys) - same_p) + (len(recorded) - same_x)
        inputs = f"{same_x} of {len(recorded)}" if recorded else "not recorded"
        lines.append(f"| `{name}` | {len(keys)} | {same_p} | {inputs} | {same_q} |")
    print("\n".join(lines))
    return 1 if differ else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("/work/shared/data/4qaed"))
    parser.add_argument("--out", type=Path)
    parser.add_argument(
        "--inputs", action="store_true", help="also digest each clip's window inputs (2x slower)"
    )
    parser.add_argument("--compare", nargs=2, type=Path, metavar=("BEFORE", "AFTER"))
    args = parser.parse_args()
    if args.compare:
        return compare(*args.compare)
    if args.out is None:
        parser.error("--out is required unless --compare is given")
    run(args.root, args.out, with_inputs=args.inputs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
