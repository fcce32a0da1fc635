"""AlexNet v2 in tf-slim's layout (tf_slim.nets.alexnet, models/research/slim's options).

Krizhevsky 2014, "One weird trick for parallelizing convolutional neural networks" (the
one-tower cuda-convnet2 net), as slim wrote it: no LRN, Xavier initialisation, and the fully
connected layers as convolutions (fc6 a 5x5 VALID conv, fc7/fc8 1x1), so slim checkpoints port
by renaming only. Classification without `global_pool` needs 195..226 pixels per side (pool5
must be 5x5 for fc8 to be 1x1); `global_pool=True` averages fc7 over any larger map.
"""
import keras

from tfmodels.slim import scopes
from tfmodels.slim.regularizers import l2_regularizer

MIN_IMAGE_SIZE = 195  # pool5 5x5: (H - 11) // 4 + 1 >= 47, then three VALID 3x3/2 pools
MAX_IMAGE_SIZE = 226  # 227 leaves pool5 6x6, fc8 2x2: no classification without global_pool


def max_image_size(global_pool=False, **unused):
    """Largest height/width the net classifies: unbounded with global pooling."""
    return None if global_pool else MAX_IMAGE_SIZE


def fc_head(net, end_points, scope, num_classes, is_training, dropout_keep_prob,
            spatial_squeeze, global_pool, fc6_kernel, fc6_depth):
    """slim's fc6 (VALID conv) -> dropout6 -> fc7 -> [global pool] -> dropout7 -> fc8 head of
    AlexNet and OverFeat; fills `end_points` and returns the logits (features for
    num_classes=0)."""
    with scopes.arg_scope([scopes.conv2d],
                          weights_initializer=keras.initializers.TruncatedNormal(stddev=0.005),
                          biases_initializer=keras.initializers.Constant(0.1)):
        net = end_points[f"{scope}/fc6"] = scopes.conv2d(net, fc6_depth, fc6_kernel,
                                                         padding="VALID", scope="fc6")
        net = scopes.dropout(net, dropout_keep_prob, is_training=is_training, scope="dropout6")
        net = end_points[f"{scope}/fc7"] = scopes.conv2d(net, 4096, [1, 1], scope="fc7")
        if global_pool:
            net = end_points["global_pool"] = scopes.global_avg_pool2d(net, scope="global_pool")
        end_points["embedding"] = keras.ops.mean(net, axis=(1, 2))  # [N, 4096]
        if num_classes:
            net = scopes.dropout(net, dropout_keep_prob, is_training=is_training,
                                 scope="dropout7")
            net = scopes.conv2d(net, num_classes, [1, 1], activation_fn=None,
                                normalizer_fn=None, biases_initializer="zeros", scope="fc8")
    if spatial_squeeze:
        net = keras.ops.squeeze(net, axis=(1, 2))
    if num_classes:
        end_points[f"{scope}/fc8"] = net
    end_points["logits"] = net
    return net


def alexnet_v2(images, num_classes=1000, is_training=None, dropout_keep_prob=0.5,
               spatial_squeeze=True, global_pool=False, scope="alexnet_v2"):
    """AlexNet v2, slim layout.

    Args:
      images: Keras tensor [N, H, W, C], 195 <= H, W <= 226 (no upper limit with global_pool).
      num_classes: number of classes K; 0 returns the fc7 features instead of logits.
      is_training: None follows the model call's `training`; True/False pins dropout.
      dropout_keep_prob: keep probability of dropout6 and dropout7.
      spatial_squeeze: squeeze the logits to [N, K] (slim's default; the registry needs it).
      global_pool: average fc7 over its spatial map (models/research/slim's option).
      scope: name scope (`alexnet_v2/conv1/kernel`, ..., `alexnet_v2/fc8/bias`).

    Returns:
      logits [N, K] and end_points (slim's keys: 'alexnet_v2/conv1', ..., '/pool5', '/fc6',
      '/fc7', '/fc8'); end_points['embedding'] is fc7 averaged to [N, 4096] (before dropout).
    """
    end_points = {}
    with keras.name_scope(scope):
        net = end_points[f"{scope}/conv1"] = scopes.conv2d(images, 64, [11, 11], 4,
                                                           padding="VALID", scope="conv1")
        net = end_points[f"{scope}/pool1"] = scopes.max_pool2d(net, [3, 3], 2, scope="pool1")
        net = end_points[f"{scope}/conv2"] = scopes.conv2d(net, 192, [5, 5], scope="conv2")
        net = end_points[f"{scope}/pool2"] = scopes.max_pool2d(net, [3, 3], 2, scope="pool2")
        net = end_points[f"{scope}/conv3"] = scopes.conv2d(net, 384, [3, 3], scope="conv3")
        net = end_points[f"{scope}/conv4"] = scopes.conv2d(net, 384, [3, 3], scope="conv4")
        net = end_points[f"{scope}/conv5"] = scopes.conv2d(net, 256, [3, 3], scope="conv5")
        net = end_points[f"{scope}/pool5"] = scopes.max_pool2d(net, [3, 3], 2, scope="pool5")
        logits = fc_head(net, end_points, scope, num_classes, is_training, dropout_keep_prob,
                         spatial_squeeze, global_pool, [5, 5], 4096)
    return logits, end_points


alexnet_v2.default_image_size = 224


def alexnet_v2_arg_scope(weight_decay=0.0005):
    """slim's: ReLU, L2 weight decay, biases 0.1, 'SAME' convolutions, 'VALID' max pools."""
    with scopes.arg_scope([scopes.conv2d, scopes.fully_connected], activation_fn="relu",
                          biases_initializer=keras.initializers.Constant(0.1),
                          weights_regularizer=l2_regularizer(weight_decay)):
        with scopes.arg_scope([scopes.conv2d], padding="SAME"):
            with scopes.arg_scope([scopes.max_pool2d], padding="VALID") as scope:
                return scope
