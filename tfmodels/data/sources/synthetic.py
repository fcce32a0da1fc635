"""`synthetic[:HxWxC[:CLASSES[:TRAIN[:TEST]]]]`: random images and labels made once and repeated,
for benchmarking without an input bottleneck (tf_cnn_benchmarks' synthetic input); default
`synthetic:28x28x1:10:60000:10000`."""
import math

import tensorflow as tf

from tfmodels.data.pipelines import layout as layout_lib
from tfmodels.data import preprocessing
from tfmodels.data.sources.specs import DatasetInfo, Source, parse_generated_name
from tfmodels.options import UsageError

_DEFAULT = ((28, 28, 1), 10, 60000, 10000)


def accepts(name):
    return name == "synthetic" or name.startswith("synthetic:")


def info(name, data_dir=None):
    """The `DatasetInfo` of a synthetic spec (pixels already in [0, 1]; `data_dir` unused)."""
    del data_dir
    shape, classes, n_train, n_test = parse(name)
    return DatasetInfo(name=name, image_shape=shape, num_classes=classes,
                       splits={"train": n_train, "test": n_test}, source="synthetic",
                       pixel_max=1.0, mean=(0.0,) * shape[-1], std=(1.0,) * shape[-1])


def parse(name):
    """'synthetic[:HxWxC[:CLASSES[:TRAIN[:TEST]]]]' -> ((H, W, C), classes, train, test)."""
    shape, classes, n_train, n_test = parse_generated_name(name, _DEFAULT, "synthetic:32x32x3:10")
    if min(shape) < 1 or classes < 1 or n_train < 1 or n_test < 1:
        raise UsageError(f"--dataset={name}: sizes, classes and split sizes "
                         "must be >= 1")
    return shape, classes, n_train, n_test


def pipeline(spec, layout, input_context=None):
    """One random per-replica batch, repeated (training) or masked to the split's size.

    The images are already network input: made at `spec.image_size` when given, and neither
    augmented nor preprocessed.
    """
    del input_context
    info, g = spec.info, spec.global_batch_size
    batch = train_batch(spec, layout.per_replica)
    if spec.training:
        return tf.data.Dataset.from_tensors(batch).repeat()
    images, labels = batch["image"], batch["label"]
    n = info.splits[spec.split]

    @tf.autograph.experimental.do_not_convert
    def eval_batch(u):
        step, _, offset = layout_lib.positions(u, layout)
        return {"image": images, "label": labels,
                "mask": tf.cast(step * g + offset < n, tf.float32)}

    steps = math.ceil(n / g)
    return tf.data.Dataset.range(steps * layout.replicas).map(eval_batch)


def train_batch(spec, per_replica):
    """The one random batch {'image', 'label'} of `per_replica` rows every replica repeats."""
    seed = preprocessing.derive_seed(spec.seed, preprocessing.SYNTHETIC_SALT, 0)
    images = tf.random.stateless_uniform([per_replica, *spec.output_shape], seed=seed)
    labels = tf.random.stateless_uniform([per_replica], seed=seed + 1, minval=0,
                                         maxval=spec.info.num_classes, dtype=tf.int32)
    return {"image": images, "label": labels}


SOURCE = Source(name="synthetic", names=("synthetic",), accepts=accepts, info=info,
                prepare=lambda spec: None, pipeline=pipeline)
