# legacy_convnet.py: a custom tf-slim net and its training, as a TF1 codebase has them.
import numpy as np
import tensorflow as tf

from tfmodels.slim import compat

compat.enable_tf_slim()  # tf-slim 1.1.0 on TF >= 2.16 (batch_norm, slim.learning.train)
import tf_slim as slim  # noqa: E402  (was: slim = tf.contrib.slim)


def convnet(images, num_classes=10, is_training=False, dropout_keep_prob=0.8, scope="ConvNet"):
    end_points = {}
    with tf.compat.v1.variable_scope(scope, "ConvNet", [images]):
        with slim.arg_scope([slim.batch_norm, slim.dropout], is_training=is_training):
            net = slim.conv2d(images, 16, [3, 3], scope="stem/conv")
            for block, depth in (("block1", 16), ("block2", 32)):
                with tf.compat.v1.variable_scope(block):
                    net = slim.repeat(net, 2, slim.conv2d, depth, [3, 3], scope="conv")
                    net = end_points[block] = slim.max_pool2d(net, [2, 2], scope="pool")
            net = slim.flatten(net)
            net = end_points["fc3"] = slim.fully_connected(net, 64, scope="fc3")
            net = slim.dropout(net, dropout_keep_prob, scope="dropout3")
            logits = slim.fully_connected(net, num_classes, activation_fn=None,
                                          normalizer_fn=None, scope="logits")
    return logits, end_points


convnet.default_image_size = 16


def convnet_arg_scope(weight_decay=1e-4):
    with slim.arg_scope([slim.conv2d, slim.fully_connected],
                        weights_regularizer=slim.l2_regularizer(weight_decay),
                        normalizer_fn=slim.batch_norm):
        with slim.arg_scope([slim.batch_norm], scale=True, decay=0.9, epsilon=1e-5) as scope:
            return scope


def fake_images(n=64, seed=0):
    """Stand-in for a dataset so the example runs offline."""
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, 16, 16, 3)).astype(np.float32),
            rng.integers(0, 10, n).astype(np.int32))


if __name__ == "__main__":
    images, labels = fake_images()
    with tf.Graph().as_default():
        tf.compat.v1.set_random_seed(0)
        global_step = tf.compat.v1.train.get_or_create_global_step()
        with slim.arg_scope(convnet_arg_scope()):
            logits, _ = convnet(tf.constant(images), is_training=True)
        slim.losses.softmax_cross_entropy(logits, tf.one_hot(labels, 10))
        # As models/research/slim's train_image_classifier.py --moving_average_decay does.
        ema = tf.compat.v1.train.ExponentialMovingAverage(0.99, global_step)
        update_ops = tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.UPDATE_OPS)
        update_ops.append(ema.apply(slim.get_model_variables()))
        optimizer = tf.compat.v1.train.MomentumOptimizer(0.05, momentum=0.9)
        train_op = slim.learning.create_train_op(slim.losses.get_total_loss(), optimizer,
                                                 update_ops=update_ops)
        # Writes legacy_convnet/model.ckpt-30: weights, BN statistics, their shadows, slots.
        slim.learning.train(train_op, "legacy_convnet", number_of_steps=30)
