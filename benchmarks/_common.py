"""What every benchmark records beside its numbers (the machine, library versions, the command),
and the few-song draw the adaptation benchmarks share."""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import shlex
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

VERSIONED = ("numpy", "scipy", "scikit-learn", "librosa", "soundfile", "soxr", "torch", "merkit")


def isa_flags() -> list[str]:
    """Which CPU features that change float results' last bits this CPU has
    (:func:`merkit.core.versions.cpu_kind`)."""
    from merkit.core.versions import cpu_kind

    return cpu_kind()[1]


def machine() -> dict[str, Any]:
    """CPU model, core counts, platform and GPU (if torch sees one)."""
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as handle:
            cpu = next(
                (line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")),
                cpu,
            )
    except OSError:
        pass
    gpu = None
    try:
        import torch

        if torch.cuda.is_available():
            gpu = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return {
        "cpu_model": cpu,
        "isa": isa_flags(),
        "nproc": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)),
        "platform": platform.platform(),
        "gpu": gpu,
        "load_average": os.getloadavg(),
    }


def versions(names: tuple[str, ...] = VERSIONED) -> dict[str, str]:
    found = {}
    for name in names:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    found["python"] = platform.python_version()
    return found


def command_line() -> str:
    """The command that ran this script, as a user would type it."""
    return "python " + " ".join(shlex.quote(arg) for arg in sys.argv)


def resumed_state(out: Path) -> tuple[dict[str, Any], Path]:
    """The results state of a multi-part benchmark (``<out>.json`` when a part ran before, else
    empty) and its path, with this run's command, machine and versions added to its ``meta``."""
    json_path = out.with_suffix(".json")
    state: dict[str, Any] = json.loads(json_path.read_text()) if json_path.is_file() else {}
    meta = state.setdefault("meta", {"commands": []})
    if command_line() not in meta["commands"]:
        meta["commands"].append(command_line())
    meta.update(machine=machine(), versions=versions())
    return state, json_path


def timestamp() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def footer(
    machine_info: dict[str, Any], version_info: dict[str, str], notes: list[str]
) -> list[str]:
    """Markdown lines closing a results file: machine, load at the start, versions, notes."""
    load = machine_info.get("load_average")
    started = f"; 1-min load average at the start {load[0]:.1f}" if load else ""
    return [
        "",
        f"Machine: {machine_info['cpu_model']}, nproc {machine_info['nproc']} "
        f"(usable {machine_info['usable_cpus']}), {machine_info['platform']}{started}.",
        "",
        "Versions: " + ", ".join(f"{k} {version_info[k]}" for k in sorted(version_info)) + ".",
        "",
        *[f"- {note}" for note in notes],
        "",
    ]


def draw_few(y: np.ndarray, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``k`` labelled songs of each class that has more than ``k``, and the rest (scored).

    Returns
    -------
    chosen, rest : np.ndarray
        Indices into ``y``: the drawn songs, and every other song.
    """
    chosen = np.concatenate(
        [
            rng.choice(np.flatnonzero(y == c), k, replace=False)
            for c in np.unique(y)
            if (y == c).sum() > k
        ]
    )
    return chosen, np.setdiff1d(np.arange(len(y)), chosen)
