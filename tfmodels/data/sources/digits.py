"""`digits`: scikit-learn's bundled `load_digits` (1,797 real 8×8 handwritten digits, pixel values
0..16, no network), the embedded default dataset.

Split once, stratified: for each class in order 0..9 one shared `np.random.RandomState(0)`
permutes that class's indices and the first `round(0.2 * n_class)` go to `test`. That gives
1,438 train / 359 test examples.
"""
import functools

import numpy as np

from tfmodels.data.pipelines import in_memory
from tfmodels.data.sources.specs import DatasetInfo, Source, check_split


def info(name="digits", data_dir=None):
    """The `DatasetInfo` of digits (`data_dir` unused)."""
    del data_dir
    return DatasetInfo(name=name, image_shape=(8, 8, 1), num_classes=10,
                       splits={k: len(v[1]) for k, v in _arrays().items()}, source="digits",
                       pixel_max=16.0, crop_padding=1, flip=False)


def load_arrays(split):
    """(pixels uint8 [N, 8, 8, 1], labels int32 [N]) of one split; read-only, cached."""
    check_split(info(), split)
    return _arrays()[split]


def pipeline(spec, layout, input_context=None):
    del input_context
    return in_memory.pipeline(spec, layout, *load_arrays(spec.split))


@functools.lru_cache(maxsize=None)
def _arrays():
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
    return splits


SOURCE = Source(name="digits", names=("digits",), accepts=lambda name: name == "digits",
                info=info, prepare=lambda spec: None, pipeline=pipeline,
                arrays=lambda info, split: load_arrays(split))
