"""The images a pairs file names (person, number), read from tfds's `lfw` (`--pairs_images=tfds:lfw`).

tfds's `lfw` stores each image with its person's name (`label`) but not its file name, so the
number pairs.txt gives (n of `<name>_<nnnn>.jpg`, 1-based) is recovered from how tfds wrote the
split: its builder yields the key `<name>/<name>_<nnnn>.jpg` for each file, and tfds writes a
split's examples sorted by the MD5 of the split's name followed by the key (its shuffling,
`tensorflow_datasets.core.hashing.Hasher(split)`), which reading without shuffling keeps. A
person with k images has files 1..k (as LFW numbers them), so the person's i-th image in read
order is the file whose key has the i-th smallest hash. This holds for splits tfds prepared with
shuffling (every released `lfw`); it is checked in the tests by preparing the builder over a
folder of known files.
"""
import hashlib

import numpy as np

from tfmodels.data.sources import tfds_source
from tfmodels.options import UsageError

PREFIX = "tfds:"
SPLIT = "train"  # lfw's only split


def tfds_name(pairs_images):
    """The tfds dataset `--pairs_images=tfds:NAME` names, else None (an image folder)."""
    if pairs_images and pairs_images.startswith(PREFIX) and len(pairs_images) > len(PREFIX):
        return pairs_images[len(PREFIX):]
    return None


def file_numbers(name, count, split=SPLIT):
    """The file numbers (1..count) of `name`'s images in the order tfds wrote them."""
    salt = hashlib.md5(split.encode())

    def hashed(number):
        md5 = salt.copy()
        md5.update(f"{name}/{name}_{number:04d}.jpg".encode())
        return int(md5.hexdigest(), 16)

    return sorted(range(1, count + 1), key=hashed)


def _examples(dataset, data_dir, with_images):
    """(name, uint8 image or None) of the split, in the order tfds wrote them."""
    import tensorflow_datasets as tfds

    found = tfds_source.builder(dataset, data_dir)  # prepared or mocked, never downloaded
    decoders = None if with_images else {"image": tfds.decode.SkipDecoding()}
    examples = found.as_dataset(split=SPLIT, shuffle_files=False, decoders=decoders)
    for example in tfds.as_numpy(examples):
        label = example["label"]
        yield (label.decode() if isinstance(label, bytes) else str(label),
               example["image"] if with_images else None)


def check_pairs(dataset, data_dir, pairs):
    """Raise UsageError naming the first (person, number) of `pairs` that `tfds:dataset` lacks;
    reads the names only."""
    counts = _counts(dataset, data_dir)
    for a, i, c, j in pairs:
        for name, number in ((a, i), (c, j)):
            if not 1 <= number <= counts.get(name, 0):
                raise UsageError(
                    f"--pairs_images=tfds:{dataset} has no image {number} of {name!r} (it has "
                    f"{counts.get(name, 0)} of that person, numbered from 1)", "pairs_images")


def _counts(dataset, data_dir):
    counts = {}
    for name, _ in _examples(dataset, data_dir, with_images=False):
        counts[name] = counts.get(name, 0) + 1
    return counts


def read_images(dataset, data_dir, keys):
    """{(name, number): uint8 image [H, W, C]} for `keys`, from `tfds:dataset`'s split (two
    passes: the names, to number each person's images, then the images kept)."""
    keys = set(keys)
    counts = _counts(dataset, data_dir)
    numbers = {name: file_numbers(name, counts[name]) for name in {n for n, _ in keys}
               if name in counts}
    position, images = {}, {}
    for name, image in _examples(dataset, data_dir, with_images=True):
        if name in numbers:
            index = position.get(name, 0)
            position[name] = index + 1
            if (name, numbers[name][index]) in keys:
                images[(name, numbers[name][index])] = np.asarray(image)
    return images
