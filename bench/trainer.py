"""Benchmark the trainer: images/s vs Keras `model.fit` vs a minimal tf.function loop.

    python bench/trainer.py                      # two-layer net 8x8 (batch 64, 200 steps/call),
                                                 # LeNets++ 28x28, ResNet-20 and vit_tiny
                                                 # 32x32 (batch 128)
    python bench/trainer.py --replicas 1 2 4     # + step time with N logical CPU replicas
    python bench/trainer.py --replicas 1 2 4 --skip_loops --repeats 3   # only that table
    python bench/trainer.py --input --models two_layer_net small_cnn resnet20
                                                 # ours with its data on the device vs the
                                                 # minimal loop over a batch on the device

Same model, same synthetic batch (repeated: no input cost), same optimizer (SGD + momentum),
same loss (cross-entropy + L2 weight decay), same steps per tf.function call (the loops are in
bench/loops.py), calls interleaved in one process and the best of them kept. Ours draws through
the trainer's checkpointable iterator (`data.ResumableIterator`) and keeps its training
metrics; the minimal loop has neither. The two-layer net is so small that the difference is
per-step overhead. Replica counts run in one subprocess each (a process hosts one
MirroredStrategy device count).

`--input`: the trainer's step fed by the trainer's own input paths (`data.distribute_dataset`
with `input_placement`), on a real in-memory split with augmentation (digits for 8x8 nets,
`patterns` at 32x32x3 otherwise), against the minimal loop over one batch already on the device
("minimal, batch on device": compute only). Rows: ours over one constant batch on the device
(compute + the step's bookkeeping), ours with the split on the device (+ gathering and
augmenting the rows in the step), ours with today's host pipeline. Medians of interleaved calls.
"""
import argparse
import json
import os
import subprocess
import sys

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# This checkout's tfmodels, not whichever one the environment has installed.
sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# name -> (image shape, global batch, steps per tf.function call, timed calls per candidate)
CASES = {"two_layer_net": ((8, 8, 1), 64, 200, 40), "small_cnn": ((8, 8, 1), 64, 50, 15),
         "lenet_pp": ((28, 28, 1), 128, 20, 7),
         "resnet20": ((32, 32, 3), 128, 20, 7), "vit_tiny": ((32, 32, 3), 128, 20, 7)}


def compare_loops(model_name, repeats=None, steps_per_loop=None, clock="wall"):
    """Ours vs model.fit vs a minimal loop (bench/loops.py), one device, best of `repeats`
    interleaved calls each, timed by `clock` (see timing.time_calls); returns a table row."""
    from loops import build_loops
    from timing import time_calls

    image_shape, batch, default_steps, default_repeats = CASES[model_name]
    steps_per_loop, repeats = steps_per_loop or default_steps, repeats or default_repeats
    fns = build_loops(model_name, image_shape, batch, steps_per_loop)
    times = time_calls(fns, repeats=repeats, number=1, warmup=2, statistic="min", clock=clock)
    per_sec = {k: steps_per_loop * batch / v for k, v in times.items()}
    return {"model": model_name, "batch": batch, "steps/call": steps_per_loop, "clock": clock,
            "ours img/s": per_sec["ours"],
            "minimal img/s": per_sec["minimal"], "model.fit img/s": per_sec["model.fit"],
            "ours/minimal": per_sec["ours"] / per_sec["minimal"],
            "ours/model.fit": per_sec["ours"] / per_sec["model.fit"]}


def compare_input(model_name, repeats=None, steps_per_loop=None):
    """Per-step time of ours fed on the device / on the host vs the minimal loop over a batch
    on the device (one device, medians of interleaved calls); returns a table row."""
    import keras
    import tensorflow as tf

    from loops import DEVICE_BATCH, build_loops, trainer_parts
    from timing import time_calls
    from tfmodels import data
    from tfmodels.training.step import TrainStep

    image_shape, batch, default_steps, default_repeats = CASES[model_name]
    steps_per_loop, repeats = steps_per_loop or default_steps, repeats or default_repeats
    dataset = ("digits" if tuple(image_shape) == (8, 8, 1)
               else "patterns:{}x{}x{}:10:4096:64".format(*image_shape))
    synthetic = "synthetic:{}x{}x{}:10".format(*image_shape)
    strategy = tf.distribute.get_strategy()
    n = tf.constant(steps_per_loop, tf.int64)
    fns = build_loops(model_name, image_shape, batch, steps_per_loop, loops=(DEVICE_BATCH,))
    for name, source, placement in (("ours, batch on device", synthetic, "device"),
                                    ("ours, data on device", dataset, "device"),
                                    ("ours, data on host", dataset, "host")):
        keras.utils.set_random_seed(0)
        config, parts = trainer_parts(model_name, image_shape, batch)
        iterator = iter(data.distribute_dataset(
            strategy, source, "train", global_batch_size=batch, training=True,
            augment=source != synthetic, seed=0, input_placement=placement))
        fns[name] = (lambda step: lambda: step.loop(n))(TrainStep(strategy, parts, iterator,
                                                                  config))
    ms = {k: 1e3 * v / steps_per_loop for k, v in
          time_calls(fns, repeats=repeats, number=1, warmup=2).items()}
    compute = ms[DEVICE_BATCH]
    return {"model": model_name, "data": dataset, "batch": batch,
            "minimal, batch on device ms": compute,
            "ours, batch on device ms": ms["ours, batch on device"],
            "ours, data on device ms": ms["ours, data on device"],
            "ours, data on host ms": ms["ours, data on host"],
            "bookkeeping ms": ms["ours, batch on device"] - compute,
            "input on device ms": ms["ours, data on device"] - ms["ours, batch on device"],
            "device: ours / minimal": compute / ms["ours, data on device"],
            "host: ours / minimal": compute / ms["ours, data on host"]}


def replica_step_time(num_replicas, model_name, steps_per_loop, repeats, strategy_name="auto"):
    """Seconds per step of our trainer with `num_replicas` logical CPU replicas."""
    import tensorflow as tf

    from loops import trainer_parts
    from timing import time_calls
    from tfmodels import data, distribute
    from tfmodels.training.step import TrainStep

    strategy = distribute.setup(strategy_name, virtual_devices=num_replicas)
    image_shape, batch, default_steps, _ = CASES[model_name]
    steps_per_loop = steps_per_loop or default_steps
    resolved, parts = trainer_parts(model_name, image_shape, batch, strategy=strategy)
    # The trainer's own input path (one repeated random batch per replica).
    synthetic = "synthetic:{}x{}x{}:10".format(*image_shape)
    iterator = iter(data.distribute_dataset(strategy, synthetic, "train", global_batch_size=batch,
                                            training=True, seed=0))
    step = TrainStep(strategy, parts, iterator, resolved)
    n = tf.constant(steps_per_loop, tf.int64)
    seconds = time_calls({"ours": lambda: step.loop(n)}, repeats=repeats, number=1)["ours"]
    return seconds / steps_per_loop


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--steps_per_loop", type=int, default=None,
                        help="steps per tf.function call (default: per model, see CASES)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed calls per candidate (default: per model, see CASES; 7 "
                             "for the replica table)")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                        help="wall time, or the process's CPU time (all threads; steadier on a "
                             "busy machine, and counts work a second core hides)")
    parser.add_argument("--replicas", nargs="*", type=int, default=[])
    parser.add_argument("--skip_loops", action="store_true",
                        help="only the replica table (with --replicas)")
    parser.add_argument("--mirrored_baseline", action="store_true",
                        help="add MirroredStrategy over one device (auto uses the default "
                             "strategy there)")
    parser.add_argument("--input", action="store_true",
                        help="only the input table: ours with its data on the device / host "
                             "vs the minimal loop over a batch on the device")
    parser.add_argument("--_child", nargs=3, help=argparse.SUPPRESS)  # replicas, model, strategy
    args = parser.parse_args()

    if args._child:
        seconds = replica_step_time(int(args._child[0]), args._child[1],
                                    args.steps_per_loop or None, args.repeats or 7,
                                    args._child[2])
        print(json.dumps({"seconds_per_step": seconds}))
        return

    from timing import print_table

    if args.input:
        rows = [compare_input(m, args.repeats, args.steps_per_loop) for m in args.models]
        print_table("Per-step ms, one CPU device: the trainer's input on the device vs the host "
                    "(speeds: minimal over a batch on the device / ours)", rows, list(rows[0]))
        return
    if not args.skip_loops:
        rows = [compare_loops(m, args.repeats, args.steps_per_loop, args.clock)
                for m in args.models]
        print_table("Trainer images/s, one CPU device (ours vs minimal tf.function loop vs "
                    "model.fit)", rows, list(rows[0]))
    if args.replicas:
        rows = []
        runs = [(n, "auto") for n in args.replicas]
        if args.mirrored_baseline:
            runs.insert(1, (1, "mirrored"))
        for model in args.models:
            times = {}
            for n, strategy in runs:
                out = subprocess.run(
                    [sys.executable, __file__, "--_child", str(n), model, strategy,
                     "--steps_per_loop", str(args.steps_per_loop or 0),
                     "--repeats", str(args.repeats or 7)],
                    capture_output=True, text=True, check=True)
                times[n, strategy] = json.loads(
                    out.stdout.strip().splitlines()[-1])["seconds_per_step"]
            first = times[runs[0]]
            for (n, strategy), seconds in times.items():
                rows.append({"model": model, "replicas": n,
                             "strategy": "default" if (n, strategy) == (1, "auto") else "mirrored",
                             "ms/step": 1e3 * seconds, "vs first row": seconds / first})
        print_table("Step time with N logical CPU replicas (same global batch)", rows,
                    list(rows[0]))


if __name__ == "__main__":
    main()
