"""Per-example losses against NumPy, CS231n's naive loops, and tf-slim's own regularizer."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from tfmodels import losses
from tfmodels.slim import regularizers


def np_cross_entropy(labels, logits, smoothing=0.0):
    logits = logits.astype(np.float64)
    k = logits.shape[1]
    log_p = logits - logits.max(1, keepdims=True)
    log_p -= np.log(np.exp(log_p).sum(1, keepdims=True))
    q = np.eye(k)[labels] * (1 - smoothing) + smoothing / k
    return -(q * log_p).sum(1)


def svm_loss_naive(scores, labels, delta=1.0):
    """CS231n assignment 1, the loop version: loss and d loss / d scores per example."""
    n, k = scores.shape
    loss, grad = np.zeros(n), np.zeros((n, k))
    for i in range(n):
        for j in range(k):
            if j == labels[i]:
                continue
            margin = scores[i, j] - scores[i, labels[i]] + delta
            if margin > 0:
                loss[i] += margin
                grad[i, j] += 1
                grad[i, labels[i]] -= 1
    return loss, grad


@pytest.mark.parametrize("smoothing", [0.0, 0.1, 1.0])
def test_cross_entropy(rng, smoothing):
    logits = (rng.standard_normal((9, 7)) * 5).astype(np.float32)
    labels = rng.integers(0, 7, 9)
    expected = np_cross_entropy(labels, logits, smoothing)
    sparse = losses.sparse_softmax_cross_entropy(labels, logits, label_smoothing=smoothing)
    dense = losses.softmax_cross_entropy(np.eye(7)[labels], logits, label_smoothing=smoothing)
    assert sparse.shape == (9,)  # per example: the trainer averages over the global batch
    # atol: float32 log-sum-exp minus the true logit cancels to ~eps * |logits| near zero loss
    np.testing.assert_allclose(sparse.numpy(), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(dense.numpy(), expected, rtol=1e-5, atol=1e-6)


def test_cross_entropy_gradient_closed_form(rng):
    """d CE / d logits = softmax - q."""
    logits = tf.constant(rng.standard_normal((5, 4)))
    labels = rng.integers(0, 4, 5)
    with tf.GradientTape() as tape:
        tape.watch(logits)
        loss = losses.sparse_softmax_cross_entropy(labels, logits, label_smoothing=0.2)
    p = np.exp(logits.numpy())
    p /= p.sum(1, keepdims=True)
    q = np.eye(4)[labels] * 0.8 + 0.2 / 4
    np.testing.assert_allclose(tape.gradient(loss, logits).numpy(), p - q, rtol=1e-10)


def test_cross_entropy_extreme_logits():
    logits = np.array([[1e8, 0.0, -1e8], [-1e9, -1e9 + 1, -1e9]], np.float32)
    got = losses.softmax_cross_entropy(np.eye(3)[[0, 1]], logits, label_smoothing=0.1).numpy()
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got[1], np_cross_entropy(np.array([1]), logits[1:] + 1e9, 0.1),
                               rtol=1e-5)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_low_precision_logits_give_float32_losses(rng, dtype):
    logits = tf.cast(rng.standard_normal((6, 10)) * 3, dtype)
    labels = rng.integers(0, 10, 6)
    for fn in (losses.sparse_softmax_cross_entropy, losses.multiclass_hinge):
        out = fn(labels, logits)
        assert out.dtype == tf.float32
    np.testing.assert_allclose(
        losses.sparse_softmax_cross_entropy(labels, logits).numpy(),
        np_cross_entropy(labels, tf.cast(logits, tf.float32).numpy()), rtol=1e-5)


@pytest.mark.parametrize("delta", [1.0, 0.0, 2.5])
def test_multiclass_hinge_matches_cs231n_loops(rng, delta):
    scores = rng.standard_normal((20, 6)).round(1)  # rounding creates exact ties at margin 0
    labels = rng.integers(0, 6, 20)
    expected_loss, expected_grad = svm_loss_naive(scores, labels, delta)
    s = tf.constant(scores)
    with tf.GradientTape() as tape:
        tape.watch(s)
        loss = losses.multiclass_hinge(labels, s, delta=delta)
    np.testing.assert_allclose(loss.numpy(), expected_loss, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(tape.gradient(loss, s).numpy(), expected_grad, atol=1e-12)


def test_l2_regularizer_matches_tf_slim(rng):
    import tf_slim

    w = rng.standard_normal((3, 3, 4, 8)).astype(np.float32)
    ours = regularizers.l2_regularizer(4e-4)(tf.constant(w))
    np.testing.assert_allclose(ours.numpy(), 4e-4 * (w.astype(np.float64) ** 2).sum() / 2,
                               rtol=1e-6)
    with tf.Graph().as_default():
        slim_value = tf_slim.l2_regularizer(4e-4)(tf.constant(w))
        with tf.compat.v1.Session() as sess:
            np.testing.assert_allclose(ours.numpy(), sess.run(slim_value), rtol=1e-6)


def test_l2_regularizer_serialization_and_zero():
    assert regularizers.l2_regularizer(0.0) is None
    reg = regularizers.l2_regularizer(1e-3)
    restored = keras.regularizers.deserialize(keras.regularizers.serialize(reg))
    assert isinstance(restored, regularizers.L2WeightDecay) and restored.weight_decay == 1e-3


@pytest.mark.parametrize("call, match", [
    (lambda: regularizers.l2_regularizer(-1.0), "weight_decay=-1.0"),
    (lambda: losses.sparse_softmax_cross_entropy([0], [[1.0, 2.0]], 1.5), "label_smoothing=1.5"),
    (lambda: losses.multiclass_hinge([0], [[1.0, 2.0]], delta=-1), "delta=-1"),
])
def test_bad_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()
