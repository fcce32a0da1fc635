"""ResNet v1 (He et al. 2015) in tf-slim's layout (tf_slim.nets.resnet_v1): 50 to 200 layers.

Kept from slim so checkpoints port by renaming only: bottleneck units scoped
`blockB/unit_U/bottleneck_v1/{shortcut,conv1,conv2,conv3}`, BN after every convolution
(epsilon 1e-5, decay 0.997 in `resnet_arg_scope`), the stride on the LAST unit of blocks 1-3
(block4 stride 1), strided 3x3 convolutions with symmetric fixed padding (`conv2d_same`), a
'SAME' 3x3/2 max pool, global average pooling and a 1x1-conv classifier (`logits`).
Blocks and units are nested functional models (`scopes.nested_model`), so layer names repeat
freely while variable paths stay slim's. slim's options: `num_classes=0` returns the features,
`global_pool`, `spatial_squeeze`, and `output_stride` (atrous convolution once the requested
stride is reached, for dense prediction). `tfmodels.nets.resnet_v2` shares the block helpers.
"""
import collections

import keras

from tfmodels.slim import scopes
from tfmodels.slim.regularizers import l2_regularizer


class Block(collections.namedtuple("Block", ["scope", "unit_fn", "args"])):
    """A ResNet block: `unit_fn(net, **args[i])` for each unit, scoped `scope/unit_{i+1}`."""


def plan_units(blocks, output_stride):
    """Each unit's arguments with slim's `stack_blocks_dense` stride/rate for `output_stride`.

    Once the running stride reaches `output_stride`, later units get stride 1 and a dilation
    rate multiplied by the stride they would have had.

    Args:
      blocks: list of `Block`s.
      output_stride: None (nominal stride) or the stride wanted after the blocks.

    Returns:
      One list of unit keyword arguments per block (with `rate` after the stride is reached).

    Raises:
      ValueError: `output_stride` cannot be reached with these strides.
    """
    current_stride, rate, plan = 1, 1, []
    for block in blocks:
        units = []
        for unit in block.args:
            if output_stride is not None and current_stride > output_stride:
                raise ValueError(f"output_stride={output_stride} cannot be reached")
            if output_stride is not None and current_stride == output_stride:
                units.append(dict(unit, stride=1, rate=rate))
                rate *= unit.get("stride", 1)
            else:  # units without a `rate` argument (CIFAR ResNets' basic) keep working
                units.append(dict(unit))
                current_stride *= unit.get("stride", 1)
        plan.append(units)
    if output_stride is not None and current_stride != output_stride:
        raise ValueError(f"output_stride={output_stride} cannot be reached")
    return plan


def check_output_stride(blocks, output_stride):
    """The stride left for the blocks after the root (conv1 /2, pool1 /2), checked as slim
    checks it, before anything is built.

    Raises:
      ValueError: not a multiple of 4, or not reachable with the blocks' strides.
    """
    if output_stride is None:
        return None
    if output_stride % 4 != 0:
        raise ValueError(f"output_stride={output_stride} must be a multiple of 4")
    try:
        plan_units(blocks, output_stride // 4)
    except ValueError:
        reachable, stride = [4], 4
        for block in blocks:
            for unit in block.args:
                stride *= unit.get("stride", 1)
                if stride not in reachable:
                    reachable.append(stride)
        raise ValueError(f"output_stride={output_stride} cannot be reached; allowed: None, "
                         f"{', '.join(map(str, reachable))}") from None
    return output_stride // 4


def stack_blocks(net, blocks, end_points, prefix, output_stride=None):
    """Applies each block as a nested model named `block.scope`, its units as nested models.

    Args:
      net: Keras tensor.
      blocks: list of `Block`s.
      end_points: dict receiving `{prefix}/{block.scope}` for every block.
      prefix: the net's scope.
      output_stride: stride wanted after the blocks (relative to `net`), or None.

    Returns:
      The last block's output.
    """
    for block, units in zip(blocks, plan_units(blocks, output_stride)):
        net = end_points[f"{prefix}/{block.scope}"] = scopes.nested_model(
            _stack_units, net, block.scope, unit_fn=block.unit_fn, units=units)
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


def head(net, end_points, scope, num_classes, global_pool, spatial_squeeze):
    """slim's ResNet head: optional global pool, 1x1-conv `logits`, squeeze, `predictions`.

    Returns:
      (logits or, for num_classes 0/None, the features; end_points with 'embedding' (the
      pooled features squeezed to [N, C], or the feature map without global_pool) and, with
      classes, 'logits').
    """
    if global_pool:
        net = end_points["global_pool"] = scopes.global_avg_pool2d(net, keepdims=True,
                                                                   scope="pool5")
        end_points["embedding"] = keras.ops.squeeze(net, axis=(1, 2))
    else:
        end_points["embedding"] = net
    if not num_classes:
        return net, end_points
    if spatial_squeeze and tuple(net.shape[1:3]) != (1, 1):
        raise ValueError(f"spatial_squeeze=True needs 1x1 logits, but global_pool="
                         f"{global_pool} leaves a {net.shape[1]}x{net.shape[2]} map; pass "
                         "spatial_squeeze=False for dense prediction")
    net = end_points[f"{scope}/logits"] = scopes.conv2d(
        net, num_classes, [1, 1], activation_fn=None, normalizer_fn=None, scope="logits")
    # tf_slim's 'predictions' keep the [N, 1, 1, K] shape of the logits end point.
    end_points["predictions"] = keras.ops.softmax(net)
    if spatial_squeeze:
        net = end_points[f"{scope}/spatial_squeeze"] = keras.ops.squeeze(net, axis=(1, 2))
    end_points["logits"] = net
    return net, end_points


def resnet_v1(images, blocks, num_classes, is_training=None, global_pool=True,
              output_stride=None, spatial_squeeze=True, scope="resnet_v1"):
    """slim's resnet_v1 generator with the root block.

    Args:
      images: Keras tensor [N, H, W, C] (any size; ImageNet: 224).
      blocks: list of `Block`s.
      num_classes: number of classes K; 0 or None returns the features (after the pool).
      is_training: None follows the model call's `training`; True/False pins batch norm.
      global_pool: average over H, W before the logits (False: dense prediction).
      output_stride: None, or a multiple of 4 dividing 32: atrous convolution keeps the
        feature map at H / output_stride.
      spatial_squeeze: squeeze the logits [N, 1, 1, K] to [N, K] (the registry needs it).
      scope: name scope of the variables.

    Returns:
      logits [N, K] and end_points (slim's keys: '{scope}/conv1', '{scope}/block1' ..
      'block4', 'global_pool', '{scope}/logits' [N, 1, 1, K], '{scope}/spatial_squeeze',
      'predictions'; unit-level end points are inside the nested models);
      end_points['embedding'] is the global pool squeezed to [N, C].
    """
    block_stride = check_output_stride(blocks, output_stride)
    end_points = {}
    with keras.name_scope(scope), scopes.arg_scope([scopes.batch_norm], is_training=is_training):
        net = end_points[f"{scope}/conv1"] = scopes.conv2d_same(images, 64, 7, stride=2,
                                                                scope="conv1")
        net = scopes.max_pool2d(net, [3, 3], stride=2, scope="pool1")
        net = stack_blocks(net, blocks, end_points, scope, block_stride)
        return head(net, end_points, scope, num_classes, global_pool, spatial_squeeze)


def resnet_v1_block(scope, base_depth, num_units, stride):
    """slim's block: `num_units` bottlenecks of depth 4*base_depth, stride on the last one."""
    unit = {"depth": base_depth * 4, "depth_bottleneck": base_depth, "stride": 1}
    return Block(scope, bottleneck, [unit] * (num_units - 1) + [dict(unit, stride=stride)])


# Bottleneck units per block (slim's resnet_v1_50 .. _200 and resnet_v2_50 .. _200).
UNITS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3), 200: (3, 24, 36, 3)}


def blocks_for(depth, block_fn):
    """The four blocks of a `depth`-layer ResNet made with `block_fn` (resnet_v1_block...)."""
    strides = (2, 2, 2, 1)
    return [block_fn(f"block{i + 1}", 64 * 2 ** i, units, strides[i])
            for i, units in enumerate(UNITS[depth])]


def resnet_v1_50(images, num_classes=1000, is_training=None, global_pool=True,
                 output_stride=None, spatial_squeeze=True, scope="resnet_v1_50"):
    """ResNet-50 v1 (3, 4, 6, 3 bottlenecks). Arguments and returns as `resnet_v1`."""
    return resnet_v1(images, blocks_for(50, resnet_v1_block), num_classes, is_training,
                     global_pool, output_stride, spatial_squeeze, scope)


def resnet_v1_101(images, num_classes=1000, is_training=None, global_pool=True,
                  output_stride=None, spatial_squeeze=True, scope="resnet_v1_101"):
    """ResNet-101 v1 (3, 4, 23, 3 bottlenecks). Arguments and returns as `resnet_v1`."""
    return resnet_v1(images, blocks_for(101, resnet_v1_block), num_classes, is_training,
                     global_pool, output_stride, spatial_squeeze, scope)


def resnet_v1_152(images, num_classes=1000, is_training=None, global_pool=True,
                  output_stride=None, spatial_squeeze=True, scope="resnet_v1_152"):
    """ResNet-152 v1 (3, 8, 36, 3 bottlenecks). Arguments and returns as `resnet_v1`."""
    return resnet_v1(images, blocks_for(152, resnet_v1_block), num_classes, is_training,
                     global_pool, output_stride, spatial_squeeze, scope)


def resnet_v1_200(images, num_classes=1000, is_training=None, global_pool=True,
                  output_stride=None, spatial_squeeze=True, scope="resnet_v1_200"):
    """ResNet-200 v1 (3, 24, 36, 3 bottlenecks). Arguments and returns as `resnet_v1`."""
    return resnet_v1(images, blocks_for(200, resnet_v1_block), num_classes, is_training,
                     global_pool, output_stride, spatial_squeeze, scope)


for _net in (resnet_v1_50, resnet_v1_101, resnet_v1_152, resnet_v1_200):
    _net.default_image_size = 224


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
