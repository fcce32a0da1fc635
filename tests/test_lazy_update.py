"""Lazy column updates of the class matrix against Keras's own dense optimizer updates."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from tfmodels.training import optimizers
from tfmodels.training.lazy_update import ColumnOptimizer, read_columns

D, C = 3, 7
RECIPES = {
    "sgd": dict(name="sgd"),
    "momentum": dict(name="momentum", momentum=0.9),
    "nesterov": dict(name="momentum", momentum=0.8, nesterov=True),
    "momentum_decoupled_decay": dict(name="momentum", momentum=0.9, weight_decay=0.1),
    "adam": dict(name="adam"),
    "adamw": dict(name="adamw", weight_decay=0.05),
}


def _pair(rng, recipe, shape_kernel, shape_bias):
    kernel = keras.Variable(rng.standard_normal(shape_kernel).astype(np.float32), name="kernel")
    bias = keras.Variable(rng.standard_normal(shape_bias).astype(np.float32), name="bias")
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, 1, 0.9)  # lr changes per step
    optimizer = optimizers.create_optimizer(learning_rate=schedule, **recipe)
    if recipe.get("weight_decay"):
        optimizers.exclude_from_weight_decay(optimizer, [kernel, bias])
    optimizer.build([kernel, bias])
    return kernel, bias, optimizer


@pytest.mark.parametrize("recipe", list(RECIPES))
def test_all_columns_selected_is_the_dense_update(recipe):
    rng = np.random.default_rng(0)
    kernel, bias, optimizer = _pair(np.random.default_rng(1), RECIPES[recipe], (D, C), (C,))
    ref_kernel, ref_bias, ref_optimizer = _pair(np.random.default_rng(1), RECIPES[recipe],
                                                (D, C), (C,))
    lazy = ColumnOptimizer(optimizer, [kernel, bias])
    for _ in range(3):
        ids = rng.permutation(C)
        gk = rng.standard_normal((D, C)).astype(np.float32)
        gb = rng.standard_normal(C).astype(np.float32)
        lazy.apply(tf.constant(ids), [tf.constant(gk[:, ids]), tf.constant(gb[ids])])
        optimizer.iterations.assign_add(1)
        ref_optimizer.apply([tf.constant(gk), tf.constant(gb)], [ref_kernel, ref_bias])
    np.testing.assert_allclose(kernel.numpy(), ref_kernel.numpy(), rtol=0, atol=1e-6)
    np.testing.assert_allclose(bias.numpy(), ref_bias.numpy(), rtol=0, atol=1e-6)
    for mine, ref in zip(optimizer.variables, ref_optimizer.variables):
        np.testing.assert_allclose(mine.numpy(), ref.numpy(), rtol=0, atol=1e-6)


@pytest.mark.parametrize("recipe", ["momentum", "adamw"])
def test_only_selected_columns_and_their_slots_move(recipe):
    """Selected columns follow Keras's rule on just those columns; the others stay put."""
    rng = np.random.default_rng(2)
    kernel, bias, optimizer = _pair(np.random.default_rng(3), RECIPES[recipe], (D, C), (C,))
    lazy = ColumnOptimizer(optimizer, [kernel, bias])
    ids = np.array([5, 1, 3])  # the same columns every step, so the reference sees them only
    sub_kernel = keras.Variable(kernel.numpy()[:, ids], name="kernel")
    sub_bias = keras.Variable(bias.numpy()[ids], name="bias")
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, 1, 0.9)
    ref = optimizers.create_optimizer(learning_rate=schedule, **RECIPES[recipe])
    if RECIPES[recipe].get("weight_decay"):
        optimizers.exclude_from_weight_decay(ref, [sub_kernel, sub_bias])
    ref.build([sub_kernel, sub_bias])
    before = kernel.numpy(), bias.numpy(), [v.numpy() for v in optimizer.variables[1:]]
    for _ in range(3):
        gk = rng.standard_normal((D, len(ids))).astype(np.float32)
        gb = rng.standard_normal(len(ids)).astype(np.float32)
        lazy.apply(tf.constant(ids), [tf.constant(gk), tf.constant(gb)])
        optimizer.iterations.assign_add(1)
        ref.apply([tf.constant(gk), tf.constant(gb)], [sub_kernel, sub_bias])
    np.testing.assert_allclose(kernel.numpy()[:, ids], sub_kernel.numpy(), rtol=0, atol=1e-6)
    np.testing.assert_allclose(bias.numpy()[ids], sub_bias.numpy(), rtol=0, atol=1e-6)
    others = np.setdiff1d(np.arange(C), ids)
    np.testing.assert_array_equal(kernel.numpy()[:, others], before[0][:, others])
    np.testing.assert_array_equal(bias.numpy()[others], before[1][others])
    for slot, old in zip(optimizer.variables[1:], before[2]):
        np.testing.assert_array_equal(slot.numpy()[..., others], old[..., others])
        assert not np.array_equal(slot.numpy()[..., ids], old[..., ids])


def test_repeated_entries_write_identical_values():
    kernel, bias, optimizer = _pair(np.random.default_rng(4), RECIPES["momentum"], (D, C), (C,))
    lazy = ColumnOptimizer(optimizer, [kernel, bias])
    twin_kernel, twin_bias, twin_opt = _pair(np.random.default_rng(4), RECIPES["momentum"],
                                             (D, C), (C,))
    twin = ColumnOptimizer(twin_opt, [twin_kernel, twin_bias])
    g = np.arange(D * 2, dtype=np.float32).reshape(D, 2)
    lazy.apply(tf.constant([4, 2, 4, 4]), [tf.constant(g[:, [0, 1, 0, 0]]),
                                           tf.constant([1.0, 2.0, 1.0, 1.0])])
    twin.apply(tf.constant([4, 2]), [tf.constant(g), tf.constant([1.0, 2.0])])
    np.testing.assert_array_equal(kernel.numpy(), twin_kernel.numpy())
    np.testing.assert_array_equal(bias.numpy(), twin_bias.numpy())


def test_read_columns():
    value = np.arange(D * C, dtype=np.float32).reshape(D, C)
    kernel = keras.Variable(value)
    np.testing.assert_array_equal(read_columns(kernel, tf.constant([6, 0, 6])).numpy(),
                                  value[:, [6, 0, 6]])
    np.testing.assert_array_equal(read_columns(keras.Variable(value[0]), tf.constant([2])),
                                  value[0, [2]])


def test_unknown_rule_is_refused():
    kernel = keras.Variable(np.zeros((D, C), np.float32))
    optimizer = keras.optimizers.RMSprop()
    optimizer.build([kernel])
    with pytest.raises(ValueError, match="RMSprop"):
        ColumnOptimizer(optimizer, [kernel])
