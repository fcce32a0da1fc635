"""Benchmark registry nets against Keras Applications' builds of the same nets: forward +
backward images/s at the same image size, batch and precision, in the same process.

    python bench/nets.py                                    # every pair, batch 16, float32
    python bench/nets.py --nets inception_v3 --batch_size 8 --repeats 3 --clock cpu
    python bench/nets.py --precision mixed_float16 --jit_compile   # on a GPU

A step is what training costs before the optimizer: the model on a synthetic batch in training
mode (batch statistics, dropout), mean cross-entropy of the logits, gradients of every
trainable variable; one `tf.function` per candidate (XLA with --jit_compile). The two
candidates of a pair run interleaved (a, b, b, a, ...: machine load hits both alike) and the
table reports ours / Keras's images per second; both nets' parameter counts are printed too
(the same net has the same count).
"""
import argparse
import os
import sys

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
_BENCH = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [_BENCH, os.path.dirname(_BENCH)]  # timing.py, and the tfmodels of this checkout

# (our registry net, its Keras Applications class, the size both were designed for).
PAIRS = [
    ("inception_v3", "InceptionV3", 299),
    ("resnet_v2_50", "ResNet50V2", 224),
    ("mobilenet_v2", "MobileNetV2", 224),
]


def _step(model, batch, jit_compile):
    """A `tf.function` computing the loss and every trainable variable's gradient once."""
    import tensorflow as tf

    images, labels = batch

    def logits_of(outputs):
        return outputs["logits"] if isinstance(outputs, dict) else outputs

    @tf.function(jit_compile=jit_compile)
    def step():
        with tf.GradientTape() as tape:
            logits = tf.cast(logits_of(model(images, training=True)), tf.float32)
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
                labels=labels, logits=logits))
        gradients = tape.gradient(loss, model.trainable_variables)
        return loss, tf.add_n([tf.reduce_sum(tf.cast(g, tf.float32)) for g in gradients])

    return step


def bench_pair(net, keras_app, size, args):
    """One table row: images/s of our net and of Keras's, and their ratio."""
    import keras
    import numpy as np
    import tensorflow as tf

    import timing
    from tfmodels import nets

    shape = (size, size, 3)
    keras.utils.set_random_seed(0)
    ours = nets.build_model(net, num_classes=1000, input_shape=shape)
    theirs = getattr(keras.applications, keras_app)(
        weights=None, input_shape=shape, classes=1000, classifier_activation=None)
    rng = np.random.default_rng(0)
    batch = (tf.constant(rng.uniform(-1, 1, (args.batch_size, *shape)).astype(np.float32)),
             tf.constant(rng.integers(0, 1000, args.batch_size)))
    seconds = timing.time_calls(
        {"ours": _step(ours, batch, args.jit_compile),
         "keras": _step(theirs, batch, args.jit_compile)},
        repeats=args.repeats, number=args.number, warmup=1, clock=args.clock)
    ours_rate, keras_rate = (args.batch_size / seconds[key] for key in ("ours", "keras"))
    return {"net": net, "keras": keras_app, "size": size, "batch": args.batch_size,
            "precision": args.precision, "ours params": ours.count_params(),
            "keras params": theirs.count_params(), "ours img/s": ours_rate,
            "keras img/s": keras_rate, "ours / keras": ours_rate / keras_rate}


def main(argv=None):
    names = [net for net, _, _ in PAIRS]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nets", nargs="+", default=names, choices=names,
                        help="registry nets to time (each against its Keras Application)")
    parser.add_argument("--batch_size", type=int, default=16, help="images per step")
    parser.add_argument("--image_size", type=int, default=None,
                        help="height = width for every pair (default: each net's own size)")
    parser.add_argument("--precision", default="float32",
                        choices=["float32", "mixed_float16", "mixed_bfloat16"],
                        help="Keras dtype policy for both nets")
    parser.add_argument("--jit_compile", action="store_true", help="XLA-compile both steps")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds per net")
    parser.add_argument("--number", type=int, default=2, help="steps per timed round")
    parser.add_argument("--clock", default="wall", choices=["wall", "cpu"],
                        help="wall time, or the process's CPU time (steadier on a busy CPU box)")
    args = parser.parse_args(argv)
    for flag in ("batch_size", "repeats", "number"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag}={getattr(args, flag)} must be >= 1")
    if args.image_size is not None and args.image_size < 1:
        parser.error(f"--image_size={args.image_size} must be >= 1")

    import keras
    import tensorflow as tf

    import timing

    keras.config.set_dtype_policy(args.precision)
    rows = [bench_pair(net, keras_app, args.image_size or size, args)
            for net, keras_app, size in PAIRS if net in args.nets]
    device = "GPU" if tf.config.list_physical_devices("GPU") else "CPU"
    timing.print_table(f"forward + backward, ours vs Keras Applications ({device}, "
                       f"{args.clock} clock)", rows, list(rows[0]))


if __name__ == "__main__":
    main()
