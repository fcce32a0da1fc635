"""LeNet (tf-slim's variant) and LeNets++ (the center-loss paper's MNIST net).

`lenet` keeps models/research/slim's layout and names (`LeNet/conv1`, `pool1`, `conv2`,
`pool2`, `fc3`, `dropout3`, `fc4`), so its checkpoints port by renaming only
(`weights` -> `kernel`, `biases` -> `bias`).

`lenet_pp` is LeNets++ from Wen et al. 2016, "A Discriminative Feature Learning Approach for
Deep Face Recognition" (center loss): three stages of two 5x5 PReLU convolutions (32, 64, 128
channels, padding 2) and a 2x2 max pool, then a 2-unit PReLU embedding (the features the paper
plots) and the classifier. Caffe pools round up (ceil mode); TF's 'SAME' 2x2/2 pool does the
same (28 -> 14 -> 7 -> 4), so the flattened features are 4*4*128 = 2048 as in the paper.
"""
import keras

from tfmodels.slim import scopes
from tfmodels.slim.regularizers import l2_regularizer


def lenet(images, num_classes=10, is_training=None, dropout_keep_prob=0.5, scope="LeNet"):
    """slim's LeNet variant: conv5x5(32)-pool-conv5x5(64)-pool-fc(1024)-dropout-fc(K).

    Args:
      images: Keras tensor [N, H, W, C], H, W >= 4.
      num_classes: number of classes K.
      is_training: None follows the model call's `training`; True/False pins dropout.
      dropout_keep_prob: keep probability of dropout3.
      scope: name scope of the variables.

    Returns:
      logits [N, K] and end_points; end_points['embedding'] is fc3 [N, 1024] (before dropout).
    """
    end_points = {}
    with keras.name_scope(scope):
        net = end_points["conv1"] = scopes.conv2d(images, 32, [5, 5], scope="conv1")
        net = end_points["pool1"] = scopes.max_pool2d(net, [2, 2], 2, scope="pool1")
        net = end_points["conv2"] = scopes.conv2d(net, 64, [5, 5], scope="conv2")
        net = end_points["pool2"] = scopes.max_pool2d(net, [2, 2], 2, scope="pool2")
        net = end_points["Flatten"] = scopes.flatten(net, scope="Flatten")
        net = end_points["fc3"] = scopes.fully_connected(net, 1024, scope="fc3")
        end_points["embedding"] = net
        net = end_points["dropout3"] = scopes.dropout(
            net, dropout_keep_prob, is_training=is_training, scope="dropout3")
        logits = scopes.fully_connected(net, num_classes, activation_fn=None, scope="fc4")
    end_points["Logits"] = end_points["logits"] = logits
    end_points["Predictions"] = keras.ops.softmax(logits)
    return logits, end_points


lenet.default_image_size = 28


def lenet_arg_scope(weight_decay=0.0):
    """slim's: ReLU, truncated normal (stddev 0.1) weights, L2 weight decay on all weights."""
    with scopes.arg_scope(
            [scopes.conv2d, scopes.fully_connected],
            weights_regularizer=l2_regularizer(weight_decay),
            weights_initializer=keras.initializers.TruncatedNormal(stddev=0.1),
            activation_fn="relu") as scope:
        return scope


def lenet_pp(images, num_classes=10, is_training=None, embedding_size=2, scope="LeNetPP"):
    """LeNets++ (Wen et al. 2016, Table/Fig. 2): 6 PReLU convs, 3 pools, PReLU embedding.

    Args:
      images: Keras tensor [N, H, W, C] (any size >= 1; MNIST 28x28 in the paper).
      num_classes: number of classes K.
      is_training: unused (no dropout or batch norm); kept for the common contract.
      embedding_size: width of the embedding layer (2 in the paper, to plot it).
      scope: name scope (`LeNetPP/conv1/conv1_1/kernel`, `.../conv1_1/PReLU/alpha`,
        `LeNetPP/fc1/...`, `LeNetPP/logits/...`).

    Returns:
      logits [N, K] and end_points; end_points['embedding'] is the PReLU output of fc1
      [N, embedding_size], the features the center loss acts on.
    """
    del is_training
    end_points = {}
    with keras.name_scope(scope):
        net = images
        for stage, depth in enumerate((32, 64, 128), start=1):
            net = end_points[f"conv{stage}"] = scopes.repeat(
                net, 2, scopes.conv2d, depth, [5, 5], padding="SAME",
                activation_fn=scopes.prelu, scope=f"conv{stage}")
            net = end_points[f"pool{stage}"] = scopes.max_pool2d(
                net, [2, 2], 2, padding="SAME", scope=f"pool{stage}")
        net = end_points["Flatten"] = scopes.flatten(net, scope="Flatten")
        net = end_points["fc1"] = scopes.fully_connected(
            net, embedding_size, activation_fn=scopes.prelu, scope="fc1")
        logits = scopes.fully_connected(net, num_classes, activation_fn=None, scope="logits")
    end_points["embedding"] = net
    end_points["Logits"] = end_points["logits"] = logits
    return logits, end_points


lenet_pp.default_image_size = 28


def lenet_pp_arg_scope(weight_decay=0.0):
    """L2 weight decay on convolution and dense weights; PReLU alphas are not decayed."""
    with scopes.arg_scope([scopes.conv2d, scopes.fully_connected],
                          weights_regularizer=l2_regularizer(weight_decay)) as scope:
        return scope
