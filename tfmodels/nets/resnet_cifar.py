"""CIFAR ResNets of He et al. 2015 (Sec. 4.2): resnet20 and resnet56 (6n + 2 layers).

A 3x3 conv (16), three stages of n basic units (two 3x3 convs, 16/32/64 channels, the first
unit of stages 2 and 3 strided), global average pooling and a dense classifier; BN + ReLU after
every conv. Shortcuts are the paper's option A (parameter free): identity, or for a strided
unit a stride-2 subsample with zero channels padded evenly on both sides (as the common
PyTorch port does), giving the paper's sizes: 0.27M / 0.85M parameters for 10 classes.
Strided 3x3 convs pad symmetrically (`conv2d_same`) so they sample the same pixels as the
shortcut. Variable paths follow slim's ResNet: `resnet20/block2/unit_1/basic_v1/conv1/kernel`.
"""
import keras

from tfmodels.slim import scopes
from tfmodels.slim.regularizers import l2_regularizer
from tfmodels.nets.resnet_v1 import Block, stack_blocks


def basic(inputs, depth, stride, scope="basic_v1"):
    """Basic residual unit: relu(shortcut + conv3x3(stride) -> conv3x3), option A shortcut.

    Args:
      inputs: Keras tensor [N, H, W, C] with C <= depth.
      depth: output channels.
      stride: the unit's stride.
      scope: name scope.

    Returns:
      Keras tensor [N, ceil(H / stride), ceil(W / stride), depth].
    """
    with keras.name_scope(scope):
        shortcut = scopes.subsample(inputs, stride, scope="shortcut")
        extra = depth - inputs.shape[-1]
        if extra:
            shortcut = keras.ops.pad(shortcut, [[0, 0], [0, 0], [0, 0],
                                                [extra // 2, extra - extra // 2]])
        residual = scopes.conv2d_same(inputs, depth, 3, stride, scope="conv1")
        residual = scopes.conv2d(residual, depth, [3, 3], activation_fn=None, scope="conv2")
        return keras.ops.relu(shortcut + residual)


def resnet_cifar(images, num_units, num_classes=10, is_training=None, scope=None):
    """The 6n+2-layer CIFAR ResNet with n = num_units per stage.

    Args:
      images: Keras tensor [N, H, W, C] (any size; CIFAR: 32x32).
      num_units: basic units per stage (3 -> resnet20, 9 -> resnet56).
      num_classes: number of classes K.
      is_training: None follows the model call's `training`; True/False pins batch norm.
      scope: name scope; default `resnet{6n+2}`.

    Returns:
      logits [N, K] and end_points ('{scope}/block1..3', 'logits'); end_points['embedding'] is
      the global average pool [N, 64].
    """
    scope = scope or f"resnet{6 * num_units + 2}"
    blocks = [Block(f"block{i + 1}", basic,
                    [{"depth": depth, "stride": stride}] + [{"depth": depth, "stride": 1}]
                    * (num_units - 1))
              for i, (depth, stride) in enumerate(((16, 1), (32, 2), (64, 2)))]
    end_points = {}
    with keras.name_scope(scope), scopes.arg_scope([scopes.batch_norm], is_training=is_training):
        net = end_points[f"{scope}/conv1"] = scopes.conv2d(images, 16, [3, 3], scope="conv1")
        net = stack_blocks(net, blocks, end_points, scope)
        net = end_points["embedding"] = scopes.global_avg_pool2d(net, keepdims=False,
                                                                 scope="pool5")
        logits = scopes.fully_connected(net, num_classes, activation_fn=None,
                                        normalizer_fn=None, scope="logits")
    end_points["logits"] = logits
    return logits, end_points


def resnet20(images, num_classes=10, is_training=None, scope="resnet20"):
    """ResNet-20 (n = 3). Arguments and returns as `resnet_cifar`."""
    return resnet_cifar(images, 3, num_classes, is_training, scope)


def resnet56(images, num_classes=10, is_training=None, scope="resnet56"):
    """ResNet-56 (n = 9). Arguments and returns as `resnet_cifar`."""
    return resnet_cifar(images, 9, num_classes, is_training, scope)


resnet20.default_image_size = resnet56.default_image_size = 32


def resnet_cifar_arg_scope(weight_decay=0.0001, batch_norm_decay=0.9, batch_norm_epsilon=1e-5):
    """He et al.'s CIFAR recipe: He-normal convs, BN (Torch momentum 0.1 = decay 0.9) + ReLU,
    L2 weight decay 1e-4 on every weight, classifier included.

    Returns:
      An arg_scope dict.
    """
    batch_norm_params = {"decay": batch_norm_decay, "epsilon": batch_norm_epsilon,
                         "scale": True}
    regularizer = l2_regularizer(weight_decay)
    with scopes.arg_scope([scopes.conv2d], weights_initializer=keras.initializers.HeNormal(),
                          activation_fn="relu", weights_regularizer=regularizer,
                          normalizer_fn=scopes.batch_norm, normalizer_params=batch_norm_params):
        with scopes.arg_scope([scopes.batch_norm], **batch_norm_params):
            with scopes.arg_scope([scopes.fully_connected],
                                  weights_regularizer=regularizer) as scope:
                return scope
