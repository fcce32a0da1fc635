"""Input pipelines: global batch -> per-replica batches, exact-once evaluation, resumable training.

    dataset = make_dataset("digits", "train", global_batch_size=64, training=True, seed=0)
    dist = distribute_dataset(strategy, "cifar10", "train", global_batch_size=256,
                              training=True, augment=True, seed=0, deterministic=True)

Every argument is checked here (`_validate`) before any work, into a `PipelineSpec`; the
dataset's `Source` (see `datasets.SOURCES`) then builds the elements with the layout of
`layout.py`: element `u` of pipeline `p` holds one replica's rows of one global batch, so N
replicas see exactly the batches of one device. In-memory training streams are pure functions of
(seed, step) (`in_memory.py`), evaluation pads the last global batch with masked examples, and
tfds splits too large for memory stream (`streaming.py`).
"""
import dataclasses
import math
import numbers

import numpy as np
import tensorflow as tf

from tfmodels.data import datasets
from tfmodels.data.pipelines import decoding, on_device, resumable
from tfmodels.data import preprocessing as preprocessing_lib
from tfmodels.data.pipelines import layout as layout_lib
from tfmodels.data.sources.specs import PipelineSpec, check_split
from tfmodels.options import UsageError, check_int, is_int


def steps_per_epoch(info, split, global_batch_size):
    """Training steps per epoch: `num_examples // global_batch_size` (the remainder is dropped)."""
    check_split(info, split)
    _check_batch(global_batch_size)
    steps = info.splits[split] // global_batch_size
    if steps < 1:
        raise UsageError(f"--batch_size={global_batch_size} is larger than split {split!r} "
                         f"of {info.name!r} ({info.splits[split]} examples)", "batch_size")
    return steps


def num_eval_steps(info, split, global_batch_size):
    """Evaluation steps that cover a split once: `ceil(num_examples / global_batch_size)`."""
    check_split(info, split)
    _check_batch(global_batch_size)
    return math.ceil(info.splits[split] / global_batch_size)


def make_dataset(name, split, *, global_batch_size, training, input_context=None, augment=False,
                 seed=None, deterministic=False, data_dir=None, start_step=0, in_memory=None,
                 image_size=None, preprocessing=None, skip_undecodable=False,
                 skip_counter=None, classes=None):
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
        (seed, step). Batches always come in order (`layout.ordered_options`), evaluation
        included.
      data_dir: tfds data folder; None is tfds's default.
      start_step: training only: begin at this global step (resume without a checkpoint).
      in_memory: tfds only: True/False forces reading the split into memory / streaming; None
        decides by `tfds_source.IN_MEMORY_LIMIT_BYTES`. Images of varying size are streamed.
      image_size: (height, width) or an int (square) of the images to yield: a fixed-size
        dataset is resized to it (None: its own size); a dataset of varying image sizes needs
        it, and a per-net `preprocessing`.
      preprocessing: None: the dataset's normalisation (+ CIFAR-style augmentation); or a
        per-net preprocessing name (`preprocessing.PREPROCESSING_FNS`: 'vgg', 'inception',
        'cifarnet', 'lenet'), applied to each example (see `transforms.py`).
      skip_undecodable: decoded (variable-size) datasets: drop undecodable images, reporting
        and counting them, instead of stopping with an error naming the example.
      skip_counter: decoded datasets: the int64 `tf.Variable` to count skips in (None: one is
        made; `decoding.new_skip_counter()`).
      classes: class ids to keep (the others' examples are left out; a split held in memory
        only); None: every example.

    Returns:
      A `tf.data.Dataset` of dicts: `image` float32 [B, H, W, C], `label` int32 [B], and at
      evaluation `mask` float32 [B] (1 real, 0 padding); B is per-replica with `input_context`,
      global otherwise.
    """
    spec = _validate(name, split, global_batch_size=global_batch_size, training=training,
                     seed=seed, deterministic=deterministic, start_step=start_step,
                     data_dir=data_dir, augment=augment, in_memory=in_memory,
                     num_replicas=(input_context.num_replicas_in_sync if input_context else 1),
                     image_size=image_size, preprocessing_name=preprocessing,
                     skip_undecodable=skip_undecodable, classes=classes)
    if spec.info.variable_size:
        spec = dataclasses.replace(spec, skip_counter=skip_counter or
                                   decoding.new_skip_counter())
    return _build(spec, input_context)


def distribute_dataset(strategy, name, split, *, global_batch_size, training, augment=False,
                       seed=None, deterministic=False, data_dir=None, start_step=0,
                       in_memory=None, image_size=None, preprocessing=None,
                       skip_undecodable=False, classes=None, input_placement=None):
    """Per-replica batches for `strategy` via `distribute_datasets_from_function`, or, for
    training data placed on the devices, gathered there by each step (`on_device.py`).

    Args:
      strategy: a `tf.distribute.Strategy`.
      name, split, global_batch_size, training, augment, seed, deterministic, data_dir,
        start_step, in_memory, image_size, preprocessing, skip_undecodable, classes: as
        `make_dataset`
        (the strategy supplies each input pipeline's `input_context`).
      input_placement: training only: None (host pipelines, nothing logged), or 'auto',
        'device', 'host', chosen and logged by `on_device.choose_placement`.

    Returns:
      A `resumable.DistributedData`: `iter()` gives a checkpointable iterator
      (`tf.train.Checkpoint(iterator=it)`), `.steps` is steps per epoch (training) or
      `num_eval_steps` (evaluation), `.distributed_dataset` the plain tf.distribute dataset,
      `.skipped_examples` the undecodable examples skipped so far (all pipelines); or, for
      training data placed on the devices, an `on_device.DeviceData` (the same `iter()`,
      `.steps` and `.skipped_examples`, and a checkpoint entry of the same form).

    Raises:
      ValueError: before any work, if `global_batch_size` is not divisible by the number of
        replicas, or for any bad argument `make_dataset` rejects.
    """
    multi_worker = getattr(strategy.extended, "_in_multi_worker_mode", lambda: False)()
    if training and multi_worker and seed is None:
        # Each worker would draw its own seed, hence its own epoch order: examples would be
        # repeated or skipped across workers.
        raise ValueError("seed=None: multi-worker training needs an integer seed shared by all "
                         "workers")
    spec = _validate(name, split, global_batch_size=global_batch_size, training=training,
                     seed=seed, deterministic=deterministic, start_step=start_step,
                     data_dir=data_dir, augment=augment, in_memory=in_memory,
                     num_replicas=strategy.num_replicas_in_sync, image_size=image_size,
                     preprocessing_name=preprocessing, skip_undecodable=skip_undecodable,
                     classes=classes)
    if spec.info.variable_size:
        # One plain counter for every pipeline (made outside any strategy scope).
        with tf.init_scope(), tf.device("/cpu:0"):
            spec = dataclasses.replace(spec, skip_counter=decoding.new_skip_counter())
    if input_placement is not None and input_placement not in on_device.PLACEMENTS:
        raise ValueError(f"input_placement={input_placement!r} must be None or one of "
                         f"{', '.join(on_device.PLACEMENTS)}")
    if training and input_placement is not None and \
            on_device.choose_placement(spec, strategy, input_placement) == "device":
        return on_device.DeviceData(spec, strategy)
    datasets.source_of(spec.info).prepare(spec)
    options = input_options(strategy)

    def build(start):
        def dataset_fn(input_context):
            return _build(dataclasses.replace(spec, start_step=start), input_context)
        return strategy.distribute_datasets_from_function(dataset_fn, options)

    steps = (steps_per_epoch(spec.info, split, global_batch_size) if training
             else num_eval_steps(spec.info, split, global_batch_size))
    return resumable.DistributedData(build, steps=steps, start_step=spec.start_step,
                                     skip_counter=spec.skip_counter)


def input_options(strategy):
    """`tf.distribute.InputOptions` for our pipelines under `strategy`, or None (TF's default).

    MirroredStrategy over CPU devices gets one pipeline per replica (`PER_REPLICA`, no fetch to
    device): TF's default there, a MultiDeviceIterator per worker, made every training step
    1.5-1.9x slower (LeNets++, ResNet-20; measured: the training ops themselves ran slower, the
    input was not the cost). GPUs keep the default, which prefetches each replica's batch onto
    its device. The layout is global, so the batches are the same either way (`input_context`
    then names one replica per pipeline). MultiWorkerMirroredStrategy supports only the default.
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
    check_int("global_batch_size", global_batch_size, low=1)


def check_image_size(image_size, argument="image_size"):
    """`image_size` as None or (height, width): an int N means (N, N).

    Raises:
      ValueError: naming `argument`, unless None, a positive int or two positive ints.
    """
    if image_size is None:
        return None
    sides = (image_size, image_size) if isinstance(image_size, numbers.Integral) else image_size
    try:
        sides = tuple(sides)
    except TypeError:
        sides = ()
    if len(sides) != 2 or not all(is_int(d, low=1) for d in sides):
        raise UsageError(f"--{argument}={image_size!r} must be None, a positive int or "
                         "(height, width) of positive ints", argument)
    return tuple(int(d) for d in sides)


def check_preprocessing(name, info, argument="preprocessing"):
    """Raises ValueError unless `name` is None or a per-net preprocessing `info` can take."""
    if name is None:
        return
    names = ", ".join(sorted(preprocessing_lib.PREPROCESSING_FNS))
    if not isinstance(name, str) or name not in preprocessing_lib.PREPROCESSING_FNS:
        raise UsageError(f"--{argument}={name} is not one of: None (the dataset's "
                         f"normalisation), {names}")
    if name in ("vgg", "inception") and info.channels != 3:
        raise UsageError(f"--{argument}={name} works on RGB images; dataset {info.name!r} has "
                         f"{info.channels} channel(s) (try 'lenet' or 'cifarnet')")


def _validate(name, split, *, global_batch_size, training, seed, deterministic, start_step,
              data_dir, augment, in_memory, num_replicas, image_size=None,
              preprocessing_name=None, skip_undecodable=False, classes=None):
    """Checks every argument (cheap ones first) and returns the `PipelineSpec`."""
    _check_batch(global_batch_size)
    layout_lib.split_batch(global_batch_size, num_replicas)
    for arg, value in (("training", training), ("augment", augment),
                       ("deterministic", deterministic), ("skip_undecodable", skip_undecodable)):
        if not isinstance(value, bool):
            raise ValueError(f"{arg}={value!r} must be True or False")
    if in_memory not in (None, True, False):
        raise ValueError(f"in_memory={in_memory!r} must be None (automatic), True or False")
    if seed is not None:
        check_int("seed", seed, low=0)
    check_int("start_step", start_step, low=0)
    if training and deterministic and seed is None:
        raise ValueError("seed=None: deterministic=True training needs an integer seed")
    size = check_image_size(image_size)
    info = datasets.get_dataset_info(name, data_dir=data_dir)
    check_split(info, split)
    check_preprocessing(preprocessing_name, info)
    if info.variable_size:
        if size is None or preprocessing_name is None:
            raise ValueError(
                f"dataset {info.name!r} has images of varying size {info.image_shape}: batching "
                f"them needs image_size=(height, width) and a per-net preprocessing (one of "
                f"{', '.join(sorted(preprocessing_lib.PREPROCESSING_FNS))}); got "
                f"image_size={image_size!r}, preprocessing={preprocessing_name!r}")
        if in_memory:
            raise ValueError(f"in_memory=True: dataset {info.name!r} has images of varying "
                             "size, which are streamed")
    elif size == tuple(info.image_shape[:2]):
        size = None  # the dataset's own size: nothing to resize
    if classes is not None:
        info, classes, in_memory = _class_subset(info, split, classes, in_memory)
    if training:
        steps_per_epoch(info, split, global_batch_size)
    if seed is None:
        # One draw per pipeline build would desynchronise workers; draw once, here.
        seed = int(np.random.SeedSequence().entropy % 2**63)
    return PipelineSpec(info=info, split=split, global_batch_size=int(global_batch_size),
                        training=training, seed=int(seed), deterministic=deterministic,
                        start_step=int(start_step), augment=augment, in_memory=in_memory,
                        image_size=size, preprocessing=preprocessing_name, classes=classes,
                        skip_undecodable=skip_undecodable)


def class_subset(info, split, classes):
    """`info` whose `split` counts only the examples of `classes` (ids in [0, num_classes)).

    Raises:
      ValueError: a class out of range, or a dataset not held in memory (the subset is taken
        from the split's arrays).
    """
    return _class_subset(info, split, classes, None)[0]


def _class_subset(info, split, classes, in_memory):
    """(class_subset's info, the sorted classes, the in_memory to build with)."""
    classes = tuple(sorted({int(c) for c in classes}))
    if not classes or classes[0] < 0 or classes[-1] >= info.num_classes:
        raise ValueError(f"classes={list(classes)} must be ids in [0, {info.num_classes - 1}]")
    if datasets.source_of(info).arrays is None or info.variable_size or in_memory is False:
        raise ValueError(f"a class subset (train_classes) needs a dataset held in memory; "
                         f"{info.name!r} is not (use digits, mnist, cifar10, ... or a tfds "
                         "dataset of fixed image size that fits in memory)")
    _, labels = datasets.load_arrays(info, split)
    kept = int(np.isin(labels, classes).sum())
    info = dataclasses.replace(info, splits=dict(info.splits, **{split: kept}))
    return info, classes, True if info.source == "tfds" else in_memory


def _build(spec, input_context):
    layout = layout_lib.replica_layout(spec.global_batch_size, input_context)
    ds = datasets.source_of(spec.info).pipeline(spec, layout, input_context)
    return ds.prefetch(tf.data.AUTOTUNE).with_options(layout_lib.ordered_options())
