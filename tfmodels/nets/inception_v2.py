"""Inception v2 (BN-Inception) in tf-slim's layout (tf_slim.nets.inception_v2,
models/research/slim's options).

Ioffe & Szegedy 2015, "Batch Normalization: Accelerating Deep Network Training by Reducing
Internal Covariate Shift", as slim wrote it: the first layer a 7x7 separable convolution
(depthwise multiplier min(depth(64) // 3, 8), with bias and ReLU but no BN: the arg scope
reaches `conv2d` only), BN after every other convolution, `depth_multiplier` / `min_depth`
scaling every depth. Everything is 'SAME', so the map before the logits is ceil(H / 32), and
the 7x7 average pool shrinks to the map for small inputs: any size up to 224 classifies
(`global_pool=True`: any size).
"""
import keras

from tfmodels.slim import scopes
from tfmodels.nets import inception_utils
from tfmodels.nets.inception_utils import avg_pool, conv, max_pool

MAX_IMAGE_SIZE = 224  # ceil(H / 32) <= 7: the 7x7 pool leaves 1x1 logits


def max_image_size(global_pool=False, **unused):
    return None if global_pool else MAX_IMAGE_SIZE


def _block(depth, b0, b1, b2, b3, pool=avg_pool):
    """The v2 mixed block: depths (1x1), (1x1, 3x3), (1x1, 3x3, 3x3), (pool, 1x1)."""
    branches = [] if b0 is None else [[conv(depth(b0), [1, 1], "Conv2d_0a_1x1")]]
    return branches + [
        [conv(depth(b1[0]), [1, 1], "Conv2d_0a_1x1", stddev=0.09),
         conv(depth(b1[1]), [3, 3], "Conv2d_0b_3x3")],
        [conv(depth(b2[0]), [1, 1], "Conv2d_0a_1x1", stddev=0.09),
         conv(depth(b2[1]), [3, 3], "Conv2d_0b_3x3"),
         conv(depth(b2[2]), [3, 3], "Conv2d_0c_3x3")],
        [pool([3, 3], "AvgPool_0a_3x3" if pool is avg_pool else "MaxPool_0a_3x3"),
         conv(depth(b3), [1, 1], "Conv2d_0b_1x1", stddev=0.1)]]


def _reduction(depth, b0, b1):
    """Mixed_4a / Mixed_5a: (1x1, 3x3/2), (1x1, 3x3, 3x3/2), 3x3/2 max pool."""
    return [[conv(depth(b0[0]), [1, 1], "Conv2d_0a_1x1", stddev=0.09),
             conv(depth(b0[1]), [3, 3], "Conv2d_1a_3x3", stride=2)],
            [conv(depth(b1[0]), [1, 1], "Conv2d_0a_1x1", stddev=0.09),
             conv(depth(b1[1]), [3, 3], "Conv2d_0b_3x3"),
             conv(depth(b1[2]), [3, 3], "Conv2d_1a_3x3", stride=2)],
            [max_pool([3, 3], "MaxPool_1a_3x3", stride=2)]]


def _layers(depth):
    """(end point, op or mixed block) after Conv2d_1a_7x7, in order."""
    return [
        ("MaxPool_2a_3x3", max_pool([3, 3], "MaxPool_2a_3x3", stride=2)),
        ("Conv2d_2b_1x1", conv(depth(64), [1, 1], "Conv2d_2b_1x1", stddev=0.1)),
        ("Conv2d_2c_3x3", conv(depth(192), [3, 3], "Conv2d_2c_3x3")),
        ("MaxPool_3a_3x3", max_pool([3, 3], "MaxPool_3a_3x3", stride=2)),
        ("Mixed_3b", _block(depth, 64, (64, 64), (64, 96, 96), 32)),
        ("Mixed_3c", _block(depth, 64, (64, 96), (64, 96, 96), 64)),
        ("Mixed_4a", _reduction(depth, (128, 160), (64, 96, 96))),
        ("Mixed_4b", _block(depth, 224, (64, 96), (96, 128, 128), 128)),
        ("Mixed_4c", _block(depth, 192, (96, 128), (96, 128, 128), 128)),
        ("Mixed_4d", _block(depth, 160, (128, 160), (128, 160, 160), 96)),
        ("Mixed_4e", _block(depth, 96, (128, 192), (160, 192, 192), 96)),
        ("Mixed_5a", _reduction(depth, (128, 192), (192, 256, 256))),
        ("Mixed_5b", _block(depth, 352, (192, 320), (160, 224, 224), 128)),
        ("Mixed_5c", _block(depth, 352, (192, 320), (192, 224, 224), 128, pool=max_pool)),
    ]


def inception_v2_base(images, end_points, min_depth=16, depth_multiplier=1.0,
                      use_separable_conv=True):
    """slim's inception_v2_base up to Mixed_5c (inside the net's name scope)."""
    depth = inception_utils.depth_fn(depth_multiplier, min_depth)
    first = dict(stride=2, weights_initializer=keras.initializers.TruncatedNormal(stddev=1.0),
                 scope="Conv2d_1a_7x7")
    with scopes.arg_scope([scopes.conv2d, scopes.max_pool2d, scopes.avg_pool2d,
                           scopes.separable_conv2d], stride=1, padding="SAME"):
        if use_separable_conv:
            # The depthwise multiplier keeps 3 * multiplier <= depth(64) (slim's comment: the
            # separable convolution must not be over-parameterised), whatever C is.
            net = scopes.separable_conv2d(images, depth(64), [7, 7],
                                          depth_multiplier=min(int(depth(64) / 3), 8), **first)
        else:
            net = scopes.conv2d(images, depth(64), [7, 7], **first)
        end_points["Conv2d_1a_7x7"] = net
        for end_point, layer in _layers(depth):
            if isinstance(layer, list):
                net = inception_utils.mixed(net, end_point, layer)
            else:
                net = inception_utils.apply(layer, net)
            end_points[end_point] = net
    return net


def _pool(net):
    kernel = inception_utils.reduced_kernel_size_for_small_input(net, [7, 7])
    return kernel, "AvgPool_1a_{}x{}".format(*kernel)


def inception_v2(images, num_classes=1000, is_training=None, dropout_keep_prob=0.8,
                 min_depth=16, depth_multiplier=1.0, spatial_squeeze=True, global_pool=False,
                 use_separable_conv=True, scope="InceptionV2"):
    """Inception v2, slim layout.

    Args:
      images: Keras tensor [N, H, W, C], H, W <= 224 (any size with global_pool).
      num_classes: number of classes K; 0 returns the pooled features instead of logits.
      is_training: None follows the model call's `training`; True/False pins BN and dropout.
      dropout_keep_prob: keep probability of `Logits/Dropout_1b`.
      min_depth, depth_multiplier: every depth d becomes max(int(d * depth_multiplier),
        min_depth); depth_multiplier > 0.
      spatial_squeeze: squeeze the logits to [N, K] (slim's default; the registry needs it).
      global_pool: average Mixed_5c over its whole map (models/research/slim's option).
      use_separable_conv: the first layer separable (slim's); False: a plain 7x7 conv.
      scope: name scope (`InceptionV2/Conv2d_1a_7x7/depthwise_kernel`, ...).

    Returns:
      logits [N, K] and end_points (slim's keys: 'Conv2d_1a_7x7' ... 'Mixed_5c', 'Logits',
      'Predictions'); end_points['embedding'] is the pooled Mixed_5c, [N, depth(1024)].
    """
    end_points = {}
    with keras.name_scope(scope), scopes.arg_scope([scopes.batch_norm], is_training=is_training):
        net = inception_v2_base(images, end_points, min_depth, depth_multiplier,
                                use_separable_conv)
        logits = inception_utils.logits_head(
            net, end_points, num_classes, is_training, dropout_keep_prob, spatial_squeeze,
            global_pool, _pool, "Dropout_1b", "Conv2d_1c_1x1")
    return logits, end_points


inception_v2.default_image_size = 224


def inception_v2_arg_scope(weight_decay=0.00004):
    """slim's inception_v2_arg_scope (see `inception_utils.inception_arg_scope`)."""
    return inception_utils.inception_arg_scope(weight_decay)
