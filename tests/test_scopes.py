"""Slim-style builders: variable paths, arg_scope semantics, weight decay, batch-norm and dropout
modes, layer configs, and numerics against tf-slim's own graph ops (tests/slim_reference.py)."""
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
import tf_slim

from tests import slim_reference
from tfmodels.slim import compat, scopes
from tfmodels.slim import layers as slim_layers
from tfmodels.slim import separable as slim_separable
from tfmodels.layers.dropout import Dropout
from tfmodels.slim.regularizers import l2_regularizer

# tf_slim's graph layers call deprecated TF1 layer APIs; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:`(layer.apply|tf.layers.flatten)`:UserWarning")


def _model(build, shape=(8, 8, 3)):
    inputs = keras.Input(shape)
    return keras.Model(inputs, build(inputs))


def _assert_matches_slim(build, weights, images, expected):
    """The model `build` makes, given slim's `weights`, gives slim's `expected` outputs (1e-5);
    returns that model."""
    model = _model(build)
    slim_reference.load_into(model, weights)
    outputs = model(images, training=False)
    for key in expected:
        np.testing.assert_allclose(outputs[key], expected[key], rtol=1e-5, atol=1e-5,
                                   err_msg=key)
    return model


@pytest.fixture
def images(rng):
    return rng.normal(size=(2, 8, 8, 3)).astype(np.float32)


# ---------------------------------------------------------------- variable paths


def test_scope_gives_slim_path():
    model = _model(lambda x: _in_scope("LeNet", lambda: scopes.conv2d(x, 32, 5, scope="conv1")))
    assert [v.path for v in model.weights] == ["LeNet/conv1/kernel", "LeNet/conv1/bias"]


def _in_scope(name, fn):
    with keras.name_scope(name):
        return fn()


def test_variable_names_and_shapes_equal_slim_graph():
    def ours(x):
        with keras.name_scope("Net"):
            net = scopes.conv2d(x, 4, 3, scope="conv1")
            net = scopes.conv2d(net, 4, 3, normalizer_fn=scopes.batch_norm, scope="conv2")
            net = scopes.conv2d(net, 4, [1, 3], normalizer_fn=scopes.batch_norm,
                                normalizer_params={"scale": True}, scope="conv3")
            net = scopes.repeat(net, 2, scopes.conv2d, 5, [3, 3], scope="conv4")
            net = scopes.batch_norm(net, scale=True, center=False, scope="bn5")
            net = scopes.fully_connected(scopes.flatten(net), 6, scope="fc6")
            return scopes.fully_connected(net, 7, biases_initializer=None, scope="fc7")

    def reference(x):
        slim = slim_reference.slim()
        with tf.compat.v1.variable_scope("Net"):
            net = slim.conv2d(x, 4, 3, scope="conv1")
            net = slim.conv2d(net, 4, 3, normalizer_fn=slim.batch_norm, scope="conv2")
            net = slim.conv2d(net, 4, [1, 3], normalizer_fn=slim.batch_norm,
                              normalizer_params={"scale": True}, scope="conv3")
            net = slim.repeat(net, 2, slim.conv2d, 5, [3, 3], scope="conv4")
            net = slim.batch_norm(net, scale=True, center=False, scope="bn5")
            net = slim.fully_connected(slim.flatten(net), 6, scope="fc6")
            return slim.fully_connected(net, 7, biases_initializer=None, scope="fc7")

    expected = slim_reference.graph_variables(reference, (8, 8, 3))
    assert "Net/conv2/BatchNorm/moving_variance" in expected and "Net/fc7/biases" not in expected
    assert slim_reference.keras_variables(_model(ours)) == expected


def test_prelu_paths_and_shapes():
    def build(x):
        with keras.name_scope("Net"):
            net = scopes.conv2d(x, 4, 3, activation_fn=scopes.prelu, scope="conv1")
            net = scopes.prelu(net, scope="prelu2")
            return scopes.prelu(net, channel_shared=True, scope="prelu3")

    variables = {v.path: tuple(v.shape) for v in _model(build).weights}
    assert variables == {"Net/conv1/kernel": (3, 3, 3, 4), "Net/conv1/bias": (4,),
                         "Net/conv1/PReLU/alpha": (4,), "Net/prelu2/alpha": (4,),
                         "Net/prelu3/alpha": ()}


def test_prelu_matches_closed_form(rng):
    x = rng.normal(size=(3, 2, 2, 4)).astype(np.float32)
    model = _model(lambda t: scopes.prelu(t, scope="p"), (2, 2, 4))
    alpha = rng.uniform(0.1, 0.9, 4).astype(np.float32)
    model.get_layer("p").alpha.assign(alpha)
    np.testing.assert_allclose(model(x), np.maximum(x, 0) + alpha * np.minimum(x, 0),
                               rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(model.get_layer("p").alpha, alpha)
    fresh = _model(lambda t: scopes.prelu(t, scope="p"), (2, 2, 4))
    np.testing.assert_allclose(fresh.get_layer("p").alpha, 0.25)  # He et al. / Caffe init


def test_nested_model_paths_and_training_propagation(rng):
    def unit(t, depth):
        with keras.name_scope("bottleneck_v1"):
            return scopes.conv2d(t, depth, 1, normalizer_fn=scopes.batch_norm, scope="conv1")

    def block(t):
        t = scopes.nested_model(unit, t, "unit_1", depth=3)
        return scopes.nested_model(unit, t, "unit_2", depth=3)

    inputs = keras.Input((4, 4, 2))
    with keras.name_scope("resnet"):
        model = keras.Model(inputs, scopes.nested_model(block, inputs, "block1"))
    prefix = "resnet/block1/unit_{}/bottleneck_v1/conv1/"
    leaves = ("kernel", "BatchNorm/beta", "BatchNorm/moving_mean", "BatchNorm/moving_variance")
    assert sorted(v.path for v in model.weights) == sorted(
        prefix.format(u) + leaf for u in (1, 2) for leaf in leaves)

    moving_mean = next(v for v in model.weights if v.path == prefix.format(1) + "BatchNorm/"
                       "moving_mean")
    x = rng.normal(1.0, 1.0, (4, 4, 4, 2)).astype(np.float32)
    model(x, training=False)
    np.testing.assert_array_equal(moving_mean, 0.0)
    model(x, training=True)  # the outer call's mode reaches BN two models down
    assert np.all(np.abs(moving_mean.numpy()) > 0)


def _slash_and_repeated_scopes(ops, variable_scope, images):
    """One net body for both libraries: '/' in scopes, one leaf name (`conv`, `pool`,
    `BatchNorm`) under several scopes, repeat with a '/' scope, a weightless scope used twice."""
    bn = {"normalizer_fn": ops.batch_norm, "normalizer_params": {"is_training": False}}
    with variable_scope("Net"):
        net = ops.conv2d(images, 4, 3, scope="block1/conv", **bn)
        net = ops.max_pool2d(net, 2, 1, padding="SAME", scope="block1/pool")
        net = ops.conv2d(net, 4, 3, scope="block2/conv", **bn)
        net = ops.max_pool2d(net, 2, 1, padding="SAME", scope="block2/pool")
        net = ops.max_pool2d(net, 2, 1, padding="SAME", scope="block2/pool")
        net = ops.repeat(net, 2, ops.conv2d, 3, [1, 1], scope="block3/convs")
        with variable_scope("head"):
            net = ops.conv2d(net, 2, 1, activation_fn=None, scope="conv")
        return ops.conv2d(net, 2, 1, activation_fn=None, scope="conv")


def test_scopes_with_slash_and_repeated_leaf_names_equal_slim(rng):
    images = rng.normal(size=(2, 6, 6, 3)).astype(np.float32)
    slim = slim_reference.slim()
    expected = slim_reference.graph_variables(
        lambda x: _slash_and_repeated_scopes(slim, tf.compat.v1.variable_scope, x), (6, 6, 3))
    assert {"Net/block1/conv/weights", "Net/block2/conv/BatchNorm/beta", "Net/head/conv/weights",
            "Net/conv/weights", "Net/block3/convs/block3/convs_2/weights"} <= set(expected)
    inputs = keras.Input((6, 6, 3))
    model = keras.Model(inputs, _slash_and_repeated_scopes(scopes, keras.name_scope, inputs))
    assert slim_reference.keras_variables(model) == expected
    names = [layer.name for layer in model.layers]
    assert len(names) == len(set(names))
    assert {"conv", "block2_conv", "head_conv", "pool", "block2_pool",
            "block2_pool_2"} <= set(names)

    values = {}  # the same weights in both: equal outputs
    for variable in model.weights:
        values[slim_reference.keras_to_slim_name(variable.path)] = (
            rng.uniform(0.5, 1.5, variable.shape).astype(np.float32))
        variable.assign(values[slim_reference.keras_to_slim_name(variable.path)])

    def reference(x):
        output = _slash_and_repeated_scopes(slim, tf.compat.v1.variable_scope, x)
        tf.compat.v1.get_default_graph().add_to_collection("assign", tf.group(*[
            v.assign(values[v.op.name]) for v in tf.compat.v1.global_variables()]))
        return output

    graph = tf.Graph()
    with graph.as_default():
        placeholder = tf.compat.v1.placeholder(tf.float32, (None, 6, 6, 3))
        output = reference(placeholder)
        with tf.compat.v1.Session() as session:
            session.run(graph.get_collection("assign"))
            expected_output = session.run(output, {placeholder: images})
    np.testing.assert_allclose(model(images, training=False), expected_output, rtol=1e-4,
                               atol=1e-4)


def test_nested_model_scope_with_slash():
    def unit(t):
        return scopes.conv2d(t, 2, 1, scope="conv")

    inputs = keras.Input((4, 4, 2))
    with keras.name_scope("net"):
        net = scopes.nested_model(unit, inputs, "block1/unit_1")
        net = scopes.nested_model(unit, net, "block2/unit_1")
    model = keras.Model(inputs, net)
    assert [v.path for v in model.weights] == [
        "net/block1/unit_1/conv/kernel", "net/block1/unit_1/conv/bias",
        "net/block2/unit_1/conv/kernel", "net/block2/unit_1/conv/bias"]
    assert [layer.name for layer in model.layers[1:]] == ["unit_1", "block2_unit_1"]


def test_scope_errors():
    inputs = keras.Input((4, 4, 2))
    with keras.name_scope("Net"):
        scopes.conv2d(inputs, 2, 1, scope="block1/conv")
        with pytest.raises(ValueError, match=r"scope='block1/conv': Net/block1/conv is already a "
                                             r"layer of this model .*Variable Net/block1/conv/"
                                             r"weights already exists.*own scope"):
            scopes.conv2d(inputs, 2, 1, scope="block1/conv")
        with pytest.raises(ValueError, match=r"scope='block1//conv' has an empty component"):
            scopes.conv2d(inputs, 2, 1, scope="block1//conv")
    with pytest.raises(ValueError, match=r"batch_norm\(None, scope='a/BatchNorm'\)"):
        scopes.conv2d(inputs, 2, 1, normalizer_fn=scopes.batch_norm,
                      normalizer_params={"scope": "a/BatchNorm"})


# ---------------------------------------------------------------- arg_scope semantics


def test_arg_scope_merges_overrides_and_explicit_wins():
    half = keras.initializers.Constant(0.5)
    x = keras.Input((8, 8, 3))
    with scopes.arg_scope([scopes.conv2d], padding="VALID", weights_initializer=half,
                          activation_fn=None):
        with scopes.arg_scope([scopes.conv2d], padding="SAME"):
            inner = scopes.conv2d(x, 2, 3, scope="inner")
            explicit = scopes.conv2d(x, 2, 3, padding="VALID", scope="explicit")
            dense = scopes.fully_connected(scopes.flatten(x), 2, scope="dense")
        outer = scopes.conv2d(x, 2, 3, scope="outer")
    plain = scopes.conv2d(x, 2, 3, scope="plain")
    model = keras.Model(x, [inner, explicit, dense, outer, plain])

    assert inner.shape[1:3] == (8, 8)  # inner scope overrides the outer padding
    assert explicit.shape[1:3] == (6, 6)  # an explicit argument wins over both scopes
    assert outer.shape[1:3] == (6, 6)  # the outer scope is back after the inner one exits
    assert plain.shape[1:3] == (8, 8)  # and gone after both
    for name in ("inner", "explicit", "outer"):  # merged: outer initializer + inner padding
        np.testing.assert_array_equal(model.get_layer(name).kernel, 0.5)
        assert model.get_layer(name).activation is None
    assert np.std(model.get_layer("plain").kernel.numpy()) > 0
    assert model.get_layer("plain").activation is keras.activations.relu  # slim's default
    assert model.get_layer("dense").activation is keras.activations.relu  # other ops untouched


def test_arg_scope_dict_reuse_and_tf_slims_own_arg_scope():
    with scopes.arg_scope([scopes.conv2d], stride=2) as saved:
        pass
    x = keras.Input((8, 8, 3))
    with scopes.arg_scope(saved):
        assert scopes.conv2d(x, 2, 3).shape[1:3] == (4, 4)
    with tf_slim.arg_scope([scopes.conv2d], padding="VALID"):  # the decorator is slim's own
        assert scopes.conv2d(x, 2, 3).shape[1:3] == (6, 6)


def test_arg_scope_errors():
    def undecorated(inputs, stride=1):
        return inputs

    with pytest.raises(ValueError, match="undecorated is not decorated with @tf_slim.add_arg"):
        with scopes.arg_scope([scopes.conv2d, undecorated], stride=2):
            pass
    with pytest.raises(ValueError, match=r"\['paddin'\].*conv2d does not take"):
        with scopes.arg_scope([scopes.conv2d], paddin="SAME"):
            pass
    x = keras.Input((8, 8, 3))
    with pytest.raises(TypeError, match="normalizer_fn=.*not a tfmodels.slim.scopes layer builder"):
        scopes.conv2d(x, 2, 3, normalizer_fn=slim_reference.slim().batch_norm)


# ---------------------------------------------------------------- weight decay


def test_weight_decay_reaches_model_losses_and_gradients(rng):
    weight_decay = 0.01

    def build(x):
        with scopes.arg_scope([scopes.conv2d, scopes.fully_connected],
                              weights_regularizer=l2_regularizer(weight_decay)):
            net = scopes.conv2d(x, 3, 3, normalizer_fn=scopes.batch_norm,
                                normalizer_params={"scale": True}, scope="conv1")
            net = scopes.fully_connected(scopes.flatten(net), 4, scope="fc")
            return scopes.fully_connected(net, 2, weights_regularizer=None, scope="logits")

    model = _model(build, (5, 5, 2))
    kernels = [model.get_layer(name).kernel for name in ("conv1", "fc")]
    expected = weight_decay * sum(np.sum(k.numpy().astype(np.float64) ** 2) / 2 for k in kernels)
    assert len(model.losses) == 2  # only the decayed kernels: no biases, BN, or logits
    np.testing.assert_allclose(float(tf.add_n(model.losses)), expected, rtol=1e-6)

    x = rng.normal(size=(4, 5, 5, 2)).astype(np.float32)
    with tf.GradientTape() as tape:
        data_loss = tf.reduce_sum(model(x, training=True) ** 2)
        total = data_loss + tf.add_n(model.losses)
    with tf.GradientTape() as data_tape:
        data_only = tf.reduce_sum(model(x, training=True) ** 2)
    grads = dict(zip([v.path for v in model.trainable_variables],
                     tape.gradient(total, model.trainable_variables)))
    data_grads = dict(zip([v.path for v in model.trainable_variables],
                          data_tape.gradient(data_only, model.trainable_variables)))
    for variable in model.trainable_variables:  # d/dw (wd * |w|^2 / 2) = wd * w
        decay = weight_decay * variable.numpy() if variable.path in (
            "conv1/kernel", "fc/kernel") else 0.0
        np.testing.assert_allclose(grads[variable.path], data_grads[variable.path] + decay,
                                   rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- batch norm and dropout


def test_sync_batch_norm_through_arg_scope_explicit_params_win():
    x = keras.Input((4, 4, 3))
    with scopes.arg_scope([scopes.batch_norm], synchronized=True, epsilon=0.01):
        outputs = [
            scopes.conv2d(x, 2, 3, normalizer_fn=scopes.batch_norm, scope="a"),
            scopes.conv2d(x, 2, 3, normalizer_fn=scopes.batch_norm, scope="b",
                          normalizer_params={"synchronized": False, "epsilon": 1e-5}),
            scopes.fully_connected(scopes.flatten(x), 2, normalizer_fn=scopes.batch_norm,
                                   scope="c"),
            scopes.batch_norm(x, scope="d"),
        ]
    outputs.append(scopes.batch_norm(x, scope="e"))
    model = keras.Model(x, outputs)
    layers = {name: model.get_layer(name) for name in "abcde"}
    bns = {name: getattr(layer, "normalizer", None) or layer for name, layer in layers.items()}
    assert all(isinstance(bn, slim_layers.BatchNorm) for bn in bns.values())
    assert {name: (bn.synchronized, bn.epsilon) for name, bn in bns.items()} == {
        "a": (True, 0.01), "b": (False, 1e-5), "c": (True, 0.01), "d": (True, 0.01),
        "e": (False, 0.001)}


@pytest.mark.parametrize("pinned", [None, True, False])
@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_is_training(pinned, training, rng):
    epsilon, decay = 1e-3, 0.9
    x = rng.normal(2.0, 3.0, (4, 3, 3, 2)).astype(np.float32)
    model = _model(lambda t: scopes.batch_norm(t, decay=decay, epsilon=epsilon,
                                               is_training=pinned, scope="bn"), (3, 3, 2))
    bn = model.get_layer("bn")
    mean0, var0 = rng.normal(size=2).astype(np.float32), rng.uniform(1, 2, 2).astype(np.float32)
    bn.moving_mean.assign(mean0)
    bn.moving_variance.assign(var0)

    out = model(x, training=training).numpy()
    batch_mode = training if pinned is None else pinned
    if batch_mode:
        mean, var = x.mean(axis=(0, 1, 2)), x.var(axis=(0, 1, 2))
        expected_mean, expected_var = decay * mean0 + (1 - decay) * mean, (
            decay * var0 + (1 - decay) * var)
    else:
        mean, var = mean0, var0
        expected_mean, expected_var = mean0, var0
    np.testing.assert_allclose(out, (x - mean) / np.sqrt(var + epsilon), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(bn.moving_mean, expected_mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(bn.moving_variance, expected_var, rtol=1e-5, atol=1e-6)


def test_dropout_modes():
    x = keras.Input((1000,))
    assert scopes.dropout(x, 0.5, is_training=False) is x  # slim: the input itself
    assert scopes.dropout(x, 1.0) is x
    follow = keras.Model(x, scopes.dropout(x, 0.5))
    pinned = keras.Model(x, scopes.dropout(x, 0.5, is_training=True))
    ones = np.ones((2, 1000), np.float32)

    def dropped(out):
        out = np.asarray(out)
        assert set(np.unique(out)) <= {0.0, 2.0}  # kept units scaled by 1 / keep_prob
        return np.mean(out == 0)

    np.testing.assert_array_equal(follow(ones, training=False), ones)
    assert 0.4 < dropped(follow(ones, training=True)) < 0.6
    assert 0.4 < dropped(pinned(ones, training=False)) < 0.6
    with pytest.raises(ValueError, match="keep_prob=0"):
        scopes.dropout(x, 0.0)


def test_trainable_false_freezes_the_whole_op():
    def build(x):
        net = scopes.conv2d(x, 2, 3, normalizer_fn=scopes.batch_norm,
                            normalizer_params={"scale": True}, trainable=False, scope="frozen")
        return scopes.conv2d(net, 2, 3, scope="free")

    model = _model(build)
    assert sorted(v.path for v in model.trainable_variables) == ["free/bias", "free/kernel"]
    assert len(model.weights) == 7


# ---------------------------------------------------------------- numerics against tf-slim


def test_ops_match_tf_slim_graph(images, rng):
    """Same weights, same inputs: our layers vs tf_slim's ops in a TF1 graph.

    8x8 is even, where 'SAME' with stride 2 pads (0, 1) but ResNet's conv2d_same pads (1, 1).
    """
    bn_train = {"is_training": True, "scale": True, "epsilon": 1e-5, "decay": 0.9}
    bn_infer = {"is_training": False, "scale": True, "epsilon": 1e-5}

    def reference(x):
        slim = slim_reference.slim()
        from tf_slim.nets import resnet_utils
        return {
            "same": slim.conv2d(x, 4, 3, stride=2, scope="same"),
            "fixed": resnet_utils.conv2d_same(x, 4, 3, 2, scope="fixed"),
            "fixed7": resnet_utils.conv2d_same(x, 4, 7, 2, scope="fixed7"),
            "dilated": resnet_utils.conv2d_same(x, 4, 3, 1, rate=2, scope="dilated"),
            "bn_train": slim.conv2d(x, 4, 3, normalizer_fn=slim.batch_norm,
                                    normalizer_params=bn_train, scope="bn_train"),
            "bn_infer": slim.conv2d(x, 4, 3, normalizer_fn=slim.batch_norm,
                                    normalizer_params=bn_infer, scope="bn_infer"),
            "fc": slim.fully_connected(slim.flatten(x), 5, scope="fc"),
            "max_same": slim.max_pool2d(x, 3, stride=2, padding="SAME"),
            "avg_same": slim.avg_pool2d(x, 3, stride=2, padding="SAME"),
            "avg_valid": slim.avg_pool2d(x, 2),
        }

    def ours(x):
        return {
            "same": scopes.conv2d(x, 4, 3, stride=2, scope="same"),
            "fixed": scopes.conv2d_same(x, 4, 3, 2, scope="fixed"),
            "fixed7": scopes.conv2d_same(x, 4, 7, 2, scope="fixed7"),
            "dilated": scopes.conv2d_same(x, 4, 3, 1, rate=2, scope="dilated"),
            "bn_train": scopes.conv2d(x, 4, 3, normalizer_fn=scopes.batch_norm,
                                      normalizer_params=bn_train, scope="bn_train"),
            "bn_infer": scopes.conv2d(x, 4, 3, normalizer_fn=scopes.batch_norm,
                                      normalizer_params=bn_infer, scope="bn_infer"),
            "fc": scopes.fully_connected(scopes.flatten(x), 5, scope="fc"),
            "max_same": scopes.max_pool2d(x, 3, stride=2, padding="SAME"),
            "avg_same": scopes.avg_pool2d(x, 3, stride=2, padding="SAME"),
            "avg_valid": scopes.avg_pool2d(x, 2),
        }

    expected, before, after = slim_reference.run_graph(reference, images,
                                                       randomize_moving_stats=rng)
    model = _assert_matches_slim(ours, before, images, expected)
    # The fixed padding is not 'SAME' (PITFALLS: 8e-2 relative error when confused).
    same_weights = _model(lambda x: scopes.conv2d(x, 4, 3, stride=2, scope="fixed"))
    slim_reference.load_into(same_weights, before)
    assert np.max(np.abs(same_weights(images) - expected["fixed"])) > 1e-2

    # Moving statistics after one training step: the mean follows slim exactly. slim's fused
    # batch norm updates the variance with the unbiased batch variance (x n/(n-1)), Keras with
    # the biased one (measured: 3.8e-4 apart after one step with decay 0.9, n=256).
    layer = model.get_layer("bn_train").normalizer
    name = "bn_train/BatchNorm/"
    np.testing.assert_allclose(layer.moving_mean, after[name + "moving_mean"], rtol=1e-5,
                               atol=1e-6)
    n, decay, var0 = images.shape[0] * 8 * 8, bn_train["decay"], before[name + "moving_variance"]
    unbiased = (after[name + "moving_variance"] - decay * var0) / (1 - decay)
    np.testing.assert_allclose(layer.moving_variance,
                               decay * var0 + (1 - decay) * unbiased * (n - 1) / n,
                               rtol=1e-5, atol=1e-6)


def test_separable_conv2d_matches_tf_slim_graph(images, rng):
    """slim's separable_conv2d: depthwise only (num_outputs=None) or depthwise + pointwise,
    depth multiplier, stride, rate, VALID, BN: same variables (names, shapes) and outputs."""
    bn_infer = {"is_training": False, "epsilon": 1e-3}
    cases = {  # scope: (num_outputs, kernel_size, keyword arguments)
        "sep": (5, 3, dict(depth_multiplier=2, stride=2)),
        "depthwise": (None, 3, dict(depth_multiplier=3, stride=2)),
        "depthwise_rate": (None, [3, 2], dict(rate=2, padding="VALID")),
        "sep_rate": (4, 3, dict(rate=2)),
        "sep_bn": (4, [1, 3], dict(depth_multiplier=2, activation_fn=tf.nn.relu6)),
    }

    def build(module, normalizer):
        def fn(x):
            outputs = {}
            for scope, (num_outputs, kernel_size, kwargs) in cases.items():
                if scope == "sep_bn":
                    kwargs = dict(kwargs, normalizer_fn=normalizer, normalizer_params=bn_infer)
                outputs[scope] = module.separable_conv2d(x, num_outputs, kernel_size,
                                                         scope=scope, **kwargs)
            return outputs
        return fn

    slim = slim_reference.slim()
    reference = build(slim, slim.batch_norm)
    expected, before, _ = slim_reference.run_graph(reference, images, randomize_moving_stats=rng)
    model = _model(build(scopes, scopes.batch_norm))
    assert slim_reference.keras_variables(model) == {
        name: tuple(value.shape) for name, value in before.items()}
    slim_reference.load_into(model, before)
    outputs = model(images, training=False)
    for key in cases:
        assert outputs[key].shape == expected[key].shape, key
        np.testing.assert_allclose(outputs[key], expected[key], rtol=1e-5, atol=1e-5,
                                   err_msg=key)


def test_separable_conv2d_regularizes_both_kernels_and_checks_arguments(images):
    model = _model(lambda x: scopes.separable_conv2d(
        x, 4, 3, depth_multiplier=2, weights_regularizer=l2_regularizer(0.5), scope="sep"))
    layer = model.get_layer("sep")
    expected = sum(0.5 * float(np.sum(np.square(k))) / 2
                   for k in (layer.depthwise_kernel, layer.pointwise_kernel))
    np.testing.assert_allclose(float(tf.add_n(model.losses)), expected, rtol=1e-5)
    with pytest.raises(ValueError, match=r"stride=\(2, 2\) > 1 needs rate=1"):
        _model(lambda x: scopes.separable_conv2d(x, 4, 3, stride=2, rate=2))
    with pytest.raises(ValueError, match=r"depth_multiplier=0 must be an integer >= 1"):
        _model(lambda x: scopes.separable_conv2d(x, None, 3, depth_multiplier=0))


def test_flatten_and_global_pool_match_numpy(images):
    model = _model(lambda x: [scopes.flatten(x), scopes.global_avg_pool2d(x),
                              scopes.global_avg_pool2d(x, keepdims=False)])
    flat, pooled, squeezed = model(images)
    np.testing.assert_array_equal(flat, images.reshape(2, -1))  # row-major, channels last
    np.testing.assert_allclose(pooled, images.mean(axis=(1, 2), keepdims=True), rtol=1e-6)
    np.testing.assert_allclose(squeezed, images.mean(axis=(1, 2)), rtol=1e-6)


def test_shared_initializer_gives_distinct_kernels():
    # One unseeded Keras 3 initializer instance returns the same values on every call; an
    # arg_scope shares one instance between layers, so each layer must get a fresh one.
    def build(x):
        with scopes.arg_scope([scopes.conv2d],
                              weights_initializer=keras.initializers.TruncatedNormal(stddev=0.1)):
            return scopes.conv2d(scopes.conv2d(x, 3, 3, scope="a"), 3, 3, scope="b")

    model = _model(build, (4, 4, 3))
    a, b = (model.get_layer(name).kernel.numpy() for name in "ab")
    assert not np.allclose(a, b)
    assert 0.05 < a.std() < 0.1  # truncated at 2 stddev: std 0.088


# ---------------------------------------------------------------- layer contract


def _layers_to_roundtrip():
    return [
        slim_layers.SlimConv2D(4, 3, strides=2, padding=[[0, 0], [1, 1], [1, 1], [0, 0]],
                               kernel_regularizer=l2_regularizer(0.1),
                               normalizer=slim_layers.BatchNorm(scale=True, name="BatchNorm"),
                               activation=slim_layers.PReLU(name="PReLU"), name="conv"),
        slim_layers.SlimDense(3, activation=tf.nn.relu, name="fc"),
        slim_layers.BatchNorm(is_training=False, activation="relu", name="bn"),
        slim_layers.PReLU(channel_shared=True, name="prelu"),
        slim_layers.LocalResponseNormalization(2, alpha=0.1, name="lrn"),
        Dropout(0.5, is_training=False, name="dropout"),
        slim_separable.SlimSeparableConv2D(
            4, 3, depth_multiplier=2, strides=2, kernel_regularizer=l2_regularizer(0.1),
            normalizer=slim_layers.BatchNorm(name="BatchNorm"), activation="relu", name="sep"),
    ]


@pytest.mark.parametrize("index", range(7))
def test_layer_config_roundtrip(index, images):
    layer = _layers_to_roundtrip()[index]
    inputs = images if index != 1 else images.reshape(2, -1)
    expected = layer(inputs, training=True)
    clone = layer.__class__.from_config(layer.get_config())
    clone(inputs)  # build
    clone.set_weights(layer.get_weights())
    assert clone.get_config() == layer.get_config()
    assert [v.path for v in clone.weights] == [v.path for v in layer.weights]
    np.testing.assert_allclose(clone(inputs, training=True), expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision(policy, images):
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        def build(x):
            net = scopes.conv2d(x, 4, 3, normalizer_fn=scopes.batch_norm,
                                activation_fn=scopes.prelu, scope="conv")
            net = scopes.lrn(net, 2, scope="lrn")
            return scopes.fully_connected(scopes.flatten(net), 3, activation_fn=None, scope="fc")

        model = _model(build)
        outputs = model(images, training=True)
    finally:
        keras.config.set_dtype_policy(previous)
    assert outputs.dtype == policy.split("_")[1]
    assert {v.dtype for v in model.weights} == {"float32"}
    assert np.all(np.isfinite(np.asarray(tf.cast(outputs, tf.float32))))


# ---------------------------------------------------------------- compat


def test_enable_tf_slim_is_idempotent_and_fixes_batch_norm():
    compat.enable_tf_slim()
    compat.enable_tf_slim()
    with tf.Graph().as_default():
        x = tf.compat.v1.placeholder(tf.float32, (None, 4, 4, 2))
        # The default path needs the legacy layers; updates_collections=None and
        # zero_debias_moving_mean=True need ops.Tensor.
        tf_slim.batch_norm(x, scope="a")
        tf_slim.batch_norm(x, updates_collections=None, scope="b")
        tf_slim.batch_norm(x, zero_debias_moving_mean=True, scope="c")


def test_enable_tf_slim_without_tf_keras(monkeypatch):
    monkeypatch.setitem(sys.modules, "tf_keras.src.legacy_tf_layers", None)
    with pytest.raises(ImportError, match="pip install tf-keras"):
        compat.enable_tf_slim()


def test_slims_own_batch_norm_params_as_written(images, rng):
    """inception_v3_arg_scope's normalizer_params (`variables_collections`, `fused`,
    `updates_collections`) and resnet_arg_scope's batch_norm defaults, taken from tf_slim's
    own arg scopes, build our BatchNorm and give tf_slim's graph's outputs."""
    from tf_slim.nets import inception_v3, resnet_utils

    inception = dict(inception_v3.inception_v3_arg_scope()[
        tf_slim.arg_scope_func_key(tf_slim.conv2d)]["normalizer_params"], is_training=False)
    resnet = dict(resnet_utils.resnet_arg_scope()[
        tf_slim.arg_scope_func_key(tf_slim.batch_norm)], is_training=False)
    assert {"variables_collections", "fused", "updates_collections"} <= set(inception)
    assert "updates_collections" in resnet

    def reference(x):
        slim = slim_reference.slim()
        a = slim.conv2d(x, 4, 3, normalizer_fn=slim.batch_norm, normalizer_params=inception,
                        scope="inception")
        with slim.arg_scope([slim.batch_norm], **resnet):
            b = slim.conv2d(x, 4, 3, normalizer_fn=slim.batch_norm, scope="resnet")
        return {"inception": a, "resnet": b}

    def ours(x):
        a = scopes.conv2d(x, 4, 3, normalizer_fn=scopes.batch_norm,
                          normalizer_params=inception, scope="inception")
        with scopes.arg_scope([scopes.batch_norm], **resnet):
            b = scopes.conv2d(x, 4, 3, normalizer_fn=scopes.batch_norm, scope="resnet")
        return {"inception": a, "resnet": b}

    expected, before, _ = slim_reference.run_graph(reference, images, randomize_moving_stats=rng,
                                                   run_updates=False)
    _assert_matches_slim(ours, before, images, expected)
    assert "resnet/BatchNorm/gamma" in before and "inception/BatchNorm/gamma" not in before


@pytest.mark.parametrize("kwargs, match", [
    ({"data_format": "NCHW"}, r"batch_norm\(data_format='NCHW'\) is not supported: allowed "
                              r"'NHWC'"),
    ({"zero_debias_moving_mean": True}, r"batch_norm\(zero_debias_moving_mean=True\)"),
    ({"renorm": True}, r"batch_norm\(renorm=True\) is not supported: allowed False"),
    ({"reuse": True}, r"batch_norm\(reuse=True\)"),
])
def test_batch_norm_refuses_slim_settings_that_change_the_result(kwargs, match):
    with pytest.raises(ValueError, match=match):
        _model(lambda x: scopes.conv2d(x, 4, 3, normalizer_fn=scopes.batch_norm,
                                       normalizer_params=kwargs))
