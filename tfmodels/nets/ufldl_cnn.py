"""UFLDL's convolutional network exercise: convolution, pooling, softmax classifier.

UFLDL (cnnTrain.m) convolves 28x28 MNIST with 20 9x9 filters ('valid', sigmoid), mean-pools
2x2, and feeds the 2000 pooled features to a softmax layer with weight decay. Here the default
padding is 'SAME' so the same net also runs on 8x8 digits; `padding='VALID'` is the exercise's
exact layout (28x28 -> 20x20 -> 10x10).
"""
import keras
import tensorflow as tf

from tfmodels.slim import scopes
from tfmodels.slim.regularizers import l2_regularizer

_POOLS = {"mean": scopes.avg_pool2d, "max": scopes.max_pool2d}


def ufldl_cnn(images, num_classes=10, is_training=None, num_filters=20, kernel_size=9,
              padding="SAME", pool_size=2, pooling="mean", activation_fn=tf.nn.sigmoid,
              scope="UfldlCnn"):
    """Conv -> mean or max pool (non-overlapping) -> softmax classifier.

    Args:
      images: Keras tensor [N, H, W, C].
      num_classes: number of classes K.
      is_training: unused; kept for the common contract.
      num_filters, kernel_size: the convolution (UFLDL: 20 filters, 9x9).
      padding: 'SAME' (default, any size) or 'VALID' (UFLDL's).
      pool_size: pooling window and stride (UFLDL: 2).
      pooling: 'mean' (UFLDL) or 'max'.
      activation_fn: convolution nonlinearity (UFLDL: sigmoid).
      scope: name scope (`UfldlCnn/conv1/kernel`, `UfldlCnn/logits/kernel`).

    Returns:
      logits [N, K] and end_points; end_points['embedding'] is the pooled features flattened.
    """
    del is_training
    if pooling not in _POOLS:
        raise ValueError(f"pooling={pooling!r} must be one of {sorted(_POOLS)}")
    end_points = {}
    with keras.name_scope(scope):
        net = end_points["conv1"] = scopes.conv2d(
            images, num_filters, kernel_size, padding=padding, activation_fn=activation_fn,
            scope="conv1")
        net = end_points["pool1"] = _POOLS[pooling](net, pool_size, stride=pool_size,
                                                    padding="VALID", scope="pool1")
        net = end_points["Flatten"] = scopes.flatten(net, scope="Flatten")
        logits = scopes.fully_connected(net, num_classes, activation_fn=None, scope="logits")
    end_points["embedding"] = net
    end_points["Logits"] = end_points["logits"] = logits
    return logits, end_points


ufldl_cnn.default_image_size = 28


def min_image_size(kernel_size=9, padding="SAME", pool_size=2, **unused):
    """Smallest height/width giving at least one pooled pixel."""
    del unused
    return pool_size if padding.upper() == "SAME" else kernel_size + pool_size - 1


def ufldl_cnn_arg_scope(weight_decay=0.0):
    """Weight decay on the filters and the softmax weights (UFLDL's cnnCost lambda)."""
    with scopes.arg_scope([scopes.conv2d, scopes.fully_connected],
                          weights_regularizer=l2_regularizer(weight_decay)) as scope:
        return scope
