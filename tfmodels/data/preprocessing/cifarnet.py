"""CifarNet preprocessing, exact to tf-slim's `preprocessing/cifarnet_preprocessing.py`.

- training: zero-pad `padding` (4) pixels on every side, crop `height x width` at a uniformly
  random offset, flip left-right with probability 1/2, add a random brightness delta in
  [-63, 63) (pixel units), scale the contrast by a random factor in [0.2, 1.8), then
  standardise the image.
- evaluation: crop (or zero-pad) the centre to `height x width`
  (`tf.image.resize_with_crop_or_pad`), then standardise.

Standardisation is `tf.image.per_image_standardization`: `(x - mean) / max(std, 1/sqrt(N))`
over the image's N values. Output: float32 [height, width, C] with zero mean and unit variance.

slim called `resize_image_with_crop_or_pad(image, output_width, output_height)`, i.e. with
height and width swapped: for the square sizes slim always used the result is the same; here
the output is `height x width` as the call says.
"""
import tensorflow as tf

from tfmodels.data.preprocessing import image_ops, seeded_ops
from tfmodels.options import check_int

PADDING = 4
_BRIGHTNESS_DELTA = 63.0
_CONTRAST = (0.2, 1.8)


def preprocess_for_train(image, height, width, padding=PADDING, seed=None):
    """Pad, random crop, flip, random brightness and contrast, standardise."""
    crop_seed, flip_seed, brightness_seed, contrast_seed = seeded_ops.split_seed(seed, 4)
    if padding > 0:
        image = tf.pad(image, [[padding, padding], [padding, padding], [0, 0]])
    channels = tf.shape(image)[2]
    # The crop reads the raw pixels (padding is 0 either way); slim converted to float first.
    cropped = seeded_ops.random_crop(image, tf.stack([height, width, channels]), crop_seed)
    distorted = seeded_ops.flip_left_right(tf.cast(cropped, tf.float32), flip_seed)
    distorted = seeded_ops.brightness(distorted, _BRIGHTNESS_DELTA, brightness_seed)
    distorted = seeded_ops.contrast(distorted, *_CONTRAST, contrast_seed)
    standardized = tf.image.per_image_standardization(distorted)
    standardized.set_shape([height, width, image.shape[-1]])
    return standardized


def preprocess_for_eval(image, height, width):
    """Central crop or pad to `height x width`, standardise."""
    cropped = tf.image.resize_with_crop_or_pad(image, height, width)
    return tf.image.per_image_standardization(tf.cast(cropped, tf.float32))


def preprocess_image(image, height, width, is_training=False, padding=PADDING, seed=None):
    """Preprocesses one image for CifarNet (slim's `cifarnet_preprocessing.preprocess_image`).

    Args:
      image: uint8 (or float, in pixel units) [H, W, C] of any size.
      height, width: output size (Python ints).
      is_training: pad + random crop + flip + brightness/contrast when True.
      padding: training only: zero pixels added on each side before the random crop (>= 0).
      seed: optional int64 [2] stateless seed for training: the output is then a pure function
        of (image, seed). None draws from stateful ops, as slim. Ignored in evaluation.

    Returns:
      float32 [height, width, C], standardised per image.

    Raises:
      ValueError: bad sizes, padding, seed or an image that is not [H, W, C].
      tf.errors.InvalidArgumentError (at run time, training): the padded image is smaller
        than the crop.
    """
    image = image_ops.check_call(image, height, width)
    if not is_training:
        return preprocess_for_eval(image, height, width)
    check_int("padding", padding, low=0)
    return preprocess_for_train(image, height, width, padding, seeded_ops.check_seed(seed))
