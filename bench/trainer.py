"""Benchmark the trainer: images/s vs Keras `model.fit` vs a minimal tf.function loop.

    python bench/trainer.py                      # LeNets++ 28x28, ResNet-20 and vit_tiny 32x32
    python bench/trainer.py --replicas 1 2 4     # + step time with N logical CPU replicas
    python bench/trainer.py --replicas 1 2 4 --skip_loops --repeats 3   # only that table

Same model, same synthetic batch (repeated: no input cost), same optimizer (SGD + momentum),
same steps per tf.function call, measured interleaved in one process. Replica counts run in one
subprocess each (a process hosts one MirroredStrategy device count).
"""
import argparse
import json
import os
import subprocess
import sys

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

CASES = {"lenet_pp": ((28, 28, 1), 128), "resnet20": ((32, 32, 3), 128),
         "vit_tiny": ((32, 32, 3), 128)}


def _parts(model_name, image_shape, batch, strategy):
    """Our trainer's objects for a synthetic dataset of this shape."""
    from tfmodels import data
    from tfmodels.training import TrainConfig
    from tfmodels.training.parts import build_training

    info = data.DatasetInfo(name="bench", image_shape=image_shape, num_classes=10,
                            splits={"train": batch * 1000})
    # The minimal loop's recipe: plain cross-entropy, no weight decay.
    config = TrainConfig(model_dir="unused", model=model_name, global_batch_size=batch,
                         train_steps=10_000, lr_schedule="constant", learning_rate=0.01,
                         optimizer="momentum", label_smoothing=0.0, weight_decay=0.0)
    return config, build_training(config.resolve(info, strategy.num_replicas_in_sync), strategy)


def _batch(image_shape, batch):
    import numpy as np

    rng = np.random.default_rng(0)
    return {"image": rng.standard_normal((batch, *image_shape)).astype(np.float32),
            "label": rng.integers(0, 10, batch).astype(np.int32)}


def compare_loops(model_name, steps_per_loop, repeats):
    """Ours vs model.fit vs a minimal loop, one device; returns a table row."""
    import keras
    import tensorflow as tf

    from timing import time_calls
    from tfmodels.training.step import TrainStep

    image_shape, batch = CASES[model_name]
    arrays = _batch(image_shape, batch)
    dataset = tf.data.Dataset.from_tensors(arrays).repeat()
    strategy = tf.distribute.get_strategy()
    n = tf.constant(steps_per_loop, tf.int64)

    config, ours = _parts(model_name, image_shape, batch, strategy)
    step = TrainStep(strategy, ours, iter(dataset), config)

    # The minimal loop: forward, mean cross-entropy + regularization, gradient, apply.
    _, plain = _parts(model_name, image_shape, batch, strategy)
    plain_model, plain_opt = plain.model, keras.optimizers.SGD(0.01, momentum=0.9)
    plain_opt.build(plain_model.trainable_variables)
    plain_iter = iter(dataset)

    @tf.function
    def minimal(num_steps):
        for _ in tf.range(num_steps):
            b = next(plain_iter)
            with tf.GradientTape() as tape:
                logits = plain_model(b["image"], training=True)["logits"]
                loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
                    b["label"], logits)) + tf.add_n(plain_model.losses or [0.0])
            plain_opt.apply(tape.gradient(loss, plain_model.trainable_variables))

    # model.fit on a single-output model with the same layers.
    _, fit_parts = _parts(model_name, image_shape, batch, strategy)
    fit_model = keras.Model(fit_parts.model.input, fit_parts.model.output["logits"])
    fit_model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      steps_per_execution=steps_per_loop)
    fit_data = dataset.map(lambda b: (b["image"], b["label"]))

    def fit():
        fit_model.fit(fit_data, steps_per_epoch=steps_per_loop, epochs=1, verbose=0)

    times = time_calls({"ours": lambda: step.loop(n), "minimal": lambda: minimal(n),
                        "model.fit": fit}, repeats=repeats, number=1, warmup=2)
    per_sec = {k: steps_per_loop * batch / v for k, v in times.items()}
    return {"model": model_name, "batch": batch, "ours img/s": per_sec["ours"],
            "minimal img/s": per_sec["minimal"], "model.fit img/s": per_sec["model.fit"],
            "ours/minimal": per_sec["ours"] / per_sec["minimal"],
            "ours/model.fit": per_sec["ours"] / per_sec["model.fit"]}


def replica_step_time(num_replicas, model_name, steps_per_loop, repeats, strategy_name="auto"):
    """Seconds per step of our trainer with `num_replicas` logical CPU replicas."""
    import tensorflow as tf

    from timing import time_calls
    from tfmodels import data, distribute
    from tfmodels.training.step import TrainStep

    strategy = distribute.setup(strategy_name, virtual_devices=num_replicas)
    image_shape, batch = CASES[model_name]
    config, parts = _parts(model_name, image_shape, batch, strategy)
    # The trainer's own input path (one repeated random batch per replica).
    synthetic = "synthetic:{}x{}x{}:10".format(*image_shape)
    iterator = iter(data.distribute_dataset(strategy, synthetic, "train", global_batch_size=batch,
                                            training=True, seed=0))
    step = TrainStep(strategy, parts, iterator, config)
    n = tf.constant(steps_per_loop, tf.int64)
    seconds = time_calls({"ours": lambda: step.loop(n)}, repeats=repeats, number=1)["ours"]
    return seconds / steps_per_loop


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--steps_per_loop", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--replicas", nargs="*", type=int, default=[])
    parser.add_argument("--skip_loops", action="store_true",
                        help="only the replica table (with --replicas)")
    parser.add_argument("--mirrored_baseline", action="store_true",
                        help="add MirroredStrategy over one device (auto uses the default "
                             "strategy there)")
    parser.add_argument("--_child", nargs=3, help=argparse.SUPPRESS)  # replicas, model, strategy
    args = parser.parse_args()

    if args._child:
        seconds = replica_step_time(int(args._child[0]), args._child[1], args.steps_per_loop,
                                    args.repeats, args._child[2])
        print(json.dumps({"seconds_per_step": seconds}))
        return

    from timing import print_table

    if not args.skip_loops:
        rows = [compare_loops(m, args.steps_per_loop, args.repeats) for m in args.models]
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
                     "--steps_per_loop", str(args.steps_per_loop),
                     "--repeats", str(args.repeats)],
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
