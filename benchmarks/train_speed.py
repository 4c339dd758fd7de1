"""Training throughput and peak memory of every registered model through merkit's Trainer.

Each measurement runs in a fresh worker process (so peak RSS is per model and the allocator
starts clean), once with the default glibc malloc and once with ``GLIBC_TUNABLES=
glibc.malloc.hugetlb=1`` (transparent huge pages; glibc reads it only at process start). The
CNN's trainer variant also runs with :data:`merkit.training.HEAP_REUSE_TUNABLES` added.

Variants:

- ``trainer``: :class:`merkit.training.Trainer` as every method uses it (channels-last for 2-D
  conv models, float16 numpy input converted to float32 per batch, bf16 autocast where the CPU
  computes bf16 in hardware), random inputs and labels, one batch per epoch: epoch 1 is the
  warm-up, the median of the next ``--steps`` is reported.
- ``trainer-fp32``: the same with ``mixed_precision=False`` (every case; float32 throughout).
- ``trainer-nchw``: the same with ``channels_last=False`` (the CNN only, ablation).
- ``trainer+deterministic``: the trainer with ``torch.use_deterministic_algorithms(True)``
  (the CNN); ``trainer+flush-denormal`` (``torch.set_flush_denormal(True)``) with
  ``--ablations all``.
- ``plain``: the baseline CNN as a straightforward eager NCHW ``nn.Sequential`` of the same
  layers, trained by a minimal loop on a prebuilt float32 tensor (the reference point).

Usage::

    python benchmarks/train_speed.py [--steps 2] [--cases cnn,crnn] [--device cpu]

Writes ``benchmarks/results/train_speed.json`` and ``.md`` (unless ``--no-write``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

from merkit.training import HEAP_REUSE_TUNABLES, MALLOC_TUNABLE

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"

# (case name, registry model, batch size): the paper's batch sizes (Table 1; CRNN: the paper's 50).
CASES: tuple[tuple[str, str, int], ...] = (
    ("cnn", "cnn", 150),
    ("cnn-gru", "cnn-gru", 150),
    ("crnn", "crnn", 50),
    ("dnn", "dnn", 300),
    ("hybrid", "hybrid", 300),
    ("shortchunk", "shortchunk", 50),
    ("samplecnn", "samplecnn", 50),
)
CNN_ABLATIONS: tuple[str, ...] = (
    "trainer-nchw",
    "trainer+flush-denormal",
    "trainer+deterministic",
    "plain",
)
DEFAULT_ABLATIONS: tuple[str, ...] = ("trainer-nchw", "trainer+deterministic", "plain")
"""Run by default; ``--ablations all`` adds flush-denormal (measured: no gain)."""
INPUT_SHAPES: dict[str, tuple[int, ...]] = {
    "logmel": (942, 128),
    "logmel_chunks": (116, 128),
    "waveform_chunks": (59049,),
    "features": (1704,),
}
ENVIRONMENTS: dict[str, dict[str, str]] = {
    "default-malloc": {},
    "hugetlb-malloc": {"GLIBC_TUNABLES": MALLOC_TUNABLE},
    # Large blocks from the heap and never trimmed: activations reuse already-mapped pages.
    "hugetlb+heap-reuse": {"GLIBC_TUNABLES": f"{MALLOC_TUNABLE}:{HEAP_REUSE_TUNABLES}"},
}
MAIN_ENVIRONMENTS: tuple[str, ...] = ("default-malloc", "hugetlb-malloc")
"""Every case runs in these; the CNN's trainer and plain variants also in the heap-reuse one."""


# ---- worker --------------------------------------------------------------------------------


def plain_cnn() -> Any:
    """The DL baseline CNN (paper §3.1) as a plain NCHW ``nn.Sequential`` (same layer sizes)."""
    import torch
    from torch import nn

    class SamePad(nn.Module):
        """TF 'same' max-pool padding: -inf so padding never wins the max."""

        def __init__(self, pads: tuple[int, int, int, int]) -> None:
            super().__init__()
            self.pads = pads

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return nn.functional.pad(x, self.pads, value=float("-inf"))

    def block(c_in: int, pool: tuple[int, int], pads: tuple[int, int, int, int], last: bool):
        layers: list[nn.Module] = [nn.Conv2d(c_in, 16, 5), nn.ReLU(), SamePad(pads)]
        layers.append(nn.MaxPool2d(pool))
        if not last:
            layers += [nn.BatchNorm2d(16, eps=1e-3, momentum=0.01), nn.Dropout(0.1)]
        return layers

    # F.pad order: (mel left, mel right, time top, time bottom); Keras' 'same' pool sizes.
    return nn.Sequential(
        *block(1, (2, 2), (0, 0, 0, 0), False),
        *block(16, (2, 2), (0, 0, 0, 1), False),
        *block(16, (3, 2), (0, 1, 1, 1), False),
        *block(16, (3, 2), (0, 1, 1, 1), True),
        nn.Flatten(),
        nn.Dropout(0.4),
        nn.Linear(2000, 300),
        nn.ReLU(),
        nn.Linear(300, 4),
    )


def _rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def run_worker(case: str, variant: str, steps: int, device_name: str) -> dict[str, Any]:
    """Time ``steps`` training steps of one case/variant in this process."""
    import numpy as np
    import torch

    from merkit.models import MODELS, build_model, count_parameters
    from merkit.training import (
        TrainConfig,
        Trainer,
        cpu_has_native_bf16,
        malloc_tuning_active,
        resolve_device,
    )

    model_name, batch = {name: (model, bs) for name, model, bs in CASES}[case]
    device = resolve_device(device_name)
    if variant == "trainer+flush-denormal":
        torch.set_flush_denormal(True)
    if variant == "trainer+deterministic":
        torch.use_deterministic_algorithms(True, warn_only=True)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    tracemalloc.start()
    names = MODELS[model_name].input_names
    inputs = tuple(
        rng.normal(-20.0, 10.0, size=(batch, *INPUT_SHAPES[name])).astype(
            np.float16 if name.startswith("logmel") else np.float32
        )
        for name in names
    )
    labels = rng.integers(0, 4, size=batch)
    seconds: list[float]
    if variant == "plain":
        model = plain_cnn().to(device)
        x = torch.from_numpy(inputs[0].astype(np.float32)).unsqueeze(1).to(device)
        y = torch.from_numpy(labels).to(device)
        optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
        rss_setup = _rss_mb()
        precision = "fp32"
        seconds, cpu_seconds = [], []
        model.train()
        for _ in range(steps + 1):
            start, cpu_start = time.perf_counter(), time.process_time()
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()
            loss.item()  # synchronise (CUDA)
            seconds.append(time.perf_counter() - start)
            cpu_seconds.append(time.process_time() - cpu_start)
    else:
        model = build_model(model_name)
        config = TrainConfig(
            epochs=steps + 1,
            batch_size=batch,
            optimizer="sgd",
            lr=1e-3,
            stop_train_accuracy=None,
            device=device_name,
            channels_last=variant != "trainer-nchw",
            mixed_precision=variant != "trainer-fp32",
        )
        native = device.type == "cuda" or cpu_has_native_bf16()
        precision = "bf16" if config.mixed_precision and native else "fp32"

        rss_setup = _rss_mb()
        cpu_marks = [time.process_time()]
        history = Trainer(config).fit(
            model, inputs, labels, on_epoch_end=lambda _: cpu_marks.append(time.process_time())
        )
        seconds = history.epoch_seconds
        cpu_seconds = [b - a for a, b in itertools.pairwise(cpu_marks)]
    _, numpy_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    timed = seconds[1:]
    median = statistics.median(timed)
    result: dict[str, Any] = {
        "case": case,
        "variant": variant,
        "model": model_name,
        "batch_size": batch,
        "device": str(device),
        "precision": precision,
        "parameters": count_parameters(model),
        "hugetlb_malloc_active": malloc_tuning_active(),
        "warmup_s": round(seconds[0], 3),
        "step_s": [round(s, 3) for s in timed],
        "median_step_s": round(median, 4),
        "samples_per_s": round(batch / median, 2),
        "median_step_cpu_s": round(statistics.median(cpu_seconds[1:]), 4),
        "rss_after_setup_mb": round(rss_setup, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "numpy_traced_peak_mb": round(numpy_peak / 2**20, 1),
        "torch_threads": torch.get_num_threads(),
    }
    if device.type == "cuda":
        result["cuda_peak_allocated_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return result


# ---- orchestrator --------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    """Machine description for the results file."""
    import torch

    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "torch": torch.__version__,
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "python": platform.python_version(),
        "libc": " ".join(platform.libc_ver()),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def environments_for(case: str, variant: str, requested: list[str]) -> list[str]:
    """Which malloc environments a case/variant runs in (keeps the total under ~10 min)."""
    if variant not in ("trainer", "plain"):
        wanted = ["hugetlb-malloc"]  # ablations: against the trainer in its recommended env
    elif case == "cnn" and variant == "trainer":
        wanted = list(ENVIRONMENTS)
    else:
        wanted = list(MAIN_ENVIRONMENTS)
    return [name for name in requested if name in wanted]


def spawn(case: str, variant: str, env_name: str, steps: int, device: str) -> dict[str, Any]:
    """Run one worker process under one malloc environment; return its result."""
    env = dict(os.environ)
    env.pop("GLIBC_TUNABLES", None)
    env.update(ENVIRONMENTS[env_name])
    command = [
        sys.executable,
        __file__,
        "--worker",
        f"{case}:{variant}",
        "--steps",
        str(steps),
        "--device",
        device,
    ]
    load_before = os.getloadavg()[0]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return {
            "case": case,
            "variant": variant,
            "environment": env_name,
            "error": done.stderr.strip().splitlines()[-1:],
        }
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["environment"] = env_name
    result["load_avg_1min_before"] = round(load_before, 2)
    result["load_avg_1min_after"] = round(os.getloadavg()[0], 2)
    return result


def speedups(results: list[dict[str, Any]]) -> dict[str, float]:
    """Speed-ups of the CNN trainer paths over the plain eager CNN with the default malloc."""
    by_key = {
        (r["case"], r["variant"], r["environment"]): r for r in results if "samples_per_s" in r
    }
    plain = by_key.get(("cnn", "plain", "default-malloc"))
    if plain is None:
        return {}
    out = {}
    for (case, variant, env), row in by_key.items():
        if case == "cnn" and (variant, env) != ("plain", "default-malloc"):
            ratio = row["samples_per_s"] / plain["samples_per_s"]
            out[f"{variant} / {env}"] = round(ratio, 2)
    return out


def write_markdown(path: Path, payload: dict[str, Any]) -> None:
    """The short human-readable table next to the JSON."""
    m = payload["machine"]
    lines = [
        "# Training speed (merkit Trainer)",
        "",
        f"Command: `{payload['command']}`  ",
        f"Date: {payload['date']}  ",
        f"Machine: {m['nproc']} cores, {m['cpu']} ({m['torch_cpu_capability']}), "
        f"torch {m['torch']}, Python {m['python']}, {m['libc']}, CUDA: {m['cuda']}  ",
        f"Timed steps per run: {payload['steps']} after 1 warm-up step (median reported); "
        "every run is a fresh process; random inputs of the real shapes.",
        "",
        "| case | variant | precision | batch | malloc | samples/s | median step s (wall) | "
        "median step CPU s | peak RSS MB | load before/after |",
        "| --- | --- | --- | ---: | --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in payload["results"]:
        if "error" in r:
            lines.append(
                f"| {r['case']} | {r['variant']} | | | {r['environment']} | error: "
                f"{' '.join(r['error'])} | | | | |"
            )
            continue
        lines.append(
            f"| {r['case']} | {r['variant']} | {r.get('precision', 'fp32')} | "
            f"{r['batch_size']} | {r['environment']} | "
            f"{r['samples_per_s']} | {r['median_step_s']} | {r['median_step_cpu_s']} | "
            f"{r['peak_rss_mb']} | "
            f"{r['load_avg_1min_before']}/{r['load_avg_1min_after']} |"
        )
    if payload["speedup_vs_plain_cnn"]:
        lines += ["", "Speed-up of the CNN over the plain eager NCHW CNN (default malloc):", ""]
        lines += [f"- {k}: {v}×" for k, v in payload["speedup_vs_plain_cnn"].items()]
    lines += [
        "",
        "Notes: `samples/s` = batch / median wall time of a step; `CPU s` is the process's "
        "CPU time per step (both threads, kernel time included). The machine is shared with "
        "other jobs (see the load averages), so small differences are noise. Channels-last "
        "and bf16 autocast (on CPUs with AMX/AVX512-BF16, else float32) are the trainer's "
        "defaults; huge-page malloc is what the CLI sets "
        "(`ensure_malloc_tuning()`); heap reuse is opt-in "
        "(`ensure_malloc_tuning(reuse_heap=True)`) because of its higher peak RSS.",
    ]
    path.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--steps", type=int, default=2, help="timed steps after one warm-up")
    parser.add_argument("--cases", default=",".join(name for name, _, _ in CASES))
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument(
        "--environments",
        default=",".join(ENVIRONMENTS),
        help="malloc environments to run (heap-reuse only for the CNN trainer/plain variants)",
    )
    parser.add_argument(
        "--ablations",
        choices=("default", "all", "none"),
        default="default",
        help="CNN ablation variants to run",
    )
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        case, variant = args.worker.split(":", 1)
        print(json.dumps(run_worker(case, variant, args.steps, args.device)))
        return

    from merkit.models import MODELS

    known = {name for name, model, _ in CASES if model in MODELS}
    cases = [name for name in args.cases.split(",") if name in known]
    environments = args.environments.split(",")
    started = time.perf_counter()
    results: list[dict[str, Any]] = []
    for case in cases:
        variants = ["trainer"]
        if case == "cnn" and args.ablations != "none":
            variants += list(CNN_ABLATIONS if args.ablations == "all" else DEFAULT_ABLATIONS)
        if args.ablations != "none":
            variants.append("trainer-fp32")
        for variant in variants:
            # environments interleaved per variant, so load drift hits them alike
            for env_name in environments_for(case, variant, environments):
                result = spawn(case, variant, env_name, args.steps, args.device)
                results.append(result)
                print(json.dumps(result), flush=True)
    payload = {
        "command": "python " + " ".join(shlex.quote(a) for a in sys.argv),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "steps": args.steps,
        "total_seconds": round(time.perf_counter() - started, 1),
        "results": results,
        "speedup_vs_plain_cnn": speedups(results),
    }
    print(json.dumps(payload["speedup_vs_plain_cnn"], indent=2))
    if not args.no_write:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "train_speed.json").write_text(json.dumps(payload, indent=2) + "\n")
        write_markdown(RESULTS / "train_speed.md", payload)


if __name__ == "__main__":
    main()
