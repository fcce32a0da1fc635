"""Streamed tfds datasets of images of any size (`tfds:imagenette`, `tfds:oxford_flowers102`, ...).

    records (encoded images, in a fixed order) -> shard(P, p) -> [training: repeat, shuffle]
    -> decode each image (`decoding.decode_examples`) -> per-net preprocessing of each example
    to `image_size` (parallel map, ordered) -> batch

Images can only be batched once they have one size, so everything happens per example, before
batching. Records are read with `tfds.decode.SkipDecoding` (the encoded bytes are shuffled, not
the decoded images) and decoded by `decode_examples`: an undecodable image stops the pipeline
with an error naming the dataset and the example (its `tfds_id`), or with `skip_undecodable`
is dropped and counted in `spec.skip_counter`.

Training: the example at position `i` of pipeline `p`'s stream is row `i mod B` of its element
`i // B`, which the layout (`layout.py`) maps to a global step and replica; its preprocessing
seed is `transforms.example_seed(seed, step, row of the global batch)`. A stream starting at
`start_step` (a resume) replays the same seeded file order and shuffle buffer and skips
`start_step * R * B` records before decoding: exact, and O(position) in records read but not
in images decoded. With `skip_undecodable` the skipped positions count decoded examples, so the
replay decodes them too (and counts their skips again).

Evaluation: each pipeline's shard (`shard(P, p)`, every example exactly once over the
pipelines) is followed by masked zero images up to `ceil(n / G)` full steps, as in
`streaming.py`; skipped examples leave their place to padding.
"""
import math

import numpy as np
import tensorflow as tf

from tfmodels.data.pipelines import decoding, transforms
from tfmodels.data.pipelines import layout as layout_lib

SHUFFLE_BUFFER = 10_000  # encoded images
_INT64_MAX = np.iinfo(np.int64).max
_ID_KEY = "tfds_id"  # tfds.ReadConfig(add_tfds_id=True): '<file>__<index>' names a record


def pipeline(spec, layout, input_context, builder):
    """Builds one input pipeline of a variable-size tfds split (see `pipeline.make_dataset`).

    Args:
      spec: the checked `PipelineSpec` (`image_size` and a per-net `preprocessing` set).
      layout: this pipeline's `layout.Layout`.
      input_context: `tf.distribute.InputContext` or None (one pipeline).
      builder: the prepared (or mocked) tfds builder of `spec.info`.

    Returns:
      A `tf.data.Dataset` of `{'image', 'label'}` (+ `'mask'` at evaluation) per-replica batches.
    """
    pipelines = input_context.num_input_pipelines if input_context else 1
    pipeline_id = input_context.input_pipeline_id if input_context else 0
    records = _records(spec, builder).shard(pipelines, pipeline_id)
    if spec.training:
        return _training(spec, layout, records)
    return _evaluation(spec, layout, records, pipelines, pipeline_id)


def _records(spec, builder):
    """{'image': encoded bytes, 'label': int32, ['id']} in a fixed (seeded) order."""
    import tensorflow_datasets as tfds

    info = spec.info
    read_config = tfds.ReadConfig(shuffle_seed=spec.seed, options=layout_lib.ordered_options(),
                                  add_tfds_id=True)
    records = builder.as_dataset(split=spec.split, shuffle_files=spec.training,
                                 read_config=read_config,
                                 decoders={info.image_key: tfds.decode.SkipDecoding()})
    has_id = _ID_KEY in records.element_spec

    def select(example):
        found = {"image": example[info.image_key],
                 "label": tf.cast(example[info.label_key], tf.int32)}
        if has_id:
            found["id"] = example[_ID_KEY]
        return found
    return records.map(select)


def _decoded(spec, records):
    """`records` with decoded uint8 images (a mock serving decoded images passes through)."""
    if records.element_spec["image"].dtype != tf.string:
        return records
    decoded, _ = decoding.decode_examples(
        records, dataset_name=spec.info.name, image_key="image",
        id_key="id" if "id" in records.element_spec else None, channels=spec.info.channels,
        skip_errors=spec.skip_undecodable, skip_counter=spec.skip_counter,
        skip_hint="pass --skip_undecodable (skip_undecodable=True)")
    return decoded


def _training(spec, layout, records):
    per_replica, replicas, first = layout
    buffer = max(1, min(SHUFFLE_BUFFER, spec.info.splits[spec.split]))
    records = records.repeat().shuffle(buffer, seed=spec.seed)
    start = spec.start_step * replicas * per_replica
    if spec.skip_undecodable:  # positions count decoded examples: decode the replay too
        examples = _decoded(spec, records).skip(start)
    else:  # every record decodes (or the run stops): skip before decoding
        examples = _decoded(spec, records.skip(start))
    fn = transforms.example_fn(spec.info, spec.preprocessing, spec.output_size,
                               training=spec.augment)

    def preprocess(position, example):
        element, row = position // per_replica, position % per_replica
        step, replica = element // replicas, first + element % replicas
        seed = (transforms.example_seed(spec.seed, step, replica * per_replica + row)
                if spec.augment else None)
        return {"image": fn(example["image"], seed), "label": example["label"]}

    positions = tf.data.Dataset.range(start, _INT64_MAX)
    examples = tf.data.Dataset.zip(positions, examples).map(
        preprocess, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return examples.batch(per_replica, drop_remainder=True)


def _evaluation(spec, layout, records, pipelines, pipeline_id):
    info, split = spec.info, spec.split
    per_replica, replicas, _ = layout
    num_examples = info.splits[split]
    mine = len(range(pipeline_id, num_examples, pipelines))
    target = math.ceil(num_examples / spec.global_batch_size) * replicas * per_replica
    fn = transforms.example_fn(info, spec.preprocessing, spec.output_size, training=False)

    def preprocess(position, example):
        # More examples than the info says would push real ones out of the padded steps.
        check = tf.debugging.assert_less(
            position, tf.constant(mine, tf.int64),
            message=f"split {split!r} of dataset {info.name!r} yields more examples than the "
                    f"{num_examples} its info reports")
        with tf.control_dependencies([check]):
            image = fn(example["image"])
        return {"image": image, "label": example["label"], "mask": tf.constant(1.0)}

    real = tf.data.Dataset.zip(tf.data.Dataset.range(_INT64_MAX), _decoded(spec, records)).map(
        preprocess, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    padding = tf.data.Dataset.from_tensors({
        "image": tf.zeros(spec.output_shape, tf.float32), "label": tf.constant(0, tf.int32),
        "mask": tf.constant(0.0)}).repeat()
    # Skipped (undecodable) examples leave their places to padding: still `target` elements.
    return real.concatenate(padding).take(target).batch(per_replica, drop_remainder=True)
