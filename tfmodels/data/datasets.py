"""Dataset registry: what each dataset is (shape, classes, splits, normalisation) and its pixels.

Names accepted everywhere (`get_dataset_info`, `make_dataset`, `--dataset`):

* `digits` – scikit-learn's bundled `load_digits` (1,797 real 8×8 handwritten digits, pixel
  values 0..16, no network), split once, stratified: for each class in order 0..9 one shared
  `np.random.RandomState(0)` permutes that class's indices and the first `round(0.2 * n_class)`
  go to `test`. That gives 1,438 train / 359 test examples.
* `mnist`, `fashion_mnist`, `cifar10`, `cifar100` – tensorflow-datasets, read once into memory
  (uint8) and cached per process.
* `tfds:NAME` – any tfds image-classification dataset; the image and label features and the
  class count come from the builder's info. Read into memory when the uint8 split fits in
  `IN_MEMORY_LIMIT_BYTES`, streamed otherwise (see `pipeline.py`).
* `synthetic[:HxWxC[:CLASSES[:TRAIN[:TEST]]]]` – random images/labels made once and repeated, for
  benchmarking without an input bottleneck; default `synthetic:28x28x1:10:60000:10000`.

tfds never downloads here: a dataset that is not prepared under `data_dir` raises
`DatasetUnavailableError` at once, naming the dataset, the folder searched and how to prepare it
(tfds's own download retries for ~205 s offline and leaves a half-made folder).
"""
import dataclasses
import functools
import math
import re
from typing import Dict, Optional, Tuple

import numpy as np

# Upper bound on one split's uint8 pixels held in memory. The arrays are captured as constants
# in the tf.data graph, which tf.data serialises (GraphDef protos are limited to 2 GB).
IN_MEMORY_LIMIT_BYTES = 1 << 30

# Per-channel statistics of the training images scaled to [0, 1] (the usual CIFAR constants).
_CIFAR10_MEAN, _CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
_CIFAR100_MEAN, _CIFAR100_STD = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)

# name -> (tfds name, mean, std, crop padding, horizontal flips). Digits are not mirror
# symmetric, so MNIST does not flip; clothes and CIFAR objects are. Other tfds datasets do not
# flip: whether a mirrored image keeps its label is not known (SVHN digits would not).
_TFDS_ALIASES = {
    "mnist": ("mnist", None, None, 4, False),
    "fashion_mnist": ("fashion_mnist", None, None, 4, True),
    "cifar10": ("cifar10", _CIFAR10_MEAN, _CIFAR10_STD, 4, True),
    "cifar100": ("cifar100", _CIFAR100_MEAN, _CIFAR100_STD, 4, True),
}
DATASET_NAMES = ("digits", *_TFDS_ALIASES, "tfds:NAME", "synthetic")
_SYNTHETIC_DEFAULT = ((28, 28, 1), 10, 60000, 10000)


class DatasetUnavailableError(FileNotFoundError):
    """A tfds dataset is not prepared under the data_dir and will not be downloaded."""


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """What the nets and the trainer need to know about a dataset (no duplicated constants).

    Attributes:
      name: the name as given (`mnist`, `tfds:svhn_cropped`, `synthetic:32x32x3:10`).
      image_shape: (H, W, C) of the images the pipeline yields.
      num_classes: labels are ints in [0, num_classes).
      splits: split name -> number of examples.
      train_split, eval_split: the splits to train and evaluate on by default.
      source: 'digits', 'tfds' or 'synthetic' (how pixels are produced).
      pixel_max: the raw pixel value that scales to 1.0 (255, or 16 for digits).
      mean, std: per-channel normalisation applied after scaling to [0, 1]:
        `image = (pixels / pixel_max - mean) / std`.
      crop_padding, flip: the training augmentation (`augment=True`): zero-pad by
        `crop_padding` pixels, crop back at a random offset, and flip left-right if `flip`.
      tfds_name, image_key, label_key, data_dir: where tfds data is read from.
    """
    name: str
    image_shape: Tuple[int, int, int]
    num_classes: int
    splits: Dict[str, int]
    train_split: str = "train"
    eval_split: str = "test"
    source: str = "tfds"
    pixel_max: float = 255.0
    mean: Tuple[float, ...] = (0.0,)
    std: Tuple[float, ...] = (1.0,)
    crop_padding: int = 4
    flip: bool = True
    tfds_name: Optional[str] = None
    image_key: str = "image"
    label_key: str = "label"
    data_dir: Optional[str] = None

    def split_bytes(self, split):
        """uint8 bytes of one split's pixels, or None when image sizes vary."""
        if any(d is None for d in self.image_shape):
            return None
        return math.prod(self.image_shape) * self.splits[split]


def list_datasets():
    """Returns the accepted dataset names (`tfds:NAME` and `synthetic` are patterns)."""
    return list(DATASET_NAMES)


def get_dataset_info(name, data_dir=None):
    """Describes a dataset without reading its pixels.

    Args:
      name: one of `list_datasets()`: `digits`, `mnist`, `fashion_mnist`, `cifar10`, `cifar100`,
        `tfds:NAME` or `synthetic[:HxWxC[:CLASSES[:TRAIN[:TEST]]]]`.
      data_dir: tfds data folder (tfds's default, `~/tensorflow_datasets` or `$TFDS_DATA_DIR`,
        when None). Ignored by `digits` and `synthetic`.

    Returns:
      A `DatasetInfo`.

    Raises:
      ValueError: unknown name, malformed synthetic spec, or not an image-classification dataset.
      DatasetUnavailableError: a tfds dataset that is not prepared under `data_dir`.
    """
    if isinstance(name, DatasetInfo):
        return name
    if not isinstance(name, str):
        raise ValueError(f"dataset name={name!r} must be a string, one of {list_datasets()}")
    if name == "digits":
        _, _, splits = _digits_arrays()
        return DatasetInfo(name="digits", image_shape=(8, 8, 1), num_classes=10,
                           splits={k: len(v[1]) for k, v in splits.items()}, source="digits",
                           pixel_max=16.0, crop_padding=1, flip=False)
    if name == "synthetic" or name.startswith("synthetic:"):
        shape, classes, n_train, n_test = _parse_synthetic(name)
        return DatasetInfo(name=name, image_shape=shape, num_classes=classes,
                           splits={"train": n_train, "test": n_test}, source="synthetic",
                           pixel_max=1.0, mean=(0.0,) * shape[-1], std=(1.0,) * shape[-1])
    if name in _TFDS_ALIASES:
        tfds_name, mean, std, padding, flip = _TFDS_ALIASES[name]
        return _tfds_info(name, tfds_name, data_dir, mean=mean, std=std,
                          crop_padding=padding, flip=flip)
    if name.startswith("tfds:") and len(name) > len("tfds:"):
        return _tfds_info(name, name[len("tfds:"):], data_dir)
    raise ValueError(f"Unknown dataset name={name!r}; valid names: {list_datasets()} "
                     "(e.g. 'tfds:svhn_cropped', 'synthetic:32x32x3:10')")


def load_arrays(info, split):
    """Reads one split fully into memory.

    Args:
      info: a `DatasetInfo` from `get_dataset_info` (source 'digits' or 'tfds').
      split: a key of `info.splits`.

    Returns:
      (pixels uint8 [N, H, W, C], labels int32 [N]); cached per process, do not modify.
    """
    check_split(info, split)
    if info.source == "digits":
        return _digits_arrays()[2][split]
    if info.source == "tfds":
        return _tfds_arrays(info.tfds_name, split, info.data_dir, info.image_key, info.label_key)
    raise ValueError(f"load_arrays needs a 'digits' or 'tfds' dataset, got source={info.source!r}")


def check_split(info, split):
    """Raises ValueError naming `split` and the valid splits when it is not in the dataset."""
    if split not in info.splits:
        raise ValueError(f"split={split!r} is not a split of dataset {info.name!r}; "
                         f"valid splits: {sorted(info.splits)}")


def _parse_synthetic(name):
    """'synthetic[:HxWxC[:CLASSES[:TRAIN[:TEST]]]]' -> ((H, W, C), classes, train, test)."""
    fields = name.split(":")[1:]
    shape, classes, n_train, n_test = _SYNTHETIC_DEFAULT
    pattern = re.compile(r"^\d+x\d+x\d+$")
    try:
        if len(fields) > 4 or (fields and not pattern.match(fields[0])):
            raise ValueError
        if fields:
            shape = tuple(int(d) for d in fields[0].split("x"))
        numbers = [int(f) for f in fields[1:]]
        classes, n_train, n_test = (numbers + [classes, n_train, n_test][len(numbers):])[:3]
    except ValueError:
        raise ValueError(f"synthetic dataset name={name!r} must look like "
                         "'synthetic[:HxWxC[:CLASSES[:TRAIN[:TEST]]]]', e.g. "
                         "'synthetic:32x32x3:10'") from None
    if min(shape) < 1 or classes < 1 or n_train < 1 or n_test < 1:
        raise ValueError(f"synthetic dataset name={name!r}: sizes, classes and split sizes "
                         "must be >= 1")
    return shape, classes, n_train, n_test


@functools.lru_cache(maxsize=None)
def _digits_arrays():
    """scikit-learn digits as uint8 0..16 [1797, 8, 8, 1] plus the fixed stratified split."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = digits.images.astype(np.uint8)[..., None]
    labels = digits.target.astype(np.int32)
    rng = np.random.RandomState(0)
    test = []
    for c in range(10):
        members = rng.permutation(np.flatnonzero(labels == c))
        test.append(members[:int(round(0.2 * len(members)))])
    is_test = np.zeros(len(labels), bool)
    is_test[np.concatenate(test)] = True
    splits = {"train": (images[~is_test], labels[~is_test]),
              "test": (images[is_test], labels[is_test])}
    for pixels, y in splits.values():
        pixels.setflags(write=False)
        y.setflags(write=False)
    return images, labels, splits


def _tfds_builder(tfds_name, data_dir):
    """A tfds builder that is known to be prepared (never downloads)."""
    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder(tfds_name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError:
        raise ValueError(f"tfds has no dataset named {tfds_name!r} (dataset name 'tfds:"
                         f"{tfds_name}'); see tfds.list_builders()") from None
    if not builder.is_prepared():
        raise DatasetUnavailableError(
            f"Dataset {tfds_name!r} is not prepared in data_dir={data_dir or '(tfds default)'} "
            f"(looked for {builder.data_dir}); tfmodels does not download datasets. "
            f"Prepare it once on a machine with network: `python -c \"import tensorflow_datasets "
            f"as tfds; tfds.builder('{tfds_name}', data_dir='DIR').download_and_prepare()\"` "
            f"(or `tfds build {tfds_name} --data_dir=DIR`), then copy DIR/{tfds_name} here and "
            "pass --data_dir=DIR.")
    return builder


def _tfds_info(name, tfds_name, data_dir, *, mean=None, std=None, crop_padding=4, flip=False):
    import tensorflow_datasets as tfds

    builder = _tfds_builder(tfds_name, data_dir)
    features = builder.info.features
    # Most tfds classification datasets declare supervised_keys=('image', 'label').
    keys = builder.info.supervised_keys
    if not (isinstance(keys, tuple) and len(keys) == 2 and all(isinstance(k, str) for k in keys)):
        keys = ("image", "label")
    image_key, label_key = keys
    image = features[image_key] if image_key in features else None
    label = features[label_key] if label_key in features else None
    if not isinstance(image, tfds.features.Image) or not isinstance(label,
                                                                    tfds.features.ClassLabel):
        raise ValueError(f"dataset {name!r} is not an image classification dataset: it needs an "
                         f"Image feature and a ClassLabel feature (features: {features})")
    shape = tuple(image.shape)
    channels = shape[-1] or 3
    splits = {split: int(s.num_examples) for split, s in builder.info.splits.items()}
    return DatasetInfo(
        name=name, image_shape=shape, num_classes=int(label.num_classes), splits=splits,
        train_split="train" if "train" in splits else sorted(splits)[0],
        eval_split=next((s for s in ("test", "validation") if s in splits), "train"),
        source="tfds", pixel_max=255.0, mean=tuple(mean or (0.0,) * channels),
        std=tuple(std or (1.0,) * channels), crop_padding=crop_padding, flip=flip,
        tfds_name=tfds_name, image_key=image_key, label_key=label_key, data_dir=data_dir)


@functools.lru_cache(maxsize=8)
def _tfds_arrays(tfds_name, split, data_dir, image_key, label_key):
    """One tfds split as (uint8 [N, H, W, C], int32 [N]), decoded once per process."""
    import tensorflow_datasets as tfds

    builder = _tfds_builder(tfds_name, data_dir)
    examples = tfds.as_numpy(builder.as_dataset(split=split, batch_size=-1))
    pixels = np.asarray(examples[image_key], np.uint8)
    labels = np.asarray(examples[label_key], np.int32)
    pixels.setflags(write=False)
    labels.setflags(write=False)
    return pixels, labels
