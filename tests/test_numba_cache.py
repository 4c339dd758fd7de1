"""librosa's numba cache under parallel extraction: no race, corruption repaired, no orphans.

Every test runs merkit in subprocesses with its own ``NUMBA_CACHE_DIR``: a corrupt numba cache
crashes the process that loads it with a segmentation fault, which must never be this one.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest

EXTRACT = """
import sys
import numpy as np
from merkit.representations.cache import NullCache
from merkit.datasets.synthetic import load_synthetic
from merkit.representations.extract import compute

n_jobs, per_quadrant, seconds = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
dataset = load_synthetic(n_per_quadrant=per_quadrant, duration=seconds)
# classic-aug (pitch shift, time stretch) runs librosa's numba code; own features no longer do
X = compute(dataset, "classic-aug", cache=NullCache(), n_jobs=n_jobs, progress=False, seed=3)
assert X.shape[0] == 4 * per_quadrant and np.isfinite(X).all(), X.shape
print("extracted", X.shape)
"""


def _env(numba_dir: Path, merkit_cache: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["NUMBA_CACHE_DIR"] = str(numba_dir)
    env["MERKIT_CACHE"] = str(merkit_cache)
    src = str(Path(__file__).resolve().parents[1] / "src")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [src, env.get("PYTHONPATH")]))
    return env


def _extract(
    env: dict[str, str], n_jobs: int, per_quadrant: int = 2, seconds: float = 3.0
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", EXTRACT, str(n_jobs), str(per_quadrant), str(seconds)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def _describe(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit code {result.returncode}; stderr tail:\n{result.stderr[-2000:]}"


@pytest.fixture(scope="module")
def warm_numba_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A numba cache filled by one single-process extraction (copied by the tests that need one)."""
    root = tmp_path_factory.mktemp("warm-numba")
    result = _extract(_env(root / "numba", root / "merkit"), n_jobs=1)
    assert result.returncode == 0, _describe(result)
    return root / "numba"


@pytest.mark.slow
def test_two_workers_on_an_empty_cache_then_one_process_three_times(tmp_path: Path) -> None:
    # The issue-8 crash: two workers compiling librosa's functions at once mixed the cache files,
    # and every later process that loaded them died with SIGSEGV.
    for attempt in range(3):
        env = _env(tmp_path / f"numba-{attempt}", tmp_path / f"merkit-{attempt}")
        parallel = _extract(env, n_jobs=2)
        assert parallel.returncode == 0, f"attempt {attempt}, 2 workers: {_describe(parallel)}"
        single = _extract(env, n_jobs=1)
        assert single.returncode == 0, f"attempt {attempt}, 1 process: {_describe(single)}"
        assert "extracted (8," in single.stdout


def _mix_overloads(folder: Path) -> int:
    """Rotate the code files of every multi-signature function: each index entry now points at
    another signature's machine code, as after two processes wrote one function's cache."""
    groups: dict[tuple[str, Path], list[Path]] = defaultdict(list)
    for path in folder.rglob("*.nbc"):
        groups[re.sub(r"\.\d+\.nbc$", "", path.name), path.parent].append(path)
    mixed = 0
    for files in groups.values():
        if len(files) < 2:
            continue
        files.sort()
        data = [f.read_bytes() for f in files]
        for path, content in zip(files, data[1:] + data[:1], strict=True):
            path.write_bytes(content)
            mixed += 1
    return mixed


@pytest.mark.slow
def test_a_corrupt_cache_is_detected_and_rebuilt_with_one_warning(
    tmp_path: Path, warm_numba_dir: Path
) -> None:
    numba_dir = tmp_path / "numba"
    shutil.copytree(warm_numba_dir, numba_dir)
    assert _mix_overloads(numba_dir) >= 10
    env = _env(numba_dir, tmp_path / "merkit")
    # Precondition: loading this cache really crashes librosa (here in a throw-away process).
    crash = subprocess.run(
        [sys.executable, "-c", "from merkit.core.numba_cache import warm_librosa; warm_librosa()"],
        env=env,
        capture_output=True,
        timeout=600,
        check=False,
    )
    assert crash.returncode != 0
    repaired = _extract(env, n_jobs=1)
    assert repaired.returncode == 0, _describe(repaired)
    warnings = [line for line in repaired.stderr.splitlines() if "numba cache" in line]
    assert len(warnings) == 1, repaired.stderr
    assert "was corrupt" in warnings[0] and str(numba_dir) in warnings[0]
    again = _extract(env, n_jobs=2)
    assert again.returncode == 0, _describe(again)
    assert "numba cache" not in again.stderr


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces, so split after its closing bracket.
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_kill_9_of_the_parent_leaves_no_worker_alive(tmp_path: Path, warm_numba_dir: Path) -> None:
    numba_dir = tmp_path / "numba"
    shutil.copytree(warm_numba_dir, numba_dir)
    env = _env(numba_dir, tmp_path / "merkit")
    parent = subprocess.Popen(
        [sys.executable, "-c", EXTRACT, "2", "40", "10"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and parent.poll() is None:
            workers = _children(parent.pid)
            if len(workers) >= 2:
                break
            time.sleep(0.2)
        assert len(workers) >= 2, "the extraction never started two workers"
        time.sleep(2.0)  # let the workers get into the songs
        workers = _children(parent.pid)
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(10)
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline and any(_alive(w) for w in workers):
            time.sleep(0.1)
        survivors = [w for w in workers if _alive(w)]
        assert not survivors, f"worker processes {survivors} outlived their parent"
    finally:
        if parent.poll() is None:
            parent.kill()
        for pid in workers:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
