"""Benchmark: input pipeline images/s against the synthetic input at the same batch size.

    python bench/input_pipeline.py [--batch_size 256] [--steps 200] [--rounds 3]

Cases: digits (augmented), mocked MNIST (60,000 fake examples, prepared like a real tfds folder,
so the pipeline reads and caches it exactly as it would the real one) and mocked CIFAR-10
(50,000, augmented), each next to `synthetic` input of the same image shape and batch size. The
synthetic input repeats one batch, so it costs almost nothing: the ratio `pipeline / synthetic`
is therefore a strict bound, and what matters for training is `pipeline images/s` against what
the trainer consumes (add that figure with `measure_images_per_sec` on the trainer's side; the
target is pipeline >= 0.95x trainer, i.e. the input is never the bottleneck). Rounds are
interleaved and the best round is kept, all in one process.
"""
import argparse
import json
import os
import sys
import tempfile
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tensorflow as tf  # noqa: E402

from tfmodels import data  # noqa: E402
from tfmodels.data import fake_tfds  # noqa: E402


def measure_images_per_sec(dataset, steps, warmup=10):
    """Draws `warmup` then `steps` batches from `dataset` and returns images per second.

    Args:
      dataset: a `tf.data.Dataset` (or any iterable) of dicts with an `image` [B, ...] entry.
      steps: batches timed after warm-up.
      warmup: batches drawn first, untimed (tracing, cache fill, prefetch ramp-up).

    Returns:
      float, images/s over the timed batches.
    """
    iterator = iter(dataset)
    for _ in range(warmup):
        next(iterator)
    images = 0
    start = time.perf_counter()
    for _ in range(steps):
        batch = next(iterator)
        images += int(batch["image"].shape[0])
    # The last batch's values must exist before the clock stops (eager tensors are ready).
    _ = batch["image"].numpy()[:1]
    return images / (time.perf_counter() - start)


def cases(batch_size, data_dir):
    common = dict(global_batch_size=batch_size, training=True, seed=0, deterministic=True)
    return [
        ("digits 8x8x1 aug", "synthetic:8x8x1:10",
         lambda: data.make_dataset("digits", "train", augment=True, **common)),
        ("mnist 28x28x1", "synthetic:28x28x1:10",
         lambda: data.make_dataset("mnist", "train", data_dir=data_dir, **common)),
        ("mnist 28x28x1 eval", "synthetic:28x28x1:10",
         lambda: data.make_dataset("mnist", "test", data_dir=data_dir,
                                   global_batch_size=batch_size, training=False).repeat()),
        ("cifar10 32x32x3 aug", "synthetic:32x32x3:10",
         lambda: data.make_dataset("cifar10", "train", augment=True, data_dir=data_dir,
                                   **common)),
    ]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch_size", type=int, default=256, help="global batch (1 device)")
    parser.add_argument("--steps", type=int, default=200, help="timed batches per round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)

    data_dir = tempfile.mkdtemp(prefix="tfds_fake_")
    sizes = {"mnist": {"train": 60000, "test": 10000}, "cifar10": {"train": 50000, "test": 10000}}
    rows = []
    with fake_tfds.fake_prepared(sizes, data_dir):
        for label, synthetic, make in cases(args.batch_size, data_dir):
            pipeline, reference = make(), data.make_dataset(
                synthetic, "train", global_batch_size=args.batch_size, training=True, seed=0)
            best = {"pipeline": 0.0, "synthetic": 0.0}
            for _ in range(args.rounds):  # interleaved, best of rounds
                best["pipeline"] = max(best["pipeline"], measure_images_per_sec(pipeline,
                                                                                args.steps))
                best["synthetic"] = max(best["synthetic"], measure_images_per_sec(reference,
                                                                                  args.steps))
            rows.append({"case": label, "batch": args.batch_size,
                         "pipeline img/s": round(best["pipeline"]),
                         "synthetic img/s": round(best["synthetic"]),
                         "ratio": round(best["pipeline"] / best["synthetic"], 3)})
    print(f"Input pipeline vs synthetic input, batch {args.batch_size}, "
          f"{os.cpu_count()} CPU cores, TF {tf.__version__}")
    header = list(rows[0])
    widths = [max(len(h), *(len(str(r[h])) for r in rows)) for h in header]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    for r in rows:
        print("  ".join(str(r[h]).ljust(w) for h, w in zip(header, widths)))
    print(json.dumps(rows))
    return rows


if __name__ == "__main__":
    main()
