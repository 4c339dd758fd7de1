"""`merkit predict --jobs 2` and `--executor ray` give exactly the serial output, in input order."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from merkit.core.errors import ConfigError
from merkit.product import predict_executors
from merkit.product.predict import load_model
from product_helpers import tone, write_wav


@pytest.fixture(autouse=True)
def workers_for_few_files(monkeypatch: pytest.MonkeyPatch) -> None:
    """These folders are small: let ``--jobs 2`` start a worker for them anyway (by default a
    worker needs :data:`MIN_FILES_PER_PROCESS` files to be worth its start-up)."""
    monkeypatch.setattr(predict_executors, "MIN_FILES_PER_PROCESS", 1)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four short songs at two rates, one of them stereo, and a file that is not audio."""
    music = tmp_path_factory.mktemp("music")
    write_wav(music / "a.wav", tone(3.0, freq=220.0), 16_000)
    write_wav(music / "b.wav", tone(4.0, 22_050, freq=440.0), 22_050)
    write_wav(music / "c.flac", tone(2.5, freq=880.0), 16_000, subtype="PCM_16")
    (music / "d.mp3").write_text("not audio")
    write_wav(music / "e.wav", tone(5.0, freq=330.0), 16_000)
    return music


def _predict(app: Any, folder: Path, *options: str) -> tuple[int, list[dict]]:
    args = ["predict", str(folder), "--model", "fast", "--format", "json", "--quiet", "--segments"]
    result = CliRunner().invoke(app, [*args, *options])
    assert "Traceback" not in result.output, result.output
    return result.exit_code, json.loads(result.stdout)


def test_two_worker_processes_give_the_serial_output(app: Any, folder: Path) -> None:
    code, serial = _predict(app, folder)
    assert code == 1  # d.mp3 failed, the others were predicted
    by_name = {Path(i["path"]).name: i for i in serial}
    assert sorted(by_name) == ["a.wav", "b.wav", "c.flac", "d.mp3", "e.wav"]
    assert "error" in by_name["d.mp3"]  # found unreadable while listing, reported first
    assert all("quadrant" in i for name, i in by_name.items() if name != "d.mp3")
    assert _predict(app, folder, "--jobs", "2") == (code, serial)


def test_ray_gives_the_serial_output(app: Any, folder: Path) -> None:
    pytest.importorskip("ray")
    code, serial = _predict(app, folder)
    assert _predict(app, folder, "--executor", "ray", "--jobs", "2") == (code, serial)


def _busy_workers(marker: bytes) -> list[tuple[int, float]]:
    """(pid, user CPU s) of this test's descendant processes whose command line holds
    ``marker`` (Ray's ``ray::predict_task``, multiprocessing's ``spawn_main``)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker not in (entry / "cmdline").read_bytes():
                continue
            pid, ticks = int(entry.name), os.sysconf("SC_CLK_TCK")
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            user_s = int(fields[11]) / ticks
            while pid > 1:  # one of ours: this process is among its ancestors
                pid = int(
                    (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[1]
                )
                if pid == os.getpid():
                    found.append((int(entry.name), user_s))
                    break
        except (OSError, ValueError, IndexError):
            continue
    return found


@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="finds Ray's workers in /proc")
def test_a_killed_ray_worker_costs_one_retried_file(folder: Path, tmp_path: Path) -> None:
    """A worker killed while it predicts a file (the long one, or while loading the model): that
    file is run again, nothing else changes."""
    pytest.importorskip("ray")
    long = write_wav(tmp_path / "long.wav", tone(240.0, freq=262.0), 16_000)  # 16 windows
    paths = [folder / "a.wav", long, folder / "e.wav"]
    predictor = load_model("fast")
    serial = [o.model_dump() for o in predictor.predict_many(paths)]
    killed: list[int] = []

    def kill_the_busy_worker() -> None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not killed:
            for pid, user_s in _busy_workers(b"ray::predict_task"):
                if user_s > 2.0:  # past starting up: mid-file
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                    return
            time.sleep(0.1)

    watcher = threading.Thread(target=kill_the_busy_worker, daemon=True)
    watcher.start()
    got = [o.model_dump() for o in predictor.predict_many(paths, executor="ray", n_jobs=1)]
    watcher.join(5)
    assert killed, "no Ray worker was seen busy on a file"
    assert got == serial


@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="finds the workers in /proc")
def test_a_killed_jobs_worker_costs_one_retried_file(folder: Path, tmp_path: Path) -> None:
    """`--jobs 2`: the worker killed while it predicts a file (the long one, handed to it first,
    or while it loads the model) is started again and that file rerun; the output is the serial
    one."""
    long = write_wav(tmp_path / "long.wav", tone(240.0, freq=262.0), 16_000)  # 16 windows
    paths = [long, folder / "a.wav", folder / "e.wav", folder / "b.wav"]
    predictor = load_model("fast")
    serial = [o.model_dump() for o in predictor.predict_many(paths)]
    killed: list[int] = []

    def kill_the_busy_worker() -> None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not killed:
            for pid, user_s in _busy_workers(b"spawn_main"):
                if user_s > 2.0:  # past the imports: loading the model or mid-file
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                    return
            time.sleep(0.05)

    watcher = threading.Thread(target=kill_the_busy_worker, daemon=True)
    watcher.start()
    got = [o.model_dump() for o in predictor.predict_many(paths, n_jobs=2)]
    watcher.join(5)
    assert killed, "no worker was seen busy"
    assert got == serial


def test_a_small_folder_starts_no_worker_it_cannot_pay_for(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With fewer than ``MIN_FILES_PER_PROCESS`` files per process, ``--jobs`` processes is an
    upper bound: 2 files start no worker, 4 files at 2 a process start one."""
    started: list[int] = []

    def fake_map_ordered(fn: Any, tasks: list, jobs: int, **kwargs: Any) -> Any:
        started.append(jobs)
        return (kwargs["here"](t) for t in tasks)

    monkeypatch.setattr("merkit.core.parallel.map_ordered", fake_map_ordered)
    predictor = load_model("fast")
    two, four = (
        [folder / "a.wav", folder / "e.wav"],
        [folder / n for n in ("a.wav", "b.wav", "c.flac", "e.wav")],
    )
    serial = [o.model_dump() for o in predictor.predict_many(four)]
    monkeypatch.setattr(predict_executors, "MIN_FILES_PER_PROCESS", 2)
    assert [o.model_dump() for o in predictor.predict_many(two, n_jobs=2)] == serial[::3]
    assert started == []  # one process: no pool
    assert [o.model_dump() for o in predictor.predict_many(four, n_jobs=3)] == serial
    assert started == [2]  # 4 files, 2 a process: 2 processes of the 3 allowed
    assert predict_executors.process_count(-1, 2) == 1
    assert predict_executors.process_count(8, 9) == 4


def test_the_cli_says_when_jobs_starts_fewer_processes(
    app: Any, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(predict_executors, "MIN_FILES_PER_PROCESS", 16)  # as shipped
    args = ["predict", str(folder), "--model", "fast", "--format", "json", "--jobs", "2"]
    result = CliRunner().invoke(app, args)
    assert "note: 5 file(s): 1 process(es), not 2" in result.stderr
    assert "not 2" not in CliRunner().invoke(app, [*args, "--quiet"]).stderr


def test_unknown_executor_is_refused_before_any_work(app: Any, folder: Path) -> None:
    result = CliRunner().invoke(app, ["predict", str(folder), "--executor", "dask"])
    assert result.exit_code != 0
    assert "--executor must be processes or ray" in result.output
    with pytest.raises(ConfigError, match="--ray-address applies to --executor ray"):
        list(load_model("fast").predict_many([folder / "a.wav"], ray_address="auto"))


def test_every_prediction_computes_with_one_blas_thread_and_restores_the_pools(
    folder: Path,
) -> None:
    """A single ``predict`` and a batch run use the same BLAS thread count (it changes the
    rounding), and leave the process's pools as they found them."""
    from threadpoolctl import threadpool_info

    from merkit.core.threads import BLAS_THREADS, one_blas_thread

    before = [i["num_threads"] for i in threadpool_info()]
    seen: list[int] = []

    @one_blas_thread
    def sizes() -> None:
        seen.extend(i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas")

    sizes()
    assert seen and set(seen) == {BLAS_THREADS}
    predictor = load_model("fast")
    path = folder / "e.wav"
    one = predictor.predict(path, segments=True).model_dump()
    assert [o.model_dump() for o in predictor.predict_many([path], segments=True)] == [one]
    assert [i["num_threads"] for i in threadpool_info()] == before
