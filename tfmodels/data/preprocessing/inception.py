"""Inception preprocessing, exact to tf-slim's `preprocessing/inception_preprocessing.py`.

- training (Szegedy et al. 2015): crop a random box covering 5%-100% of the image with aspect
  ratio (width/height) in [3/4, 4/3] (`sample_distorted_bounding_box`, at least 10% of `bbox`,
  100 attempts, else the whole image); resize to `height x width` (bilinear, TF1 sampling);
  flip left-right with probability 1/2; distort the colours (random brightness +-32/255 and
  saturation x[0.5, 1.5], in that order in fast mode; with `fast_mode=False` also hue +-0.2 and
  contrast x[0.5, 1.5] in one of four orders, and one of four resize methods); clip to [0, 1].
- evaluation: crop the central 87.5% of each side (`tf.image.central_crop`), resize to
  `height x width` (bilinear, TF1 sampling).

Both scale the result from [0, 1] to [-1, 1]: `(x - 0.5) * 2`. Output: float32
[height, width, 3]. slim converted the whole image to float before cropping; here the crop and
resize read the uint8 pixels and the 1/255 scale follows (the same up to float rounding, which
is below 1e-6 here, and cheaper: the full-size image is never converted).
"""
import tensorflow as tf

from tfmodels.data.preprocessing import image_ops, seeded_ops

CENTRAL_FRACTION = 0.875
_BRIGHTNESS_DELTA = 32.0 / 255.0
_SATURATION = (0.5, 1.5)
_HUE_DELTA = 0.2
_CONTRAST = (0.5, 1.5)
# TF1's ResizeMethod order, chosen at random in slow mode: BILINEAR, NEAREST, BICUBIC, AREA.
_RESIZE_METHODS = 4


def _scale(pixels, source_dtype):
    """Pixels of an image of `source_dtype` to float32 in [0, 1].

    Integer images are multiplied by 1 / dtype.max in float32, as `tf.image.convert_image_dtype`
    does; float images are already in [0, 1].
    """
    pixels = tf.cast(pixels, tf.float32)
    if source_dtype.is_integer:
        return pixels * (1.0 / source_dtype.max)
    return pixels


def _scale_to_signed(pixels, source_dtype):
    """Pixels of an image of `source_dtype` straight to [-1, 1]: x * 2 / max - 1.

    slim's `(x / max - 0.5) * 2` in two passes over the image instead of three (each costs ~4%
    of an evaluation image); the results agree to float rounding (< 3e-7).
    """
    pixels = tf.cast(pixels, tf.float32)
    scale = 2.0 / source_dtype.max if source_dtype.is_integer else 2.0
    return pixels * scale - 1.0


def _to_signed(image):
    """[0, 1] -> [-1, 1], as slim: subtract 0.5, multiply by 2."""
    return (image - 0.5) * 2.0


def distort_color(image, color_ordering=0, fast_mode=True, seed=None):
    """Random colour distortion of a float image in [0, 1] (slim's `distort_color`).

    Args:
      image: float32 [H, W, 3] in [0, 1].
      color_ordering: 0..3 (Python int) selects the order of the ops; fast mode knows 0 and
        "any other" (saturation first).
      fast_mode: brightness and saturation only (no hue, no contrast).
      seed: optional int64 [2] stateless seed.

    Returns:
      float32 [H, W, 3] clipped to [0, 1].
    """
    seeds = dict(zip(("brightness", "saturation", "hue", "contrast"),
                     seeded_ops.split_seed(seed, 4)))
    ops = {
        "brightness": lambda x: seeded_ops.brightness(x, _BRIGHTNESS_DELTA, seeds["brightness"]),
        "saturation": lambda x: seeded_ops.saturation(x, *_SATURATION, seeds["saturation"]),
        "hue": lambda x: seeded_ops.hue(x, _HUE_DELTA, seeds["hue"]),
        "contrast": lambda x: seeded_ops.contrast(x, *_CONTRAST, seeds["contrast"]),
    }
    if fast_mode:
        order = ("brightness", "saturation") if color_ordering == 0 else ("saturation",
                                                                          "brightness")
    else:
        order = {0: ("brightness", "saturation", "hue", "contrast"),
                 1: ("saturation", "brightness", "contrast", "hue"),
                 2: ("contrast", "hue", "brightness", "saturation"),
                 3: ("hue", "saturation", "contrast", "brightness")}[color_ordering]
    for name in order:
        image = ops[name](image)
    # The random_* ops do not clamp.
    return tf.clip_by_value(image, 0.0, 1.0)


def _random_case(num_cases, branch, seed):
    """`branch(case)` for a case drawn uniformly from 0..num_cases-1 (only that one runs)."""
    if num_cases == 1:
        return branch(0)
    selector = seeded_ops.uniform_int(0, num_cases, seed)
    return tf.switch_case(selector, [lambda case=case: branch(case) for case in range(num_cases)])


def preprocess_for_train(image, height, width, bbox=None, fast_mode=True, random_crop=True,
                         seed=None):
    """Distorted-box crop, resize, flip, colour distortion, [-1, 1] (module docstring)."""
    box_seed, method_seed, flip_seed, order_seed, color_seed = seeded_ops.split_seed(seed, 5)
    if bbox is None:
        bbox = tf.constant([0.0, 0.0, 1.0, 1.0], tf.float32, shape=[1, 1, 4])
    if random_crop:
        begin, size, _ = seeded_ops.sample_distorted_bounding_box(
            tf.shape(image), bbox, box_seed, min_object_covered=0.1,
            aspect_ratio_range=(0.75, 1.33), area_range=(0.05, 1.0), max_attempts=100,
            use_image_if_no_bounding_boxes=True)
        image = tf.slice(image, begin, size)
    num_methods = 1 if fast_mode else _RESIZE_METHODS
    # Every branch returns float32 (nearest neighbour keeps the input dtype).
    resized = _random_case(
        num_methods, lambda m: tf.cast(image_ops.resize_v1(image, [height, width], m),
                                       tf.float32), method_seed)
    resized = _scale(resized, image.dtype)
    resized.set_shape([height, width, 3])
    flipped = seeded_ops.flip_left_right(resized, flip_seed)
    num_orderings = 1 if fast_mode else 4
    distorted = _random_case(num_orderings,
                             lambda order: distort_color(flipped, order, fast_mode, color_seed),
                             order_seed)
    return _to_signed(distorted)


def preprocess_for_eval(image, height, width, central_fraction=CENTRAL_FRACTION,
                        central_crop=True):
    """Central crop of `central_fraction` of each side, bilinear resize, [-1, 1]."""
    if central_crop and central_fraction:
        image = tf.image.central_crop(image, central_fraction)
    resized = image_ops.resize_bilinear_v1(image, [height, width])
    return _scale_to_signed(resized, image.dtype)


def preprocess_image(image, height, width, is_training=False, bbox=None, fast_mode=True,
                     crop_image=True, central_fraction=CENTRAL_FRACTION, seed=None):
    """Preprocesses one image for Inception nets (slim's `inception_preprocessing`).

    Args:
      image: uint8 [H, W, 3] of any size (other integer dtypes are scaled by 1/dtype.max;
        float images must already be in [0, 1]).
      height, width: output size (Python ints).
      is_training: random crop, flip and colour distortion when True; central crop when False.
      bbox: training only: float32 [1, N, 4] boxes (ymin, xmin, ymax, xmax) in [0, 1] the
        random crop must overlap by 10%; None is the whole image.
      fast_mode: training only: bilinear resize and brightness + saturation only (slim's
        default); False adds random resize methods, hue, contrast and four colour orders.
      crop_image: False skips the random crop (training) / central crop (evaluation).
      central_fraction: evaluation only: fraction of each side kept by the central crop.
      seed: optional int64 [2] stateless seed for training: the output is then a pure function
        of (image, seed). None draws from stateful ops, as slim. Ignored in evaluation.

    Returns:
      float32 [height, width, 3] in [-1, 1] (training exactly; evaluation up to bilinear
      rounding of a [0, 1] image).

    Raises:
      ValueError: bad sizes, seed, central_fraction, or an image that is not [H, W, 3].
    """
    image = image_ops.check_call(image, height, width)
    if image.shape.rank is not None and image.shape[-1] not in (None, 3):
        raise ValueError(f"inception preprocessing needs RGB images [H, W, 3]; got shape "
                         f"{image.shape}")
    if not is_training:
        if central_fraction is not None and not 0.0 < central_fraction <= 1.0:
            raise ValueError(f"central_fraction={central_fraction!r} must be in (0, 1], or None "
                             "for no crop")
        return preprocess_for_eval(image, height, width, central_fraction, crop_image)
    return preprocess_for_train(image, height, width, bbox, fast_mode, crop_image,
                                seeded_ops.check_seed(seed))
