"""Optimizers on pre-summed gradients and loss scaling."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from tfmodels.training import optimizers


@pytest.mark.parametrize("name, reference", [
    ("sgd", lambda: keras.optimizers.SGD(0.1)),
    ("momentum", lambda: keras.optimizers.SGD(0.1, momentum=0.9)),
    ("adam", lambda: keras.optimizers.Adam(0.1)),
    ("adamw", lambda: keras.optimizers.AdamW(0.1, weight_decay=0.01)),
])
def test_same_updates_as_keras_on_one_device(rng, name, reference):
    """Without replicas, skipping the sum changes nothing: Keras's own update rules apply."""
    w0 = rng.standard_normal((3, 4)).astype(np.float32)
    grads = [rng.standard_normal((3, 4)).astype(np.float32) for _ in range(4)]
    results = []
    for opt in (optimizers.create_optimizer(name, 0.1, weight_decay=0.01 * (name == "adamw")),
                reference()):
        w = keras.Variable(w0)
        opt.build([w])
        for g in grads:
            opt.apply([tf.constant(g)])
        results.append(w.numpy())
    np.testing.assert_allclose(results[0], results[1], rtol=1e-6)


def test_decoupled_decay_only_on_kernels():
    kernel = keras.Variable(np.ones((2, 2), np.float32), name="kernel")
    bias = keras.Variable(np.ones(2, np.float32), name="bias")
    opt = optimizers.create_optimizer("sgd", 0.5, weight_decay=0.1)
    optimizers.exclude_from_weight_decay(opt, [kernel, bias])
    opt.build([kernel, bias])
    opt.apply([tf.zeros((2, 2)), tf.zeros(2)])
    np.testing.assert_allclose(kernel.numpy(), 1 - 0.5 * 0.1)  # w -= lr * wd * w
    np.testing.assert_allclose(bias.numpy(), 1.0)


def test_bad_optimizer_arguments():
    with pytest.raises(ValueError, match="--optimizer=rmsprop is not one of"):
        optimizers.create_optimizer("rmsprop", 0.1)
    with pytest.raises(ValueError, match="weight_decay=-1"):
        optimizers.create_optimizer("sgd", 0.1, weight_decay=-1)


def test_loss_scale_halves_on_skips_and_doubles_after_growth_steps():
    scale = optimizers.DynamicLossScale(initial_scale=8.0, growth_steps=3)
    scale.after_skipped_step()
    assert float(scale.scale.numpy()) == 4.0
    for _ in range(2):
        scale.after_finite_step()
    assert float(scale.scale.numpy()) == 4.0
    scale.after_finite_step()
    assert float(scale.scale.numpy()) == 8.0 and int(scale.good_steps.numpy()) == 0
    for _ in range(10):
        scale.after_skipped_step()
    assert float(scale.scale.numpy()) == 1.0  # never below 1
