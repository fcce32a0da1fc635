"""Benchmark the heads over many classes: step time and memory of softmax vs sampled softmax vs
Partial FC for C classes, embedding size D, batch B (momentum SGD, one CPU device).

    python bench/heads.py                                  # C in 10k, 100k, 1M; D 128; B 256
    python bench/heads.py --classes 10000 --repeats 5

The net is `softmax_regression` on a 1x1xD "image": its embedding is the input, so a step is
the head alone: embedding -> logits (all C, or the sampled ones) -> loss -> gradient -> update
(the trainer's own `TrainStep`, metrics included).

Per C, one subprocess times the three heads interleaved (a, b, c, a, b, c: machine load hits
all alike; speed-ups are ratios within it), and one subprocess per head measures memory: its
resident set after building (the class matrix, bias and momentum slots are allocated then) and
its peak above that while stepping (`/proc/self/status` VmRSS / VmHWM, the peak reset with
`clear_refs` after a warm-up call that traces the step).
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


def _step(head, num_classes, dim, batch):
    """The trainer's step for one head with a trivial body, and its parts."""
    import numpy as np
    import tensorflow as tf

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
    resolved = config.resolve(info, 1)
    parts = build_training(resolved, strategy)
    rng = np.random.default_rng(0)
    batch_data = {"image": rng.standard_normal((batch, 1, 1, dim)).astype(np.float32),
                  "label": rng.integers(0, num_classes, batch).astype(np.int32)}
    step = TrainStep(strategy, parts, iter(tf.data.Dataset.from_tensors(batch_data).repeat()),
                     resolved)
    return step, parts


def _steps_per_call(head, num_classes):
    # The full head at 1M classes takes seconds per step: fewer steps per timed call.
    return 20 if head != "softmax" else max(1, min(20, 200_000 // num_classes))


def time_heads(num_classes, dim, batch, repeats):
    """Seconds per step of each head, timed interleaved in this process."""
    import tensorflow as tf

    from timing import time_calls

    calls = {}
    for head in HEADS:
        step, _ = _step(head, num_classes, dim, batch)
        n = tf.constant(_steps_per_call(head, num_classes), tf.int64)
        calls[head] = (lambda step=step, n=n: step.loop(n))
    seconds = time_calls(calls, repeats=repeats, number=1, warmup=1)
    return {head: seconds[head] / _steps_per_call(head, num_classes) for head in HEADS}


def measure_memory(head, num_classes, dim, batch):
    """Resident memory after building, and the peak above it while stepping (MB)."""
    import tensorflow as tf

    step, parts = _step(head, num_classes, dim, batch)
    n = tf.constant(_steps_per_call(head, num_classes) if head != "softmax" else 1, tf.int64)
    step.loop(n)  # trace, compile, first touch
    built, _ = _memory_mb()
    _reset_peak()
    step.loop(n)
    _, peak = _memory_mb()
    slots = len(parts.optimizer.variables) // max(1, len(parts.train_variables))
    matrix_mb = (dim + 1) * num_classes * 4 * (1 + slots) / 2**20
    return {"rss_mb": built, "step_peak_mb": peak - built, "matrix_and_slots_mb": matrix_mb}


def _child(*args, timeout):
    proc = subprocess.run([sys.executable, __file__, "--_child", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout)
    if proc.returncode:
        raise RuntimeError(f"{args} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classes", nargs="+", type=int, default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per subprocess")
    parser.add_argument("--_child", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args._child:  # what, head, classes, dim, batch, repeats
        what, head, *numbers = args._child
        num_classes, dim, batch, repeats = map(int, numbers)
        result = (time_heads(num_classes, dim, batch, repeats) if what == "time"
                  else measure_memory(head, num_classes, dim, batch))
        print(json.dumps(result))
        return

    from timing import print_table

    rows = []
    for num_classes in args.classes:
        shape = (num_classes, args.dim, args.batch)
        seconds = _child("time", "-", *shape, args.repeats, timeout=args.timeout)
        for head in HEADS:
            memory = _child("memory", head, *shape, 0, timeout=args.timeout)
            rows.append({"classes": num_classes, "head": head,
                         "ms/step": 1000 * seconds[head], "steps/s": 1 / seconds[head],
                         "vs softmax": seconds["softmax"] / seconds[head],
                         "RSS MB": memory["rss_mb"],
                         "matrix+slots MB": memory["matrix_and_slots_mb"],
                         "step peak MB": memory["step_peak_mb"]})
            print(json.dumps(rows[-1]), flush=True)
    print_table(f"heads, D={args.dim}, batch {args.batch}, momentum SGD, one CPU device", rows,
                ["classes", "head", "ms/step", "steps/s", "vs softmax", "RSS MB",
                 "matrix+slots MB", "step peak MB"])


if __name__ == "__main__":
    main()
