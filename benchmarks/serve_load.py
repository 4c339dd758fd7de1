"""A bounded load test of ``merkit serve`` on 127.0.0.1: throughput, latency, errors, peak RSS.

Starts ``merkit serve`` in a subprocess on a free localhost port (nothing else is contacted),
then for each concurrency level sends ``--requests`` uploads of one generated clip from that
many client threads, and records:

- throughput (requests/s and seconds of audio per second), p50/p95/max latency per request;
- errors: any response other than 200, or a failed connection (must be 0; the script exits 1
  otherwise);
- peak RSS of the server (all its processes summed, sampled every 0.1 s from ``/proc``).

The clip is ``--clip-seconds`` of a generated chord with a tremolo and a little noise, written as
a 44.1 kHz mono MP3 (what a music app would upload), so decoding and resampling are measured.

Usage::

    python benchmarks/serve_load.py [--requests 200] [--concurrency 1,4,8] [--workers 1]
                                    [--max-concurrent 2] [--model DIR]

Writes ``benchmarks/results/serve_load.md`` (``--out`` to change, ``--no-write`` not to).
"""

from __future__ import annotations

import argparse
import io
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import soundfile as sf

from _common import VERSIONED, command_line, footer, machine, timestamp, versions

HERE = Path(__file__).resolve().parent
SR = 44_100


def make_clip(seconds: float) -> bytes:
    """A chord (A3, C#4, E4) with a 2 Hz tremolo and faint noise, as MP3 bytes."""
    t = np.arange(int(SR * seconds)) / SR
    chord = sum(np.sin(2 * np.pi * f * t) for f in (220.0, 277.18, 329.63)) / 3
    y = 0.4 * chord * (0.6 + 0.4 * np.sin(2 * np.pi * 2 * t))
    y += 0.01 * np.random.default_rng(0).standard_normal(t.size)
    buffer = io.BytesIO()
    sf.write(buffer, y.astype(np.float32), SR, format="MP3")
    return buffer.getvalue()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ---------------------------------------------------------------------------------------------
# Server memory


def _ppid(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return int(handle.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def _rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


def tree_rss(root: int) -> int:
    """Resident memory of ``root`` and all its descendants, in bytes."""
    parents = {int(p): _ppid(int(p)) for p in os.listdir("/proc") if p.isdigit()}
    members = {root}
    grew = True
    while grew:
        found = {pid for pid, parent in parents.items() if parent in members} - members
        members |= found
        grew = bool(found)
    return sum(_rss_bytes(pid) for pid in members)


class PeakRss:
    """Samples :func:`tree_rss` of a process every ``interval`` s in a thread; ``peak`` so far."""

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        self.pid, self.interval, self.peak = pid, interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, tree_rss(self.pid))
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# ---------------------------------------------------------------------------------------------
# Load


def one_request(client: httpx.Client, url: str, data: bytes) -> tuple[float, int | str]:
    start = time.perf_counter()
    try:
        response = client.post(url, files={"file": ("clip.mp3", data, "audio/mpeg")})
        outcome: int | str = response.status_code
    except httpx.HTTPError as exc:
        outcome = type(exc).__name__
    return time.perf_counter() - start, outcome


def run_level(base: str, data: bytes, requests: int, concurrency: int) -> dict[str, Any]:
    """``requests`` uploads from ``concurrency`` threads (each its own connection)."""
    local = threading.local()

    def task(_: int) -> tuple[float, int | str]:
        if not hasattr(local, "client"):
            local.client = httpx.Client(timeout=600)
        return one_request(local.client, f"{base}/v1/predict", data)

    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(task, range(requests)))
    wall = time.perf_counter() - start
    latencies = sorted(lat for lat, _ in results)
    errors = [outcome for _, outcome in results if outcome != 200]
    q = statistics.quantiles(latencies, n=100, method="inclusive")
    return {
        "concurrency": concurrency,
        "requests": requests,
        "wall_s": wall,
        "throughput": requests / wall,
        "p50_s": statistics.median(latencies),
        "p95_s": q[94],
        "max_s": latencies[-1],
        "errors": len(errors),
        "error_kinds": sorted({str(e) for e in errors}),
    }


def start_server(args: argparse.Namespace, port: int, log: Path) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "merkit", "serve", "--port", str(port), "--log-level",
               "warning", "--workers", str(args.workers), "--max-concurrent",
               str(args.max_concurrent)]  # fmt: skip
    if args.model:
        command += ["--model", str(args.model)]
    with log.open("wb") as out:
        return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)


def wait_healthy(base: str, process: subprocess.Popen[bytes], log: Path) -> float:
    start = time.perf_counter()
    while True:
        if process.poll() is not None:
            sys.exit(f"merkit serve exited ({process.returncode}):\n{log.read_text()}")
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return time.perf_counter() - start
        except httpx.HTTPError:
            pass
        if time.perf_counter() - start > 600:
            sys.exit(f"merkit serve did not come up in 600 s:\n{log.read_text()}")
        time.sleep(0.25)


def report(args: argparse.Namespace, rows: list[dict[str, Any]], info: dict[str, Any]) -> str:
    lines = [
        "# merkit serve: load test on 127.0.0.1",
        "",
        f"Command: `{info['command']}` ({info['when']}).",
        "",
        f"Server: `merkit serve --workers {args.workers} --max-concurrent {args.max_concurrent}`"
        f", model `{info['model']}`; ready {info['startup_s']:.1f} s after start (model loading"
        " and warm-up). Each request uploads the same "
        f"{args.clip_seconds:g} s clip ({info['clip_kb']:.0f} kB MP3, 44.1 kHz mono); every "
        "client thread keeps its own connection.",
        "",
        "| concurrency | requests | wall (s) | requests/s | audio s/s | p50 (s) | p95 (s) "
        "| max (s) | errors | server peak RSS (MB) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['concurrency']} | {r['requests']} | {r['wall_s']:.1f} | "
            f"{r['throughput']:.2f} | {r['throughput'] * args.clip_seconds:.1f} | "
            f"{r['p50_s']:.2f} | {r['p95_s']:.2f} | {r['max_s']:.2f} | {r['errors']} | "
            f"{r['peak_rss'] / 1e6:.0f} |"
        )
    lines += [
        "",
        f"Server peak RSS over the whole run: {info['peak_rss'] / 1e6:.0f} MB "
        f"(idle after start-up: {info['idle_rss'] / 1e6:.0f} MB).",
    ]
    notes = [
        "Latency is the client's: upload, queueing behind the per-worker limit on concurrent "
        "predictions, decoding, features, the estimator and the JSON answer.",
        *args.note,
    ]
    return "\n".join(lines + footer(info["machine"], info["versions"], notes))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", default="1,4,8")
    parser.add_argument("--clip-seconds", type=float, default=30.0)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--max-concurrent", type=int, default=2)
    parser.add_argument("--model", type=Path)
    parser.add_argument("--note", action="append", default=[], help="A line for the notes")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "serve_load.md")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]

    info: dict[str, Any] = {
        "command": command_line(),
        "when": timestamp(),
        "machine": machine(),
        "versions": versions((*VERSIONED, "fastapi", "uvicorn", "starlette")),
        "model": args.model or "shipped default (svm-own)",
    }
    data = make_clip(args.clip_seconds)
    info["clip_kb"] = len(data) / 1e3
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = Path(os.environ.get("TMPDIR", "/tmp")) / f"serve_load_{port}.log"
    process = start_server(args, port, log)
    rows = []
    try:
        info["startup_s"] = wait_healthy(base, process, log)
        info["idle_rss"] = tree_rss(process.pid)
        with PeakRss(process.pid) as whole:
            for level in levels:
                with PeakRss(process.pid) as peak:
                    row = run_level(base, data, args.requests, level)
                row["peak_rss"] = peak.peak
                rows.append(row)
                print(
                    f"concurrency {level}: {row['throughput']:.2f} req/s, p50 {row['p50_s']:.2f}"
                    f" s, p95 {row['p95_s']:.2f} s, errors {row['errors']} "
                    f"{row['error_kinds'] or ''}, peak RSS {peak.peak / 1e6:.0f} MB",
                    flush=True,
                )
        info["peak_rss"] = whole.peak
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
    text = report(args, rows, info)
    if not args.no_write:
        args.out.write_text(text)
        print(f"written {args.out}")
    else:
        print(text)
    if any(r["errors"] for r in rows):
        sys.exit("errors: every request must succeed")


if __name__ == "__main__":
    main()
