"""`patterns[:HxWxC[:CLASSES[:TRAIN[:TEST]]]]`: a learnable dataset of up to millions of classes,
made on the spot (no download); default `patterns:8x8x1:1000:20000:5000`.

Class c is a sign pattern s_c in {-1, +1}^P over the P = H*W*C pixels: the first L =
ceil(log2(CLASSES + NOVEL)) entries are the bits of c, the others bits of a hash of (c, pixel),
and every entry is flipped by one fixed random mask (so no pixel is constant). An example of
class c has pixels s_c * m with magnitudes m uniform in [0.1, 1] (a hash of split, index and
pixel), stored as uint8 round(127.5 (1 + s m)), so the sign of every pixel survives: **the label
is a fixed function of the pixels** (unmask the first L signs, read c), and a net learns it as
a template match, `argmax_c <x, s_c>`, which needs every class seen in training.

Splits: `train` and `test` hold example i of class i mod CLASSES (balanced; test draws other
magnitudes), and `novel` holds 10 examples of each of NOVEL = min(100, CLASSES) classes that
never appear in `train` or `test` (pattern ids CLASSES..CLASSES+NOVEL-1, labelled 0..NOVEL-1):
k-NN retrieval of embeddings for unseen classes, as recommendation and face systems serve.

Normalisation maps pixels to s*m in [-1, 1] (mean 0.5, std 0.5 of [0, 1]); no augmentation
(crops and flips would destroy the code).
"""
import functools
import math

import numpy as np

from tfmodels.data.pipelines import in_memory
from tfmodels.data.sources.specs import DatasetInfo, Source, check_split, parse_generated_name
from tfmodels.options import UsageError

_DEFAULT = ((8, 8, 1), 1000, 20000, 5000)
NOVEL_PER_CLASS, MAX_NOVEL_CLASSES = 10, 100
_SALTS = {"pattern": 0x9E37, "mask": 0x7F4A, "train": 0x1B87, "test": 0x2C1B, "novel": 0x3A5D}


def accepts(name):
    return name == "patterns" or name.startswith("patterns:")


def parse(name):
    """'patterns[:HxWxC[:CLASSES[:TRAIN[:TEST]]]]' -> ((H, W, C), classes, train, test).

    Raises:
      ValueError: malformed, sizes < 1, or fewer pixels than the bits of a class id.
    """
    shape, classes, n_train, n_test = parse_generated_name(
        name, _DEFAULT, "patterns:8x8x1:10000:200000:10000")
    if min(shape) < 1 or classes < 2 or n_train < 1 or n_test < 1:
        raise UsageError(f"--dataset={name}: sizes and split sizes must be >= 1 "
                         "and classes >= 2")
    if math.prod(shape) < _code_bits(classes):
        raise UsageError(f"--dataset={name}: {math.prod(shape)} pixels cannot "
                         f"hold the {_code_bits(classes)} bits that tell {classes} classes "
                         "apart; use larger images")
    return shape, classes, n_train, n_test


def info(name, data_dir=None):
    """The `DatasetInfo` of a patterns spec (`data_dir` unused)."""
    del data_dir
    shape, classes, n_train, n_test = parse(name)
    novel = min(MAX_NOVEL_CLASSES, classes)
    return DatasetInfo(name=name, image_shape=shape, num_classes=classes,
                       splits={"train": n_train, "test": n_test,
                               "novel": novel * NOVEL_PER_CLASS},
                       source="patterns", pixel_max=255.0, mean=(0.5,) * shape[-1],
                       std=(0.5,) * shape[-1], crop_padding=0, flip=False)


def pattern_signs(classes, num_classes, num_pixels):
    """The sign patterns s_c, int8 [len(classes), P] in {-1, +1} (any class id >= 0).

    Args:
      classes: int array of class ids (ids >= num_classes are the novel classes).
      num_classes: CLASSES of the dataset (fixes the code length).
      num_pixels: P.
    """
    classes = np.asarray(classes, np.uint64)[:, None]
    pixel = np.arange(num_pixels, dtype=np.uint64)[None, :]
    bits = (_hash(_SALTS["pattern"], classes, pixel) >> np.uint64(63)).astype(np.int8)
    code = min(_code_bits(num_classes), num_pixels)
    bits[:, :code] = (classes >> np.arange(code, dtype=np.uint64)[None, :]) & np.uint64(1)
    mask = (_hash(_SALTS["mask"], np.uint64(0), pixel) >> np.uint64(63)).astype(np.int8)
    return (1 - 2 * (bits ^ mask)).astype(np.int8)


def decode(pixels, num_classes):
    """The class of uint8 pixels [N, H, W, C] of a patterns dataset: the label function."""
    flat = np.asarray(pixels).reshape(len(pixels), -1)
    code = _code_bits(num_classes)
    mask = (_hash(_SALTS["mask"], np.uint64(0), np.arange(code, dtype=np.uint64)[None, :])
            >> np.uint64(63)).astype(np.int64)
    bits = (flat[:, :code] < 128).astype(np.int64) ^ mask  # sign -1 <-> bit 1 after the mask
    return (bits << np.arange(code)[None, :]).sum(axis=1)


def load_arrays(name, split):
    """(pixels uint8 [N, H, W, C], labels int32 [N]) of one split; read-only, cached."""
    dataset = info(name)
    check_split(dataset, split)
    return _arrays(name, split)


@functools.lru_cache(maxsize=8)
def _arrays(name, split):
    shape, classes, _, _ = parse(name)
    count = info(name).splits[split]
    index = np.arange(count, dtype=np.int64)
    if split == "novel":
        labels = index // NOVEL_PER_CLASS
        ids = classes + labels
    else:
        labels = ids = index % classes
    num_pixels = math.prod(shape)
    pixels = np.empty((count, num_pixels), np.uint8)
    for start in range(0, count, 65536):  # bounded temporaries for a million examples
        stop = min(start + 65536, count)
        signs = pattern_signs(ids[start:stop], classes, num_pixels)
        u = (_hash(_SALTS[split], index[start:stop, None].astype(np.uint64),
                   np.arange(num_pixels, dtype=np.uint64)[None, :]) >> np.uint64(11))
        magnitude = 0.1 + 0.9 * (u.astype(np.float64) / 2.0 ** 53)
        pixels[start:stop] = np.rint(127.5 * (1.0 + signs * magnitude)).astype(np.uint8)
    pixels = pixels.reshape(count, *shape)
    labels = labels.astype(np.int32)
    pixels.setflags(write=False)
    labels.setflags(write=False)
    return pixels, labels


def _code_bits(num_classes):
    return max(1, math.ceil(math.log2(num_classes + min(MAX_NOVEL_CLASSES, num_classes))))


def _hash(salt, a, b):
    """splitmix64 of (salt, a, b), elementwise over broadcast uint64 arrays."""
    with np.errstate(over="ignore"):
        x = (np.uint64(salt) * np.uint64(0x9E3779B97F4A7C15)
             ^ np.asarray(a, np.uint64) * np.uint64(0xBF58476D1CE4E5B9)
             ^ np.asarray(b, np.uint64) * np.uint64(0x94D049BB133111EB))
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def pipeline(spec, layout, input_context=None):
    del input_context
    return in_memory.pipeline(spec, layout, *load_arrays(spec.info.name, spec.split))


SOURCE = Source(name="patterns", names=("patterns",), accepts=accepts, info=info,
                prepare=lambda spec: None, pipeline=pipeline,
                arrays=lambda info, split: load_arrays(info.name, split))
