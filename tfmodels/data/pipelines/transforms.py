"""How a pipeline turns raw pixels into a net's input (`PipelineSpec.preprocessing`).

* `None`: the dataset's own normalisation, `(pixels / pixel_max - mean) / std`, with the
  CIFAR-style pad / crop / flip augmentation in training (`preprocessing.preprocess_batch`, on
  whole batches, XLA-compiled). With an `image_size` other than the dataset's, each batch is
  first resized (bilinear, `preprocessing.resize_batch`). Fixed-size datasets only.
* a per-net name ('vgg', 'inception', 'cifarnet', 'lenet'): tf-slim's `preprocess_image` of
  every example at `image_size` (`preprocessing.get_preprocessing`), which also produces the
  net's input scale (vgg: minus the ImageNet means; inception: [-1, 1]; ...). It sees 8-bit
  pixels: a dataset stored on another scale (digits: 0..16) is rescaled to 0..255 first.
  CifarNet's training transform (pad 4, random crop) is made for images of the output size:
  other sizes are first centre-cropped / zero-padded to it, as its evaluation does.

Training randomness of per-net preprocessing is stateless: the example at row `r` of the global
batch of step `s` is preprocessed with the seed `example_seed(seed, s, r)`, so its image is the
same on any number of replicas, in any tf.data parallelism and after a resume. Without
augmentation (`augment=False`) training uses the evaluation transform.
"""
import tensorflow as tf

from tfmodels.data.pipelines import layout as layout_lib
from tfmodels.data import preprocessing

# Names the random stream of per-example preprocessing (independent of shuffling and of the
# dataset augmentation's draws for one user seed).
PREPROCESS_SALT = 0x9E7


def example_seed(seed, step, row):
    """The stateless seed (int64 [2]) of the example at `row` of global step `step`'s batch.

    Args:
      seed: the user's integer seed.
      step: the global step (int64 scalar).
      row: the example's row in the global batch, `replica * per_replica + i` (int64 scalar).
    """
    base = preprocessing.derive_seed(seed, PREPROCESS_SALT, step)
    return tf.random.experimental.stateless_fold_in(base, tf.cast(row, tf.int64))


def eight_bit(image, pixel_max):
    """`image` as uint8 pixels in 0..255: as is when stored so, else rescaled by
    `255 / pixel_max` and rounded (digits' 0..16; float pixels given to an export)."""
    if pixel_max == 255.0 and image.dtype == tf.uint8:
        return image
    scaled = tf.cast(image, tf.float32) * (255.0 / float(pixel_max))
    return tf.cast(tf.clip_by_value(tf.round(scaled), 0.0, 255.0), tf.uint8)


def example_fn(info, name, size, training):
    """The per-net preprocessing of one example.

    Args:
      info: the `DatasetInfo` (its `pixel_max` gives the pixels' scale).
      name: a per-net preprocessing name (`preprocessing.PREPROCESSING_FNS`).
      size: (height, width) of the output.
      training: the random training transform (then called with a seed) or the evaluation one.

    Returns:
      `fn(image, seed=None) -> float32 [height, width, C]` for one raw image [H, W, C].
    """
    preprocess = preprocessing.get_preprocessing(name, is_training=training)
    height, width = (int(d) for d in size)

    def apply(image, seed=None):
        image = eight_bit(image, info.pixel_max)
        if training and name == "cifarnet":
            # slim's CifarNet training pads the 32x32 CIFAR images by 4 and crops 32x32 at
            # random: images of another size are first centre-cropped / padded to the output
            # size, as its evaluation does (a no-op for images of that size).
            image = tf.image.resize_with_crop_or_pad(image, height, width)
        if training:
            output = preprocess(image, height, width, seed=seed)
        else:
            output = preprocess(image, height, width)
        return tf.ensure_shape(output, [height, width, info.channels])

    return apply


def _map_rows(fn, elements, shape):
    return tf.map_fn(fn, elements, fn_output_signature=tf.TensorSpec(shape, tf.float32))


def train_batch(spec, pixels, step, replica, per_replica):
    """One replica's rows of a training batch, raw pixels -> network input.

    Args:
      spec: the `PipelineSpec`.
      pixels: [B, H, W, C] raw pixels of this replica's rows of global step `step`.
      step, replica: the global step and the replica's global index (int64 scalars).
      per_replica: B.

    Returns:
      float32 [B, *spec.output_shape].
    """
    if spec.preprocessing is None:
        offsets, flips = None, None
        if spec.augment:
            offsets, flips = layout_lib.augmentation_rows(spec, step, replica, per_replica)
        return preprocessing.preprocess_batch(pixels, spec.info, offsets=offsets, flips=flips,
                                              size=spec.image_size)
    if not spec.augment:
        return eval_batch(spec, pixels)
    fn = example_fn(spec.info, spec.preprocessing, spec.output_size, training=True)
    rows = tf.cast(replica, tf.int64) * per_replica + tf.range(per_replica, dtype=tf.int64)
    return _map_rows(lambda e: fn(e[0], example_seed(spec.seed, step, e[1])), (pixels, rows),
                     spec.output_shape)


def eval_batch(spec, pixels):
    """An evaluation batch, raw pixels [B, H, W, C] -> float32 [B, *spec.output_shape]."""
    if spec.preprocessing is None:
        return preprocessing.preprocess_batch(pixels, spec.info, size=spec.image_size)
    fn = example_fn(spec.info, spec.preprocessing, spec.output_size, training=False)
    return _map_rows(fn, pixels, spec.output_shape)


def serving_transform(info, image_shape, name):
    """The evaluation transform for an exported model's raw-pixel input.

    Args:
      info: the `DatasetInfo` the model was trained on.
      image_shape: (height, width, channels) the model takes.
      name: the run's preprocessing (None: the dataset's normalisation).

    Returns:
      (input `tf.TensorSpec` named 'pixels', `fn(pixels) -> float32 [N, *image_shape]`).
      With the dataset's normalisation the input is float32 [N, H, W, C] at the dataset's own
      size (resized in `fn` when the run resized it); with a per-net preprocessing it is
      float32 [N, h, w, C] of any size (one size per call), each image preprocessed as in
      evaluation (vgg: smaller side to 256, central crop).
    """
    height, width, channels = (int(d) for d in image_shape)
    if name is None:
        if info.variable_size:
            raise ValueError(f"dataset {info.name!r} has images of varying size: its exports "
                             "need a per-net preprocessing")
        resize = tuple(info.image_shape[:2]) != (height, width)
        norm = dict(pixel_max=info.pixel_max, mean=info.mean, std=info.std)

        def normalized(pixels):
            if resize:
                pixels = preprocessing.resize_batch(pixels, (height, width))
            return preprocessing.normalize(pixels, **norm)
        return tf.TensorSpec([None, *info.image_shape], tf.float32, name="pixels"), normalized
    fn = example_fn(info, name, (height, width), training=False)

    def preprocessed(pixels):
        return _map_rows(fn, pixels, (height, width, channels))
    return tf.TensorSpec([None, None, None, channels], tf.float32, name="pixels"), preprocessed
