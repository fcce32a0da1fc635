"""Oxford VGG nets A (11 layers), 16 (D) and 19 (E) in tf-slim's layout (tf_slim.nets.vgg).

Simonyan & Zisserman 2015, "Very Deep Convolutional Networks for Large-Scale Image
Recognition". As in slim, the fully connected layers are convolutions (fc6 is a 7x7 VALID
conv, fc7/fc8 are 1x1), so slim checkpoints port by renaming only; the 2x2 max pools are VALID.
Classification therefore needs 224..255 pixels per side (fc8 must be 1x1 to squeeze).
"""
import keras

from tfmodels.slim import scopes
from tfmodels.slim.regularizers import l2_regularizer

# (number of 3x3 convolutions, depth) per stage, conv1 .. conv5.
_LAYOUTS = {
    "vgg_a": ((1, 64), (1, 128), (2, 256), (2, 512), (2, 512)),
    "vgg_16": ((2, 64), (2, 128), (3, 256), (3, 512), (3, 512)),
    "vgg_19": ((2, 64), (2, 128), (4, 256), (4, 512), (4, 512)),
}
MIN_IMAGE_SIZE = 224  # 5 VALID 2x2 pools (/32, floored) must leave 7x7 for fc6
MAX_IMAGE_SIZE = 255  # 256 would leave 8x8 -> fc8 2x2, which cannot be squeezed


def min_image_size(fc_conv_padding="VALID", **unused):
    """Smallest height/width: fc6 VALID needs a 7x7 pool5 (224); 'SAME' a 1x1 one (32)."""
    return MIN_IMAGE_SIZE if fc_conv_padding.upper() == "VALID" else 32


def max_image_size(global_pool=False, fc_conv_padding="VALID", **unused):
    """Largest height/width: fc8 must be 1x1 unless the features are pooled globally."""
    return MAX_IMAGE_SIZE if not global_pool and fc_conv_padding.upper() == "VALID" else (
        None if global_pool else 63)


def _vgg(layout, images, num_classes, is_training, dropout_keep_prob, spatial_squeeze, scope,
         fc_conv_padding="VALID", global_pool=False):
    end_points = {}
    with keras.name_scope(scope):
        net = images
        for stage, (repeats, depth) in enumerate(layout, start=1):
            # slim.repeat(net, repeats, conv2d, depth, [3, 3], scope=f'conv{stage}'), keeping
            # every layer's end point like slim's outputs_collections.
            with keras.name_scope(f"conv{stage}"):
                for i in range(1, repeats + 1):
                    net = end_points[f"{scope}/conv{stage}/conv{stage}_{i}"] = scopes.conv2d(
                        net, depth, [3, 3], scope=f"conv{stage}_{i}")
            net = end_points[f"{scope}/pool{stage}"] = scopes.max_pool2d(
                net, [2, 2], scope=f"pool{stage}")
        net = end_points[f"{scope}/fc6"] = scopes.conv2d(net, 4096, [7, 7],
                                                         padding=fc_conv_padding, scope="fc6")
        net = scopes.dropout(net, dropout_keep_prob, is_training=is_training, scope="dropout6")
        net = end_points[f"{scope}/fc7"] = scopes.conv2d(net, 4096, [1, 1], scope="fc7")
        if global_pool:
            net = end_points["global_pool"] = scopes.global_avg_pool2d(net, keepdims=True,
                                                                       scope="global_pool")
        end_points["embedding"] = (keras.ops.squeeze(net, axis=(1, 2))
                                   if net.shape[1:3] == (1, 1) else net)
        if not num_classes:
            return net, end_points
        net = scopes.dropout(net, dropout_keep_prob, is_training=is_training, scope="dropout7")
        logits = scopes.conv2d(net, num_classes, [1, 1], activation_fn=None,
                               normalizer_fn=None, scope="fc8")
    if spatial_squeeze:
        logits = keras.ops.squeeze(logits, axis=(1, 2))
    end_points[f"{scope}/fc8"] = logits
    end_points["logits"] = logits
    return logits, end_points


def vgg_a(images, num_classes=1000, is_training=None, dropout_keep_prob=0.5,
          spatial_squeeze=True, scope="vgg_a", fc_conv_padding="VALID", global_pool=False):
    """VGG 11-layer (configuration A), slim layout.

    Args:
      images: Keras tensor [N, H, W, C] with 224 <= H, W <= 255 (larger with `global_pool`;
        from 32 with `fc_conv_padding='SAME'`).
      num_classes: number of classes K; 0 or None returns fc7's features (slim's option).
      is_training: None follows the model call's `training`; True/False pins dropout.
      dropout_keep_prob: keep probability of dropout6 and dropout7.
      spatial_squeeze: squeeze the logits to [N, K] (slim's default; the registry needs it).
      scope: name scope (`vgg_a/conv1/conv1_1/kernel`, ..., `vgg_a/fc8/bias`).
      fc_conv_padding: padding of fc6, 'VALID' (slim's default) or 'SAME' (fully
        convolutional use).
      global_pool: average fc7 over H, W before fc8 (slim's option for other sizes).

    Returns:
      logits [N, K] and end_points (slim's keys, e.g. 'vgg_a/fc7'); end_points['embedding']
      is fc7 (after the global pool, if any) squeezed to [N, 4096] (before dropout).
    """
    return _vgg(_LAYOUTS["vgg_a"], images, num_classes, is_training, dropout_keep_prob,
                spatial_squeeze, scope, fc_conv_padding, global_pool)


def vgg_16(images, num_classes=1000, is_training=None, dropout_keep_prob=0.5,
           spatial_squeeze=True, scope="vgg_16", fc_conv_padding="VALID", global_pool=False):
    """VGG 16-layer (configuration D), slim layout; arguments and returns as `vgg_a`."""
    return _vgg(_LAYOUTS["vgg_16"], images, num_classes, is_training, dropout_keep_prob,
                spatial_squeeze, scope, fc_conv_padding, global_pool)


def vgg_19(images, num_classes=1000, is_training=None, dropout_keep_prob=0.5,
           spatial_squeeze=True, scope="vgg_19", fc_conv_padding="VALID", global_pool=False):
    """VGG 19-layer (configuration E), slim layout; arguments and returns as `vgg_a`."""
    return _vgg(_LAYOUTS["vgg_19"], images, num_classes, is_training, dropout_keep_prob,
                spatial_squeeze, scope, fc_conv_padding, global_pool)


for _net in (vgg_a, vgg_16, vgg_19):
    _net.default_image_size = 224


def vgg_arg_scope(weight_decay=0.0005):
    """slim's: ReLU, L2 weight decay, zero biases, 'SAME' convolutions."""
    with scopes.arg_scope([scopes.conv2d, scopes.fully_connected], activation_fn="relu",
                          weights_regularizer=l2_regularizer(weight_decay),
                          biases_initializer="zeros"):
        with scopes.arg_scope([scopes.conv2d], padding="SAME") as scope:
            return scope
