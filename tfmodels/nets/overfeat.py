"""OverFeat (fast model) in tf-slim's layout (tf_slim.nets.overfeat, models/research/slim's
options).

Sermanet et al. 2014, "OverFeat: Integrated Recognition, Localization and Detection using
Convolutional Networks", as slim wrote it: Xavier initialisation, zero biases in the
convolutions, and the fully connected layers as convolutions (fc6 a 6x6 VALID conv, fc7/fc8
1x1; the head is AlexNet's, `alexnet.fc_head`). Classification without `global_pool` needs
231..262 pixels per side (pool5 must be 6x6); `global_pool=True` averages fc7 over any larger
map.
"""
import keras

from tfmodels.slim import scopes
from tfmodels.slim.regularizers import l2_regularizer
from tfmodels.nets.alexnet import fc_head

MIN_IMAGE_SIZE = 231  # pool5 6x6: conv1 (H - 11) // 4 + 1 >= 56, 2x2 pools, conv2 5x5 VALID
MAX_IMAGE_SIZE = 262  # 263 leaves pool5 7x7, fc8 2x2: no classification without global_pool


def max_image_size(global_pool=False, **unused):
    """Largest height/width the net classifies: unbounded with global pooling."""
    return None if global_pool else MAX_IMAGE_SIZE


def overfeat(images, num_classes=1000, is_training=None, dropout_keep_prob=0.5,
             spatial_squeeze=True, global_pool=False, scope="overfeat"):
    """OverFeat, slim layout; arguments and returns as `alexnet.alexnet_v2` (231 <= H, W <= 262;
    variables `overfeat/conv1/kernel` ... `overfeat/fc8/bias`; embedding: fc7, [N, 4096])."""
    end_points = {}
    with keras.name_scope(scope):
        net = end_points[f"{scope}/conv1"] = scopes.conv2d(images, 64, [11, 11], 4,
                                                           padding="VALID", scope="conv1")
        net = end_points[f"{scope}/pool1"] = scopes.max_pool2d(net, [2, 2], scope="pool1")
        net = end_points[f"{scope}/conv2"] = scopes.conv2d(net, 256, [5, 5], padding="VALID",
                                                           scope="conv2")
        net = end_points[f"{scope}/pool2"] = scopes.max_pool2d(net, [2, 2], scope="pool2")
        net = end_points[f"{scope}/conv3"] = scopes.conv2d(net, 512, [3, 3], scope="conv3")
        net = end_points[f"{scope}/conv4"] = scopes.conv2d(net, 1024, [3, 3], scope="conv4")
        net = end_points[f"{scope}/conv5"] = scopes.conv2d(net, 1024, [3, 3], scope="conv5")
        net = end_points[f"{scope}/pool5"] = scopes.max_pool2d(net, [2, 2], scope="pool5")
        logits = fc_head(net, end_points, scope, num_classes, is_training, dropout_keep_prob,
                         spatial_squeeze, global_pool, [6, 6], 3072)
    return logits, end_points


overfeat.default_image_size = 231


def overfeat_arg_scope(weight_decay=0.0005):
    """slim's: ReLU, L2 weight decay, zero biases, 'SAME' convolutions, 'VALID' max pools."""
    with scopes.arg_scope([scopes.conv2d, scopes.fully_connected], activation_fn="relu",
                          biases_initializer="zeros",
                          weights_regularizer=l2_regularizer(weight_decay)):
        with scopes.arg_scope([scopes.conv2d], padding="SAME"):
            with scopes.arg_scope([scopes.max_pool2d], padding="VALID") as scope:
                return scope
