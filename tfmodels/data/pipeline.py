"""Input pipelines: global batch -> per-replica batches, exact-once evaluation, resumable training.

Layout. A global step `s` covers positions `[s*G, (s+1)*G)` of an epoch's order, and replica `j`
(of N) takes rows `[j*B, (j+1)*B)` with `B = G / N`. Input pipeline `p` (one per worker under
`distribute_datasets_from_function`) serves its replicas `j = p*R .. p*R+R-1` (`R = N / P`), one
per-replica batch per element, in that order. So the batches the replicas see at a step,
concatenated in replica order, are exactly the global batch one device would see.

* Training (in-memory data): epoch `e = s // steps_per_epoch` visits the training split in the
  order `tf.random.experimental.index_shuffle(position, seed=f(seed, e))`, a stateless bijection,
  and drops the last `n mod G` positions of the epoch's order (different examples each epoch).
  Augmentation draws come from `f(seed, s)`. The stream is a pure function of (seed, step), so an
  iterator's state is just its position: a tf.data checkpoint of `iter(make_dataset(...))` with
  `experimental_symbolic_checkpoint` is a few hundred bytes (~0.5 kB measured) and holds no
  shuffle buffer or prefetched images; `start_step` starts the stream anywhere.
* Evaluation: `num_eval_steps = ceil(n / G)` steps on every worker; positions >= n are padding
  (zero images, label 0, `mask` 0), so every replica gets a full batch at every step and every
  example is counted exactly once: sum metrics weighted by `mask`.
* tfds splits too large for memory stream instead (`streaming.py`).
"""
import math

import numpy as np
import tensorflow as tf

from tfmodels.data import datasets
from tfmodels.data import preprocessing
from tfmodels.data import resumable
from tfmodels.data import streaming

_INT64_MAX = np.iinfo(np.int64).max
_CONSTANTS = {}  # id(array) -> (array, tf constant): one copy per process, not per build


def steps_per_epoch(info, split, global_batch_size):
    """Training steps per epoch: `num_examples // global_batch_size` (the remainder is dropped)."""
    datasets.check_split(info, split)
    _check_batch(global_batch_size)
    steps = info.splits[split] // global_batch_size
    if steps < 1:
        raise ValueError(f"global_batch_size={global_batch_size} is larger than split {split!r} "
                         f"of {info.name!r} ({info.splits[split]} examples)")
    return steps


def num_eval_steps(info, split, global_batch_size):
    """Evaluation steps that cover a split once: `ceil(num_examples / global_batch_size)`."""
    datasets.check_split(info, split)
    _check_batch(global_batch_size)
    return math.ceil(info.splits[split] / global_batch_size)


def make_dataset(name, split, *, global_batch_size, training, input_context=None, augment=False,
                 seed=None, deterministic=False, data_dir=None, start_step=0, in_memory=None):
    """Builds one input pipeline of batched, preprocessed examples.

    Args:
      name: dataset name (see `list_datasets()`) or a `DatasetInfo`.
      split: a split of the dataset, e.g. `info.train_split`.
      global_batch_size: examples per step summed over all replicas.
      training: True: shuffled, augmented if `augment`, remainder dropped, repeats forever.
        False: one ordered pass, padded to full batches, with a `mask`.
      input_context: a `tf.distribute.InputContext`; batches are then per-replica
        (`global_batch_size / num_replicas_in_sync`) and cover this pipeline's share only.
      augment: pad + random crop (+ flip) when training; ignored at evaluation and for synthetic.
      seed: int in [0, 2**63): shuffling and augmentation; None draws one (not reproducible).
      deterministic: training: require a seed, so that the stream is a pure function of
        (seed, step). Batches always come in order (see `_build`), evaluation included.
      data_dir: tfds data folder; None is tfds's default.
      start_step: training only: begin at this global step (resume without a checkpoint).
      in_memory: tfds only: True/False forces reading the split into memory / streaming; None
        decides by `datasets.IN_MEMORY_LIMIT_BYTES`.

    Returns:
      A `tf.data.Dataset` of dicts: `image` float32 [B, H, W, C], `label` int32 [B], and at
      evaluation `mask` float32 [B] (1 real, 0 padding); B is per-replica with `input_context`,
      global otherwise.
    """
    spec = _validate(name, split, global_batch_size=global_batch_size, training=training,
                     seed=seed, deterministic=deterministic, start_step=start_step,
                     data_dir=data_dir, augment=augment, in_memory=in_memory,
                     num_replicas=(input_context.num_replicas_in_sync if input_context else 1))
    return _build(spec, input_context)


def distribute_dataset(strategy, name, split, *, global_batch_size, training, **kwargs):
    """Per-replica batches for `strategy` via `distribute_datasets_from_function`.

    Args:
      strategy: a `tf.distribute.Strategy`.
      name, split, global_batch_size, training, **kwargs: as `make_dataset` (without
        `input_context`, which the strategy supplies to each input pipeline).

    Returns:
      A `resumable.DistributedData`: `iter()` gives a checkpointable iterator
      (`tf.train.Checkpoint(iterator=it)`), `.steps` is steps per epoch (training) or
      `num_eval_steps` (evaluation), `.distributed_dataset` the plain tf.distribute dataset.

    Raises:
      ValueError: before any work, if `global_batch_size` is not divisible by the number of
        replicas, or for any bad argument `make_dataset` rejects.
    """
    unknown = set(kwargs) - {"augment", "seed", "deterministic", "data_dir", "start_step",
                             "in_memory"}
    if unknown:
        raise ValueError(f"distribute_dataset got unknown arguments {sorted(unknown)}; "
                         "the strategy supplies input_context")
    multi_worker = getattr(strategy.extended, "_in_multi_worker_mode", lambda: False)()
    if training and multi_worker and kwargs.get("seed") is None:
        # Each worker would draw its own seed, hence its own epoch order: examples would be
        # repeated or skipped across workers.
        raise ValueError("seed=None: multi-worker training needs an integer seed shared by all "
                         "workers")
    spec = _validate(name, split, global_batch_size=global_batch_size, training=training,
                     seed=kwargs.get("seed"), deterministic=kwargs.get("deterministic", False),
                     start_step=kwargs.get("start_step", 0), data_dir=kwargs.get("data_dir"),
                     num_replicas=strategy.num_replicas_in_sync,
                     augment=kwargs.get("augment", False), in_memory=kwargs.get("in_memory"))
    info = spec["info"]
    if _uses_memory(info, split, spec["in_memory"]):
        datasets.load_arrays(info, split)  # read once here, shared by every pipeline (cached)

    options = input_options(strategy)

    def build(start_step):
        def dataset_fn(input_context):
            return _build(dict(spec, start_step=start_step), input_context)
        return strategy.distribute_datasets_from_function(dataset_fn, options)

    steps = (steps_per_epoch(info, split, global_batch_size) if training
             else num_eval_steps(info, split, global_batch_size))
    return resumable.DistributedData(build, steps=steps, start_step=spec["start_step"])


def input_options(strategy):
    """`tf.distribute.InputOptions` for our pipelines under `strategy`, or None (TF's default).

    MirroredStrategy over CPU devices gets one pipeline per replica (`PER_REPLICA`, no fetch to
    device): TF's default there, a MultiDeviceIterator per worker, made every training step
    1.5-1.9x slower (LeNets++, ResNet-20; measured: the training ops themselves ran slower, the
    input was not the cost). GPUs keep the default, which prefetches each replica's batch onto its device.
    The layout is global, so the batches are the same either way (`input_context` then names
    one replica per pipeline). MultiWorkerMirroredStrategy supports only the default.
    """
    if not isinstance(strategy, tf.distribute.MirroredStrategy):
        return None
    devices = strategy.extended.worker_devices
    if not all(tf.DeviceSpec.from_string(d).device_type == "CPU" for d in devices):
        return None
    return tf.distribute.InputOptions(
        experimental_replication_mode=tf.distribute.InputReplicationMode.PER_REPLICA,
        experimental_fetch_to_device=False)


def _check_batch(global_batch_size):
    if isinstance(global_batch_size, bool) or not isinstance(global_batch_size,
                                                             (int, np.integer)) \
            or global_batch_size < 1:
        raise ValueError(f"global_batch_size={global_batch_size!r} must be a positive int")


def _validate(name, split, *, global_batch_size, training, seed, deterministic, start_step,
              data_dir, augment, in_memory, num_replicas):
    """Checks every argument (cheap ones first) and returns the pipeline spec."""
    _check_batch(global_batch_size)
    if global_batch_size % num_replicas:
        raise ValueError(f"global_batch_size={global_batch_size} is not divisible by the "
                         f"number of replicas ({num_replicas}); use a multiple of {num_replicas}")
    for arg, value in (("training", training), ("augment", augment),
                       ("deterministic", deterministic)):
        if not isinstance(value, bool):
            raise ValueError(f"{arg}={value!r} must be True or False")
    if in_memory not in (None, True, False):
        raise ValueError(f"in_memory={in_memory!r} must be None (automatic), True or False")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))
                             or not 0 <= seed < 2**63):
        raise ValueError(f"seed={seed!r} must be None or an int in [0, 2**63)")
    if not isinstance(start_step, (int, np.integer)) or start_step < 0:
        raise ValueError(f"start_step={start_step!r} must be a non-negative int")
    if training and deterministic and seed is None:
        raise ValueError("seed=None: deterministic=True training needs an integer seed")
    info = datasets.get_dataset_info(name, data_dir=data_dir)
    datasets.check_split(info, split)
    if any(d is None for d in info.image_shape):
        raise ValueError(f"dataset {info.name!r} has images of varying size {info.image_shape};"
                         " batching them needs a resize, which tfmodels.data does not do")
    if training:
        steps_per_epoch(info, split, global_batch_size)
    if seed is None:
        # One draw per pipeline build would desynchronise workers; draw once, here.
        seed = int(np.random.SeedSequence().entropy % 2**63)
    return dict(info=info, split=split, global_batch_size=int(global_batch_size),
                training=training, seed=int(seed), deterministic=deterministic,
                start_step=int(start_step), augment=augment, in_memory=in_memory)


def _layout(global_batch_size, input_context):
    """(per-replica batch B, replicas per pipeline R, first global replica of this pipeline)."""
    if input_context is None:
        return global_batch_size, 1, 0
    num_replicas = input_context.num_replicas_in_sync
    replicas_per_pipeline = num_replicas // input_context.num_input_pipelines
    per_replica = input_context.get_per_replica_batch_size(global_batch_size)
    return per_replica, replicas_per_pipeline, input_context.input_pipeline_id * \
        replicas_per_pipeline


def _uses_memory(info, split, in_memory):
    if info.source != "tfds":
        return info.source == "digits"
    if in_memory is not None:
        return bool(in_memory)
    size = info.split_bytes(split)
    return size is not None and size <= datasets.IN_MEMORY_LIMIT_BYTES


def _options(deterministic):
    options = tf.data.Options()
    options.deterministic = deterministic
    # Checkpoints keep positions only and recompute buffered elements on restore.
    options.experimental_symbolic_checkpoint = True
    return options


def _build(spec, input_context):
    info, split = spec["info"], spec["split"]
    layout = _layout(spec["global_batch_size"], input_context)
    if info.source == "synthetic":
        ds = _synthetic(spec, layout)
    elif _uses_memory(info, split, spec["in_memory"]):
        ds = _in_memory(spec, layout, *datasets.load_arrays(info, split))
    else:
        ds = streaming.streaming_dataset(
            info, split, global_batch_size=spec["global_batch_size"], layout=layout,
            input_context=input_context, training=spec["training"], augment=spec["augment"],
            seed=spec["seed"], start_step=spec["start_step"], options=_options(True))
        # Element-wise sharding needs every pipeline to read records in the same order.
        return ds.prefetch(tf.data.AUTOTUNE).with_options(_options(True))
    # Elements always come in order, training included: each element is one replica's rows of
    # one global step, and the layout (replica j of step s gets rows [sG + jB, sG + (j+1)B))
    # is what makes N replicas match one device (dropout masks follow the global row) and the
    # iterator position mean "steps drawn". Out-of-order delivery was seen under load with 2
    # workers (a chief one batch ahead); the maps are equal-cost, so order costs nothing.
    return ds.prefetch(tf.data.AUTOTUNE).with_options(_options(True))


def _positions(u, layout):
    """(global step, global replica, the B positions within the step) of pipeline element u."""
    per_replica, replicas, first = layout
    step = u // replicas
    replica = first + u % replicas
    return step, replica, replica * per_replica + tf.range(per_replica, dtype=tf.int64)


def _augment_rows(spec, step, replica, per_replica):
    info = spec["info"]
    return preprocessing.replica_draws(spec["seed"], step, spec["global_batch_size"], replica,
                                       per_replica, padding=info.crop_padding, flip=info.flip)


def _in_memory(spec, layout, pixels, labels):
    info, split, g = spec["info"], spec["split"], spec["global_batch_size"]
    n = info.splits[split]
    if len(labels) != n:
        raise RuntimeError(f"{info.name!r} split {split!r} yielded {len(labels)} examples but its "
                           f"info says {n}; the prepared data is inconsistent")
    pixels_t, labels_t = (_constant(pixels), _constant(labels))
    per_replica, replicas, _ = layout
    augment = spec["training"] and spec["augment"]

    @tf.autograph.experimental.do_not_convert
    def train_batch(u):
        step, replica, offset = _positions(u, layout)
        epochs_steps = n // g
        epoch_seed = preprocessing.derive_seed(spec["seed"], preprocessing.SHUFFLE_SALT,
                                               step // epochs_steps)
        index = tf.random.experimental.index_shuffle((step % epochs_steps) * g + offset,
                                                     seed=epoch_seed, max_index=n - 1)
        draws = _augment_rows(spec, step, replica, per_replica) if augment else (None, None)
        image = preprocessing.preprocess_batch(tf.gather(pixels_t, index), info,
                                               offsets=draws[0], flips=draws[1])
        return {"image": image, "label": tf.gather(labels_t, index)}

    @tf.autograph.experimental.do_not_convert
    def eval_batch(u):
        step, _, offset = _positions(u, layout)
        position = step * g + offset
        valid = position < n
        index = tf.minimum(position, n - 1)
        batch = tf.where(valid[:, None, None, None], tf.gather(pixels_t, index),
                         tf.zeros([], pixels_t.dtype))
        return {"image": preprocessing.preprocess_batch(batch, info),
                "label": tf.where(valid, tf.gather(labels_t, index), 0),
                "mask": tf.cast(valid, tf.float32)}

    if spec["training"]:
        elements = tf.data.Dataset.range(spec["start_step"] * replicas, _INT64_MAX)
        return elements.map(train_batch, num_parallel_calls=tf.data.AUTOTUNE)
    elements = tf.data.Dataset.range(num_eval_steps(info, split, g) * replicas)
    return elements.map(eval_batch, num_parallel_calls=tf.data.AUTOTUNE)


def _constant(array):
    # Keeping the array alive beside its tensor keeps its id from being reused.
    if id(array) not in _CONSTANTS:
        with tf.init_scope(), tf.device("/cpu:0"):
            _CONSTANTS[id(array)] = (array, tf.constant(array))
    return _CONSTANTS[id(array)][1]


def _synthetic(spec, layout):
    """One random batch made once and repeated (tf_cnn_benchmarks' synthetic input)."""
    info, g = spec["info"], spec["global_batch_size"]
    per_replica, replicas, _ = layout
    seed = preprocessing.derive_seed(spec["seed"], preprocessing.SYNTHETIC_SALT, 0)
    images = tf.random.stateless_uniform([per_replica, *info.image_shape], seed=seed)
    labels = tf.random.stateless_uniform([per_replica], seed=seed + 1, minval=0,
                                         maxval=info.num_classes, dtype=tf.int32)
    if spec["training"]:
        return tf.data.Dataset.from_tensors({"image": images, "label": labels}).repeat()
    n = info.splits[spec["split"]]

    @tf.autograph.experimental.do_not_convert
    def eval_batch(u):
        step, _, offset = _positions(u, layout)
        return {"image": images, "label": labels,
                "mask": tf.cast(step * g + offset < n, tf.float32)}

    steps = num_eval_steps(info, spec["split"], g)
    return tf.data.Dataset.range(steps * replicas).map(eval_batch)
