"""ResNet v1 (He et al. 2015) in tf-slim's layout (tf_slim.nets.resnet_v1): 50 and 101 layers.

Kept from slim so checkpoints port by renaming only: bottleneck units scoped
`blockB/unit_U/bottleneck_v1/{shortcut,conv1,conv2,conv3}`, BN after every convolution
(epsilon 1e-5, decay 0.997 in `resnet_arg_scope`), the stride on the LAST unit of blocks 1-3
(block4 stride 1), strided 3x3 convolutions with symmetric fixed padding (`conv2d_same`), a
'SAME' 3x3/2 max pool, global average pooling and a 1x1-conv classifier (`logits`).
Blocks and units are nested functional models (`scopes.nested_model`), so layer names repeat
freely while variable paths stay slim's. Dense prediction (`output_stride`, atrous) is not
implemented: classification only.
"""
import collections

import keras

from tfmodels.slim import scopes
from tfmodels.slim.regularizers import l2_regularizer


class Block(collections.namedtuple("Block", ["scope", "unit_fn", "args"])):
    """A ResNet block: `unit_fn(net, **args[i])` for each unit, scoped `scope/unit_{i+1}`."""


def stack_blocks(net, blocks, end_points, prefix):
    """Applies each block as a nested model named `block.scope`, its units as nested models.

    Returns:
      The last block's output; end_points gets `{prefix}/{block.scope}` for every block.
    """
    for block in blocks:
        net = end_points[f"{prefix}/{block.scope}"] = scopes.nested_model(
            _stack_units, net, block.scope, unit_fn=block.unit_fn, units=block.args)
    return net


def _stack_units(net, unit_fn, units):
    for i, unit in enumerate(units, start=1):
        net = scopes.nested_model(unit_fn, net, f"unit_{i}", **unit)
    return net


def bottleneck(inputs, depth, depth_bottleneck, stride, rate=1, scope="bottleneck_v1"):
    """slim's bottleneck_v1 unit: relu(shortcut + conv1x1 -> conv3x3(stride) -> conv1x1).

    Args:
      inputs: Keras tensor [N, H, W, C].
      depth: output channels (4 * depth_bottleneck).
      depth_bottleneck: channels of the 1x1 / 3x3 bottleneck convolutions.
      stride: the unit's stride (on the 3x3 convolution and the shortcut).
      rate: dilation of the 3x3 convolution.
      scope: name scope.

    Returns:
      Keras tensor [N, ceil(H / stride), ceil(W / stride), depth].
    """
    with keras.name_scope(scope):
        if depth == inputs.shape[-1]:
            shortcut = scopes.subsample(inputs, stride, scope="shortcut")
        else:
            shortcut = scopes.conv2d(inputs, depth, [1, 1], stride=stride, activation_fn=None,
                                     scope="shortcut")
        residual = scopes.conv2d(inputs, depth_bottleneck, [1, 1], stride=1, scope="conv1")
        residual = scopes.conv2d_same(residual, depth_bottleneck, 3, stride, rate=rate,
                                      scope="conv2")
        residual = scopes.conv2d(residual, depth, [1, 1], stride=1, activation_fn=None,
                                 scope="conv3")
        return keras.ops.relu(shortcut + residual)


def resnet_v1(images, blocks, num_classes, is_training=None, scope="resnet_v1"):
    """slim's resnet_v1 generator with the root block and global pooling, for classification.

    Args:
      images: Keras tensor [N, H, W, C] (any size; ImageNet: 224).
      blocks: list of `Block`s.
      num_classes: number of classes K.
      is_training: None follows the model call's `training`; True/False pins batch norm.
      scope: name scope of the variables.

    Returns:
      logits [N, K] and end_points (slim's keys and shapes: '{scope}/conv1', '{scope}/block1'
      .. 'block4', '{scope}/logits' and 'predictions' [N, 1, 1, K]; unit-level end points are
      inside the nested models); end_points['embedding'] is the global pool squeezed to
      [N, C].
    """
    end_points = {}
    with keras.name_scope(scope), scopes.arg_scope([scopes.batch_norm], is_training=is_training):
        net = end_points[f"{scope}/conv1"] = scopes.conv2d_same(images, 64, 7, stride=2,
                                                                scope="conv1")
        net = scopes.max_pool2d(net, [3, 3], stride=2, scope="pool1")
        net = stack_blocks(net, blocks, end_points, scope)
        net = scopes.global_avg_pool2d(net, keepdims=True, scope="pool5")
        end_points["embedding"] = keras.ops.squeeze(net, axis=(1, 2))
        net = end_points[f"{scope}/logits"] = scopes.conv2d(
            net, num_classes, [1, 1], activation_fn=None, normalizer_fn=None, scope="logits")
    # slim's own end points keep [N, 1, 1, K]; the returned logits are squeezed.
    end_points["predictions"] = keras.ops.softmax(net)
    logits = end_points["logits"] = keras.ops.squeeze(net, axis=(1, 2))
    return logits, end_points


def resnet_v1_block(scope, base_depth, num_units, stride):
    """slim's block: `num_units` bottlenecks of depth 4*base_depth, stride on the last one."""
    unit = {"depth": base_depth * 4, "depth_bottleneck": base_depth, "stride": 1}
    return Block(scope, bottleneck, [unit] * (num_units - 1) + [dict(unit, stride=stride)])


def _blocks(units_per_block):
    strides = (2, 2, 2, 1)
    return [resnet_v1_block(f"block{i + 1}", 64 * 2 ** i, units, strides[i])
            for i, units in enumerate(units_per_block)]


def resnet_v1_50(images, num_classes=1000, is_training=None, scope="resnet_v1_50"):
    """ResNet-50 v1 (3, 4, 6, 3 bottlenecks). Arguments and returns as `resnet_v1`."""
    return resnet_v1(images, _blocks((3, 4, 6, 3)), num_classes, is_training, scope)


def resnet_v1_101(images, num_classes=1000, is_training=None, scope="resnet_v1_101"):
    """ResNet-101 v1 (3, 4, 23, 3 bottlenecks). Arguments and returns as `resnet_v1`."""
    return resnet_v1(images, _blocks((3, 4, 23, 3)), num_classes, is_training, scope)


resnet_v1_50.default_image_size = resnet_v1_101.default_image_size = 224


def resnet_arg_scope(weight_decay=0.0001, batch_norm_decay=0.997, batch_norm_epsilon=1e-5,
                     batch_norm_scale=True):
    """slim's resnet_arg_scope: He-normal convs with L2 decay, BN + ReLU, 'SAME' max pools.

    Args:
      weight_decay: L2 coefficient (slim: wd * sum(w**2) / 2) on every convolution kernel.
      batch_norm_decay: moving-average decay (Keras momentum) of the BN statistics.
      batch_norm_epsilon: BN epsilon (1e-5 for the MSRA weights; Keras' 1e-3 would not port).
      batch_norm_scale: create BN's gamma.

    Returns:
      An arg_scope dict.
    """
    batch_norm_params = {"decay": batch_norm_decay, "epsilon": batch_norm_epsilon,
                         "scale": batch_norm_scale}
    with scopes.arg_scope(
            [scopes.conv2d], weights_regularizer=l2_regularizer(weight_decay),
            # slim's variance_scaling_initializer(): truncated normal, var 2 / fan_in.
            weights_initializer=keras.initializers.HeNormal(), activation_fn="relu",
            normalizer_fn=scopes.batch_norm, normalizer_params=batch_norm_params):
        with scopes.arg_scope([scopes.batch_norm], **batch_norm_params):
            # pool1 'SAME' as slim (and fb.resnet.torch); MSRA's Caffe model used 'VALID'.
            with scopes.arg_scope([scopes.max_pool2d], padding="SAME") as scope:
                return scope
