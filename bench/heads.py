"""Benchmark the heads over many classes: step time and memory of softmax vs sampled softmax vs
Partial FC for C classes, embedding size D, batch B (momentum SGD, one CPU device).

    python bench/heads.py                                  # C in 10k, 100k, 1M; D 128; B 256
    python bench/heads.py --classes 10000 --repeats 5

The net is `softmax_regression` on a 1x1xD "image": its embedding is the input, so a step is
the head alone: embedding -> logits (all C, or the sampled ones) -> loss -> gradient -> update
(the trainer's own `TrainStep`, metrics included). Each (C, head) runs in its own subprocess,
which reports its resident memory after building (class matrix, bias and their momentum slots
are allocated then) and its peak above that while stepping (`/proc/self/status` VmRSS / VmHWM,
the peak reset with `clear_refs` after a warm-up loop that traces the step). Speed-ups are
against the full softmax at the same C, measured in the subprocess before.
"""
import argparse
import json
import os
import subprocess
import sys

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
_BENCH = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [_BENCH, os.path.dirname(_BENCH)]  # timing.py, and the tfmodels of this checkout

HEADS = {"softmax": {}, "sampled_softmax": dict(num_sampled=4096, sampler="log_uniform"),
         "partial_fc": dict(sample_rate=0.1)}


def _memory_mb():
    """(current, peak) resident memory of this process in MB."""
    values = {}
    with open("/proc/self/status") as status:
        for line in status:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0]) / 1024.0
    return values["VmRSS"], values["VmHWM"]


def _reset_peak():
    with open("/proc/self/clear_refs", "w") as refs:  # "5": reset VmHWM to VmRSS (Linux)
        refs.write("5")


def measure(head, num_classes, dim, batch, steps, repeats):
    """One (head, C): seconds per step and memory; runs in a fresh process."""
    import numpy as np
    import tensorflow as tf

    from timing import time_calls
    from tfmodels import data
    from tfmodels.training import TrainConfig
    from tfmodels.training.parts import build_training
    from tfmodels.training.step import TrainStep

    info = data.DatasetInfo(name="bench", image_shape=(1, 1, dim), num_classes=num_classes,
                            splits={"train": batch * 1000})
    config = TrainConfig(model_dir="unused", model="softmax_regression", global_batch_size=batch,
                         train_steps=10**6, optimizer="momentum", learning_rate=0.1,
                         lr_schedule="constant", label_smoothing=0.0, weight_decay=0.0,
                         head=head, **HEADS[head])
    strategy = tf.distribute.get_strategy()
    parts = build_training(config.resolve(info, 1), strategy)
    rng = np.random.default_rng(0)
    batch_data = {"image": rng.standard_normal((batch, 1, 1, dim)).astype(np.float32),
                  "label": rng.integers(0, num_classes, batch).astype(np.int32)}
    step = TrainStep(strategy, parts, iter(tf.data.Dataset.from_tensors(batch_data).repeat()),
                     config)
    n = tf.constant(steps, tf.int64)
    step.loop(n)  # trace, compile, first touch
    built, _ = _memory_mb()
    _reset_peak()
    seconds = time_calls({"step": lambda: step.loop(n)}, repeats=repeats, number=1,
                         warmup=0)["step"]
    _, peak = _memory_mb()
    slots = len(parts.optimizer.variables) // max(1, len(parts.train_variables))
    matrix_mb = (dim + 1) * num_classes * 4 * (1 + slots) / 2**20
    return {"seconds_per_step": seconds / steps, "rss_mb": built, "step_peak_mb": peak - built,
            "matrix_and_slots_mb": matrix_mb, "loss": step.metrics.results()["loss"]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classes", nargs="+", type=int, default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per subprocess")
    parser.add_argument("--_child", nargs=2, help=argparse.SUPPRESS)  # head, classes
    args = parser.parse_args()

    if args._child:
        head, num_classes = args._child[0], int(args._child[1])
        # The full head at 1M classes takes seconds per step: fewer steps per timed call.
        steps = 20 if head != "softmax" else max(1, min(20, 200_000 // num_classes))
        print(json.dumps(measure(head, num_classes, args.dim, args.batch, steps,
                                 args.repeats)))
        return

    from timing import print_table

    rows = []
    for num_classes in args.classes:
        reference = None
        for head in HEADS:
            proc = subprocess.run(
                [sys.executable, __file__, "--_child", head, str(num_classes),
                 "--dim", str(args.dim), "--batch", str(args.batch),
                 "--repeats", str(args.repeats)],
                capture_output=True, text=True, timeout=args.timeout)
            if proc.returncode:
                raise RuntimeError(f"{head} at C={num_classes} failed:\n{proc.stderr[-3000:]}")
            result = json.loads(proc.stdout.strip().splitlines()[-1])
            reference = reference or result["seconds_per_step"]
            rows.append({"classes": num_classes, "head": head,
                         "ms/step": 1000 * result["seconds_per_step"],
                         "steps/s": 1 / result["seconds_per_step"],
                         "vs softmax": reference / result["seconds_per_step"],
                         "RSS MB": result["rss_mb"],
                         "matrix+slots MB": result["matrix_and_slots_mb"],
                         "step peak MB": result["step_peak_mb"]})
            print(json.dumps(rows[-1]), flush=True)
    print_table(f"heads, D={args.dim}, batch {args.batch}, momentum SGD, one CPU device", rows,
                ["classes", "head", "ms/step", "steps/s", "vs softmax", "RSS MB",
                 "matrix+slots MB", "step peak MB"])


if __name__ == "__main__":
    main()
