"""CenterLoss against a NumPy implementation of Wen et al. 2016, Algorithm 1."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from tests import replicas
from tfmodels.layers import CenterLoss


def np_center_update(centers, features, labels, alpha):
    """The paper's rule with a Python loop over classes (independent of the vectorised code)."""
    new = centers.copy()
    for j in range(centers.shape[0]):
        members = features[labels == j]
        delta = (centers[j] - members).sum(axis=0) / (1.0 + len(members))
        new[j] = centers[j] - alpha * delta
    return new


def np_algorithm_1(x, y, w_feat, w_cls, lam, alpha, lr, steps, batch):
    """Joint supervision on a linear net: f = x W, logits = f V; SGD on mean(CE + lam*Lc)."""
    w_feat, w_cls = w_feat.astype(np.float64), w_cls.astype(np.float64)
    centers = np.zeros((w_cls.shape[1], w_feat.shape[1]))
    for t in range(steps):
        xb, yb = x[t * batch:(t + 1) * batch], y[t * batch:(t + 1) * batch]
        f = xb @ w_feat
        logits = f @ w_cls
        p = np.exp(logits - logits.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        d_logits = (p - np.eye(w_cls.shape[1])[yb]) / batch
        d_f = d_logits @ w_cls.T + lam * (f - centers[yb]) / batch
        grad_cls, grad_feat = f.T @ d_logits, xb.T @ d_f
        centers = np_center_update(centers, f, yb, alpha)   # uses c^t and this step's x_i
        w_feat, w_cls = w_feat - lr * grad_feat, w_cls - lr * grad_cls
    return w_feat, w_cls, centers


@pytest.mark.parametrize("compiled", [False, True])
def test_joint_training_matches_algorithm_1(rng, compiled):
    """Several SGD steps of softmax + lam * center loss; the update really runs in tf.function."""
    num_classes, dim, batch, steps, lam, alpha, lr = 4, 3, 12, 5, 0.3, 0.5, 0.2
    x = rng.standard_normal((batch * steps, 6)).astype(np.float32)
    y = rng.integers(0, num_classes, batch * steps)
    y[:batch] = 1  # one class absent, one crowded in the first step
    w_feat0 = rng.standard_normal((6, dim)).astype(np.float32)
    w_cls0 = rng.standard_normal((dim, num_classes)).astype(np.float32)

    w_feat, w_cls = tf.Variable(w_feat0), tf.Variable(w_cls0)
    layer = CenterLoss(num_classes, dim, alpha=alpha)

    def step(xb, yb):
        with tf.GradientTape() as tape:
            f = xb @ w_feat
            ce = tf.nn.sparse_softmax_cross_entropy_with_logits(yb, f @ w_cls)
            loss = tf.reduce_mean(ce + lam * layer(f, yb, training=True))
        grads = tape.gradient(loss, [w_feat, w_cls])
        w_feat.assign_sub(lr * grads[0])
        w_cls.assign_sub(lr * grads[1])

    step_fn = tf.function(step) if compiled else step
    for t in range(steps):
        step_fn(tf.constant(x[t * batch:(t + 1) * batch]), tf.constant(y[t * batch:(t + 1) * batch]))

    ref_feat, ref_cls, ref_centers = np_algorithm_1(x, y, w_feat0, w_cls0, lam, alpha, lr, steps,
                                                    batch)
    np.testing.assert_allclose(layer.centers.numpy(), ref_centers, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(w_feat.numpy(), ref_feat, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(w_cls.numpy(), ref_cls, rtol=1e-5, atol=1e-6)
    assert np.abs(ref_centers).max() > 0.1  # the centers did move


def test_loss_gradient_and_no_update_when_not_training(rng):
    layer = CenterLoss(5, 3, alpha=0.5)
    layer.centers.assign(rng.standard_normal((5, 3)).astype(np.float32))
    before = layer.centers.numpy()
    x = tf.constant(rng.standard_normal((7, 3)).astype(np.float32))
    labels = np.array([0, 4, 4, 2, 0, 1, 3])
    upstream = rng.standard_normal(7).astype(np.float32)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        loss = layer(x, labels, training=False)
    np.testing.assert_allclose(loss.numpy(), 0.5 * ((x.numpy() - before[labels]) ** 2).sum(1),
                               rtol=1e-6)
    grad = tape.gradient(loss, x, output_gradients=tf.constant(upstream))
    np.testing.assert_allclose(grad.numpy(), upstream[:, None] * (x.numpy() - before[labels]),
                               rtol=1e-5, atol=1e-6)
    assert tape.gradient(loss, layer.centers) is None  # centers get no gradient
    assert layer.trainable_weights == []
    np.testing.assert_array_equal(layer.centers.numpy(), before)


def test_alpha_one_moves_a_lone_example_halfway():
    """n_j = 1: c <- c - (c - x) / 2, the paper's damping for small classes."""
    layer = CenterLoss(2, 2, alpha=1.0)
    layer(tf.constant([[2.0, -4.0]]), tf.constant([1]), training=True)
    np.testing.assert_allclose(layer.centers.numpy(), [[0, 0], [1.0, -2.0]])


@pytest.mark.parametrize("labels", [[0, 3], [-1, 0]])
@pytest.mark.parametrize("compiled", [False, True])
def test_labels_out_of_range(labels, compiled):
    layer = CenterLoss(3, 2)
    call = tf.function(layer.__call__) if compiled else layer.__call__
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"labels must be in \[0, 3\)"):
        call(tf.ones((2, 2)), tf.constant(labels), training=True)
    np.testing.assert_array_equal(layer.centers.numpy(), np.zeros((3, 2)))


@pytest.mark.parametrize("kwargs, match", [
    ({"num_classes": 0, "feature_dim": 2}, "num_classes=0"),
    ({"num_classes": 3, "feature_dim": 2.5}, "feature_dim=2.5"),
    ({"num_classes": 3, "feature_dim": 2, "alpha": 1.5}, "alpha=1.5"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        CenterLoss(**kwargs)


def test_feature_dim_mismatch():
    with pytest.raises(ValueError, match=r"feature_dim=2.*shape \(4, 3\).*must be 2"):
        CenterLoss(3, 2)(tf.ones((4, 3)), tf.zeros(4, tf.int32))


def test_config_round_trip_and_mixed_precision():
    layer = CenterLoss(7, 2, alpha=0.25, name="centers_head")
    clone = CenterLoss.from_config(layer.get_config())
    assert (clone.num_classes, clone.feature_dim, clone.alpha, clone.name) == (7, 2, 0.25,
                                                                               "centers_head")
    mixed = CenterLoss(3, 2, dtype="mixed_float16")
    out = mixed(tf.constant([[1.0, 2.0]], tf.float16), tf.constant([2]), training=True)
    assert out.dtype == tf.float32 and mixed.centers.dtype == "float32"


def test_inside_a_keras_model_fit(rng):
    """Functional model with [features, labels] inputs: fit() runs the center update."""
    features_in = keras.Input((4,))
    labels_in = keras.Input((), dtype="int32")
    embedding = keras.layers.Dense(2, name="embed")(features_in)
    head = CenterLoss(3, 2, alpha=0.5, name="center_loss")
    model = keras.Model([features_in, labels_in], head(embedding, labels_in))
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss=lambda _, per_example: per_example)
    x = rng.standard_normal((8, 4)).astype(np.float32)
    y = np.array([0, 1, 2, 0, 1, 2, 0, 1])
    dense = model.get_layer("embed")
    expected = np_center_update(np.zeros((3, 2)), x @ dense.kernel.numpy() + dense.bias.numpy(),
                                y, 0.5)
    model.fit([x, y], np.zeros(8), batch_size=8, epochs=1, verbose=0, shuffle=False)
    np.testing.assert_allclose(head.centers.numpy(), expected, rtol=1e-5, atol=1e-6)


# --- exactness under MirroredStrategy ------------------------------------------------------

GLOBAL_BATCH, NUM_CLASSES, DIM, STEPS, ALPHA = 16, 5, 3, 4, 0.5


def _center_data():
    rng = np.random.default_rng(42)
    features = rng.standard_normal((STEPS, GLOBAL_BATCH, DIM)).astype(np.float32)
    labels = rng.integers(0, NUM_CLASSES - 1, (STEPS, GLOBAL_BATCH))  # class 4 never seen
    labels[0, :6] = 2  # a crowded class, spread over several replicas
    return features, labels


@replicas.scenario(1, 2, 4)
def center_updates_on_split_batches(strategy):
    features, labels = _center_data()
    with strategy.scope():
        layer = CenterLoss(NUM_CLASSES, DIM, alpha=ALPHA)
    dataset = tf.data.Dataset.from_tensor_slices((features, labels)).unbatch().batch(GLOBAL_BATCH)

    @tf.function
    def step(batch):
        return strategy.run(lambda x, y: layer(x, y, training=True), args=batch)

    losses = []
    for batch in strategy.experimental_distribute_dataset(dataset):
        losses.append(tf.concat(strategy.experimental_local_results(step(batch)), 0).numpy())
    copies = [v.numpy() for v in strategy.experimental_local_results(layer.centers)]
    return {"centers": copies[0], "copies": np.stack(copies), "losses": np.stack(losses)}


def test_replicas_move_centers_exactly_as_one_device(replica_runner):
    features, labels = _center_data()
    centers, expected_losses = np.zeros((NUM_CLASSES, DIM)), []
    for t in range(STEPS):
        expected_losses.append(0.5 * ((features[t] - centers[labels[t]]) ** 2).sum(1))
        centers = np_center_update(centers, features[t], labels[t], ALPHA)

    for n in (1, 2, 4):
        result = replica_runner.run(center_updates_on_split_batches, n)
        np.testing.assert_allclose(result["centers"], centers, rtol=1e-6, atol=1e-6,
                                   err_msg=f"{n} replicas vs NumPy")
        np.testing.assert_allclose(result["losses"], np.stack(expected_losses), rtol=1e-6,
                                   atol=1e-6, err_msg=f"{n} replicas: per-example losses")
        for copy in result["copies"]:  # every replica holds the same centers
            np.testing.assert_array_equal(copy, result["centers"])
    np.testing.assert_allclose(centers[NUM_CLASSES - 1], 0.0)  # an unseen class stays put
