"""MobileNet v1 (Howard et al. 2017) in tf-slim's layout (models/research/slim mobilenet_v1.py).

`MobilenetV1/Conv2d_0` (3x3/2 conv), then 13 depthwise-separable pairs
`Conv2d_N_depthwise` (3x3 depthwise, `depthwise_weights`) and `Conv2d_N_pointwise` (1x1),
every one with BN (scale, decay 0.9997, epsilon 1e-3) and ReLU6; 'SAME' padding. The head
`Logits/AvgPool_1a` is slim's 7x7 VALID average pool, shrunk to the feature map for small
inputs (or a global mean with `global_pool=True`), then `Logits/Conv2d_1c_1x1` (biased 1x1
conv). Depths are `max(int(d * depth_multiplier), min_depth)`: the released checkpoints are
1.0, 0.75, 0.5 and 0.25 (registry names `mobilenet_v1`, `mobilenet_v1_075`, ...), all scoped
`MobilenetV1`, with 1001 classes.
"""
import keras

from tfmodels.slim import scopes
from tfmodels.slim.regularizers import l2_regularizer

# slim's _CONV_DEFS: (kind, stride, depth); every kernel is 3x3.
CONV_DEFS = (("conv", 2, 32),
             ("sep", 1, 64), ("sep", 2, 128), ("sep", 1, 128), ("sep", 2, 256),
             ("sep", 1, 256), ("sep", 2, 512), ("sep", 1, 512), ("sep", 1, 512),
             ("sep", 1, 512), ("sep", 1, 512), ("sep", 1, 512), ("sep", 2, 1024),
             ("sep", 1, 1024))
# The default head pools 7x7 VALID with stride 2: a feature map of 8 (inputs up to 256)
# still gives 1x1; 9 and more would give 2x2 logits, which cannot be squeezed.
MAX_IMAGE_SIZE = 256


def max_image_size(global_pool=False, **unused):
    """Largest height/width the classifier takes: unbounded with a global pool."""
    return None if global_pool else MAX_IMAGE_SIZE


def reduced_kernel_size_for_small_input(net, kernel_size):
    """slim's `_reduced_kernel_size_for_small_input`: the kernel shrunk to the feature map."""
    height, width = net.shape[1:3]
    if height is None or width is None:
        return list(kernel_size)
    return [min(height, kernel_size[0]), min(width, kernel_size[1])]


def mobilenet_v1_base(images, depth_multiplier=1.0, min_depth=8, end_points=None):
    """The 27 convolutions up to `Conv2d_13_pointwise`, under the caller's name scope.

    Returns:
      The last feature map; end_points gets slim's keys 'Conv2d_0', 'Conv2d_N_depthwise',
      'Conv2d_N_pointwise'.
    """
    if not depth_multiplier > 0:
        raise ValueError(f"depth_multiplier={depth_multiplier} must be > 0")
    end_points = {} if end_points is None else end_points
    net = images
    for i, (kind, stride, depth) in enumerate(CONV_DEFS):
        depth = max(int(depth * depth_multiplier), min_depth)
        if kind == "conv":
            net = end_points[f"Conv2d_{i}"] = scopes.conv2d(
                net, depth, [3, 3], stride=stride, normalizer_fn=scopes.batch_norm,
                scope=f"Conv2d_{i}")
            continue
        net = end_points[f"Conv2d_{i}_depthwise"] = scopes.depthwise_conv2d(
            net, [3, 3], depth_multiplier=1, stride=stride, normalizer_fn=scopes.batch_norm,
            scope=f"Conv2d_{i}_depthwise")
        net = end_points[f"Conv2d_{i}_pointwise"] = scopes.conv2d(
            net, depth, [1, 1], stride=1, normalizer_fn=scopes.batch_norm,
            scope=f"Conv2d_{i}_pointwise")
    return net, end_points


def mobilenet_v1(images, num_classes=1001, is_training=None, dropout_keep_prob=0.999,
                 depth_multiplier=1.0, min_depth=8, spatial_squeeze=True, global_pool=False,
                 scope="MobilenetV1"):
    """MobileNet v1 classifier.

    Args:
      images: Keras tensor [N, H, W, C]; H, W <= 256 unless `global_pool` (224 for ImageNet).
      num_classes: classes K (slim's checkpoints: 1001); 0 or None returns the pooled
        features [N, 1, 1, C].
      is_training: None follows the model call's `training`; True/False pins BN and dropout.
      dropout_keep_prob: keep probability of `Logits/Dropout_1b`.
      depth_multiplier: channel multiplier (> 0).
      min_depth: smallest number of channels after the multiplier.
      spatial_squeeze: squeeze the logits to [N, K] (the registry needs it).
      global_pool: a global mean instead of the 7x7 (or smaller) VALID average pool.
      scope: name scope ('MobilenetV1').

    Returns:
      logits [N, K] and end_points (slim's keys: 'Conv2d_0' .. 'Conv2d_13_pointwise',
      'AvgPool_1a' or 'global_pool', 'Logits', 'Predictions'); end_points['embedding'] is
      the pooled features squeezed to [N, C].
    """
    end_points = {}
    with keras.name_scope(scope), scopes.arg_scope([scopes.batch_norm, scopes.dropout],
                                                   is_training=is_training):
        net, end_points = mobilenet_v1_base(images, depth_multiplier, min_depth, end_points)
        with keras.name_scope("Logits"):
            if global_pool:
                net = end_points["global_pool"] = scopes.global_avg_pool2d(
                    net, keepdims=True, scope="global_pool")
            else:
                kernel_size = reduced_kernel_size_for_small_input(net, [7, 7])
                net = end_points["AvgPool_1a"] = scopes.avg_pool2d(
                    net, kernel_size, padding="VALID", scope="AvgPool_1a")
            end_points["embedding"] = keras.ops.squeeze(net, axis=(1, 2))
            if not num_classes:
                return net, end_points
            logits = conv_logits(net, num_classes, dropout_keep_prob, "Dropout_1b")
    return squeezed_logits(logits, end_points, spatial_squeeze)


def conv_logits(net, num_classes, dropout_keep_prob, dropout_scope):
    """The MobileNets' logits: dropout, then slim's linear 1x1 `Conv2d_1c_1x1` (built under
    the caller's `Logits` scope)."""
    net = scopes.dropout(net, keep_prob=dropout_keep_prob, scope=dropout_scope)
    return scopes.conv2d(net, num_classes, [1, 1], activation_fn=None, normalizer_fn=None,
                         scope="Conv2d_1c_1x1")


def squeezed_logits(logits, end_points, spatial_squeeze):
    """(logits, end_points) with slim's 'Logits' / 'Predictions' end points, the logits
    squeezed to [N, K] when `spatial_squeeze`."""
    if spatial_squeeze:
        logits = keras.ops.squeeze(logits, axis=(1, 2))
    end_points["Logits"] = end_points["logits"] = logits
    end_points["Predictions"] = keras.ops.softmax(logits)
    return logits, end_points


def mobilenet_v1_075(images, num_classes=1001, is_training=None, dropout_keep_prob=0.999,
                     depth_multiplier=0.75, min_depth=8, spatial_squeeze=True,
                     global_pool=False, scope="MobilenetV1"):
    """MobileNet v1 0.75; arguments and returns as `mobilenet_v1`."""
    return mobilenet_v1(images, num_classes, is_training, dropout_keep_prob, depth_multiplier,
                        min_depth, spatial_squeeze, global_pool, scope)


def mobilenet_v1_050(images, num_classes=1001, is_training=None, dropout_keep_prob=0.999,
                     depth_multiplier=0.50, min_depth=8, spatial_squeeze=True,
                     global_pool=False, scope="MobilenetV1"):
    """MobileNet v1 0.5; arguments and returns as `mobilenet_v1`."""
    return mobilenet_v1(images, num_classes, is_training, dropout_keep_prob, depth_multiplier,
                        min_depth, spatial_squeeze, global_pool, scope)


def mobilenet_v1_025(images, num_classes=1001, is_training=None, dropout_keep_prob=0.999,
                     depth_multiplier=0.25, min_depth=8, spatial_squeeze=True,
                     global_pool=False, scope="MobilenetV1"):
    """MobileNet v1 0.25; arguments and returns as `mobilenet_v1`."""
    return mobilenet_v1(images, num_classes, is_training, dropout_keep_prob, depth_multiplier,
                        min_depth, spatial_squeeze, global_pool, scope)


for _net in (mobilenet_v1, mobilenet_v1_075, mobilenet_v1_050, mobilenet_v1_025):
    _net.default_image_size = 224


def mobilenet_v1_arg_scope(weight_decay=0.00004, stddev=0.09, regularize_depthwise=False,
                           batch_norm_decay=0.9997, batch_norm_epsilon=0.001):
    """slim's mobilenet_v1_arg_scope: truncated-normal init, ReLU6, BN (scale) everywhere.

    Args:
      weight_decay: L2 coefficient on the conv kernels (not the depthwise ones unless
        `regularize_depthwise`).
      stddev: standard deviation of the truncated normal initializer.
      regularize_depthwise: decay the depthwise kernels too.
      batch_norm_decay, batch_norm_epsilon: BN moving-average decay and epsilon.

    Returns:
      An arg_scope dict.
    """
    init = keras.initializers.TruncatedNormal(stddev=stddev)
    regularizer = l2_regularizer(weight_decay)
    with scopes.arg_scope([scopes.conv2d, scopes.depthwise_conv2d], weights_initializer=init,
                          activation_fn="relu6", normalizer_fn=scopes.batch_norm):
        with scopes.arg_scope([scopes.batch_norm], center=True, scale=True,
                              decay=batch_norm_decay, epsilon=batch_norm_epsilon):
            with scopes.arg_scope([scopes.conv2d], weights_regularizer=regularizer):
                with scopes.arg_scope(
                        [scopes.depthwise_conv2d],
                        weights_regularizer=regularizer if regularize_depthwise else None) as sc:
                    return sc
