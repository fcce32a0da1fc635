"""Random image ops that are stateless when given a seed and stateful, as tf-slim's, without.

The per-net preprocessing modules draw every random number through these functions. With a
`seed` (an int64 [2] tensor, e.g. from `preprocessing.derive_seed` and a per-example fold-in)
each op is TensorFlow's `stateless_*` counterpart, so a training image is a pure function of
`(image, seed)`: the same on every replica, after a restart and in any tf.data parallelism.
Without a seed the ops are the stateful ones slim used (`tf.random.uniform`,
`tf.image.random_flip_left_right`, ...), which draw from the op's hidden state.
"""
import tensorflow as tf


def check_seed(seed):
    """Validates an optional stateless seed.

    Args:
      seed: None, or an integer tensor / sequence of shape [2].

    Returns:
      None, or the seed as an int64 [2] tensor.

    Raises:
      ValueError: the seed is not an integer vector of length 2.
    """
    if seed is None:
        return None
    try:
        tensor = tf.convert_to_tensor(seed)
    except (TypeError, ValueError):
        tensor = None
    if (tensor is None or tensor.dtype not in (tf.int32, tf.int64)
            or not tensor.shape.is_compatible_with([2]) or tensor.shape.rank != 1):
        raise ValueError(f"seed={seed!r} must be None or an integer tensor of shape [2] "
                         "(a stateless-RNG seed, e.g. tf.constant([1, 2], tf.int64))")
    return tf.cast(tensor, tf.int64)


def split_seed(seed, num):
    """`num` independent seeds derived from `seed` (a list of `num` Nones without a seed)."""
    if seed is None:
        return [None] * num
    return tf.unstack(tf.random.experimental.stateless_split(seed, num=num))


def uniform_int(minval, maxval, seed):
    """A scalar int32 drawn uniformly from [minval, maxval) (scalar tensors or ints)."""
    if seed is None:
        return tf.random.uniform([], minval=minval, maxval=maxval, dtype=tf.int32)
    return tf.random.stateless_uniform([], seed=seed, minval=minval, maxval=maxval,
                                       dtype=tf.int32)


def flip_left_right(image, seed):
    """Mirrors `image` [H, W, C] left-right with probability 1/2."""
    if seed is None:
        return tf.image.random_flip_left_right(image)
    return tf.image.stateless_random_flip_left_right(image, seed=seed)


def random_crop(image, size, seed):
    """A window of shape `size` at a uniformly random offset (`tf.image.random_crop`)."""
    if seed is None:
        return tf.image.random_crop(image, size)
    return tf.image.stateless_random_crop(image, size, seed=seed)


def brightness(image, max_delta, seed):
    """Adds one delta drawn uniformly from [-max_delta, max_delta) to every pixel."""
    if seed is None:
        return tf.image.random_brightness(image, max_delta)
    return tf.image.stateless_random_brightness(image, max_delta, seed=seed)


def saturation(image, lower, upper, seed):
    """Scales the HSV saturation by a factor drawn uniformly from [lower, upper)."""
    if seed is None:
        return tf.image.random_saturation(image, lower, upper)
    return tf.image.stateless_random_saturation(image, lower, upper, seed=seed)


def hue(image, max_delta, seed):
    """Rotates the hue by a delta drawn uniformly from [-max_delta, max_delta)."""
    if seed is None:
        return tf.image.random_hue(image, max_delta)
    return tf.image.stateless_random_hue(image, max_delta, seed=seed)


def contrast(image, lower, upper, seed):
    """Scales each channel's deviation from its mean by a factor from [lower, upper)."""
    if seed is None:
        return tf.image.random_contrast(image, lower, upper)
    return tf.image.stateless_random_contrast(image, lower, upper, seed=seed)


def sample_distorted_bounding_box(image_size, bounding_boxes, seed, **kwargs):
    """`tf.image.(stateless_)sample_distorted_bounding_box`: (begin, size, bboxes)."""
    if seed is None:
        return tf.image.sample_distorted_bounding_box(image_size, bounding_boxes, **kwargs)
    return tf.image.stateless_sample_distorted_bounding_box(image_size, bounding_boxes,
                                                            seed=seed, **kwargs)
