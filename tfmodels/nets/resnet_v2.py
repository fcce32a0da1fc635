"""ResNet v2, pre-activation (He et al. 2016), in tf-slim's layout (tf_slim.nets.resnet_v2).

Each unit `blockB/unit_U/bottleneck_v2` starts with `preact` (BN + ReLU); the shortcut is the
raw input (subsampled) when depths match, else a 1x1 conv of the pre-activation; `conv1`,
`conv2` (3x3, `conv2d_same`) carry BN + ReLU, `conv3` and `shortcut` a bias and no
activation. The root `conv1` is a plain biased 7x7/2 convolution (no BN: the first unit's
`preact` follows); after block4 comes `postnorm` (BN + ReLU). Strides, pools, the head and
slim's options (`num_classes=0`, `global_pool`, `spatial_squeeze`, `output_stride`) as in
`resnet_v1`, whose block helpers and `resnet_arg_scope` this module shares.
"""
import keras

from tfmodels.slim import scopes
from tfmodels.nets import resnet_v1
from tfmodels.nets.resnet_v1 import Block, resnet_arg_scope  # noqa: F401 (the family's)


def bottleneck(inputs, depth, depth_bottleneck, stride, rate=1, scope="bottleneck_v2"):
    """slim's bottleneck_v2 unit: shortcut + conv1x1 -> conv3x3(stride) -> conv1x1 on preact.

    Args:
      inputs: Keras tensor [N, H, W, C].
      depth: output channels (4 * depth_bottleneck).
      depth_bottleneck: channels of the 1x1 / 3x3 bottleneck convolutions.
      stride: the unit's stride (on the 3x3 convolution and the shortcut).
      rate: dilation of the 3x3 convolution.
      scope: name scope.

    Returns:
      Keras tensor [N, ceil(H / stride), ceil(W / stride), depth] (no activation: the next
      unit's preact, or postnorm, normalises it).
    """
    with keras.name_scope(scope):
        preact = scopes.batch_norm(inputs, activation_fn="relu", scope="preact")
        if depth == inputs.shape[-1]:
            shortcut = scopes.subsample(inputs, stride, scope="shortcut")
        else:
            shortcut = scopes.conv2d(preact, depth, [1, 1], stride=stride, normalizer_fn=None,
                                     activation_fn=None, scope="shortcut")
        residual = scopes.conv2d(preact, depth_bottleneck, [1, 1], stride=1, scope="conv1")
        residual = scopes.conv2d_same(residual, depth_bottleneck, 3, stride, rate=rate,
                                      scope="conv2")
        residual = scopes.conv2d(residual, depth, [1, 1], stride=1, normalizer_fn=None,
                                 activation_fn=None, scope="conv3")
        return shortcut + residual


def resnet_v2(images, blocks, num_classes, is_training=None, global_pool=True,
              output_stride=None, spatial_squeeze=True, scope="resnet_v2"):
    """slim's resnet_v2 generator with the root block.

    Args and returns as `resnet_v1.resnet_v1`; end points also hold the unit outputs through
    the blocks (nested models) and no BN end point ('postnorm' is a layer, as in slim).
    """
    block_stride = resnet_v1.check_output_stride(blocks, output_stride)
    end_points = {}
    with keras.name_scope(scope), scopes.arg_scope([scopes.batch_norm], is_training=is_training):
        with scopes.arg_scope([scopes.conv2d], activation_fn=None, normalizer_fn=None):
            net = end_points[f"{scope}/conv1"] = scopes.conv2d_same(images, 64, 7, stride=2,
                                                                    scope="conv1")
        net = scopes.max_pool2d(net, [3, 3], stride=2, scope="pool1")
        net = resnet_v1.stack_blocks(net, blocks, end_points, scope, block_stride)
        net = scopes.batch_norm(net, activation_fn="relu", scope="postnorm")
        return resnet_v1.head(net, end_points, scope, num_classes, global_pool,
                              spatial_squeeze)


def resnet_v2_block(scope, base_depth, num_units, stride):
    """slim's block: `num_units` bottlenecks of depth 4*base_depth, stride on the last one."""
    unit = {"depth": base_depth * 4, "depth_bottleneck": base_depth, "stride": 1}
    return Block(scope, bottleneck, [unit] * (num_units - 1) + [dict(unit, stride=stride)])


def resnet_v2_50(images, num_classes=1000, is_training=None, global_pool=True,
                 output_stride=None, spatial_squeeze=True, scope="resnet_v2_50"):
    """ResNet-50 v2 (3, 4, 6, 3 bottlenecks). Arguments and returns as `resnet_v2`."""
    return resnet_v2(images, resnet_v1.blocks_for(50, resnet_v2_block), num_classes,
                     is_training, global_pool, output_stride, spatial_squeeze, scope)


def resnet_v2_101(images, num_classes=1000, is_training=None, global_pool=True,
                  output_stride=None, spatial_squeeze=True, scope="resnet_v2_101"):
    """ResNet-101 v2 (3, 4, 23, 3 bottlenecks). Arguments and returns as `resnet_v2`."""
    return resnet_v2(images, resnet_v1.blocks_for(101, resnet_v2_block), num_classes,
                     is_training, global_pool, output_stride, spatial_squeeze, scope)


def resnet_v2_152(images, num_classes=1000, is_training=None, global_pool=True,
                  output_stride=None, spatial_squeeze=True, scope="resnet_v2_152"):
    """ResNet-152 v2 (3, 8, 36, 3 bottlenecks). Arguments and returns as `resnet_v2`."""
    return resnet_v2(images, resnet_v1.blocks_for(152, resnet_v2_block), num_classes,
                     is_training, global_pool, output_stride, spatial_squeeze, scope)


def resnet_v2_200(images, num_classes=1000, is_training=None, global_pool=True,
                  output_stride=None, spatial_squeeze=True, scope="resnet_v2_200"):
    """ResNet-200 v2 (3, 24, 36, 3 bottlenecks). Arguments and returns as `resnet_v2`."""
    return resnet_v2(images, resnet_v1.blocks_for(200, resnet_v2_block), num_classes,
                     is_training, global_pool, output_stride, spatial_squeeze, scope)


for _net in (resnet_v2_50, resnet_v2_101, resnet_v2_152, resnet_v2_200):
    _net.default_image_size = 224
