"""tensorflow-datasets: `mnist`, `fashion_mnist`, `cifar10`, `cifar100`, and any image
classification dataset as `tfds:NAME`.

The image and label features and the class count come from the builder's info. A split of
fixed-size images is read into memory (uint8, once per process) when it fits in
`IN_MEMORY_LIMIT_BYTES`, and streamed otherwise (`streaming.py`); images of varying size are
always streamed, decoded and preprocessed one by one (`variable_size.py`). tfds never downloads
here: a dataset that is not prepared under `data_dir` raises `DatasetUnavailableError` at once,
naming the dataset, the folder searched and how to prepare it (tfds's own download retries for
~205 s offline and leaves a half-made folder).

Inside `tfds.testing.mock_data` (how tfds users test pipelines) builders serve generated
examples and have no prepared files: they are let through (`is_mocked`), and their split sizes
are what they yield (mock_data's info reports no splits without metadata, or the real sizes
with it, while yielding `num_examples`).
"""
import contextlib
import functools
import json
import os
import shlex

import numpy as np
from absl import logging as absl_logging

from tfmodels.data.pipelines import in_memory, streaming, variable_size
from tfmodels.data.sources.specs import DatasetInfo, DatasetUnavailableError, Source, check_split
from tfmodels.options import UsageError

# Upper bound on one split's uint8 pixels held in memory. The arrays are captured as constants
# in the tf.data graph, which tf.data serialises (GraphDef protos are limited to 2 GB).
IN_MEMORY_LIMIT_BYTES = 1 << 30

# Per-channel statistics of the training images scaled to [0, 1] (the usual CIFAR constants).
_CIFAR10_MEAN, _CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
_CIFAR100_MEAN, _CIFAR100_STD = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)

# name -> (tfds name, mean, std, crop padding, horizontal flips). Digits are not mirror
# symmetric, so MNIST does not flip; clothes and CIFAR objects are. Other tfds datasets do not
# flip: whether a mirrored image keeps its label is not known (SVHN digits would not).
ALIASES = {
    "mnist": ("mnist", None, None, 4, False),
    "fashion_mnist": ("fashion_mnist", None, None, 4, True),
    "cifar10": ("cifar10", _CIFAR10_MEAN, _CIFAR10_STD, 4, True),
    "cifar100": ("cifar100", _CIFAR100_MEAN, _CIFAR100_STD, 4, True),
}
_PREFIX = "tfds:"


def accepts(name):
    return name in ALIASES or (name.startswith(_PREFIX) and len(name) > len(_PREFIX))


def info(name, data_dir=None):
    """The `DatasetInfo` of an alias or `tfds:NAME`, from the prepared builder's metadata."""
    if name in ALIASES:
        tfds_name, mean, std, padding, flip = ALIASES[name]
        return _info(name, tfds_name, data_dir, mean=mean, std=std, crop_padding=padding,
                     flip=flip)
    return _info(name, name[len(_PREFIX):], data_dir)


def uses_memory(spec):
    """Whether `spec`'s split is read into memory (forced by `spec.in_memory`, else by size)."""
    if spec.in_memory is not None:
        return bool(spec.in_memory)
    size = spec.info.split_bytes(spec.split)
    return size is not None and size <= IN_MEMORY_LIMIT_BYTES


def load_arrays(info, split):
    """One split as (uint8 [N, H, W, C], int32 [N]), decoded once per process (read-only)."""
    check_split(info, split)
    return _arrays(info.tfds_name, split, info.data_dir, info.image_key, info.label_key,
                   info.splits[split])


def prepare(spec):
    if uses_memory(spec):
        load_arrays(spec.info, spec.split)  # read once here, shared by every pipeline (cached)


def pipeline(spec, layout, input_context=None):
    if spec.info.variable_size:
        return variable_size.pipeline(spec, layout, input_context,
                                      builder(spec.info.tfds_name, spec.info.data_dir))
    if uses_memory(spec):
        return in_memory.pipeline(spec, layout, *load_arrays(spec.info, spec.split))
    return streaming.pipeline(spec, layout, input_context,
                              builder(spec.info.tfds_name, spec.info.data_dir))


def is_mocked(found):
    """True for a builder inside `tfds.testing.mock_data`, which replaces
    `DatasetBuilder.as_dataset` by its own generator of examples: nothing is read from files,
    so there is nothing to prepare."""
    as_dataset = getattr(type(found), "as_dataset", None)
    return getattr(as_dataset, "__module__", "").startswith("tensorflow_datasets.testing")


@contextlib.contextmanager
def _quiet_tfds():
    """tfds's own log lines (absl logging) held to errors inside the block."""
    saved = absl_logging.get_verbosity()
    absl_logging.set_verbosity(absl_logging.ERROR)
    try:
        yield
    finally:
        absl_logging.set_verbosity(saved)


def builder(tfds_name, data_dir):
    """A tfds builder that is known to be prepared (never downloads)."""
    import tensorflow_datasets as tfds

    # tfds's warnings about the missing files say less than our error.
    with _quiet_tfds():
        try:
            found = tfds.builder(tfds_name, data_dir=data_dir)
        except tfds.core.registered.DatasetNotFoundError:
            raise UsageError(f"--dataset=tfds:{tfds_name}: tfds has no dataset named "
                             f"{tfds_name!r}; see tfds.list_builders()") from None
        prepared = found.is_prepared() or is_mocked(found)
    if not prepared:
        target = os.path.abspath(os.path.expanduser(data_dir or "~/tensorflow_datasets"))
        code = (f"import tensorflow_datasets as tfds; tfds.builder({json.dumps(tfds_name)}, "
                f"data_dir={json.dumps(target)}).download_and_prepare()")
        raise DatasetUnavailableError(
            f"Dataset {tfds_name!r} is not prepared in {target} (looked for {found.data_dir}); "
            f"tfmodels does not download datasets. Prepare it once on a machine with network: "
            f"python -c {shlex.quote(code)} (or tfds build {tfds_name} "
            f"--data_dir={shlex.quote(target)}), "
            f"then copy {os.path.join(target, tfds_name)} here and pass --data_dir.", "data_dir")
    return found


def _info(name, tfds_name, data_dir, *, mean=None, std=None, crop_padding=4, flip=False):
    import tensorflow_datasets as tfds

    found = builder(tfds_name, data_dir)
    metadata = found.info
    features = metadata.features
    # Most tfds classification datasets declare supervised_keys=('image', 'label').
    keys = metadata.supervised_keys
    if not (isinstance(keys, tuple) and len(keys) == 2 and all(isinstance(k, str) for k in keys)):
        keys = ("image", "label")
    image_key, label_key = keys
    image = features[image_key] if image_key in features else None
    label = features[label_key] if label_key in features else None
    if not isinstance(image, tfds.features.Image) or not isinstance(label,
                                                                    tfds.features.ClassLabel):
        raise UsageError(f"dataset {name!r} is not an image classification dataset: it needs an "
                         f"Image feature and a ClassLabel feature (features: {features})")
    shape = tuple(image.shape)
    channels = shape[-1] or 3
    if is_mocked(found):
        splits = _mocked_splits(found)
    else:
        splits = {split: int(s.num_examples) for split, s in metadata.splits.items()}
    return DatasetInfo(
        name=name, image_shape=shape, num_classes=int(label.num_classes), splits=splits,
        train_split="train" if "train" in splits else sorted(splits)[0],
        eval_split=next((s for s in ("test", "validation") if s in splits), "train"),
        source="tfds", pixel_max=255.0, mean=tuple(mean or (0.0,) * channels),
        std=tuple(std or (1.0,) * channels), crop_padding=crop_padding, flip=flip,
        tfds_name=tfds_name, image_key=image_key, label_key=label_key, data_dir=data_dir)


def _mocked_splits(found):
    """{split: examples yielded} of a mocked builder: its info's splits, or (no metadata, so
    any split name is served) 'train', 'validation' and 'test'."""
    sizes = {}
    for split in list(found.info.splits) or ["train", "validation", "test"]:
        examples = found.as_dataset(split=split)
        size = int(examples.cardinality())
        if size < 0:  # a hand-written as_dataset_fn of unknown length: count
            size = int(examples.reduce(np.int64(0), lambda count, _: count + 1))
        sizes[split] = size
    return sizes


@functools.lru_cache(maxsize=8)
def _arrays(tfds_name, split, data_dir, image_key, label_key, num_examples):
    """The split's arrays; `num_examples` is part of the cache key (mocks of other sizes)."""
    import tensorflow_datasets as tfds

    del num_examples

    examples = tfds.as_numpy(builder(tfds_name, data_dir).as_dataset(split=split,
                                                                     batch_size=-1))
    pixels = np.asarray(examples[image_key], np.uint8)
    labels = np.asarray(examples[label_key], np.int32)
    pixels.setflags(write=False)
    labels.setflags(write=False)
    return pixels, labels


SOURCE = Source(name="tfds", names=(*ALIASES, "tfds:NAME"), accepts=accepts, info=info,
                prepare=prepare, pipeline=pipeline, arrays=load_arrays)
