"""Fake *prepared* tfds datasets for tests and benchmarks (no network, no tfrecords).

`tfds.testing.mock_data` alone reports empty split info (and its examples do not match
`info.splits`), so `fake_prepared` first writes the dataset's real metadata with the split sizes
you choose into `data_dir` (what a prepared folder holds besides its records), then mocks the
record reading with `fake_examples`, a deterministic NumPy function that callers can use as the
reference:

    with fake_tfds.fake_prepared({"mnist": {"train": 120, "test": 50}}, tmp_path):
        info = data.get_dataset_info("mnist", data_dir=str(tmp_path))
        pixels, labels = fake_tfds.fake_examples("mnist", "test", 50, (28, 28, 1), 10)
"""
import contextlib
import functools
import os
import zlib

import numpy as np


@functools.lru_cache(maxsize=8)
def fake_examples(tfds_name, split, num_examples, image_shape, num_classes):
    """The examples `fake_prepared` serves: (uint8 [N, H, W, C], int64 [N]), seeded by name.

    Made once per arguments (tfds asks for a mocked split twice: its size, then its examples);
    the arrays are read-only.
    """
    rng = np.random.default_rng(zlib.crc32(f"{tfds_name}/{split}".encode()))
    pixels = rng.integers(0, 256, (num_examples, *tuple(image_shape)), dtype=np.uint8)
    labels = rng.integers(0, num_classes, num_examples, dtype=np.int64)
    pixels.setflags(write=False)
    labels.setflags(write=False)
    return pixels, labels


@contextlib.contextmanager
def fake_prepared(split_sizes, data_dir):
    """Makes tfds datasets look prepared under `data_dir`, with fake records of known sizes.

    Args:
      split_sizes: {tfds name: {split: num_examples}}, e.g. {"cifar10": {"train": 50000}}.
      data_dir: folder to write the metadata into (pass the same to `get_dataset_info`).

    Yields:
      None; inside the context tfds reads `fake_examples(...)` for these datasets.
    """
    import tensorflow as tf
    import tensorflow_datasets as tfds

    for tfds_name, sizes in split_sizes.items():
        builder = tfds.builder(tfds_name, data_dir=str(data_dir))
        builder.info.set_splits(tfds.core.SplitDict([
            tfds.core.SplitInfo(name=split, shard_lengths=[int(n)], num_bytes=0)
            for split, n in sizes.items()]))
        os.makedirs(builder.data_dir, exist_ok=True)
        builder.info.write_to_directory(builder.data_dir)

    def as_dataset(self, split, decoders=None, read_config=None, shuffle_files=False):
        del decoders, read_config, shuffle_files
        keys = self.info.supervised_keys
        image = self.info.features[keys[0]]
        label = self.info.features[keys[1]]
        pixels, labels = fake_examples(self.name, str(split), self.info.splits[split].num_examples,
                                       tuple(image.shape), label.num_classes)
        return tf.data.Dataset.from_tensor_slices({keys[0]: pixels, keys[1]: labels})

    with tfds.testing.mock_data(data_dir=str(data_dir), as_dataset_fn=as_dataset):
        yield
