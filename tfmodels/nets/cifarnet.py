"""tf-slim's CifarNet (models/research/slim/nets/cifarnet.py), same layout and names.

conv5x5(64)-pool-lrn-conv5x5(64)-lrn-pool-fc(384)-dropout-fc(192)-fc(K); only the dense
weights are decayed and the logits layer has its own initializer, as in slim.
"""
import keras

from tfmodels.slim import scopes
from tfmodels.slim.regularizers import l2_regularizer


def _lrn(net, scope):
    # slim's call: tf.nn.lrn(net, 4, bias=1.0, alpha=0.001 / 9.0, beta=0.75).
    return scopes.lrn(net, 4, bias=1.0, alpha=0.001 / 9.0, beta=0.75, scope=scope)


def cifarnet(images, num_classes=10, is_training=None, dropout_keep_prob=0.5,
             scope="CifarNet"):
    """slim's CifarNet.

    Args:
      images: Keras tensor [N, H, W, C], H, W >= 4 (CIFAR: 32x32x3).
      num_classes: number of classes K.
      is_training: None follows the model call's `training`; True/False pins dropout.
      dropout_keep_prob: keep probability of dropout3.
      scope: name scope of the variables.

    Returns:
      logits [N, K] and end_points; end_points['embedding'] is fc4 [N, 192].
    """
    end_points = {}
    with keras.name_scope(scope):
        net = end_points["conv1"] = scopes.conv2d(images, 64, [5, 5], scope="conv1")
        net = end_points["pool1"] = scopes.max_pool2d(net, [2, 2], 2, scope="pool1")
        net = _lrn(net, "norm1")
        net = end_points["conv2"] = scopes.conv2d(net, 64, [5, 5], scope="conv2")
        net = _lrn(net, "norm2")
        net = end_points["pool2"] = scopes.max_pool2d(net, [2, 2], 2, scope="pool2")
        net = end_points["Flatten"] = scopes.flatten(net, scope="Flatten")
        net = end_points["fc3"] = scopes.fully_connected(net, 384, scope="fc3")
        net = scopes.dropout(net, dropout_keep_prob, is_training=is_training, scope="dropout3")
        net = end_points["fc4"] = scopes.fully_connected(net, 192, scope="fc4")
        logits = scopes.fully_connected(
            net, num_classes, biases_initializer="zeros",
            weights_initializer=keras.initializers.TruncatedNormal(stddev=1 / 192.0),
            weights_regularizer=None, activation_fn=None, scope="logits")
    end_points["embedding"] = net
    end_points["Logits"] = end_points["logits"] = logits
    end_points["Predictions"] = keras.ops.softmax(logits)
    return logits, end_points


cifarnet.default_image_size = 32


def cifarnet_arg_scope(weight_decay=0.004):
    """slim's: truncated normal convs (stddev 5e-2); dense layers stddev 0.04, bias 0.1, L2."""
    with scopes.arg_scope(
            [scopes.conv2d],
            weights_initializer=keras.initializers.TruncatedNormal(stddev=5e-2),
            activation_fn="relu"):
        with scopes.arg_scope(
                [scopes.fully_connected],
                biases_initializer=keras.initializers.Constant(0.1),
                weights_initializer=keras.initializers.TruncatedNormal(stddev=0.04),
                weights_regularizer=l2_regularizer(weight_decay),
                activation_fn="relu") as scope:
            return scope
