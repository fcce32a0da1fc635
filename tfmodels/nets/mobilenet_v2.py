"""MobileNet v2 (Sandler et al. 2018) in tf-slim's layout (models/research/slim mobilenet/).

slim's V2_DEF: `MobilenetV2/Conv` (3x3/2 conv), 17 inverted residuals `expanded_conv`,
`expanded_conv_1` .. `expanded_conv_16` (`expand` 1x1 conv to 6x the input depth, absent in the
first one, `depthwise` 3x3 with `depthwise_weights`, `project` 1x1 conv without activation,
plus the input when stride is 1 and depths match), `Conv_1` (1x1 to 1280), every conv with BN
(scale, decay 0.997, epsilon 1e-3) and ReLU6, 'SAME' padding; then `Logits`: a global average
pool and `Logits/Conv2d_1c_1x1` (biased 1x1 conv). Depths are multiplied and rounded to
multiples of 8 (`make_divisible`): released checkpoints 1.0 (`mobilenet_v2`) and 1.4
(`mobilenet_v2_140`), scoped `MobilenetV2`, 1001 classes.
"""
import keras

from tfmodels.nets.mobilenet_v1 import conv_logits, squeezed_logits
from tfmodels.slim import scopes
from tfmodels.slim.regularizers import l2_regularizer

# slim's V2_DEF spec after the first conv (32, stride 2): (expansion, stride, depth).
EXPANDED_CONVS = ((1, 1, 16), (6, 2, 24), (6, 1, 24), (6, 2, 32), (6, 1, 32), (6, 1, 32),
                  (6, 2, 64), (6, 1, 64), (6, 1, 64), (6, 1, 64), (6, 1, 96), (6, 1, 96),
                  (6, 1, 96), (6, 2, 160), (6, 1, 160), (6, 1, 160), (6, 1, 320))
FIRST_DEPTH, LAST_DEPTH = 32, 1280


def make_divisible(value, divisor=8, min_value=None):
    """slim's `_make_divisible`: nearest multiple of `divisor`, never 10% below `value`."""
    min_value = divisor if min_value is None else min_value
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def expanded_conv(inputs, num_outputs, expansion, stride, scope):
    """slim's `expanded_conv`: [expand 1x1] -> depthwise 3x3 (stride) -> project 1x1 (+ input).

    Returns:
      Keras tensor [N, ceil(H / stride), ceil(W / stride), num_outputs].
    """
    depth_in = inputs.shape[-1]
    # expansion 1 keeps the depth exactly (divisible_by=1), others round to multiples of 8.
    inner = make_divisible(depth_in * expansion, 1 if expansion == 1 else 8)
    with keras.name_scope(scope):
        net = inputs
        if inner > depth_in:
            net = scopes.conv2d(net, inner, [1, 1], scope="expand")
        net = scopes.depthwise_conv2d(net, [3, 3], stride=stride, scope="depthwise")
        net = scopes.conv2d(net, num_outputs, [1, 1], activation_fn=None, scope="project")
        if stride == 1 and num_outputs == depth_in:
            net = net + inputs
    return net


def mobilenet_v2(images, num_classes=1001, is_training=None, dropout_keep_prob=0.8,
                 depth_multiplier=1.0, finegrain_classification_mode=False,
                 spatial_squeeze=True, scope="MobilenetV2"):
    """MobileNet v2 classifier.

    Args:
      images: Keras tensor [N, H, W, C] (any size; ImageNet: 224).
      num_classes: classes K (slim's checkpoints: 1001); 0 or None returns the pooled
        features [N, 1, 1, C].
      is_training: None follows the model call's `training`; True/False pins BN and dropout.
      dropout_keep_prob: keep probability of `Logits/Dropout` (slim's training_scope: 0.8).
      depth_multiplier: channel multiplier (> 0), depths rounded to multiples of 8.
      finegrain_classification_mode: keep `Conv_1` at 1280 for multipliers below 1.
      spatial_squeeze: squeeze the logits to [N, K] (slim always squeezes; the registry
        needs it).
      scope: name scope ('MobilenetV2').

    Returns:
      logits [N, K] and end_points (slim's 'layer_1' .. 'layer_19', 'global_pool', 'Logits',
      'Predictions'); end_points['embedding'] is the pooled features squeezed to [N, C].
    """
    if not depth_multiplier > 0:
        raise ValueError(f"depth_multiplier={depth_multiplier} must be > 0")
    last = LAST_DEPTH / depth_multiplier if (finegrain_classification_mode
                                             and depth_multiplier < 1) else LAST_DEPTH
    end_points = {}
    with keras.name_scope(scope), scopes.arg_scope([scopes.batch_norm, scopes.dropout],
                                                   is_training=is_training):
        net = end_points["layer_1"] = scopes.conv2d(
            images, make_divisible(FIRST_DEPTH * depth_multiplier), [3, 3], stride=2,
            scope="Conv")
        for i, (expansion, stride, depth) in enumerate(EXPANDED_CONVS):
            net = end_points[f"layer_{i + 2}"] = expanded_conv(
                net, make_divisible(depth * depth_multiplier), expansion, stride,
                scope="expanded_conv" if i == 0 else f"expanded_conv_{i}")
        net = end_points[f"layer_{len(EXPANDED_CONVS) + 2}"] = scopes.conv2d(
            net, make_divisible(last * depth_multiplier), [1, 1], scope="Conv_1")
        with keras.name_scope("Logits"):
            net = end_points["global_pool"] = scopes.global_avg_pool2d(net, keepdims=True,
                                                                       scope="global_pool")
            end_points["embedding"] = keras.ops.squeeze(net, axis=(1, 2))
            if not num_classes:
                return net, end_points
            logits = conv_logits(net, num_classes, dropout_keep_prob, "Dropout")
    return squeezed_logits(logits, end_points, spatial_squeeze)


def mobilenet_v2_140(images, num_classes=1001, is_training=None, dropout_keep_prob=0.8,
                     depth_multiplier=1.4, finegrain_classification_mode=False,
                     spatial_squeeze=True, scope="MobilenetV2"):
    """MobileNet v2 1.4 (Conv_1: 1792); arguments and returns as `mobilenet_v2`."""
    return mobilenet_v2(images, num_classes, is_training, dropout_keep_prob, depth_multiplier,
                        finegrain_classification_mode, spatial_squeeze, scope)


mobilenet_v2.default_image_size = mobilenet_v2_140.default_image_size = 224


def mobilenet_v2_arg_scope(weight_decay=0.00004, stddev=0.09, batch_norm_decay=0.997,
                           batch_norm_epsilon=0.001):
    """slim's mobilenet training_scope with V2_DEF's defaults: truncated-normal init, BN
    (scale) and ReLU6 on every conv, L2 on the conv kernels only (not the depthwise ones).

    Returns:
      An arg_scope dict.
    """
    init = keras.initializers.TruncatedNormal(stddev=stddev)
    with scopes.arg_scope([scopes.conv2d, scopes.depthwise_conv2d], weights_initializer=init,
                          activation_fn="relu6", normalizer_fn=scopes.batch_norm,
                          padding="SAME"):
        with scopes.arg_scope([scopes.batch_norm], center=True, scale=True,
                              decay=batch_norm_decay, epsilon=batch_norm_epsilon):
            with scopes.arg_scope([scopes.conv2d],
                                  weights_regularizer=l2_regularizer(weight_decay)) as sc:
                return sc
