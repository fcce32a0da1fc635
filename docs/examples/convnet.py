# convnet.py: legacy_convnet.convnet for TF2 / Keras 3, line by line with tfmodels.slim.scopes.
import keras

from tfmodels.slim import scopes
from tfmodels.slim.regularizers import l2_regularizer


def convnet(images, num_classes=10, is_training=None, dropout_keep_prob=0.8, scope="ConvNet"):
    end_points = {}
    with keras.name_scope(scope):  # was: tf.compat.v1.variable_scope(scope, "ConvNet", ...)
        with scopes.arg_scope([scopes.batch_norm, scopes.dropout], is_training=is_training):
            net = scopes.conv2d(images, 16, [3, 3], scope="stem/conv")
            for block, depth in (("block1", 16), ("block2", 32)):
                with keras.name_scope(block):
                    net = scopes.repeat(net, 2, scopes.conv2d, depth, [3, 3], scope="conv")
                    net = end_points[block] = scopes.max_pool2d(net, [2, 2], scope="pool")
            net = scopes.flatten(net, scope="Flatten")
            net = end_points["fc3"] = scopes.fully_connected(net, 64, scope="fc3")
            end_points["embedding"] = net  # the features the classifier reads
            net = scopes.dropout(net, dropout_keep_prob, scope="dropout3")
            logits = scopes.fully_connected(net, num_classes, activation_fn=None,
                                            normalizer_fn=None, scope="logits")
    return logits, end_points


convnet.default_image_size = 16


def convnet_arg_scope(weight_decay=1e-4):
    with scopes.arg_scope([scopes.conv2d, scopes.fully_connected],
                          weights_regularizer=l2_regularizer(weight_decay),
                          normalizer_fn=scopes.batch_norm):
        with scopes.arg_scope([scopes.batch_norm], scale=True, decay=0.9,
                              epsilon=1e-5) as scope:
            return scope
