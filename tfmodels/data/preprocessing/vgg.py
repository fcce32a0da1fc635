"""VGG / ResNet v1 preprocessing, exact to tf-slim's `preprocessing/vgg_preprocessing.py`.

Simonyan & Zisserman (arXiv:1409.1556), as slim implemented it for VGG and ResNet v1:

- training: resize (bilinear, aspect preserved) so the smaller side is `S`, drawn uniformly
  from [resize_side_min, resize_side_max] = [256, 512]; crop `height x width` at a uniformly
  random offset; flip left-right with probability 1/2; subtract the ImageNet channel means.
- evaluation: resize the smaller side to `resize_side_min` (256), crop the central
  `height x width`, subtract the means.

Output: float32 [height, width, 3], `pixel - (123.68, 116.78, 103.94)` (RGB), i.e. roughly
[-124, 152]. The arithmetic is slim's: the resized size is `rint(side * scale)` in float32, the
resize is TF1's bilinear kernel (`image_ops.resize_bilinear_v1`), the central crop's offsets are
`(resized - crop) // 2`; evaluation output equals slim's to the last bit (tested).
"""
import functools
import numbers

import numpy as np
import tensorflow as tf

from tfmodels.data.preprocessing import image_ops, seeded_ops
from tfmodels.options import check_int

CHANNEL_MEANS = (123.68, 116.78, 103.94)  # R, G, B
RESIZE_SIDE_MIN = 256
RESIZE_SIDE_MAX = 512


def smallest_size_at_least(height, width, smallest_side):
    """The aspect-preserving size whose smaller side is `smallest_side`.

    Args:
      height, width: int32 scalar tensors, the current size.
      smallest_side: int or int32 scalar tensor.

    Returns:
      (new_height, new_width) int32 scalars: `rint(height * scale)`, `rint(width * scale)`
      with `scale = smallest_side / min(height, width)`, all in float32 as slim computed them.
    """
    height = tf.cast(height, tf.float32)
    width = tf.cast(width, tf.float32)
    side = tf.cast(smallest_side, tf.float32)
    scale = tf.where(height > width, side / width, side / height)
    return (tf.cast(tf.math.rint(height * scale), tf.int32),
            tf.cast(tf.math.rint(width * scale), tf.int32))


@functools.lru_cache(maxsize=None)
def _mean_image(height, width):
    """CHANNEL_MEANS as a float32 [height, width, 3] array.

    Subtracting it is the same float32 subtraction per pixel as subtracting the [3] means, but
    without TensorFlow's broadcast over an innermost dimension of 3, which cost ~8% of a whole
    decode + resize + crop (bench/input_pipeline.py --jpeg).
    """
    return np.broadcast_to(np.asarray(CHANNEL_MEANS, np.float32), (height, width, 3)).copy()


def aspect_preserving_resize(image, smallest_side):
    """Bilinear (TF1) resize of `image` [H, W, C] so its smaller side is `smallest_side`.

    Returns:
      float32 [new_height, new_width, C].
    """
    shape = tf.shape(image)
    new_height, new_width = smallest_size_at_least(shape[0], shape[1], smallest_side)
    return image_ops.resize_bilinear_v1(image, tf.stack([new_height, new_width]))


def preprocess_for_train(image, height, width, resize_side_min=RESIZE_SIDE_MIN,
                         resize_side_max=RESIZE_SIDE_MAX, seed=None):
    """Random-scale resize, random crop, random flip, mean subtraction (module docstring)."""
    side_seed, crop_seed, flip_seed = seeded_ops.split_seed(seed, 3)
    side = seeded_ops.uniform_int(resize_side_min, resize_side_max + 1, side_seed)
    resized = aspect_preserving_resize(image, side)
    shape = tf.shape(resized)
    # Offsets as slim drew them: row then column, each uniform over the positions that fit.
    row_seed, col_seed = seeded_ops.split_seed(crop_seed, 2)
    offset_height = seeded_ops.uniform_int(0, tf.maximum(shape[0] - height + 1, 1), row_seed)
    offset_width = seeded_ops.uniform_int(0, tf.maximum(shape[1] - width + 1, 1), col_seed)
    cropped = image_ops.crop(resized, offset_height, offset_width, height, width)
    flipped = seeded_ops.flip_left_right(cropped, flip_seed)
    return flipped - _mean_image(height, width)


def preprocess_for_eval(image, height, width, resize_side=RESIZE_SIDE_MIN):
    """Resize the smaller side to `resize_side`, central crop, mean subtraction."""
    resized = aspect_preserving_resize(image, resize_side)
    shape = tf.shape(resized)
    # Integer division: slim's `(size - crop) / 2` was a true division truncated by to_int32.
    cropped = image_ops.crop(resized, (shape[0] - height) // 2, (shape[1] - width) // 2,
                             height, width)
    return cropped - _mean_image(height, width)


def preprocess_image(image, height, width, is_training=False, resize_side_min=RESIZE_SIDE_MIN,
                     resize_side_max=RESIZE_SIDE_MAX, seed=None):
    """Preprocesses one image for VGG / ResNet v1 (slim's `vgg_preprocessing.preprocess_image`).

    Args:
      image: uint8 (or float) tensor [H, W, 3] of any size, RGB.
      height, width: output size (Python ints).
      is_training: random scale, crop and flip when True; resize + central crop when False.
      resize_side_min: training: smallest random smaller side; evaluation: the smaller side.
      resize_side_max: training: largest random smaller side (inclusive); unused in evaluation.
      seed: optional int64 [2] stateless seed for training: the output is then a pure function
        of (image, seed). None draws from stateful ops, as slim. Ignored in evaluation.

    Returns:
      float32 [height, width, 3], pixels minus `CHANNEL_MEANS`.

    Raises:
      ValueError: bad sizes, resize sides or seed, or an image that is not [H, W, 3].
      tf.errors.InvalidArgumentError (at run time): the resized image is smaller than the crop.
    """
    image = image_ops.check_call(image, height, width)
    if image.shape.rank is not None and image.shape[-1] not in (None, 3):
        raise ValueError(f"vgg preprocessing subtracts 3 channel means; the image has shape "
                         f"{image.shape}")
    check_int("resize_side_min", resize_side_min, low=1)
    if not is_training:
        return preprocess_for_eval(image, height, width, resize_side_min)
    if not isinstance(resize_side_max, numbers.Integral) or resize_side_max < resize_side_min:
        raise ValueError(f"resize_side_min={resize_side_min!r} and "
                         f"resize_side_max={resize_side_max!r} must be integers with "
                         "resize_side_min <= resize_side_max")
    return preprocess_for_train(image, height, width, resize_side_min, resize_side_max,
                                seeded_ops.check_seed(seed))
