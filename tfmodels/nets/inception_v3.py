"""Inception v3 in tf-slim's layout (tf_slim.nets.inception_v3, models/research/slim's options).

Szegedy et al. 2015, "Rethinking the Inception Architecture for Computer Vision", as slim wrote
it: BN after every convolution (no gamma), `depth_multiplier` / `min_depth`, slim's scope
quirks kept (Mixed_5c's `Branch_1/Conv2d_0b_1x1` + `Conv_1_0c_5x5`; Mixed_7b's second branch
splits into `Conv2d_0b_1x3` / `Conv2d_0b_3x1`, Mixed_7c's into `Conv2d_0b_1x3` /
`Conv2d_0c_3x1`), and the optional auxiliary head on Mixed_6e (`AuxLogits`). The stem and the
reductions are VALID: 75 pixels per side at least; the 8x8 logits pool shrinks to smaller
maps, so up to 330 pixels classify (`global_pool=True`: any size from 75).
"""
import keras

from tfmodels.slim import scopes
from tfmodels.nets import inception_utils
from tfmodels.nets.inception_utils import avg_pool, conv, max_pool, split

MIN_IMAGE_SIZE = 75  # Mixed_7a's VALID 3x3/2 needs a 3x3 Mixed_6e
MAX_IMAGE_SIZE = 330  # 331 leaves a 9x9 Mixed_7c: the 8x8 pool gives 2x2 logits
AUX_MIN_IMAGE_SIZE = 107  # the aux head's 5x5/3 VALID pool needs a 5x5 Mixed_6e


def min_image_size(create_aux_logits=False, **unused):
    return AUX_MIN_IMAGE_SIZE if create_aux_logits else MIN_IMAGE_SIZE


def max_image_size(global_pool=False, **unused):
    return None if global_pool else MAX_IMAGE_SIZE


def _5x5_block(d, pool_depth, mixed_5c=False):
    """Mixed_5b/5c/5d: 1x1, (1x1, 5x5), (1x1, 3x3, 3x3), (avg pool, 1x1)."""
    b1 = ([conv(d(48), [1, 1], "Conv2d_0b_1x1"), conv(d(64), [5, 5], "Conv_1_0c_5x5")]
          if mixed_5c else
          [conv(d(48), [1, 1], "Conv2d_0a_1x1"), conv(d(64), [5, 5], "Conv2d_0b_5x5")])
    return [[conv(d(64), [1, 1], "Conv2d_0a_1x1")], b1,
            [conv(d(64), [1, 1], "Conv2d_0a_1x1"), conv(d(96), [3, 3], "Conv2d_0b_3x3"),
             conv(d(96), [3, 3], "Conv2d_0c_3x3")],
            [avg_pool([3, 3], "AvgPool_0a_3x3"), conv(d(pool_depth), [1, 1], "Conv2d_0b_1x1")]]


def _7x7_block(d, width):
    """Mixed_6b..6e: 1x1, (1x1, 1x7, 7x1), (1x1, 7x1, 1x7, 7x1, 1x7), (avg pool, 1x1)."""
    return [[conv(d(192), [1, 1], "Conv2d_0a_1x1")],
            [conv(d(width), [1, 1], "Conv2d_0a_1x1"), conv(d(width), [1, 7], "Conv2d_0b_1x7"),
             conv(d(192), [7, 1], "Conv2d_0c_7x1")],
            [conv(d(width), [1, 1], "Conv2d_0a_1x1"), conv(d(width), [7, 1], "Conv2d_0b_7x1"),
             conv(d(width), [1, 7], "Conv2d_0c_1x7"), conv(d(width), [7, 1], "Conv2d_0d_7x1"),
             conv(d(192), [1, 7], "Conv2d_0e_1x7")],
            [avg_pool([3, 3], "AvgPool_0a_3x3"), conv(d(192), [1, 1], "Conv2d_0b_1x1")]]


def _expanded_block(d, second):
    """Mixed_7b/7c: 1x1, (1x1, 1x3 | 3x1), (1x1, 3x3, 1x3 | 3x1), (avg pool, 1x1)."""
    return [[conv(d(320), [1, 1], "Conv2d_0a_1x1")],
            [conv(d(384), [1, 1], "Conv2d_0a_1x1"),
             split(conv(d(384), [1, 3], "Conv2d_0b_1x3"), conv(d(384), [3, 1], second))],
            [conv(d(448), [1, 1], "Conv2d_0a_1x1"), conv(d(384), [3, 3], "Conv2d_0b_3x3"),
             split(conv(d(384), [1, 3], "Conv2d_0c_1x3"),
                   conv(d(384), [3, 1], "Conv2d_0d_3x1"))],
            [avg_pool([3, 3], "AvgPool_0a_3x3"), conv(d(192), [1, 1], "Conv2d_0b_1x1")]]


def _stem(d):
    """The VALID stem: (end point, op)."""
    return [("Conv2d_1a_3x3", conv(d(32), [3, 3], "Conv2d_1a_3x3", stride=2)),
            ("Conv2d_2a_3x3", conv(d(32), [3, 3], "Conv2d_2a_3x3")),
            ("Conv2d_2b_3x3", conv(d(64), [3, 3], "Conv2d_2b_3x3", padding="SAME")),
            ("MaxPool_3a_3x3", max_pool([3, 3], "MaxPool_3a_3x3", stride=2)),
            ("Conv2d_3b_1x1", conv(d(80), [1, 1], "Conv2d_3b_1x1")),
            ("Conv2d_4a_3x3", conv(d(192), [3, 3], "Conv2d_4a_3x3")),
            ("MaxPool_5a_3x3", max_pool([3, 3], "MaxPool_5a_3x3", stride=2))]


def _mixed_blocks(d):
    """The 'SAME' mixed blocks: (end point, branches)."""
    valid = dict(stride=2, padding="VALID")
    return [
        ("Mixed_5b", _5x5_block(d, 32)),
        ("Mixed_5c", _5x5_block(d, 64, mixed_5c=True)),
        ("Mixed_5d", _5x5_block(d, 64)),
        ("Mixed_6a", [[conv(d(384), [3, 3], "Conv2d_1a_1x1", **valid)],
                      [conv(d(64), [1, 1], "Conv2d_0a_1x1"), conv(d(96), [3, 3], "Conv2d_0b_3x3"),
                       conv(d(96), [3, 3], "Conv2d_1a_1x1", **valid)],
                      [max_pool([3, 3], "MaxPool_1a_3x3", **valid)]]),
        ("Mixed_6b", _7x7_block(d, 128)),
        ("Mixed_6c", _7x7_block(d, 160)),
        ("Mixed_6d", _7x7_block(d, 160)),
        ("Mixed_6e", _7x7_block(d, 192)),
        ("Mixed_7a", [[conv(d(192), [1, 1], "Conv2d_0a_1x1"),
                       conv(d(320), [3, 3], "Conv2d_1a_3x3", **valid)],
                      [conv(d(192), [1, 1], "Conv2d_0a_1x1"), conv(d(192), [1, 7], "Conv2d_0b_1x7"),
                       conv(d(192), [7, 1], "Conv2d_0c_7x1"),
                       conv(d(192), [3, 3], "Conv2d_1a_3x3", **valid)],
                      [max_pool([3, 3], "MaxPool_1a_3x3", **valid)]]),
        ("Mixed_7b", _expanded_block(d, "Conv2d_0b_3x1")),
        ("Mixed_7c", _expanded_block(d, "Conv2d_0c_3x1")),
    ]


def inception_v3_base(images, end_points, min_depth=16, depth_multiplier=1.0):
    """slim's inception_v3_base up to Mixed_7c (inside the net's name scope)."""
    d = inception_utils.depth_fn(depth_multiplier, min_depth)
    pools = [scopes.conv2d, scopes.max_pool2d, scopes.avg_pool2d]
    net = images
    with scopes.arg_scope(pools, stride=1, padding="VALID"):
        for end_point, op in _stem(d):
            net = end_points[end_point] = inception_utils.apply(op, net)
    with scopes.arg_scope(pools, stride=1, padding="SAME"):
        for end_point, branches in _mixed_blocks(d):
            net = end_points[end_point] = inception_utils.mixed(net, end_point, branches)
    return net


def _aux_logits(net, num_classes, spatial_squeeze, d):
    """slim's AuxLogits head on Mixed_6e."""
    with keras.name_scope("AuxLogits"):
        net = scopes.avg_pool2d(net, [5, 5], stride=3, padding="VALID", scope="AvgPool_1a_5x5")
        net = scopes.conv2d(net, d(128), [1, 1], scope="Conv2d_1b_1x1")
        kernel = inception_utils.reduced_kernel_size_for_small_input(net, [5, 5])
        net = scopes.conv2d(net, d(768), kernel, padding="VALID",
                            weights_initializer=keras.initializers.TruncatedNormal(stddev=0.01),
                            scope="Conv2d_2a_{}x{}".format(*kernel))
        net = scopes.conv2d(net, num_classes, [1, 1], activation_fn=None, normalizer_fn=None,
                            weights_initializer=keras.initializers.TruncatedNormal(stddev=0.001),
                            scope="Conv2d_2b_1x1")
    return keras.ops.squeeze(net, axis=(1, 2)) if spatial_squeeze else net


def _pool(net):
    kernel = inception_utils.reduced_kernel_size_for_small_input(net, [8, 8])
    return kernel, "AvgPool_1a_{}x{}".format(*kernel)


def inception_v3(images, num_classes=1000, is_training=None, dropout_keep_prob=0.8,
                 min_depth=16, depth_multiplier=1.0, spatial_squeeze=True,
                 create_aux_logits=False, global_pool=False, scope="InceptionV3"):
    """Inception v3, slim layout.

    Args:
      images: Keras tensor [N, H, W, C], 75 <= H, W <= 330 (107 with create_aux_logits; no
        upper limit with global_pool).
      num_classes: number of classes K; 0 returns the pooled features instead of logits.
      is_training: None follows the model call's `training`; True/False pins BN and dropout.
      dropout_keep_prob: keep probability of `Logits/Dropout_1b`.
      min_depth, depth_multiplier: every depth d becomes max(int(d * depth_multiplier),
        min_depth); depth_multiplier > 0.
      spatial_squeeze: squeeze the logits to [N, K] (slim's default; the registry needs it).
      create_aux_logits: build slim's auxiliary head (end point 'AuxLogits', [N, K]) for a
        model of one's own that outputs it. Off by default (slim's default is on): the
        registry's model outputs the main logits and embedding only, so a layer feeding
        nothing else would not be part of it; a slim checkpoint's `AuxLogits/*` variables
        are reported unused when ported into it.
      global_pool: average Mixed_7c over its whole map (models/research/slim's option).
      scope: name scope (`InceptionV3/Conv2d_1a_3x3/kernel`, ...).

    Returns:
      logits [N, K] and end_points (slim's keys: 'Conv2d_1a_3x3' ... 'Mixed_7c',
      ['AuxLogits'], 'PreLogits', 'Logits', 'Predictions'); end_points['embedding'] is the
      pooled Mixed_7c, [N, depth(2048)].
    """
    d = inception_utils.depth_fn(depth_multiplier, min_depth)
    end_points = {}
    with keras.name_scope(scope), scopes.arg_scope([scopes.batch_norm], is_training=is_training):
        net = inception_v3_base(images, end_points, min_depth, depth_multiplier)
        if create_aux_logits and num_classes:
            with scopes.arg_scope([scopes.conv2d, scopes.max_pool2d, scopes.avg_pool2d],
                                  stride=1, padding="SAME"):
                end_points["AuxLogits"] = _aux_logits(end_points["Mixed_6e"], num_classes,
                                                      spatial_squeeze, d)
        logits = inception_utils.logits_head(
            net, end_points, num_classes, is_training, dropout_keep_prob, spatial_squeeze,
            global_pool, _pool, "Dropout_1b", "Conv2d_1c_1x1", pre_logits=True)
    return logits, end_points


inception_v3.default_image_size = 299


def inception_v3_arg_scope(weight_decay=0.00004, batch_norm_decay=0.9997,
                           batch_norm_epsilon=0.001):
    """slim's inception_v3_arg_scope (see `inception_utils.inception_arg_scope`)."""
    return inception_utils.inception_arg_scope(weight_decay, batch_norm_decay=batch_norm_decay,
                                               batch_norm_epsilon=batch_norm_epsilon)
