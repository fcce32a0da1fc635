"""What tf-slim's Inception nets share: mixed blocks written as tables, the logits head with the
small-input pool reduction, and the arg scope (models/research/slim's `inception_utils`).

A mixed block is a list of branches, each a list of ops applied in order under
`<block>/Branch_<i>`, their outputs concatenated on channels:

    mixed(net, "Mixed_3b", [[conv(64, 1, "Conv2d_0a_1x1")],
                            [conv(96, 1, "Conv2d_0a_1x1"), conv(128, 3, "Conv2d_0b_3x3")],
                            [max_pool(3, "MaxPool_0a_3x3"), conv(32, 1, "Conv2d_0b_1x1")]])

`split(conv_a, conv_b)` applies both convolutions to the same input and concatenates them
(Inception v3's Mixed_7b/7c). Scope names are slim's as written, quirks included.
"""
import keras

from tfmodels.slim import scopes
from tfmodels.slim.regularizers import l2_regularizer


def conv(depth, kernel, scope, stddev=None, **kwargs):
    """A `scopes.conv2d` op; `stddev` sets slim's `trunc_normal(stddev)` initializer."""
    if stddev is not None:
        kwargs["weights_initializer"] = keras.initializers.TruncatedNormal(stddev=stddev)
    return ("conv", depth, kernel, scope, kwargs)


def max_pool(kernel, scope, **kwargs):
    return ("max_pool", kernel, scope, kwargs)


def avg_pool(kernel, scope, **kwargs):
    return ("avg_pool", kernel, scope, kwargs)


def split(*convs):
    return ("split", convs)


def apply(op, net):
    """Applies one table op (see the module docstring) to `net`."""
    kind = op[0]
    if kind == "split":
        return keras.ops.concatenate([apply(part, net) for part in op[1]], axis=3)
    if kind == "conv":
        _, depth, kernel, scope, kwargs = op
        return scopes.conv2d(net, depth, kernel, scope=scope, **kwargs)
    _, kernel, scope, kwargs = op
    pool = scopes.max_pool2d if kind == "max_pool" else scopes.avg_pool2d
    return pool(net, kernel, scope=scope, **kwargs)


def mixed(net, scope, branches):
    """slim's mixed block: each branch under `scope/Branch_i`, concatenated on channels."""
    outputs = []
    with keras.name_scope(scope):
        for i, branch in enumerate(branches):
            with keras.name_scope(f"Branch_{i}"):
                branch_net = net
                for op in branch:
                    branch_net = apply(op, branch_net)
            outputs.append(branch_net)
    return keras.ops.concatenate(outputs, axis=3)


def depth_fn(depth_multiplier, min_depth):
    """slim's `depth = lambda d: max(int(d * depth_multiplier), min_depth)`, checked."""
    if not depth_multiplier > 0:
        raise ValueError(f"depth_multiplier={depth_multiplier!r} must be > 0")
    return lambda d: max(int(d * depth_multiplier), min_depth)


def reduced_kernel_size_for_small_input(net, kernel_size):
    """slim's `_reduced_kernel_size_for_small_input`: the pool kernel clipped to the map."""
    height, width = net.shape[1:3]
    if height is None or width is None:
        return list(kernel_size)
    return [min(height, kernel_size[0]), min(width, kernel_size[1])]


def logits_head(net, end_points, num_classes, is_training, dropout_keep_prob, spatial_squeeze,
                global_pool, pool, dropout_scope, logits_scope, pre_logits=False):
    """slim's `Logits` scope: average pool, dropout, 1x1 conv; fills `end_points`.

    Args:
      pool: `(kernel, scope)` of the fixed-size VALID average pool, or a function of `net`
        returning it (the small-input reduction).
      global_pool: average over the whole map instead (end point 'global_pool').
      pre_logits: record end point 'PreLogits' (the pooled features after dropout; v3).

    Returns:
      logits [N, K] (or [N, 1, 1, K] without spatial_squeeze); the pooled features for
      num_classes=0. end_points['embedding'] is the pooled features, [N, C], before dropout.
    """
    with keras.name_scope("Logits"):
        if global_pool:
            net = end_points["global_pool"] = scopes.global_avg_pool2d(net, scope="global_pool")
        else:
            kernel, scope = pool(net) if callable(pool) else pool
            net = scopes.avg_pool2d(net, kernel, stride=1, padding="VALID", scope=scope)
        end_points["embedding"] = keras.ops.mean(net, axis=(1, 2))
        if num_classes:
            net = scopes.dropout(net, dropout_keep_prob, is_training=is_training,
                                 scope=dropout_scope)
            if pre_logits:
                end_points["PreLogits"] = net
            net = scopes.conv2d(net, num_classes, [1, 1], activation_fn=None,
                                normalizer_fn=None, scope=logits_scope)
    if spatial_squeeze:
        net = keras.ops.squeeze(net, axis=(1, 2))
    if num_classes:
        end_points["Logits"] = net
        end_points["Predictions"] = keras.ops.softmax(net)
    end_points["logits"] = net
    return net


def inception_arg_scope(weight_decay=0.00004, use_batch_norm=True, batch_norm_decay=0.9997,
                        batch_norm_epsilon=0.001, batch_norm_scale=False):
    """slim's Inception arg scope: He-normal convs with L2 decay, BN (no gamma) and ReLU.

    Args:
      weight_decay: L2 coefficient (slim: wd * sum(w**2) / 2) on conv and FC kernels.
      use_batch_norm: BN after every `conv2d` (not after separable convolutions, as slim).
      batch_norm_decay: moving-average decay (Keras momentum).
      batch_norm_epsilon: BN epsilon.
      batch_norm_scale: create BN's gamma (slim's Inception checkpoints have none).

    Returns:
      An arg_scope dict.
    """
    batch_norm_params = {"decay": batch_norm_decay, "epsilon": batch_norm_epsilon,
                         "scale": batch_norm_scale}
    with scopes.arg_scope([scopes.conv2d, scopes.fully_connected],
                          weights_regularizer=l2_regularizer(weight_decay)):
        with scopes.arg_scope(
                [scopes.conv2d],
                # slim's variance_scaling_initializer(): truncated normal, var 2 / fan_in.
                weights_initializer=keras.initializers.HeNormal(), activation_fn="relu",
                normalizer_fn=scopes.batch_norm if use_batch_norm else None,
                normalizer_params=batch_norm_params):
            with scopes.arg_scope([scopes.batch_norm], **batch_norm_params) as scope:
                return scope
