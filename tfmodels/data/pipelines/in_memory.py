"""Pipelines over a split held in memory (digits, and tfds splits that fit).

Training: epoch `e = s // steps_per_epoch` visits the split in the order
`tf.random.experimental.index_shuffle(position, seed=f(seed, e))`, a stateless bijection, and
drops the last `n mod G` positions of the epoch's order (different examples each epoch).
Augmentation draws come from `f(seed, s)` (`transforms.py`: the dataset's normalisation with
draws for the global batch, or a per-net preprocessing with one seed per row of it). The stream
is a pure function of (seed, step), so an iterator's state is just its position: a tf.data
checkpoint with `experimental_symbolic_checkpoint` is a few hundred bytes (~0.5 kB measured)
and holds no shuffle buffer or prefetched images; `start_step` starts the stream anywhere.

Evaluation: `ceil(n / G)` steps on every pipeline; positions >= n are padding (zero images,
label 0, `mask` 0), so every replica gets a full batch at every step and every example is
counted exactly once when metrics are weighted by `mask`.
"""
import math

import numpy as np
import tensorflow as tf

from tfmodels.data.pipelines import layout as layout_lib
from tfmodels.data import preprocessing
from tfmodels.data.pipelines import transforms

_INT64_MAX = np.iinfo(np.int64).max
_CONSTANTS = {}  # id(array) -> (array, tf constant): one copy per process, not per build


def pipeline(spec, layout, pixels, labels):
    """Per-replica batches of `spec` (a `PipelineSpec`) from the split's arrays.

    Args:
      spec: the checked request.
      layout: this pipeline's `layout.Layout`.
      pixels, labels: the whole split, uint8 [N, H, W, C] and int32 [N].

    Returns:
      A `tf.data.Dataset` of {'image', 'label'} (+ 'mask' at evaluation) per-replica batches.
    """
    info, split, g = spec.info, spec.split, spec.global_batch_size
    n = info.splits[split]
    if spec.classes is not None:  # a class subset: `info.splits` counts the kept examples
        kept = np.isin(labels, spec.classes)
        pixels, labels = pixels[kept], labels[kept]
    if len(labels) != n:
        raise RuntimeError(f"{info.name!r} split {split!r} yielded {len(labels)} examples but its "
                           f"info says {n}; the prepared data is inconsistent")
    pixels_t, labels_t = (_constant(pixels), _constant(labels))

    @tf.autograph.experimental.do_not_convert
    def train_batch(u):
        step, replica, _ = layout_lib.positions(u, layout)
        return train_rows(spec, pixels_t, labels_t, step, replica, layout.per_replica)

    @tf.autograph.experimental.do_not_convert
    def eval_batch(u):
        step, _, offset = layout_lib.positions(u, layout)
        position = step * g + offset
        valid = position < n
        index = tf.minimum(position, n - 1)
        batch = tf.where(valid[:, None, None, None], tf.gather(pixels_t, index),
                         tf.zeros([], pixels_t.dtype))
        return {"image": transforms.eval_batch(spec, batch),
                "label": tf.where(valid, tf.gather(labels_t, index), 0),
                "mask": tf.cast(valid, tf.float32)}

    if spec.training:
        elements = tf.data.Dataset.range(spec.start_step * layout.replicas, _INT64_MAX)
        return elements.map(train_batch, num_parallel_calls=tf.data.AUTOTUNE)
    elements = tf.data.Dataset.range(math.ceil(n / g) * layout.replicas)
    return elements.map(eval_batch, num_parallel_calls=tf.data.AUTOTUNE)


def train_rows(spec, pixels, labels, step, replica, per_replica):
    """One replica's training batch of global step `step`: its rows of the epoch's seeded order,
    augmented (the same ops wherever they run: in a tf.data map, or in the training step over a
    copy of the split on the replica's device, `on_device.py`).

    Args:
      spec: the `PipelineSpec` (training).
      pixels, labels: the whole split as tensors, [N, H, W, C] and [N].
      step, replica: the global step and the replica's global index (int64 scalars).
      per_replica: B, the per-replica batch.

    Returns:
      {'image': float32 [B, *spec.output_shape], 'label': [B]}.
    """
    index = train_indices(spec, step, replica, per_replica)
    image = transforms.train_batch(spec, tf.gather(pixels, index), step, replica, per_replica)
    return {"image": image, "label": tf.gather(labels, index)}


def train_indices(spec, step, replica, per_replica):
    """The split's indices of one replica's rows of global step `step` (int64 [B]): positions
    of the epoch's seeded order, `index_shuffle` being a bijection of [0, N)."""
    n, g = spec.info.splits[spec.split], spec.global_batch_size
    offset = replica * per_replica + tf.range(per_replica, dtype=tf.int64)
    steps_per_epoch = n // g
    epoch_seed = preprocessing.derive_seed(spec.seed, preprocessing.SHUFFLE_SALT,
                                           step // steps_per_epoch)
    return tf.random.experimental.index_shuffle((step % steps_per_epoch) * g + offset,
                                                seed=epoch_seed, max_index=n - 1)


def _constant(array):
    # Keeping the array alive beside its tensor keeps its id from being reused.
    if id(array) not in _CONSTANTS:
        with tf.init_scope(), tf.device("/cpu:0"):
            _CONSTANTS[id(array)] = (array, tf.constant(array))
    return _CONSTANTS[id(array)][1]
