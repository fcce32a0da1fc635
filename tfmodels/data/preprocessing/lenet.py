"""LeNet preprocessing, exact to tf-slim's `preprocessing/lenet_preprocessing.py`.

Training and evaluation alike: crop (or zero-pad) the centre to `height x width`
(`tf.image.resize_with_crop_or_pad`) and scale pixels to [-1, 1): `(x - 128) / 128`. There is
no augmentation, so `is_training` and `seed` change nothing; they keep the call shape of the
other preprocessing functions.

slim called `resize_image_with_crop_or_pad(image, output_width, output_height)` (height and
width swapped; the same for square outputs); here the output is `height x width`.
"""
import tensorflow as tf

from tfmodels.data.preprocessing import image_ops


def preprocess_image(image, height, width, is_training=False, seed=None):
    """Preprocesses one image for LeNet (slim's `lenet_preprocessing.preprocess_image`).

    Args:
      image: uint8 (or float, in pixel units) [H, W, C] of any size.
      height, width: output size (Python ints).
      is_training, seed: accepted for the common call shape; LeNet has no augmentation.

    Returns:
      float32 [height, width, C], `(pixel - 128) / 128`; zero padding becomes -1.

    Raises:
      ValueError: bad sizes or an image that is not [H, W, C].
    """
    del is_training, seed  # no randomness: the same preprocessing for training and evaluation
    image = image_ops.check_call(image, height, width)
    cropped = tf.cast(tf.image.resize_with_crop_or_pad(image, height, width), tf.float32)
    return (cropped - 128.0) / 128.0
