"""tf-slim graph references for the tests: slim's LeNet / CifarNet / MobileNet layouts and
graph runners.

tf_slim 1.1.0 ships vgg and resnet_v1/v2 but not models/research/slim's LeNet, CifarNet and
MobileNets, so those (and our SmallCNN) are written here with tf_slim ops in the same layout
(scopes, shapes; initializers are irrelevant: weights are copied), the MobileNets from slim's
published layer tables. Everything runs in its own `tf.Graph` with `tf.compat.v1`.
"""
import numpy as np
import tensorflow as tf

from tfmodels.slim import compat


def slim():
    compat.enable_tf_slim()  # slim.batch_norm needs it on TF 2.21
    import tf_slim
    return tf_slim


def keras_to_slim_name(path):
    """docs/NAMING.md: `.../kernel` -> `.../weights`, `.../bias` -> `.../biases`, separable
    convolutions' `depthwise_kernel` / `pointwise_kernel` -> `depthwise_weights` /
    `pointwise_weights`, rest equal."""
    scope, _, leaf = path.rpartition("/")
    leaf = {"kernel": "weights", "bias": "biases", "depthwise_kernel": "depthwise_weights",
            "pointwise_kernel": "pointwise_weights"}.get(leaf, leaf)
    return f"{scope}/{leaf}" if scope else leaf


def keras_variables(model):
    """{slim name: shape} of a Keras model's variables, checking paths are unique."""
    paths = [v.path for v in model.weights]
    assert len(paths) == len(set(paths)), "duplicate variable paths"
    return {keras_to_slim_name(v.path): tuple(v.shape) for v in model.weights}


def lenet(images, num_classes=10, is_training=False, dropout_keep_prob=0.5, scope="LeNet"):
    """models/research/slim/nets/lenet.py's layout, in tf_slim graph ops."""
    s = slim()
    with tf.compat.v1.variable_scope(scope, "LeNet", [images]):
        net = s.conv2d(images, 32, [5, 5], scope="conv1")
        net = s.max_pool2d(net, [2, 2], 2, scope="pool1")
        net = s.conv2d(net, 64, [5, 5], scope="conv2")
        net = s.max_pool2d(net, [2, 2], 2, scope="pool2")
        net = s.flatten(net)
        net = s.fully_connected(net, 1024, scope="fc3")
        net = s.dropout(net, dropout_keep_prob, is_training=is_training, scope="dropout3")
        return s.fully_connected(net, num_classes, activation_fn=None, scope="fc4")


def small_cnn(images, num_classes=10, scope="SmallCNN"):
    """tfmodels' SmallCNN layout in tf_slim graph ops (VGG-style `slim.repeat` names)."""
    s = slim()
    with tf.compat.v1.variable_scope(scope, "SmallCNN", [images]):
        net = s.repeat(images, 2, s.conv2d, 32, [3, 3], scope="conv1")
        net = s.max_pool2d(net, [2, 2], 2, scope="pool1")
        net = s.repeat(net, 1, s.conv2d, 64, [3, 3], scope="conv2")
        net = s.max_pool2d(net, [2, 2], 2, scope="pool2")
        net = s.flatten(net)
        net = s.fully_connected(net, 128, scope="fc3")
        return s.fully_connected(net, num_classes, activation_fn=None, scope="logits")


def cifarnet(images, num_classes=10, is_training=False, dropout_keep_prob=0.5,
             scope="CifarNet"):
    """models/research/slim/nets/cifarnet.py's layout, in tf_slim graph ops."""
    s = slim()
    with tf.compat.v1.variable_scope(scope, "CifarNet", [images]):
        net = s.conv2d(images, 64, [5, 5], scope="conv1")
        net = s.max_pool2d(net, [2, 2], 2, scope="pool1")
        net = tf.nn.lrn(net, 4, bias=1.0, alpha=0.001 / 9.0, beta=0.75, name="norm1")
        net = s.conv2d(net, 64, [5, 5], scope="conv2")
        net = tf.nn.lrn(net, 4, bias=1.0, alpha=0.001 / 9.0, beta=0.75, name="norm2")
        net = s.max_pool2d(net, [2, 2], 2, scope="pool2")
        net = s.flatten(net)
        net = s.fully_connected(net, 384, scope="fc3")
        net = s.dropout(net, dropout_keep_prob, is_training=is_training, scope="dropout3")
        net = s.fully_connected(net, 192, scope="fc4")
        return s.fully_connected(net, num_classes, activation_fn=None, scope="logits")


def vgg(name):
    from tf_slim.nets import vgg as slim_vgg
    slim()
    return getattr(slim_vgg, name), slim_vgg.vgg_arg_scope


def resnet_v1(name):
    from tf_slim.nets import resnet_v1 as slim_resnet
    slim()
    return getattr(slim_resnet, name), slim_resnet.resnet_arg_scope


# tf_slim.nets module and arg scope of each zoo net (Inception v3 without its aux head unless
# the caller asks: the registry's model outputs the main logits only).
_ZOO = {"alexnet_v2": ("alexnet", "alexnet_v2_arg_scope"),
        "overfeat": ("overfeat", "overfeat_arg_scope"),
        "inception_v1": ("inception_v1", "inception_v1_arg_scope"),
        "inception_v2": ("inception_v2", "inception_v2_arg_scope"),
        "inception_v3": ("inception_v3", "inception_v3_arg_scope")}


def zoo(name):
    """(tf_slim.nets function, its arg scope function) of a zoo net."""
    import importlib
    slim()
    module_name, arg_scope = _ZOO[name]
    module = importlib.import_module(f"tf_slim.nets.{module_name}")
    return getattr(module, name), getattr(module, arg_scope)


def graph_variables(build, input_shape):
    """{name: shape} of the global variables `build(images)` creates in a fresh graph."""
    graph = tf.Graph()
    with graph.as_default():
        build(tf.compat.v1.placeholder(tf.float32, (None, *input_shape)))
        return {v.op.name: tuple(v.shape) for v in tf.compat.v1.global_variables()}


def run_graph(build, images, randomize_moving_stats=None, seed=0, run_updates=True):
    """Builds `build(images_placeholder) -> output` in a fresh graph and runs it once.

    Variables get slim's initializers (seeded); with `randomize_moving_stats` (a NumPy
    Generator) BN moving means/variances are set to random values, so inference tests are not
    trivially mean 0 / variance 1. UPDATE_OPS run with the forward pass if `run_updates` (not
    when the graph also reads the moving statistics: the order would be undefined).

    Returns:
      (output as NumPy, {variable name: value before the run}, {... after the run}).
    """
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.set_random_seed(seed)
        placeholder = tf.compat.v1.placeholder(tf.float32, (None, *images.shape[1:]))
        output = build(placeholder)
        updates = (tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.UPDATE_OPS)
                   if run_updates else [])
        variables = {v.op.name: v for v in tf.compat.v1.global_variables()}
        assignments = _moving_stats_assignments(variables, randomize_moving_stats)
        # One session.run per phase: fetching 267 variables one by one took 4 s here.
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            session.run(assignments)
            values = session.run(variables)
            result = session.run([output, updates], {placeholder: images})[0]
            after = session.run(variables)
    return result, values, after


def run_graph_with_values(build, images, values):
    """Builds `build(images_placeholder) -> output` in a fresh graph whose variables start from
    `values` ({slim name: array}, e.g. a Keras model's weights renamed), and runs it once.

    The values are fed to the variables' initializers, so no random initializer runs (slim's
    AlexNet/OverFeat fc6 hold 26M / 113M weights). Every graph variable must have a value and
    every value a variable.

    Returns:
      The output as NumPy.
    """
    graph = tf.Graph()
    with graph.as_default():
        placeholder = tf.compat.v1.placeholder(tf.float32, (None, *images.shape[1:]))
        output = build(placeholder)
        variables = {v.op.name: v for v in tf.compat.v1.global_variables()}
        assert set(variables) == set(values), (sorted(set(variables) ^ set(values))[:10])
        feed = {variables[name].initial_value: np.asarray(value)
                for name, value in values.items()}
        with tf.compat.v1.Session() as session:
            session.run([v.initializer for v in variables.values()], feed)
            return session.run(output, {placeholder: images})


def _moving_stats_assignments(variables, rng):
    """Ops setting BN moving means ~ N(0, 0.5) and variances ~ U(0.5, 2) (none without rng)."""
    assignments = []
    if rng is None:
        return assignments
    for name, v in variables.items():
        if name.endswith("moving_mean"):
            value = rng.normal(0, 0.5, v.shape)
        elif name.endswith("moving_variance"):
            value = rng.uniform(0.5, 2.0, v.shape)
        else:
            continue
        assignments.append(v.assign(value.astype(np.float32)))
    return assignments


def save_checkpoint(build, images, path, randomize_moving_stats=None, seed=0, setup=None,
                    restore=None):
    """Builds `build(images_placeholder) -> output` in a fresh graph, initialises it (seeded,
    random BN moving statistics with a Generator), runs it on `images` and saves every global
    variable with `tf.compat.v1.train.Saver` at `path` (a TF1 name-based checkpoint).

    `setup()`, called in the graph after `build`, may add variables (optimizer slots, EMA
    shadows) and returns a list of ops (or op lists) run one after the other after
    initialisation, before the forward pass and the save.
    `restore()`, if given, returns a Saver var_list (e.g. `ema.variables_to_restore()`): a
    second session restores the saved checkpoint through it and runs the output again, as a
    TF1 evaluation script would.

    Returns:
      (output as NumPy, output after `restore` or None, the saved checkpoint prefix).
    """
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.set_random_seed(seed)
        placeholder = tf.compat.v1.placeholder(tf.float32, (None, *images.shape[1:]))
        output = build(placeholder)
        setup_ops = setup() if setup is not None else []
        variables = {v.op.name: v for v in tf.compat.v1.global_variables()}
        assignments = _moving_stats_assignments(variables, randomize_moving_stats)
        restore_saver = (tf.compat.v1.train.Saver(restore()) if restore is not None
                         else None)
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            session.run(assignments)
            for ops in setup_ops:
                session.run(ops)
            result = session.run(output, {placeholder: images})
            saved = tf.compat.v1.train.Saver().save(session, path)
        restored = None
        if restore_saver is not None:
            with tf.compat.v1.Session() as session:
                restore_saver.restore(session, saved)
                restored = session.run(output, {placeholder: images})
    return result, restored, saved


def load_into(model, values):
    """Assigns slim graph values (by mapped name) to every variable of a Keras model."""
    for variable in model.weights:
        variable.assign(np.asarray(values[keras_to_slim_name(variable.path)]))


def resnet_v2(name):
    from tf_slim.nets import resnet_v2 as slim_resnet
    slim()
    return getattr(slim_resnet, name), slim_resnet.resnet_utils.resnet_arg_scope


# models/research/slim/nets/mobilenet_v1.py's _CONV_DEFS: (kind, kernel, stride, depth).
MOBILENET_V1_CONV_DEFS = [("conv", 3, 2, 32)] + [
    ("sep", 3, stride, depth) for stride, depth in (
        (1, 64), (2, 128), (1, 128), (2, 256), (1, 256), (2, 512), (1, 512), (1, 512),
        (1, 512), (1, 512), (1, 512), (2, 1024), (1, 1024))]


def mobilenet_v1(images, num_classes=1001, depth_multiplier=1.0, is_training=False,
                 global_pool=False, min_depth=8):
    """slim's mobilenet_v1 (models/research/slim), rebuilt from its _CONV_DEFS with tf_slim
    ops under its mobilenet_v1_arg_scope (tf_slim 1.1.0 does not ship MobileNets)."""
    s = slim()
    depth = lambda d: max(int(d * depth_multiplier), min_depth)  # noqa: E731 (slim's)
    batch_norm_params = {"center": True, "scale": True, "decay": 0.9997, "epsilon": 0.001,
                         "is_training": is_training}
    with s.arg_scope([s.conv2d, s.separable_conv2d], activation_fn=tf.nn.relu6,
                     normalizer_fn=s.batch_norm, padding="SAME"), \
            s.arg_scope([s.batch_norm], **batch_norm_params), \
            tf.compat.v1.variable_scope("MobilenetV1"):
        net = images
        for i, (kind, kernel, stride, d) in enumerate(MOBILENET_V1_CONV_DEFS):
            if kind == "conv":
                net = s.conv2d(net, depth(d), [kernel, kernel], stride=stride,
                               scope=f"Conv2d_{i}")
            else:
                net = s.separable_conv2d(net, None, [kernel, kernel], depth_multiplier=1,
                                         stride=stride, scope=f"Conv2d_{i}_depthwise")
                net = s.conv2d(net, depth(d), [1, 1], stride=1, scope=f"Conv2d_{i}_pointwise")
        with tf.compat.v1.variable_scope("Logits"):
            if global_pool:
                net = tf.reduce_mean(net, [1, 2], keepdims=True, name="global_pool")
            else:
                height, width = net.shape[1:3]
                net = s.avg_pool2d(net, [min(height, 7), min(width, 7)], padding="VALID",
                                   scope="AvgPool_1a")
            net = s.dropout(net, keep_prob=0.999, is_training=is_training, scope="Dropout_1b")
            logits = s.conv2d(net, num_classes, [1, 1], activation_fn=None,
                              normalizer_fn=None, scope="Conv2d_1c_1x1")
            return tf.squeeze(logits, [1, 2], name="SpatialSqueeze")


def _make_divisible(v, divisor, min_value=None):
    """models/research/slim/nets/mobilenet/mobilenet.py's rounding, as published."""
    if min_value is None:
        min_value = divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


# mobilenet_v2.py's V2_DEF spec: ('conv', stride, outputs, kernel) or
# ('expanded', stride, outputs, expansion factor, expansion divisible_by).
MOBILENET_V2_DEF = [("conv", 2, 32, 3), ("expanded", 1, 16, 1, 1)] + [
    ("expanded", stride, depth, 6, 8) for stride, depth in (
        (2, 24), (1, 24), (2, 32), (1, 32), (1, 32), (2, 64), (1, 64), (1, 64), (1, 64),
        (1, 96), (1, 96), (1, 96), (2, 160), (1, 160), (1, 160), (1, 320))] + [
    ("conv", 1, 1280, 1)]


def mobilenet_v2(images, num_classes=1001, depth_multiplier=1.0, is_training=False):
    """slim's mobilenet_v2 (models/research/slim/nets/mobilenet), rebuilt from V2_DEF with
    tf_slim ops: conv2d / expanded_conv (expand, depthwise, project, residual), default scope
    names `Conv`, `expanded_conv_N`, `Conv_1`, training_scope's BN (decay 0.997)."""
    s = slim()
    batch_norm_params = {"center": True, "scale": True, "decay": 0.997,
                         "is_training": is_training}
    with s.arg_scope([s.conv2d, s.separable_conv2d], activation_fn=tf.nn.relu6,
                     normalizer_fn=s.batch_norm, padding="SAME"), \
            s.arg_scope([s.batch_norm], **batch_norm_params), \
            tf.compat.v1.variable_scope("MobilenetV2"):
        net = images
        for kind, stride, outputs, *rest in MOBILENET_V2_DEF:
            outputs = _make_divisible(outputs * depth_multiplier, 8, 8)
            if kind == "conv":
                net = s.conv2d(net, outputs, [rest[0], rest[0]], stride=stride)
                continue
            factor, divisible_by = rest
            with tf.compat.v1.variable_scope(None, default_name="expanded_conv"):
                inputs = net
                inner = _make_divisible(inputs.shape[3] * factor, divisible_by)
                if inner > inputs.shape[3]:
                    net = s.conv2d(net, inner, [1, 1], scope="expand")
                net = s.separable_conv2d(net, None, [3, 3], depth_multiplier=1, stride=stride,
                                         scope="depthwise")
                net = s.conv2d(net, outputs, [1, 1], activation_fn=tf.identity,
                               scope="project")
                if stride == 1 and net.shape[3] == inputs.shape[3]:
                    net += inputs
        with tf.compat.v1.variable_scope("Logits"):
            net = tf.nn.avg_pool2d(net, [1, *net.shape[1:3], 1], [1, 1, 1, 1], "VALID")
            net = s.dropout(net, keep_prob=0.8, is_training=is_training, scope="Dropout")
            logits = s.conv2d(net, num_classes, [1, 1], activation_fn=None,
                              normalizer_fn=None, scope="Conv2d_1c_1x1")
            return tf.squeeze(logits, [1, 2])
