"""tf-slim's evaluation preprocessing, written out with `tf.compat.v1` ops in TF1 graph mode.

The functions follow models/research/slim/preprocessing/{vgg,inception,cifarnet,lenet}_
preprocessing.py (`preprocess_for_eval`) statement by statement, and spell out the TF 1.x
versions of the tf.image helpers slim called (`central_crop`, `resize_image_with_crop_or_pad`,
`per_image_standardization`) instead of calling today's, so the reference shares no code with
`tfmodels.data` beyond the kernels themselves. Images go in through a placeholder of unknown
size, as they came out of slim's decoders. `run` builds a fresh graph and session per call;
`photos()` are the test images (scikit-learn's two sample photos and crops of them).
"""
import functools

import numpy as np
import tensorflow as tf
from sklearn.datasets import load_sample_images

tf1 = tf.compat.v1

_R_MEAN, _G_MEAN, _B_MEAN = 123.68, 116.78, 103.94


def _crop(image, offset_height, offset_width, crop_height, crop_width):
    """slim's vgg_preprocessing._crop."""
    original_shape = tf.shape(image)
    rank_assertion = tf1.Assert(tf.equal(tf.rank(image), 3), ["Rank of image must be equal to 3."])
    with tf.control_dependencies([rank_assertion]):
        cropped_shape = tf.stack([crop_height, crop_width, original_shape[2]])
    size_assertion = tf1.Assert(
        tf.logical_and(tf.greater_equal(original_shape[0], crop_height),
                       tf.greater_equal(original_shape[1], crop_width)),
        ["Crop size greater than the image size."])
    offsets = tf1.to_int32(tf.stack([offset_height, offset_width, 0]))
    with tf.control_dependencies([size_assertion]):
        image = tf.slice(image, offsets, cropped_shape)
    return tf.reshape(image, cropped_shape)


def _smallest_size_at_least(height, width, smallest_side):
    smallest_side = tf.convert_to_tensor(smallest_side, dtype=tf.int32)
    height = tf1.to_float(height)
    width = tf1.to_float(width)
    smallest_side = tf1.to_float(smallest_side)
    scale = tf.cond(tf.greater(height, width), lambda: smallest_side / width,
                    lambda: smallest_side / height)
    new_height = tf1.to_int32(tf1.rint(height * scale))
    new_width = tf1.to_int32(tf1.rint(width * scale))
    return new_height, new_width


def _aspect_preserving_resize(image, smallest_side):
    smallest_side = tf.convert_to_tensor(smallest_side, dtype=tf.int32)
    shape = tf.shape(image)
    new_height, new_width = _smallest_size_at_least(shape[0], shape[1], smallest_side)
    image = tf.expand_dims(image, 0)
    resized_image = tf1.image.resize_bilinear(image, [new_height, new_width],
                                              align_corners=False)
    resized_image = tf.squeeze(resized_image)
    resized_image.set_shape([None, None, 3])
    return resized_image


def vgg_eval(image, output_height, output_width, resize_side=256):
    """vgg_preprocessing.preprocess_for_eval."""
    image = _aspect_preserving_resize(image, resize_side)
    image_height = tf.shape(image)[0]
    image_width = tf.shape(image)[1]
    offset_height = (image_height - output_height) / 2  # true division, as in slim
    offset_width = (image_width - output_width) / 2
    image = _crop(image, offset_height, offset_width, output_height, output_width)
    image.set_shape([output_height, output_width, 3])
    image = tf1.to_float(image)
    channels = tf.split(axis=2, num_or_size_splits=3, value=image)
    for i, mean in enumerate([_R_MEAN, _G_MEAN, _B_MEAN]):
        channels[i] -= mean
    return tf.concat(axis=2, values=channels)


def _central_crop_tf1(image, central_fraction):
    """TF 1.x's tf.image.central_crop for a 3-D image of unknown size."""
    img_shape = tf.shape(image)
    img_h = tf1.to_double(img_shape[0])
    img_w = tf1.to_double(img_shape[1])
    bbox_h_start = tf1.to_int32((img_h - img_h * central_fraction) / 2)
    bbox_w_start = tf1.to_int32((img_w - img_w * central_fraction) / 2)
    bbox_h_size = img_shape[0] - bbox_h_start * 2
    bbox_w_size = img_shape[1] - bbox_w_start * 2
    bbox_begin = tf.stack([bbox_h_start, bbox_w_start, 0])
    bbox_size = tf.stack([bbox_h_size, bbox_w_size, -1])
    return tf.slice(image, bbox_begin, bbox_size)


def inception_eval(image, height, width, central_fraction=0.875):
    """inception_preprocessing.preprocess_for_eval."""
    if image.dtype != tf.float32:
        image = tf1.image.convert_image_dtype(image, dtype=tf.float32)
    if central_fraction:
        image = _central_crop_tf1(image, central_fraction)
    if height and width:
        image = tf.expand_dims(image, 0)
        image = tf1.image.resize_bilinear(image, [height, width], align_corners=False)
        image = tf.squeeze(image, [0])
    image = tf.subtract(image, 0.5)
    return tf.multiply(image, 2.0)


def _crop_or_pad_tf1(image, target_height, target_width):
    """TF 1.x's tf.image.resize_image_with_crop_or_pad (crop, then zero-pad, centred)."""
    shape = tf.shape(image)
    height, width = shape[0], shape[1]
    width_diff = target_width - width
    offset_crop_width = tf.maximum(-width_diff // 2, 0)
    offset_pad_width = tf.maximum(width_diff // 2, 0)
    height_diff = target_height - height
    offset_crop_height = tf.maximum(-height_diff // 2, 0)
    offset_pad_height = tf.maximum(height_diff // 2, 0)
    cropped = tf.slice(image, tf.stack([offset_crop_height, offset_crop_width, 0]),
                       tf.stack([tf.minimum(target_height, height),
                                 tf.minimum(target_width, width), -1]))
    cropped_shape = tf.shape(cropped)
    after_height = target_height - offset_pad_height - cropped_shape[0]
    after_width = target_width - offset_pad_width - cropped_shape[1]
    padded = tf.pad(cropped, tf.stack([tf.stack([offset_pad_height, after_height]),
                                       tf.stack([offset_pad_width, after_width]),
                                       tf.constant([0, 0])]))
    return padded


def _per_image_standardization_tf1(image):
    """TF 1.x's per_image_standardization: variance as E[x^2] - E[x]^2."""
    num_pixels = tf.reduce_prod(tf.shape(image))
    image = tf.cast(image, dtype=tf.float32)
    image_mean = tf.reduce_mean(image)
    variance = tf.reduce_mean(tf.square(image)) - tf.square(image_mean)
    variance = tf.nn.relu(variance)
    stddev = tf.sqrt(variance)
    min_stddev = tf.math.rsqrt(tf.cast(num_pixels, tf.float32))
    pixel_value_scale = tf.maximum(stddev, min_stddev)
    image = tf.subtract(image, image_mean)
    return tf1.div(image, pixel_value_scale)


def cifarnet_eval(image, output_height, output_width):
    """cifarnet_preprocessing.preprocess_for_eval (slim passed width, then height)."""
    image = tf1.to_float(image)
    resized_image = _crop_or_pad_tf1(image, output_width, output_height)
    return _per_image_standardization_tf1(resized_image)


def lenet_preprocess(image, output_height, output_width):
    """lenet_preprocessing.preprocess_image (slim passed width, then height)."""
    image = tf1.to_float(image)
    image = _crop_or_pad_tf1(image, output_width, output_height)
    image = tf.subtract(image, 128.0)
    return tf1.div(image, 128.0)


def run(fn, image, *args):
    """Runs `fn(placeholder, *args)` on `image` in a TF1 graph and session; a NumPy array."""
    image = np.asarray(image)
    with tf.Graph().as_default():
        placeholder = tf1.placeholder(tf.as_dtype(image.dtype), [None, None, image.shape[-1]])
        output = fn(placeholder, *args)
        with tf1.Session() as session:
            return session.run(output, {placeholder: image})


@functools.lru_cache(maxsize=None)
def photos():
    """Real photos as uint8 [H, W, 3]: scikit-learn's two samples and crops of them."""
    china, flower = load_sample_images().images
    return {
        "china": china,                          # 427 x 640, landscape
        "flower": flower,                        # 427 x 640
        "portrait": china[:, 150:403],           # 427 x 253
        "odd": flower[13:314, 101:358],          # 301 x 257
        "small": china[200:237, 300:353],        # 37 x 53: upsampled / padded
    }
