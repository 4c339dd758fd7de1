"""Keras reference models for ``train_speed.py``: the paper's layer tables, timed per step.

Runs inside the throwaway TensorFlow environment that ``train_speed.py --keras`` creates (it
imports neither torch nor merkit). Prints one JSON line with the step times.

Models (the authors' Keras code, as the paper describes it):

- ``cnn``: DL baseline (paper §3.1): 4 × [Conv 5×5 valid ReLU (he_normal) → MaxPool 'same'
  (2,2), (2,2), (3,2), (3,2) → BN → Dropout 0.1] (no BN/dropout after the fourth) → Flatten →
  Dropout 0.4 → Dense 300 ReLU → Dense 4 softmax; SGD 0.01, categorical cross-entropy.
- ``crnn``: CRNN (paper §3.3): input BN → 4 × [Conv 3×3 same → BN → ReLU → MaxPool valid]
  (64/2, 128/3, 128/4, 128/4) → reshape (9, 128) → GRU 32 (sequences) → GRU 32 → Dropout 0.5
  → Dense 4 softmax; SGD 1e-3.

Usage::

    python keras_reference.py cnn --batch 150 --steps 2 [--policy float32|mixed_bfloat16]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import time


def build(name: str):
    """The Keras model for ``name`` (compiled with the paper's optimiser)."""
    import keras
    from keras import layers

    if name == "cnn":
        inputs = keras.Input((942, 128, 1))
        x = inputs
        for index, pool in enumerate(((2, 2), (2, 2), (3, 2), (3, 2))):
            x = layers.Conv2D(16, 5, activation="relu", kernel_initializer="he_normal")(x)
            x = layers.MaxPooling2D(pool, padding="same")(x)
            if index < 3:
                x = layers.BatchNormalization()(x)
                x = layers.Dropout(0.1)(x)
        x = layers.Flatten()(x)
        x = layers.Dropout(0.4)(x)
        x = layers.Dense(300, activation="relu")(x)
        outputs = layers.Dense(4, activation="softmax", dtype="float32")(x)
        lr = 0.01
    elif name == "crnn":
        inputs = keras.Input((942, 128, 1))
        x = layers.BatchNormalization()(inputs)
        for channels, pool in ((64, 2), (128, 3), (128, 4), (128, 4)):
            x = layers.Conv2D(channels, 3, padding="same")(x)
            x = layers.BatchNormalization()(x)
            x = layers.Activation("relu")(x)
            x = layers.MaxPooling2D(pool)(x)
        x = layers.Reshape((9, 128))(x)
        x = layers.GRU(32, return_sequences=True)(x)
        x = layers.GRU(32)(x)
        x = layers.Dropout(0.5)(x)
        outputs = layers.Dense(4, activation="softmax", dtype="float32")(x)
        lr = 1e-3
    else:
        raise SystemExit(f"unknown model {name!r}")
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.SGD(lr), loss="categorical_crossentropy")
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("model", choices=("cnn", "crnn"))
    parser.add_argument("--batch", type=int, required=True)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--policy", default="float32")
    args = parser.parse_args()

    import keras
    import numpy as np
    import tensorflow as tf

    keras.mixed_precision.set_global_policy(args.policy)
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(-20.0, 10.0, size=(args.batch, 942, 128, 1)).astype(np.float32)
    y = np.eye(4, dtype=np.float32)[rng.integers(0, 4, size=args.batch)]
    model = build(args.model)
    seconds, cpu = [], []
    for _ in range(args.steps + 1):  # the first step traces and compiles the graph
        start, cpu_start = time.perf_counter(), time.process_time()
        model.train_on_batch(x, y)
        seconds.append(time.perf_counter() - start)
        cpu.append(time.process_time() - cpu_start)
    timed = seconds[1:]
    median = statistics.median(timed)
    print(
        json.dumps(
            {
                "framework": f"keras {keras.__version__} / tensorflow {tf.__version__}",
                "policy": args.policy,
                "jit_compile": bool(getattr(model, "jit_compile", False)),
                "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default (on)"),
                "parameters": int(model.count_params()),
                "warmup_s": round(seconds[0], 3),
                "step_s": [round(s, 3) for s in timed],
                "median_step_s": round(median, 4),
                "samples_per_s": round(args.batch / median, 2),
                "median_step_cpu_s": round(statistics.median(cpu[1:]), 4),
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                "threads": tf.config.threading.get_intra_op_parallelism_threads() or os.cpu_count(),
            }
        )
    )


if __name__ == "__main__":
    main()
