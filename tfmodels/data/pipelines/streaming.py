"""Streaming input for tfds splits of fixed-size images too large to hold in memory.

Records are read in a fixed order (seeded file shuffle, deterministic interleave) and sharded
element-wise per input pipeline (`shard(P, p)`): exact for any number of pipelines, at the cost
of every worker reading every record. Training shuffles with a buffer of up to 10,000 examples,
repeats, and drops partial batches; augmentation draws follow the same (seed, global step, replica)
rule as in-memory data. Resuming at `start_step` replays and skips that many batches (correct but
O(position)), and a tf.data checkpoint of this pipeline contains its shuffle buffer. Evaluation
pads each pipeline's shard with masked zero images to `ceil(n / G)` full steps.
"""
import math

import tensorflow as tf

from tfmodels.data.pipelines import layout as layout_lib
from tfmodels.data.pipelines import transforms

SHUFFLE_BUFFER = 10_000


def pipeline(spec, layout, input_context, builder):
    """Builds one streaming input pipeline (per-replica batches, see `pipeline.make_dataset`).

    Args:
      spec: the checked `PipelineSpec` (a tfds dataset).
      layout: this pipeline's `layout.Layout`.
      input_context: `tf.distribute.InputContext` or None (one pipeline).
      builder: the prepared tfds builder of `spec.info`.

    Returns:
      A `tf.data.Dataset` of `{'image', 'label'}` (+ `'mask'` at evaluation) per-replica batches.
    """
    import tensorflow_datasets as tfds

    info, split, seed = spec.info, spec.split, spec.seed
    per_replica, replicas, first = layout
    pipelines = input_context.num_input_pipelines if input_context else 1
    pipeline_id = input_context.input_pipeline_id if input_context else 0
    # Element-wise sharding needs every pipeline to read records in the same order.
    read_config = tfds.ReadConfig(shuffle_seed=seed, options=layout_lib.ordered_options())
    records = builder.as_dataset(split=split, shuffle_files=spec.training,
                                 read_config=read_config)
    records = records.map(lambda ex: (ex[info.image_key], tf.cast(ex[info.label_key], tf.int32)),
                          num_parallel_calls=tf.data.AUTOTUNE)
    records = records.shard(pipelines, pipeline_id)
    if spec.training:
        buffer = min(SHUFFLE_BUFFER, info.splits[split])
        records = records.repeat().shuffle(buffer, seed=seed)
        batches = records.batch(per_replica, drop_remainder=True).enumerate()
        batches = batches.skip(spec.start_step * replicas)

        def train_batch(u, batch):
            pixels, labels = batch
            image = transforms.train_batch(spec, pixels, u // replicas, first + u % replicas,
                                           per_replica)
            return {"image": image, "label": labels}
        return batches.map(train_batch, num_parallel_calls=tf.data.AUTOTUNE)

    num_examples = info.splits[split]
    mine = len(range(pipeline_id, num_examples, pipelines))
    target = math.ceil(num_examples / spec.global_batch_size) * replicas * per_replica
    zero = (tf.zeros(info.image_shape, tf.uint8), tf.constant(0, tf.int32))
    padding = tf.data.Dataset.from_tensors(zero).repeat(target - mine)
    examples = records.map(lambda x, y: (x, y, 1.0)).concatenate(
        padding.map(lambda x, y: (x, y, 0.0)))

    def eval_batch(pixels, labels, mask):
        return {"image": transforms.eval_batch(spec, pixels), "label": labels,
                "mask": mask}
    return examples.batch(per_replica, drop_remainder=True).map(
        eval_batch, num_parallel_calls=tf.data.AUTOTUNE)
