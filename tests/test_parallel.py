"""merkit.core.parallel: results, order, errors, and no worker left behind."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from merkit.core.errors import MerkitError
from merkit.core.parallel import WorkerDied, imap, map_ordered, map_unordered, resolve_jobs


def square_after(item: tuple[int, float]) -> int:
    value, delay = item
    time.sleep(delay)
    return value * value


def fail_on_three(value: int) -> int:
    if value == 3:
        raise ValueError(f"bad item {value}")
    return value


def worker_pid(delay: float) -> int:
    time.sleep(delay)
    return os.getpid()


def die(value: int) -> int:
    os._exit(7)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"


def test_ordered_results_match_a_serial_run_even_when_late_items_finish_first() -> None:
    items = [(i, 0.3 if i == 0 else 0.0) for i in range(10)]  # item 0 finishes last
    assert list(map_ordered(square_after, items, 2, warm_numba=False)) == [i * i for i in range(10)]
    assert list(map_ordered(square_after, items, 1, warm_numba=False)) == [i * i for i in range(10)]


def test_unordered_yields_every_index_once_as_results_finish() -> None:
    items = [(i, 0.4 if i == 0 else 0.0) for i in range(6)]
    pairs = list(map_unordered(square_after, items, 2, warm_numba=False))
    assert sorted(pairs) == [(i, i * i) for i in range(6)]
    assert pairs[-1] == (0, 0)  # the slow first item came last


def test_an_error_in_a_worker_is_raised_with_its_type_and_message() -> None:
    with pytest.raises(ValueError, match="bad item 3"):
        list(map_ordered(fail_on_three, range(8), 2, warm_numba=False))


def test_a_worker_that_dies_gives_a_merkit_error() -> None:
    with pytest.raises(MerkitError, match="worker process died"):
        list(map_ordered(die, range(4), 2, warm_numba=False))


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads /proc")
def test_abandoning_the_iterator_stops_the_workers_at_once() -> None:
    results = imap(worker_pid, [0.0] + [5.0] * 20, 2, warm_numba=False)
    _, first = next(results)
    pids = {first}
    started = time.monotonic()
    results.close()  # what a Ctrl-C or an exception in the caller's loop does
    assert time.monotonic() - started < 5.0
    assert not _alive(first)
    assert all(not _alive(pid) for pid in pids)


def test_jobs_are_validated() -> None:
    assert resolve_jobs(-1) == (os.cpu_count() or 1)
    assert resolve_jobs(3) == 3
    for bad in (0, -2):
        with pytest.raises(MerkitError, match="n_jobs"):
            resolve_jobs(bad)


CTRL_C_SCRIPT = """
import os, signal, time
# As in a terminal: a shell that started this run in the background (`cmd &`) leaves SIGINT
# ignored, and Python keeps an ignored SIGINT ignored; a user's Ctrl-C is never ignored.
signal.signal(signal.SIGINT, signal.default_int_handler)
from merkit.core.parallel import map_ordered
for i, _ in enumerate(map_ordered(time.sleep, [0.1] + [30.0] * 10, 2, warm_numba=False)):
    print("started", flush=True)
"""


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads /proc")
def test_ctrl_c_cancels_the_work_and_leaves_no_worker(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys

    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[1] / "src")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [src, env.get("PYTHONPATH")]))
    parent = subprocess.Popen(
        [sys.executable, "-c", CTRL_C_SCRIPT],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, like a terminal's foreground job
    )
    try:
        assert parent.stdout is not None and parent.stdout.readline().strip() == "started"
        workers = [
            int(p.name)
            for p in Path("/proc").iterdir()
            if p.name.isdigit()
            and _ppid(p) == parent.pid
            and "spawn_main" in (p / "cmdline").read_bytes().decode(errors="replace")
        ]
        assert len(workers) == 2
        started = time.monotonic()
        os.killpg(parent.pid, signal.SIGINT)  # Ctrl-C reaches the whole group
        _, stderr = parent.communicate(timeout=10)
        assert time.monotonic() - started < 6.0
        assert "KeyboardInterrupt" in stderr
        assert stderr.count("Traceback") == 1  # the parent's only, none from the workers
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline and any(_alive(w) for w in workers):
            time.sleep(0.1)
        assert not [w for w in workers if _alive(w)]
    finally:
        if parent.poll() is None:
            parent.kill()


def _ppid(proc: Path) -> int:
    try:
        return int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return -1


def pid_and_square(item: tuple[int, float]) -> tuple[int, int]:
    value, delay = item
    time.sleep(delay)
    return os.getpid(), value * value


def test_here_shares_the_items_with_n_minus_one_workers_in_input_order() -> None:
    """``here=``: this process takes items too, beside ``n_jobs - 1`` workers; the results are
    the serial ones, in order (ordered) or each index once (unordered)."""
    items = [(i, 0.05) for i in range(12)]
    got = list(map_ordered(pid_and_square, items, 2, warm_numba=False, here=pid_and_square))
    assert [square for _, square in got] == [i * i for i in range(12)]
    pids = {pid for pid, _ in got}
    assert os.getpid() in pids and len(pids) == 2  # this process and one worker
    pairs = list(map_unordered(pid_and_square, items, 3, warm_numba=False, here=pid_and_square))
    assert sorted((i, square) for i, (_, square) in pairs) == [(i, i * i) for i in range(12)]
    assert len({pid for _, (pid, _) in pairs}) == 3


def test_here_raises_a_dead_workers_error() -> None:
    with pytest.raises(MerkitError, match="worker process died"):
        list(map_ordered(die, range(4), 2, warm_numba=False, here=lambda value: value))


def die_once_on_zero(item: tuple[int, str]) -> int:
    """Square ``value``; the first call on item 0 kills its worker. Every call is logged."""
    value, folder = item
    log = Path(folder)
    (log / f"call-{value}-{os.getpid()}-{time.monotonic_ns()}").touch()
    if value == 0 and not (log / "died").exists():
        (log / "died").touch()
        os._exit(9)
    time.sleep(0.02)
    return value * value


def calls(folder: Path) -> list[int]:
    return sorted(int(p.name.split("-")[1]) for p in folder.glob("call-*"))


def square_here(item: tuple[int, str]) -> int:
    """``die_once_on_zero``'s answer, computed in this process (logged, never dies)."""
    value, folder = item
    (Path(folder) / f"call-{value}-here-{time.monotonic_ns()}").touch()
    return value * value


@pytest.mark.parametrize("here", [None, square_here], ids=["workers", "here"])
def test_a_killed_worker_costs_its_item_one_rerun_and_keeps_finished_results(
    tmp_path: Path, here: Any
) -> None:
    items = [(i, str(tmp_path)) for i in range(8)]
    got = list(map_ordered(die_once_on_zero, items, 2, warm_numba=False, retries=1, here=here))
    assert got == [i * i for i in range(8)]
    ran = calls(tmp_path)
    assert ran.count(0) == 2  # the item the worker died on ran again, once
    assert len(ran) == len(items) + 1  # and nothing else: the other worker went on


def always_die(item: int) -> int:
    if item == 0:
        os._exit(9)
    return item


def test_an_item_that_always_kills_its_worker_is_named_or_given_its_on_death_result() -> None:
    with pytest.raises(WorkerDied, match=r"on item 0 \(2 time\(s\)\)") as died:
        list(map_ordered(always_die, range(5), 2, warm_numba=False, retries=1))
    assert died.value.index == 0
    got = list(
        map_ordered(always_die, range(5), 2, warm_numba=False, retries=1, on_death=lambda i: -1)
    )
    assert got == [-1, 1, 2, 3, 4]
