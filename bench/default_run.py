"""Where the wall time of the default run (`python train.py`: SmallCNN on digits) goes.

    python bench/default_run.py                          # input on the host, then the device
    python bench/default_run.py --placements host device --rounds 2

Each run is one subprocess (a fresh interpreter, as `python train.py`), rounds interleaved
(host, device, host, device, ...), medians kept. The parts: importing TensorFlow and Keras,
importing tfmodels, building (dataset info, model, optimizer, the model_dir), the first loop of
`steps_per_loop` steps (tracing the step, plus that loop's steps at the steady rate, which are
subtracted and counted as training), training (every loop), evaluation (the test split once),
exporting (SavedModel + .keras), and the rest (checkpoints, metrics.json, logging).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def child(placement):
    start = time.perf_counter()
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras  # noqa: F401
    import tensorflow as tf  # noqa: F401
    parts = {"import TensorFlow + Keras": time.perf_counter() - start}
    mark = time.perf_counter()
    sys.path.insert(0, ROOT)
    from tfmodels import training
    from tfmodels.training import step as step_lib
    from tfmodels.training import trainer
    parts["import tfmodels"] = time.perf_counter() - mark

    loops, timed = [], {"evaluation": 0.0, "export": 0.0}
    loop = step_lib.TrainStep.__init__

    def init(self, *args, **kwargs):
        loop(self, *args, **kwargs)
        inner = self.loop

        def timed_loop(num_steps):
            begin = time.perf_counter()
            out = inner(num_steps).numpy()
            loops.append((int(num_steps), time.perf_counter() - begin))
            return tf.constant(out)
        self.loop = timed_loop

    def timing(name, fn):
        def wrapped(*args, **kwargs):
            begin = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                timed[name] += time.perf_counter() - begin
        return wrapped

    step_lib.TrainStep.__init__ = init
    trainer.TrainStep = step_lib.TrainStep
    trainer._final_metrics = timing("evaluation", trainer._final_metrics)
    trainer.export.export = timing("export", trainer.export.export)
    with tempfile.TemporaryDirectory() as model_dir:
        mark = time.perf_counter()
        training.train(training.TrainConfig(model_dir=model_dir, input_placement=placement))
        run = time.perf_counter() - mark
    steady = sum(t for _, t in loops[1:]) / sum(n for n, _ in loops[1:])
    first_steps, first_time = loops[0]
    parts["tracing (first loop beyond its steps)"] = first_time - first_steps * steady
    parts["training"] = sum(t for _, t in loops) - parts["tracing (first loop beyond its steps)"]
    parts["evaluation"] = timed["evaluation"]
    parts["export"] = timed["export"]
    parts["build, checkpoints, logs, rest"] = run - sum(t for _, t in loops) - sum(timed.values())
    parts["total"] = time.perf_counter() - start
    parts["steps"] = sum(n for n, _ in loops)
    print(json.dumps(parts))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--placements", nargs="+", default=["host", "device"],
                        choices=["auto", "device", "host"])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--_child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._child:
        child(args._child)
        return
    results = {p: [] for p in args.placements}
    for _ in range(args.rounds):
        for placement in args.placements:
            out = subprocess.run([sys.executable, __file__, "--_child", placement],
                                 capture_output=True, text=True, check=True, timeout=600)
            results[placement].append(json.loads(out.stdout.strip().splitlines()[-1]))
    names = list(results[args.placements[0]][0])
    print("| part | " + " | ".join(f"{p} s" for p in args.placements) + " |")
    print("|---|" + "---|" * len(args.placements))
    for name in names:
        values = [statistics.median(r[name] for r in results[p]) for p in args.placements]
        print(f"| {name} | " + " | ".join(f"{v:.2f}" for v in values) + " |")


if __name__ == "__main__":
    main()
