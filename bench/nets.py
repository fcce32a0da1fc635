"""tf-slim zoo nets vs Keras Applications: forward + backward images/s, same process.

    python bench/nets.py                                  # every pair, 224x224, batch 16
    python bench/nets.py --pairs mobilenet_v2 --image_size 128 --batch_size 8

Each pair is our registry net (`nets.build_model`) and the Keras Applications model of the
same architecture (`weights=None`), both with 1000 classes, at the same image size, batch and
precision. One step is a `tf.function`: logits, mean cross-entropy, gradients of every
trainable variable (no optimizer update, which is the same for both). Calls of the two are
interleaved and the median kept (`bench/timing.py`); the ratio ours / Keras is the figure.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from bench import timing  # noqa: E402
from tfmodels import nets  # noqa: E402

# our registry net -> the Keras Applications constructor of the same architecture.
PAIRS = {
    "resnet_v2_50": "ResNet50V2",
    "mobilenet_v2": "MobileNetV2",
}


def _step(model, logits_of, images, labels):
    variables = model.trainable_variables

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            logits = tf.cast(logits_of(model(images, training=True)), tf.float32)
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
                labels=labels, logits=logits))
        return tape.gradient(loss, variables)
    return step


def bench_pair(name, image_size, batch_size, repeats, number, clock="wall"):
    """images/s of ours and Keras's on one pair, and their ratio."""
    shape = (image_size, image_size, 3)
    rng = np.random.default_rng(0)
    images = tf.constant(rng.normal(size=(batch_size, *shape)).astype(np.float32))
    labels = tf.constant(rng.integers(0, 1000, batch_size))
    ours = nets.build_model(name, num_classes=1000, input_shape=shape)
    theirs = getattr(keras.applications, PAIRS[name])(
        weights=None, input_shape=shape, classes=1000, classifier_activation=None)
    seconds = timing.time_calls(
        {"ours": _step(ours, lambda out: out["logits"], images, labels),
         "keras": _step(theirs, lambda out: out, images, labels)},
        repeats=repeats, number=number, warmup=2, clock=clock)
    return {"net": name, "keras": PAIRS[name], "size": image_size, "batch": batch_size,
            "params ours": ours.count_params(), "params keras": theirs.count_params(),
            "ours img/s": batch_size / seconds["ours"],
            "keras img/s": batch_size / seconds["keras"],
            "ours / keras": seconds["keras"] / seconds["ours"]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", nargs="+", default=sorted(PAIRS), choices=sorted(PAIRS))
    parser.add_argument("--image_size", type=int, default=224)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--precision", default="float32",
                        choices=["float32", "mixed_float16", "mixed_bfloat16"])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--number", type=int, default=2, help="steps per timed sample")
    parser.add_argument("--clock", default="wall", choices=["wall", "cpu"],
                        help="cpu: process CPU time, steadier on a shared machine")
    args = parser.parse_args()
    if args.image_size < 32 or args.batch_size < 1:
        parser.error(f"--image_size={args.image_size} must be >= 32 and "
                     f"--batch_size={args.batch_size} >= 1")
    keras.mixed_precision.set_global_policy(args.precision)
    rows = [bench_pair(name, args.image_size, args.batch_size, args.repeats, args.number,
                       args.clock) for name in args.pairs]
    device = "GPU" if tf.config.list_physical_devices("GPU") else "CPU"
    timing.print_table(f"forward+backward, {args.precision}, {device}, {args.clock} clock",
                       rows, list(rows[0]))


if __name__ == "__main__":
    main()
