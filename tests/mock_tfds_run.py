"""Runs a script of the repository unchanged inside `tfds.testing.mock_data`.

    python -m tests.mock_tfds_run NUM_EXAMPLES train.py --dataset=tfds:oxford_flowers102 ...
    python -m tests.mock_tfds_run NUM_EXAMPLES --undecodable=2,5 train.py ...

`tfds.testing.mock_data(num_examples=NUM_EXAMPLES)` is how tfds users test pipelines: every
tfds builder then serves NUM_EXAMPLES generated examples per split (random image sizes where
the feature's size varies) without prepared files. The script runs as `__main__` (`runpy`)
with the remaining arguments, so it needs no mock-specific code.

`--undecodable=I,J,...` (datasets of varying image size only) serves PNGs of random sizes
instead, those at positions I, J, ... of every split truncated so that they cannot be decoded.
"""
import runpy
import sys

import numpy as np

USAGE = "usage: python -m tests.mock_tfds_run NUM_EXAMPLES [--undecodable=I,J] SCRIPT [ARGS...]"


def undecodable_examples(num_examples, positions):
    """A mock `_as_dataset`: PNGs of random sizes (seeded), those at `positions` truncated."""
    def as_dataset(self, split, decoders=None, read_config=None, shuffle_files=False):
        import tensorflow as tf

        del decoders, read_config, shuffle_files  # encoded images, in order, always
        image_key, label_key = self.info.supervised_keys or ("image", "label")
        channels = self.info.features[image_key].shape[-1] or 3
        rng = np.random.default_rng(0)
        images = []
        for i in range(num_examples):
            height, width = rng.integers(5, 50, 2)
            png = tf.io.encode_png(rng.integers(0, 256, (height, width, channels),
                                                dtype=np.uint8)).numpy()
            images.append(png[:len(png) // 3] if i in positions else png)
        labels = rng.integers(0, self.info.features[label_key].num_classes, num_examples)
        ids = [f"{self.name}-{split}.tfrecord-00000-of-00001__{i}".encode()
               for i in range(num_examples)]
        return tf.data.Dataset.from_tensor_slices({image_key: images, label_key: labels,
                                                   "tfds_id": ids})
    return as_dataset


def main():
    args = sys.argv[1:]
    if len(args) < 2 or not args[0].isdigit():
        sys.exit(USAGE)
    num_examples, args = int(args[0]), args[1:]
    mock = {}
    if args[0].startswith("--undecodable="):
        positions = {int(p) for p in args[0].split("=", 1)[1].split(",")}
        mock["as_dataset_fn"] = undecodable_examples(num_examples, positions)
        args = args[1:]
    if not args:
        sys.exit(USAGE)
    import tensorflow_datasets as tfds

    sys.argv = args
    with tfds.testing.mock_data(num_examples=num_examples, **mock):
        runpy.run_path(args[0], run_name="__main__")


if __name__ == "__main__":
    main()
