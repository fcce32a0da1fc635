"""Inception v1 (GoogLeNet) with batch norm, in tf-slim's layout (tf_slim.nets.inception_v1,
models/research/slim's options).

Szegedy et al. 2014, "Going deeper with convolutions", as slim wrote it: BN after every
convolution (no gamma), slim's scope names quirks included (Mixed_5b's third branch ends in
`Conv2d_0a_3x3`), the logits average pool scoped `MaxPool_0a_7x7`. Every pool and convolution
is 'SAME', so the map before the logits is ceil(H / 32); slim's fixed 7x7 VALID average pool
then needs 193..224 pixels per side (`global_pool=True`: any size).
"""
import keras

from tfmodels.slim import scopes
from tfmodels.nets import inception_utils
from tfmodels.nets.inception_utils import conv, max_pool

MIN_IMAGE_SIZE = 193  # ceil(H / 32) >= 7 for the 7x7 pool
MAX_IMAGE_SIZE = 224  # ceil(H / 32) <= 7: logits 1x1


def min_image_size(global_pool=False, **unused):
    return 1 if global_pool else MIN_IMAGE_SIZE


def max_image_size(global_pool=False, **unused):
    return None if global_pool else MAX_IMAGE_SIZE


def _block(b0, b1, b2, b3, b2_scope="Conv2d_0b_3x3"):
    """The v1 mixed block: depths (1x1), (1x1, 3x3), (1x1, 3x3), (pool, 1x1)."""
    return [[conv(b0, [1, 1], "Conv2d_0a_1x1")],
            [conv(b1[0], [1, 1], "Conv2d_0a_1x1"), conv(b1[1], [3, 3], "Conv2d_0b_3x3")],
            [conv(b2[0], [1, 1], "Conv2d_0a_1x1"), conv(b2[1], [3, 3], b2_scope)],
            [max_pool([3, 3], "MaxPool_0a_3x3"), conv(b3, [1, 1], "Conv2d_0b_1x1")]]


# (end point, op or mixed block), in order.
_LAYERS = [
    ("Conv2d_1a_7x7", conv(64, [7, 7], "Conv2d_1a_7x7", stride=2)),
    ("MaxPool_2a_3x3", max_pool([3, 3], "MaxPool_2a_3x3", stride=2)),
    ("Conv2d_2b_1x1", conv(64, [1, 1], "Conv2d_2b_1x1")),
    ("Conv2d_2c_3x3", conv(192, [3, 3], "Conv2d_2c_3x3")),
    ("MaxPool_3a_3x3", max_pool([3, 3], "MaxPool_3a_3x3", stride=2)),
    ("Mixed_3b", _block(64, (96, 128), (16, 32), 32)),
    ("Mixed_3c", _block(128, (128, 192), (32, 96), 64)),
    ("MaxPool_4a_3x3", max_pool([3, 3], "MaxPool_4a_3x3", stride=2)),
    ("Mixed_4b", _block(192, (96, 208), (16, 48), 64)),
    ("Mixed_4c", _block(160, (112, 224), (24, 64), 64)),
    ("Mixed_4d", _block(128, (128, 256), (24, 64), 64)),
    ("Mixed_4e", _block(112, (144, 288), (32, 64), 64)),
    ("Mixed_4f", _block(256, (160, 320), (32, 128), 128)),
    ("MaxPool_5a_2x2", max_pool([2, 2], "MaxPool_5a_2x2", stride=2)),
    ("Mixed_5b", _block(256, (160, 320), (32, 128), 128, b2_scope="Conv2d_0a_3x3")),
    ("Mixed_5c", _block(384, (192, 384), (48, 128), 128)),
]


def inception_v1_base(images, end_points):
    """slim's inception_v1_base up to Mixed_5c (inside the net's name scope)."""
    net = images
    with scopes.arg_scope([scopes.conv2d, scopes.fully_connected],
                          weights_initializer=keras.initializers.TruncatedNormal(stddev=0.01)):
        with scopes.arg_scope([scopes.conv2d, scopes.max_pool2d], stride=1, padding="SAME"):
            for end_point, layer in _LAYERS:
                if isinstance(layer, list):
                    net = inception_utils.mixed(net, end_point, layer)
                else:
                    net = inception_utils.apply(layer, net)
                end_points[end_point] = net
    return net


def inception_v1(images, num_classes=1000, is_training=None, dropout_keep_prob=0.8,
                 spatial_squeeze=True, global_pool=False, scope="InceptionV1"):
    """Inception v1 with BN, slim layout.

    Args:
      images: Keras tensor [N, H, W, C], 193 <= H, W <= 224 (any size with global_pool).
      num_classes: number of classes K; 0 returns the pooled features instead of logits.
      is_training: None follows the model call's `training`; True/False pins BN and dropout.
      dropout_keep_prob: keep probability of `Logits/Dropout_0b`.
      spatial_squeeze: squeeze the logits to [N, K] (slim's default; the registry needs it).
      global_pool: average Mixed_5c over its whole map (models/research/slim's option).
      scope: name scope (`InceptionV1/Conv2d_1a_7x7/kernel`, ...,
        `InceptionV1/Logits/Conv2d_0c_1x1/bias`).

    Returns:
      logits [N, K] and end_points (slim's keys: 'Conv2d_1a_7x7' ... 'Mixed_5c', 'Logits',
      'Predictions'); end_points['embedding'] is the pooled Mixed_5c, [N, 1024].
    """
    end_points = {}
    with keras.name_scope(scope), scopes.arg_scope([scopes.batch_norm], is_training=is_training):
        net = inception_v1_base(images, end_points)
        logits = inception_utils.logits_head(
            net, end_points, num_classes, is_training, dropout_keep_prob, spatial_squeeze,
            global_pool, ([7, 7], "MaxPool_0a_7x7"), "Dropout_0b", "Conv2d_0c_1x1")
    return logits, end_points


inception_v1.default_image_size = 224


def inception_v1_arg_scope(weight_decay=0.00004, use_batch_norm=True):
    """slim's inception_v1_arg_scope (see `inception_utils.inception_arg_scope`)."""
    return inception_utils.inception_arg_scope(weight_decay, use_batch_norm=use_batch_norm)
