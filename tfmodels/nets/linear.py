"""Linear classifiers: UFLDL's softmax regression and CS231n's two-layer net.

Both flatten the image first (channels-last, row-major, like slim's flatten), so they run on any
image size; weight decay is slim's `wd * sum(w**2) / 2` (UFLDL's and CS231n's `0.5 * reg * W**2`).
"""
import keras

from tfmodels.slim import scopes
from tfmodels.slim.regularizers import l2_regularizer


def softmax_regression(images, num_classes=10, is_training=None, scope="SoftmaxRegression"):
    """Multinomial logistic regression: logits = flatten(images) @ W + b.

    Args:
      images: Keras tensor [N, H, W, C].
      num_classes: number of classes K.
      is_training: unused (no dropout or batch norm); kept for the common contract.
      scope: name scope of the variables (`SoftmaxRegression/logits/kernel`).

    Returns:
      logits [N, K] and end_points; end_points['embedding'] is the flattened input.
    """
    del is_training
    end_points = {}
    with keras.name_scope(scope):
        net = end_points["Flatten"] = scopes.flatten(images, scope="Flatten")
        logits = scopes.fully_connected(net, num_classes, activation_fn=None, scope="logits")
    end_points["embedding"] = net
    end_points["Logits"] = end_points["logits"] = logits
    return logits, end_points


softmax_regression.default_image_size = 28


def softmax_regression_arg_scope(weight_decay=0.0):
    """Weight decay on W (not b), as in UFLDL's softmax exercise."""
    with scopes.arg_scope([scopes.fully_connected],
                          weights_regularizer=l2_regularizer(weight_decay)) as scope:
        return scope


def two_layer_net(images, num_classes=10, is_training=None, hidden_size=100,
                  scope="TwoLayerNet"):
    """CS231n's TwoLayerNet: affine - ReLU - affine.

    Args:
      images: Keras tensor [N, H, W, C].
      num_classes: number of classes K.
      is_training: unused; kept for the common contract.
      hidden_size: width of the hidden layer (CS231n's default 100).
      scope: name scope (`TwoLayerNet/fc1/kernel`, `TwoLayerNet/logits/kernel`).

    Returns:
      logits [N, K] and end_points; end_points['embedding'] is the hidden layer [N, hidden].
    """
    del is_training
    end_points = {}
    with keras.name_scope(scope):
        net = end_points["Flatten"] = scopes.flatten(images, scope="Flatten")
        net = end_points["fc1"] = scopes.fully_connected(net, hidden_size, scope="fc1")
        logits = scopes.fully_connected(net, num_classes, activation_fn=None, scope="logits")
    end_points["embedding"] = net
    end_points["Logits"] = end_points["logits"] = logits
    return logits, end_points


two_layer_net.default_image_size = 32


def two_layer_net_arg_scope(weight_decay=0.0):
    """ReLU hidden layer, weight decay on both weight matrices (CS231n's `reg`)."""
    with scopes.arg_scope([scopes.fully_connected],
                          weights_regularizer=l2_regularizer(weight_decay)) as scope:
        return scope
