"""TrainStep's in-graph training metrics against NumPy on the weights each step saw.

The metrics are accumulated per example inside the loop and summed once per loop; these tests
recompute them from the model's outputs before each step (cross-entropy, center loss,
accuracy) and the weights after the loop (regularization), and check that features which are
off report nothing.
"""
import numpy as np
import pytest

BATCH, CLASSES, SHAPE, STEPS = 16, 10, (8, 8, 1), 3
WEIGHT_DECAY, CENTER_WEIGHT = 1e-2, 0.1


def _step(**options):
    import tensorflow as tf

    from tfmodels import data
    from tfmodels.training import TrainConfig
    from tfmodels.training.parts import build_training
    from tfmodels.training.step import TrainStep

    rng = np.random.default_rng(0)
    images = rng.standard_normal((STEPS * BATCH, *SHAPE)).astype(np.float32)
    labels = rng.integers(0, CLASSES, STEPS * BATCH).astype(np.int32)
    info = data.DatasetInfo(name="test", image_shape=SHAPE, num_classes=CLASSES,
                            splits={"train": STEPS * BATCH})
    config = TrainConfig(**dict(dict(
        model_dir="unused", model="two_layer_net", global_batch_size=BATCH, train_steps=STEPS,
        lr_schedule="constant", learning_rate=0.5, label_smoothing=0.0), **options))
    strategy = tf.distribute.get_strategy()
    resolved = config.resolve(info, 1)
    parts = build_training(resolved, strategy)
    dataset = tf.data.Dataset.from_tensor_slices({"image": images, "label": labels})
    step = TrainStep(strategy, parts, iter(dataset.batch(BATCH)), resolved)
    return step, parts, images.reshape(STEPS, BATCH, *SHAPE), labels.reshape(STEPS, BATCH)


def _reference(parts, images, labels):
    """NumPy metrics of one step from the model's outputs and centers before it."""
    outputs = parts.model(images, training=False)
    logits = outputs["logits"].numpy().astype(np.float64)
    shifted = logits - logits.max(1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(1, keepdims=True))
    cross_entropy = -log_probs[np.arange(len(labels)), labels]
    metrics = {"data_loss": cross_entropy.mean(),
               "accuracy": np.mean(logits.argmax(1) == labels)}
    per_example = cross_entropy
    if parts.center_loss is not None:
        centers = parts.center_loss.centers.numpy().astype(np.float64)
        embedding = outputs["embedding"].numpy().astype(np.float64)
        center = 0.5 * ((embedding - centers[labels]) ** 2).sum(1)
        metrics["center_loss"] = center.mean()
        per_example = per_example + CENTER_WEIGHT * center
    metrics["example_loss"] = per_example.mean()
    return metrics


def _l2(parts):
    """slim's weight decay: wd * sum(w**2) / 2 over the two-layer net's weight matrices."""
    return sum(WEIGHT_DECAY * 0.5 * (v.numpy().astype(np.float64) ** 2).sum()
               for v in parts.model.trainable_variables if v.path.endswith("kernel"))


def test_metrics_equal_numpy_step_by_step():
    import tensorflow as tf

    step, parts, images, labels = _step(weight_decay=WEIGHT_DECAY,
                                        center_loss_weight=CENTER_WEIGHT)
    one = tf.constant(1, tf.int64)
    for i in range(STEPS):
        expected = _reference(parts, images[i], labels[i])
        results = step.metrics.results(step.loop(one), BATCH)
        regularization = _l2(parts)  # of the weights after the step
        assert set(results) == {"loss", "data_loss", "center_loss", "accuracy",
                                "regularization"}
        np.testing.assert_allclose(results["regularization"], regularization, rtol=1e-5)
        np.testing.assert_allclose(results["loss"], expected["example_loss"] + regularization,
                                   rtol=1e-5)
        for name in ("data_loss", "center_loss", "accuracy"):
            np.testing.assert_allclose(results[name], expected[name], rtol=1e-5, atol=1e-7,
                                       err_msg=f"{name} at step {i}")
    assert int(parts.step_counter.numpy()) == STEPS


def test_a_loop_reports_the_mean_over_its_steps():
    """One loop of 3 steps == the mean of 3 one-step references (fresh, identical parts)."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(3)
    step, parts, images, labels = _step(weight_decay=WEIGHT_DECAY)
    expected = []
    for i in range(STEPS):  # a twin run, one step per loop, to know each step's weights
        expected.append(_reference(parts, images[i], labels[i]))
        step.loop(tf.constant(1, tf.int64))
    keras.utils.set_random_seed(3)
    step, parts, _, _ = _step(weight_decay=WEIGHT_DECAY)
    results = step.metrics.results(step.loop(tf.constant(STEPS, tf.int64)), STEPS * BATCH)
    mean = {k: np.mean([e[k] for e in expected]) for k in expected[0]}
    np.testing.assert_allclose(results["loss"], mean["example_loss"] + _l2(parts), rtol=1e-5)
    np.testing.assert_allclose(results["data_loss"], mean["data_loss"], rtol=1e-5)
    np.testing.assert_allclose(results["accuracy"], mean["accuracy"], atol=1e-7)
    assert int(parts.step_counter.numpy()) == STEPS


@pytest.mark.parametrize("options, absent", [
    (dict(weight_decay=0.0), {"center_loss", "regularization"}),
    (dict(weight_decay=0.0, center_loss_weight=CENTER_WEIGHT), {"regularization"}),
])
def test_features_that_are_off_report_nothing(options, absent):
    import tensorflow as tf

    step, parts, images, labels = _step(**options)
    expected = _reference(parts, images[0], labels[0])
    results = step.metrics.results(step.loop(tf.constant(1, tf.int64)), BATCH)
    assert not absent & set(results)
    assert {"loss", "data_loss", "accuracy"} <= set(results)
    np.testing.assert_allclose(results["loss"], expected["example_loss"], rtol=1e-5)
