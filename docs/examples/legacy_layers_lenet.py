"""LeNet written with `tf.compat.v1.layers`, as TF1 code outside tf-slim was: no net scope, so
its variables are `conv2d/kernel`, `conv2d_1/kernel`, `dense/kernel`, `dense_1/bias`.

Runs only with legacy Keras (`TF_USE_LEGACY_KERAS=1` set before TensorFlow is imported, and
tf-keras installed); `python -m tfmodels.porting --verify_with` sets that up in its child.

    TF_USE_LEGACY_KERAS=1 python legacy_layers_lenet.py layers_run/model.ckpt  # writes one
"""
import sys

import numpy as np
import tensorflow as tf


def lenet(images, num_classes=10, is_training=False):
    layers = tf.compat.v1.layers
    net = layers.conv2d(images, 32, 5, padding="same", activation=tf.nn.relu)
    net = layers.max_pooling2d(net, 2, 2)
    net = layers.conv2d(net, 64, 5, padding="same", activation=tf.nn.relu)
    net = layers.max_pooling2d(net, 2, 2)
    net = layers.flatten(net)
    net = layers.dense(net, 1024, activation=tf.nn.relu)
    net = layers.dropout(net, 0.5, training=is_training)
    return layers.dense(net, num_classes)


def train_and_save(path, steps=3, seed=0):
    """A few Adam steps on random 28x28x1 images, saved with a Saver (global_step, slots)."""
    tf.compat.v1.disable_v2_behavior()
    rng = np.random.default_rng(seed)
    with tf.Graph().as_default():
        tf.compat.v1.set_random_seed(seed)
        images = tf.constant(rng.normal(size=(8, 28, 28, 1)).astype(np.float32))
        logits = lenet(images, is_training=True)
        loss = tf.compat.v1.losses.sparse_softmax_cross_entropy(rng.integers(0, 10, 8), logits)
        step = tf.compat.v1.train.get_or_create_global_step()
        train_op = tf.compat.v1.train.AdamOptimizer(1e-3).minimize(loss, step)
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            for _ in range(steps):
                session.run(train_op)
            return tf.compat.v1.train.Saver().save(session, path, global_step=step)


if __name__ == "__main__":
    print(train_and_save(sys.argv[1]))
