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

writes ``benchmarks/results/train_speed_models.json`` and ``.md`` (unless ``--no-write``).

Against Keras (``--keras``): the paper's Keras models (``benchmarks/keras_reference.py``, same
layer tables) run in a throwaway virtual environment that this script creates with pip
(``--keras-env``, TensorFlow is never a merkit dependency), interleaved round by round with
merkit's default trainer (bf16 autocast, channels-last, the malloc tunables the CLI sets), each
run in a fresh process. Optionally the same trainer from another source tree
(``--compare-src``, or ``--compare-rev`` = a git revision of this repository that the script
unpacks with ``git archive``) runs in the same rounds. A big matmul measured
at the start and end gives the machine's bf16 and float32 peaks; each step's FLOPs are
counted from the model's layers (forward, plus weight and input gradients). Writes
``benchmarks/results/train_speed.json`` and ``.md``::

    python benchmarks/train_speed.py --keras --rounds 2 --compare-rev b038f2b

``b038f2b`` is "today's default" of issue 17 (bf16 autocast + huge-page malloc, before the
exact rewrites of the conv blocks).
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import math
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

from merkit.training import HEAP_REUSE_TUNABLES, MALLOC_TUNABLE, malloc_reexec_environment

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
CLI_TUNABLES: str = (malloc_reexec_environment({}) or {}).get("GLIBC_TUNABLES", "")
"""What the ``merkit`` command starts its training with (empty where unsupported)."""
ENVIRONMENTS["cli-default"] = {"GLIBC_TUNABLES": CLI_TUNABLES} if CLI_TUNABLES else {}
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


def step_gflop(model: Any, inputs: tuple[Any, ...], batch: int) -> float:
    """FLOPs (×1e9) of one training step, counted from the conv, dense and GRU layers.

    Forward multiply-adds per layer, counted with hooks on a 2-row forward pass and scaled to
    ``batch``; the backward pass adds the weight gradient (as many multiply-adds as the
    forward) and the input gradient (the same again) for every layer whose input needs one.
    One multiply-add = 2 FLOPs. Element-wise work (ReLU, pooling, BN, dropout) is not counted.
    """
    import torch
    from torch import nn

    macs = [0.0]

    def hook(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        x = args[0]
        if isinstance(module, (nn.Conv1d, nn.Conv2d)):
            per_out = module.in_channels // module.groups * math.prod(module.kernel_size)
            forward = output.numel() * per_out
        elif isinstance(module, nn.Linear):
            forward = output.numel() * module.in_features
        elif isinstance(module, nn.GRU):
            steps = x.shape[0] * x.shape[1]
            hidden = module.hidden_size
            forward, width = 0, module.input_size
            for _ in range(module.num_layers):
                forward += steps * 3 * hidden * (width + hidden)
                width = hidden
        else:
            return
        macs[0] += forward * (3 if x.requires_grad else 2)

    handles = [m.register_forward_hook(hook) for m in model.modules()]
    try:
        model.train()
        small = [torch.from_numpy(a[:2].astype("float32")) for a in inputs]
        model(*small)
    finally:
        for handle in handles:
            handle.remove()
    return 2 * macs[0] * batch / 2 / 1e9


def run_peak() -> dict[str, Any]:
    """Best of three 4096³ matmuls in bf16 and float32 (GFLOP/s, all torch threads)."""
    import torch

    out: dict[str, Any] = {"case": "matmul-peak", "torch_threads": torch.get_num_threads()}
    n = 4096
    for dtype in (torch.bfloat16, torch.float32):
        a = torch.randn(n, n).to(dtype)
        b = torch.randn(n, n).to(dtype)
        best = float("inf")
        for _ in range(4):
            start = time.perf_counter()
            torch.mm(a, b)
            best = min(best, time.perf_counter() - start)
        out[f"{str(dtype).split('.')[-1]}_gflops"] = round(2 * n**3 / best / 1e9, 1)
    return out


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
        gflop = step_gflop(model, inputs, batch)
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
    if variant != "plain":
        result["gflop_per_step"] = round(gflop, 2)
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


def spawn(
    case: str, variant: str, env_name: str, steps: int, device: str, src: str | None = None
) -> dict[str, Any]:
    """Run one worker process under one malloc environment; return its result.

    ``src`` runs merkit from another source tree (put first on ``PYTHONPATH``).
    """
    env = dict(os.environ)
    env.pop("GLIBC_TUNABLES", None)
    env.update(ENVIRONMENTS[env_name])
    env["MERKIT_NO_REEXEC"] = "1"
    if src is not None:
        env["PYTHONPATH"] = os.pathsep.join([src, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
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
    return _finish(json.loads(done.stdout.strip().splitlines()[-1]), env_name, load_before)


def _finish(result: dict[str, Any], env_name: str, load_before: float) -> dict[str, Any]:
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


# ---- against Keras -------------------------------------------------------------------------

KERAS_CASES: tuple[str, ...] = ("cnn", "crnn")
KERAS_SCRIPT = HERE / "keras_reference.py"
KERAS_REQUIREMENTS: str = "tensorflow-cpu==2.21.0 keras==3.15.1"


def ensure_keras_env(path: Path, requirements: str) -> Path:
    """A virtual environment at ``path`` with TensorFlow/Keras (created with pip if missing)."""
    python = path / "bin" / "python"
    probe = [str(python), "-c", "import keras, tensorflow"]
    if python.exists() and subprocess.run(probe, capture_output=True, check=False).returncode == 0:
        return python
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet", *requirements.split()]
    subprocess.run(pip, check=True)
    return python


def spawn_keras(python: Path, case: str, batch: int, steps: int, policy: str) -> dict[str, Any]:
    """One Keras reference run in a fresh process of the Keras environment."""
    command = [str(python), str(KERAS_SCRIPT), case, "--batch", str(batch), "--steps", str(steps)]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "GLIBC_TUNABLES")}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    load_before = os.getloadavg()[0]
    done = subprocess.run(
        [*command, "--policy", policy], env=env, capture_output=True, text=True, check=False
    )
    variant = f"keras-{policy}"
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-1:]
        return {"case": case, "variant": variant, "environment": "keras", "error": tail}
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result.update(case=case, variant=variant, batch_size=batch, precision=policy)
    return _finish(result, "keras", load_before)


def spawn_peak() -> dict[str, Any]:
    """The matmul peak in a fresh process."""
    load_before = os.getloadavg()[0]
    command = [sys.executable, __file__, "--worker", "peak:peak"]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return _finish(json.loads(done.stdout.strip().splitlines()[-1]), "default", load_before)


def keras_summary(
    results: list[dict[str, Any]], peaks: list[dict[str, Any]], gflop: dict[str, float]
) -> list[dict[str, Any]]:
    """Per case and variant: median samples/s over the rounds, ratio to Keras, GFLOP/s, % peak."""
    bf16_peak = max((p.get("bfloat16_gflops", 0.0) for p in peaks), default=0.0)
    fp32_peak = max((p.get("float32_gflops", 0.0) for p in peaks), default=0.0)
    rows = []
    for case in dict.fromkeys(r["case"] for r in results):
        runs = [r for r in results if r["case"] == case and "samples_per_s" in r]
        keras = [r for r in runs if r["variant"] == "keras-float32"]
        for label in dict.fromkeys(r["label"] for r in runs):
            mine = [r for r in runs if r["label"] == label]
            speed = statistics.median(r["samples_per_s"] for r in mine)
            ratios = [
                round(m["samples_per_s"] / k["samples_per_s"], 2)
                for m, k in zip(mine, keras, strict=False)
            ]
            cpu_ratios = [
                round(k["median_step_cpu_s"] / m["median_step_cpu_s"], 2)
                for m, k in zip(mine, keras, strict=False)
            ]
            gflops = gflop[case] / (mine[0]["batch_size"] / speed)
            rows.append(
                {
                    "case": case,
                    "label": label,
                    "batch_size": mine[0]["batch_size"],
                    "samples_per_s": round(speed, 2),
                    "ratio_to_keras_per_round": ratios,
                    "cpu_ratio_to_keras_per_round": cpu_ratios,
                    "gflop_per_step": gflop[case],
                    "gflops": round(gflops, 1),
                    "share_of_bf16_peak": round(gflops / bf16_peak, 3) if bf16_peak else None,
                    "share_of_fp32_peak": round(gflops / fp32_peak, 3) if fp32_peak else None,
                    "step_cpu_s": round(statistics.median(r["median_step_cpu_s"] for r in mine), 3),
                    "peak_rss_mb": max(r["peak_rss_mb"] for r in mine),
                    "loads": [
                        f"{r['load_avg_1min_before']}/{r['load_avg_1min_after']}" for r in mine
                    ],
                }
            )
    return rows


def write_keras_markdown(path: Path, payload: dict[str, Any]) -> None:
    """The comparison table against Keras."""
    m = payload["machine"]
    peaks = payload["matmul_peaks"]
    lines = [
        "# Training speed: merkit against the authors' Keras models",
        "",
        f"Command: `{payload['command']}`  ",
        f"Date: {payload['date']}  ",
        f"Machine: {m['nproc']} cores ({m['usable_cpus']} usable), {m['cpu_model']}, "
        f"{m['platform']}; torch {payload['torch']}; {payload['keras']}  ",
        f"Load average (1/5/15 min) at the start: {payload['load_start']}, at the end: "
        f"{payload['load_end']}  ",
        f"Rounds: {payload['rounds']}; per run {payload['steps']} timed steps after one warm-up "
        "step (median); every run is a fresh process; random inputs of the real shapes.  ",
        "Matmul peak (4096³, all torch threads, best of 4, start and end of the run): "
        + "; ".join(
            f"bf16 {p['bfloat16_gflops']} / fp32 {p['float32_gflops']} GFLOP/s" for p in peaks
        ),
        "",
        *(
            []
            if payload["complete"]
            else ["**Partial results**: the run was still going (or was interrupted).", ""]
        ),
        "**The machine is shared with other jobs** (2 cores, see the load averages: several "
        "processes competed for them throughout), so absolute samples/s are low and vary "
        "between runs; the implementations were therefore run interleaved, round by round, and "
        "the per-round ratios are what to compare.",
        "",
        "| case | implementation | batch | samples/s (median) | speed vs Keras fp32 (wall) "
        "| CPU s/step | speed vs Keras (CPU time) | GFLOP/step | GFLOP/s | share of bf16 / fp32 "
        "matmul peak | peak RSS MB | load before/after |",
        "| --- | --- | ---: | ---: | --- | ---: | --- | ---: | ---: | --- | ---: | --- |",
    ]
    for r in payload["summary"]:
        share = f"{r['share_of_bf16_peak']:.1%} / {r['share_of_fp32_peak']:.1%}"
        lines.append(
            f"| {r['case']} | {r['label']} | {r['batch_size']} | {r['samples_per_s']} | "
            f"{', '.join(f'{x}×' for x in r['ratio_to_keras_per_round'])} | "
            f"{r['step_cpu_s']} | "
            f"{', '.join(f'{x}×' for x in r.get('cpu_ratio_to_keras_per_round', []))} | "
            f"{r['gflop_per_step']} | {r['gflops']} | {share} | "
            f"{r['peak_rss_mb']} | {', '.join(r['loads'])} |"
        )
    errors = [r for r in payload["results"] if "error" in r]
    lines += [f"- error: {r['case']} {r['variant']}: {' '.join(r['error'])}" for r in errors]
    lines += ["", *payload["notes"]]
    path.write_text("\n".join(lines) + "\n")


def unpack_revision(rev: str) -> str:
    """``src/`` of git revision ``rev`` of this repository in a temporary folder; its path."""
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix=f"merkit-{rev}-"))
    archive = subprocess.run(
        ["git", "-C", str(HERE.parent), "archive", rev, "src"], capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
    return str(folder / "src")


def run_keras_comparison(args: argparse.Namespace) -> None:
    """Interleaved rounds of Keras and merkit (and optionally an older merkit) per case."""
    if args.compare_rev:
        args.compare_src = unpack_revision(args.compare_rev)
        if args.compare_label == "older merkit":
            args.compare_label = f"merkit @ {args.compare_rev}"
    python = ensure_keras_env(Path(args.keras_env), args.keras_requirements)
    cases = [c for c in args.cases.split(",") if c in KERAS_CASES] or list(KERAS_CASES)
    batches = {name: bs for name, _, bs in CASES}
    load_start = [round(x, 2) for x in os.getloadavg()]
    peaks = [spawn_peak()]
    print(json.dumps(peaks[0]), flush=True)
    results: list[dict[str, Any]] = []
    for round_index in range(args.rounds):
        for case in cases:
            runs = [spawn_keras(python, case, batches[case], args.steps, "float32")]
            runs[-1]["label"] = f"Keras ({runs[-1].get('framework', 'keras')}), float32"
            mine = spawn(case, "trainer", "cli-default", args.steps, "cpu")
            mine["label"] = "merkit default (bf16 autocast, CLI malloc)"
            runs.append(mine)
            if args.compare_src and case in args.compare_cases.split(","):
                old = spawn(case, "trainer", "hugetlb-malloc", args.steps, "cpu", args.compare_src)
                old["label"] = f"{args.compare_label} (bf16 autocast, its CLI malloc)"
                runs.append(old)
            for run in runs:
                run["round"] = round_index + 1
                results.append(run)
                print(json.dumps(run), flush=True)
            # Written after every case, so an interrupted run keeps what it measured.
            _write_keras_results(args, results, peaks, load_start, final=False)
    peaks.append(spawn_peak())
    _write_keras_results(args, results, peaks, load_start, final=True)


def _write_keras_results(
    args: argparse.Namespace,
    results: list[dict[str, Any]],
    peaks: list[dict[str, Any]],
    load_start: list[float],
    *,
    final: bool,
) -> None:
    import torch

    from _common import machine as machine_info

    gflop = {r["case"]: r["gflop_per_step"] for r in results if "gflop_per_step" in r}
    summary = keras_summary(results, peaks, gflop)
    keras_versions = next((r["framework"] for r in results if "framework" in r), "keras")
    payload = {
        "command": "python " + " ".join(shlex.quote(a) for a in sys.argv),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "complete": final,
        "machine": machine_info(),
        "torch": torch.__version__,
        "keras": keras_versions,
        "load_start": load_start,
        "load_end": [round(x, 2) for x in os.getloadavg()],
        "rounds": args.rounds,
        "steps": args.steps,
        "cli_glibc_tunables": CLI_TUNABLES,
        "matmul_peaks": peaks,
        "results": results,
        "summary": summary,
        "notes": [
            "Notes: GFLOP/step counts the multiply-adds of the convolutions, dense layers and "
            "GRUs (forward, weight gradient, and input gradient where the layer's input needs "
            "one; 2 FLOPs each), not the element-wise work. Keras runs `train_on_batch` "
            "(TensorFlow with its default oneDNN optimisations, float32 as the authors "
            "trained); merkit runs its `Trainer` as every method uses it: bf16 autocast on "
            "CPUs with AVX512-BF16/AMX, channels-last, and the glibc malloc tunables the "
            f"`merkit` command sets (`GLIBC_TUNABLES={CLI_TUNABLES}`). The older merkit, when "
            "listed, runs from its own source tree with the tunables its CLI set "
            f"(`{MALLOC_TUNABLE}`). TensorFlow lives in a throwaway virtual environment "
            f"(`{KERAS_REQUIREMENTS}`), never a merkit dependency.",
        ],
    }
    if final:
        print(json.dumps(summary, indent=2))
    if not args.no_write:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "train_speed.json").write_text(json.dumps(payload, indent=2) + "\n")
        write_keras_markdown(RESULTS / "train_speed.md", payload)


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
    parser.add_argument("--keras", action="store_true", help="compare with the Keras models")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds (--keras)")
    parser.add_argument("--keras-env", default="/tmp/merkit-keras-env")
    parser.add_argument("--keras-requirements", default=KERAS_REQUIREMENTS)
    parser.add_argument("--compare-src", help="also time merkit from this src/ tree (--keras)")
    parser.add_argument("--compare-rev", help="git revision to time as --compare-src (--keras)")
    parser.add_argument("--compare-label", default="older merkit")
    parser.add_argument("--compare-cases", default="cnn", help="cases for --compare-src")
    parser.add_argument("--render", help="re-summarise a train_speed.json from --keras")
    parser.add_argument("--note", action="append", default=[], help="extra note (--render)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        case, variant = args.worker.split(":", 1)
        if case == "peak":
            result = run_peak()
        else:
            result = run_worker(case, variant, args.steps, args.device)
        print(json.dumps(result))
        return
    if args.keras:
        run_keras_comparison(args)
        return
    if args.render:
        payload = json.loads(Path(args.render).read_text())
        gflop = {
            r["case"]: r["gflop_per_step"] for r in payload["results"] if "gflop_per_step" in r
        }
        payload["summary"] = keras_summary(payload["results"], payload["matmul_peaks"], gflop)
        payload["notes"] = [*payload["notes"][:1], *args.note]
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "train_speed.json").write_text(json.dumps(payload, indent=2) + "\n")
        write_keras_markdown(RESULTS / "train_speed.md", payload)
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
        (RESULTS / "train_speed_models.json").write_text(json.dumps(payload, indent=2) + "\n")
        write_markdown(RESULTS / "train_speed_models.md", payload)


if __name__ == "__main__":
    main()
