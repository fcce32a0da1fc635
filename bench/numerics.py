"""Benchmark: our Softmax vs tf.nn.softmax (fwd+bwd), and the CenterLoss step overhead.

    python bench/numerics.py [--repeats 15]

Every figure is a ratio against a reference measured in the same process, interleaved.
"""
import argparse
import os
import sys

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from timing import print_table, time_calls  # noqa: E402
from tfmodels.layers import CenterLoss, Softmax  # noqa: E402


def softmax_fwd_bwd(softmax_fn, x, upstream):
    @tf.function
    def step():
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = softmax_fn(x)
        return tape.gradient(y, x, output_gradients=upstream)
    return step


def bench_softmax(repeats):
    rng = np.random.default_rng(0)
    rows = []
    cases = [("[4096, 1000] axis -1", (4096, 1000), -1),
             ("[4096, 1000] axis 0", (4096, 1000), 0),
             ("[64, 8, 128, 128] axis -1", (64, 8, 128, 128), -1),
             ("[64, 128, 8, 128] axis 1", (64, 128, 8, 128), 1)]
    for name, shape, axis in cases:
        x = tf.constant(rng.standard_normal(shape).astype(np.float32))
        g = tf.constant(rng.standard_normal(shape).astype(np.float32))
        ours = Softmax(axis=axis)
        times = time_calls({
            "tf.nn.softmax": softmax_fwd_bwd(lambda t: tf.nn.softmax(t, axis=axis), x, g),
            "tfmodels.Softmax": softmax_fwd_bwd(ours, x, g),
        }, repeats=repeats, number=5)
        rows.append({"case": name, "tf.nn.softmax ms": 1e3 * times["tf.nn.softmax"],
                     "ours ms": 1e3 * times["tfmodels.Softmax"],
                     "ratio": times["tfmodels.Softmax"] / times["tf.nn.softmax"]})
    print_table("Softmax fwd+bwd (float32, CPU): ours / tf.nn.softmax", rows,
                ["case", "tf.nn.softmax ms", "ours ms", "ratio"])
    return rows


def bench_center_loss(repeats):
    """LeNets++-sized head: batch 128, 2-D features, 10 classes; joint loss vs softmax alone."""
    rng = np.random.default_rng(0)
    features = tf.Variable(rng.standard_normal((128, 2)).astype(np.float32))
    weights = tf.Variable(rng.standard_normal((2, 10)).astype(np.float32))
    labels = tf.constant(rng.integers(0, 10, 128), tf.int32)
    center_loss = CenterLoss(num_classes=10, feature_dim=2, alpha=0.5)

    def make(with_center):
        @tf.function
        def step():
            with tf.GradientTape() as tape:
                logits = features @ weights
                loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits)
                if with_center:
                    loss += 0.01 * center_loss(features, labels, training=True)
                loss = tf.reduce_mean(loss)
            return tape.gradient(loss, [features, weights])
        return step

    times = time_calls({"softmax": make(False), "softmax+center": make(True)},
                       repeats=repeats, number=50)
    overhead = times["softmax+center"] - times["softmax"]
    rows = [{"case": "batch 128, dim 2, 10 classes",
             "softmax head us": 1e6 * times["softmax"],
             "+center loss us": 1e6 * times["softmax+center"],
             "overhead us": 1e6 * overhead}]
    print_table("CenterLoss step overhead (loss + gradient + center update)", rows,
                ["case", "softmax head us", "+center loss us", "overhead us"])
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    bench_softmax(args.repeats)
    bench_center_loss(args.repeats)


if __name__ == "__main__":
    main()
