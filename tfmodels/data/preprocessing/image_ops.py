"""TF1 image geometry as tf-slim's preprocessing computed it, and the checks its callers share.

The trap: slim resized with `tf.image.resize_bilinear(x, size, align_corners=False)`, which in
TF1 sampled source pixel `y * in/out` (no half-pixel centres). TF2's `tf.image.resize` samples
`(y + 0.5) * in/out - 0.5`, so the same "bilinear resize" differs by up to several grey levels.
`resize_bilinear_v1` is the TF1 kernel with its TF1 arguments, which reproduces slim exactly.
"""
import tensorflow as tf

from tfmodels.options import check_int


def check_call(image, height, width):
    """Validates the arguments of a `preprocess_image(image, height, width, ...)` call.

    Args:
      image: an image tensor [H, W, C] (rank checked when known).
      height, width: the output size, Python integers >= 1.

    Returns:
      `image` as a tensor.

    Raises:
      ValueError: a size is not a positive integer or the image is not rank 3.
    """
    for name, value in (("height", height), ("width", width)):
        check_int(name, value, low=1)
    image = tf.convert_to_tensor(image)
    if image.shape.rank is not None and image.shape.rank != 3:
        raise ValueError(f"image must have shape [height, width, channels]; got shape "
                         f"{image.shape}")
    return image


def resize_bilinear_v1(image, size):
    """TF1's `resize_bilinear(align_corners=False)` of one image: float32 [h, w, C].

    Output pixel (y, x) interpolates the input at (y * H / h, x * W / w) in float32, the
    top/left neighbour at the floor and the other one pixel further (clamped to the edge).

    Args:
      image: [H, W, C] of any real dtype (uint8 input is read as its integer values).
      size: (h, w), Python ints or int32 scalar tensors.

    Returns:
      float32 [h, w, C].
    """
    return resize_v1(image, size, 0)


def resize_v1(image, size, method):
    """TF1's `tf.image.resize_images(image, size, method, align_corners=False)` of one image.

    The kernels with their TF1 arguments (`tf.compat.v1.image.resize_*` are the same ops
    behind a deprecation notice).

    Args:
      image: [H, W, C] of any real dtype.
      size: (h, w), Python ints or int32 scalar tensors.
      method: TF1's `ResizeMethod` number: 0 bilinear, 1 nearest neighbour, 2 bicubic, 3 area.

    Returns:
      [h, w, C]: float32, except nearest neighbour, which keeps the input dtype.
    """
    images, size = image[tf.newaxis], tf.cast(tf.stack(size), tf.int32)
    corners = dict(align_corners=False, half_pixel_centers=False)
    if method == 0:
        resized = tf.raw_ops.ResizeBilinear(images=images, size=size, **corners)
    elif method == 1:
        resized = tf.raw_ops.ResizeNearestNeighbor(images=images, size=size, **corners)
    elif method == 2:
        resized = tf.raw_ops.ResizeBicubic(images=images, size=size, **corners)
    elif method == 3:
        resized = tf.raw_ops.ResizeArea(images=images, size=size, align_corners=False)
    else:
        raise ValueError(f"method={method!r} must be 0 (bilinear), 1 (nearest), 2 (bicubic) "
                         "or 3 (area)")
    return resized[0]


def crop(image, offset_height, offset_width, crop_height, crop_width):
    """The window [offset_height : +crop_height, offset_width : +crop_width] of `image`.

    Fails at run time with `InvalidArgumentError` naming both sizes when the window does not
    fit (slim's `_crop` asserted the same).
    """
    shape = tf.shape(image)
    fits = tf.debugging.assert_greater_equal(
        shape[:2], tf.stack([crop_height, crop_width]),
        message=f"crop size {crop_height}x{crop_width} is larger than the image (height, width)")
    with tf.control_dependencies([fits]):
        window = tf.slice(image, tf.stack([offset_height, offset_width, 0]),
                          tf.stack([crop_height, crop_width, -1]))
    window.set_shape([crop_height, crop_width, image.shape[-1]])
    return window
