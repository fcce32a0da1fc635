"""SmallCNN: a VGG-style convnet for small images, the default net on the embedded digits.

Two stages of 3x3 'SAME' ReLU convolutions and a 2x2 max pool (VGG's pattern, slim names:
`SmallCNN/conv1/conv1_1`, `conv1/conv1_2`, `pool1`, `conv2/conv2_1`, `pool2`), then a 128-unit
ReLU layer (`fc3`, the embedding) and the classifier (`logits`). On 8x8 digits the flattened
features are 2*2*64 = 256; on 28x28 MNIST 7*7*64 = 3136. The 1-pixel shifts of the digits
augmentation and the 3x3 convolutions see the same local structure, which a fully connected
net must learn position by position.
"""
import keras

from tfmodels.slim import scopes
from tfmodels.slim.regularizers import l2_regularizer


def small_cnn(images, num_classes=10, is_training=None, depths=(32, 64), hidden_size=128,
              scope="SmallCNN"):
    """conv3x3(32) x2 - pool - conv3x3(64) - pool - fc(128) - fc(K).

    Args:
      images: Keras tensor [N, H, W, C], H, W >= 4.
      num_classes: number of classes K.
      is_training: unused (no dropout or batch norm); kept for the common contract.
      depths: channels of the two stages.
      hidden_size: width of fc3, the embedding.
      scope: name scope of the variables.

    Returns:
      logits [N, K] and end_points; end_points['embedding'] is fc3 [N, hidden_size].
    """
    del is_training
    end_points = {}
    with keras.name_scope(scope):
        net = end_points["conv1"] = scopes.repeat(images, 2, scopes.conv2d, depths[0], [3, 3],
                                                  scope="conv1")
        net = end_points["pool1"] = scopes.max_pool2d(net, [2, 2], 2, scope="pool1")
        net = end_points["conv2"] = scopes.repeat(net, 1, scopes.conv2d, depths[1], [3, 3],
                                                  scope="conv2")
        net = end_points["pool2"] = scopes.max_pool2d(net, [2, 2], 2, scope="pool2")
        net = end_points["Flatten"] = scopes.flatten(net, scope="Flatten")
        net = end_points["fc3"] = scopes.fully_connected(net, hidden_size, scope="fc3")
        logits = scopes.fully_connected(net, num_classes, activation_fn=None, scope="logits")
    end_points["embedding"] = net
    end_points["Logits"] = end_points["logits"] = logits
    return logits, end_points


small_cnn.default_image_size = 8


def small_cnn_arg_scope(weight_decay=0.0):
    """ReLU everywhere, L2 weight decay on every kernel (wd * sum(w**2) / 2)."""
    with scopes.arg_scope([scopes.conv2d, scopes.fully_connected],
                          weights_regularizer=l2_regularizer(weight_decay),
                          activation_fn="relu") as scope:
        return scope
