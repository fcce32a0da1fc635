"""Training batches gathered and augmented on each replica's device from a copy of the split.

A split held in memory (digits, `patterns`, tfds splits that fit) is copied once onto every
replica's device; each training step then computes its replica's rows in the step's own graph
with the ops of the host pipeline (`in_memory.train_rows`: the seeded epoch order, the seeded
crop / flip, the normalisation), so the batches are the host pipeline's, N replicas still see
one device's global batch, and no batch crosses from the host per step. Synthetic data keeps
its one random per-replica batch on the device. The iterator's state is the host iterator's:
one int64 position saved under the same checkpoint key, so a run may resume across placements.

    data = DeviceData(spec, strategy)      # spec: a training `PipelineSpec`
    it = iter(data)                        # checkpointable; next(it) inside the step's function

`choose_placement` picks the placement (`auto`: on the device when the replicas are GPUs or TPUs
and the split is held as arrays, is normalised by the dataset's own statistics, and its copy fits
`DEVICE_LIMIT_BYTES` per replica; the host otherwise) and says why in one log line. CPU replicas
stay on the host under `auto`: there the batch needs no copy, and tf.data makes the next batches
on other cores while the step runs, whereas in the step the ops of shuffling, gathering and
augmenting a batch run in series with it, the epoch order's `index_shuffle` most of all on
small splits (~46 cipher evaluations a row for digits' 1,438 rows; bench/README.md, "Input on
the device").
"""
import math

import numpy as np
import tensorflow as tf
from absl import logging

from tfmodels.data import datasets
from tfmodels.data.pipelines import in_memory, transforms
from tfmodels.data.pipelines.resumable import PositionIterator
from tfmodels.data.sources import synthetic, tfds_source
from tfmodels.options import UsageError

PLACEMENTS = ("auto", "device", "host")
# Per replica. CIFAR-10/100 (154 MB of pixels), SVHN (226 MB) and MNIST (47 MB) fit.
DEVICE_LIMIT_BYTES = 512 << 20


def device_bytes(spec, num_replicas=1):
    """Bytes of one replica's copy of `spec`'s split (pixels as stored + int32 labels), or None
    when the split is not held as arrays (streamed, or images of varying size)."""
    info = spec.info
    if info.source == "synthetic":  # one float32 batch per replica
        return spec.global_batch_size // num_replicas * (math.prod(spec.output_shape) * 4 + 4)
    in_memory = info.source != "tfds" or tfds_source.uses_memory(spec)
    if _unplaceable(info, in_memory):
        return None
    return info.splits[spec.split] * (math.prod(info.image_shape) + 4)


def check_placeable(info, split):
    """Raises UsageError (naming --input_placement) unless `info`'s `split` can be placed on the
    device (held as arrays: not streamed, images of one size); before any work."""
    in_memory = info.source != "tfds" or (
        (info.split_bytes(split) or 0) <= tfds_source.IN_MEMORY_LIMIT_BYTES)
    reason = _unplaceable(info, in_memory)
    if reason:
        raise UsageError(f"--input_placement=device: dataset {info.name!r} cannot be placed on "
                         f"the device ({reason}); use auto or host", "input_placement")


def _unplaceable(info, in_memory):
    """Why a split of `info` cannot be placed on the device (None: it can)."""
    if info.variable_size:
        return "its images vary in size"
    if info.source == "synthetic":
        return None
    if datasets.source_of(info).arrays is None or not in_memory:
        return "its split is streamed from files"
    return None


def choose_placement(spec, strategy, placement):
    """'device' or 'host' for a training `spec` under `strategy`, logged in one line.

    Args:
      spec: the training `PipelineSpec`.
      strategy: the `tf.distribute.Strategy` that runs the steps.
      placement: 'auto', 'device' (the split must be held as arrays) or 'host'.

    Raises:
      ValueError: `placement` is not one of `PLACEMENTS`, or 'device' for data that cannot be
        placed (streamed, varying image size, multi-worker).
    """
    if placement not in PLACEMENTS:
        raise UsageError(f"--input_placement={placement} must be one of "
                         f"{', '.join(PLACEMENTS)}", "input_placement")
    size = device_bytes(spec, strategy.num_replicas_in_sync)
    where = f"{spec.info.name} {spec.split}"
    if placement == "host":
        _log("host", f"as asked (input_placement=host); {where}")
        return "host"
    cannot = None
    if size is None:
        cannot = _unplaceable(spec.info, False)
    elif _multi_worker(strategy):
        cannot = "multi-worker training reads on the host"
    elif spec.classes is not None:
        cannot = "a subset of the classes (--train_classes) is read on the host"
    if cannot:
        if placement == "device":
            raise UsageError(f"--input_placement=device: dataset {spec.info.name!r} cannot be "
                             f"placed on the device ({cannot}); use auto or host",
                             "input_placement")
        _log("host", f"{where}: {cannot}")
        return "host"
    if placement == "auto":
        if not _on_accelerators(strategy):
            _log("host", f"{where}: the replicas are CPUs, where the tf.data pipeline overlaps "
                         "the steps on other cores (input_placement=device moves it)")
            return "host"
        if spec.preprocessing is not None:
            _log("host", f"{where}: per-example preprocessing {spec.preprocessing!r} runs on "
                         "the host (input_placement=device moves it)")
            return "host"
        if size > DEVICE_LIMIT_BYTES:
            _log("host", f"{where}: {size:,} bytes per replica is over the device limit of "
                         f"{DEVICE_LIMIT_BYTES:,}")
            return "host"
    replicas = strategy.num_replicas_in_sync
    _log("device", f"{where}, {size:,} bytes per replica x {replicas} replica(s)")
    return "device"


def _log(placement, why):
    logging.info("input      %s: %s", placement, why)


def _multi_worker(strategy):
    return getattr(strategy.extended, "_in_multi_worker_mode", lambda: False)()


def _on_accelerators(strategy):
    """Whether every replica runs on a GPU or TPU."""
    devices = _replica_devices(strategy)
    if devices == [None]:  # the default strategy: the first GPU when there is one
        return bool(tf.config.list_logical_devices("GPU"))
    return all(tf.DeviceSpec.from_string(d).device_type in ("GPU", "TPU") for d in devices)


def _replica_devices(strategy):
    """One device name per replica, in replica order (None: TensorFlow's default device)."""
    try:
        return list(strategy.extended.worker_devices)
    except RuntimeError:  # the default strategy: one replica on the default device
        return [None]


def _as_words(pixels):
    """uint8 pixels [N, H, W, C] as int32 words [N, H*W*C/4] (the same bytes) when the row
    length allows: GPUs have no uint8 gather (TensorFlow would run it on the host, copying the
    whole split there each step), but gather int32 rows; other arrays unchanged."""
    rows = pixels.reshape(len(pixels), -1)
    if pixels.dtype != np.uint8 or rows.shape[1] % 4:
        return pixels
    return np.ascontiguousarray(rows).view(np.int32)


def _from_words(rows, dtype, image_shape):
    """Gathered rows of `_as_words` back to pixels [B, H, W, C] of `dtype`."""
    if rows.dtype == dtype:
        return rows
    return tf.reshape(tf.bitcast(rows, dtype), [-1, *image_shape])


def _to_device(array, device):
    with tf.init_scope():
        if device is None:  # eager ops go to the first GPU when there is one
            return tf.identity(tf.constant(array))
        with tf.device(device):
            return tf.identity(tf.constant(array))


class DeviceData:
    """A training split copied onto every replica's device (what `distribute_dataset` returns
    for placement 'device'). `iter()` it for a checkpointable iterator.

    Attributes:
      steps: steps per epoch.
      bytes_per_replica: bytes of one replica's copy.
      skipped_examples: 0 (nothing is decoded).
    """

    skipped_examples = 0

    def __init__(self, spec, strategy):
        if not spec.training:
            raise ValueError("DeviceData serves training batches; evaluation reads on the host")
        self.spec = spec
        self.strategy = strategy
        self.steps = spec.info.splits[spec.split] // spec.global_batch_size
        devices = _replica_devices(strategy)
        self.per_replica = spec.global_batch_size // len(devices)
        if spec.info.source == "synthetic":
            with tf.init_scope(), tf.device("/cpu:0"):  # the host pipeline's values, bitwise
                batch = synthetic.train_batch(spec, self.per_replica)
            arrays = {k: v.numpy() for k, v in batch.items()}
        else:
            pixels, labels = datasets.load_arrays(spec.info, spec.split)
            arrays = {"pixels": _as_words(pixels), "labels": labels}
            self._pixel_dtype = tf.as_dtype(pixels.dtype)
        self.bytes_per_replica = sum(int(a.nbytes) for a in arrays.values())
        self._copies = [{k: _to_device(a, d) for k, a in arrays.items()} for d in devices]
        self._devices = devices

    def __iter__(self):
        return DeviceIterator(self, self.spec.start_step)

    def batch(self, step):
        """The per-replica batches of global step `step` (a distributed value, or the one
        replica's dict under the default strategy)."""
        step = tf.cast(step, tf.int64)

        def replica_batch(context):
            replica = context.replica_id_in_sync_group
            copy, device = self._copies[replica], self._devices[replica]
            with tf.device(device):
                if "image" in copy:  # synthetic: the same batch every step
                    return dict(copy)
                replica_t = tf.constant(replica, tf.int64)
                index = in_memory.train_indices(self.spec, step, replica_t, self.per_replica)
                pixels = _from_words(tf.gather(copy["pixels"], index), self._pixel_dtype,
                                     self.spec.info.image_shape)
                image = transforms.train_batch(self.spec, pixels, step, replica_t,
                                               self.per_replica)
                return {"image": image, "label": tf.gather(copy["labels"], index)}

        return self.strategy.experimental_distribute_values_from_function(replica_batch)


class DeviceIterator(PositionIterator):
    """Batches of a `DeviceData` from its position on; saved as the host iterator is (one
    int64 `position`, the global steps drawn), and restorable at any time (the position is read
    in the graph)."""

    def __init__(self, device_data, start_step=0):
        super().__init__(start_step)
        self._data = device_data

    def _draw(self):
        """The next step's per-replica batches (the stream never ends)."""
        return self._data.batch(self._position.read_value())
