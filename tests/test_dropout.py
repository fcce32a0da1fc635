"""Dropout: inverted scaling, modes, and the same mask per example on 1, 2 or 4 replicas."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from tests import replicas
from tfmodels.layers.dropout import Dropout


def test_inverted_scaling_and_rate(rng):
    x = rng.standard_normal((200, 50)).astype(np.float32)
    y = Dropout(0.3, seed=1)(x, training=True).numpy()
    kept = y != 0
    np.testing.assert_allclose(y[kept], x[kept] / 0.7, rtol=1e-6)
    assert abs(kept.mean() - 0.7) < 0.02  # 10,000 Bernoulli draws: std 0.0046
    np.testing.assert_array_equal(Dropout(0.3)(x, training=False).numpy(), x)


def test_masks_change_per_call_and_follow_the_seed():
    x = np.ones((4, 16), np.float32)
    a, b = Dropout(0.5, seed=7), Dropout(0.5, seed=7)
    first, second = a(x, training=True).numpy(), a(x, training=True).numpy()
    assert not np.array_equal(first, second)
    np.testing.assert_array_equal(b(x, training=True).numpy(), first)


def test_pinned_mode_and_noise_shape():
    x = np.ones((6, 5), np.float32)
    assert np.any(Dropout(0.5, is_training=True, seed=3)(x, training=False).numpy() == 0)
    shared = Dropout(0.5, noise_shape=(1, None), seed=3)(x, training=True).numpy()
    np.testing.assert_array_equal(shared, np.broadcast_to(shared[:1], shared.shape))


def test_config_round_trip_and_bad_rate():
    layer = Dropout(0.25, noise_shape=(None, 1), seed=5, is_training=True, name="d")
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert (clone.rate, clone.noise_shape, clone.seed, clone.is_training) == (0.25, (None, 1), 5,
                                                                               True)
    with pytest.raises(ValueError, match=r"rate=1.0 must be in \[0, 1\)"):
        Dropout(1.0)


GLOBAL_BATCH, STEPS = 8, 3


@replicas.scenario(1, 2, 4)
def dropout_masks(strategy):
    with strategy.scope():
        layer = Dropout(0.5, seed=11)
    data = tf.data.Dataset.from_tensors(np.ones((GLOBAL_BATCH, 6), np.float32)).repeat(STEPS)
    masks = []
    for batch in strategy.experimental_distribute_dataset(data):
        out = tf.function(lambda b: strategy.run(lambda x: layer(x, training=True), (b,)))(batch)
        masks.append(tf.concat(strategy.experimental_local_results(out), 0).numpy())
    return {"masks": np.stack(masks)}


def test_every_example_gets_the_same_mask_on_any_number_of_replicas(replica_runner):
    one = replica_runner.run(dropout_masks, 1)["masks"]
    assert not np.array_equal(one[0, :4], one[0, 4:])  # rows differ within a batch
    assert not np.array_equal(one[0], one[1])          # and from step to step
    for n in (2, 4):
        np.testing.assert_array_equal(replica_runner.run(dropout_masks, n)["masks"], one)
