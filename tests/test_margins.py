"""Margin softmax: the target logit against a NumPy reference at chosen angles (the ArcFace
boundary theta + m2 > pi included), the option checks, and one training step's loss against
NumPy under float32 and mixed precision."""
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfmodels import data
from tfmodels.options import UsageError
from tfmodels.training import TrainConfig, margins
from tfmodels.training.parts import build_training
from tfmodels.training.step import TrainStep

# Angles in radians from 0 to pi: below, at and beyond pi - m2 for m2 = 0.5 (2.6416).
ANGLES = np.array([0.0, 0.1, 0.7, 1.5, 2.0, 2.6, 2.64, 2.66, 2.9, 3.1, math.pi])


def _reference_target(theta, s, m1, m2, m3, easy_margin=False):
    """InsightFace's target logit, written from its definition with angles (float64)."""
    cos = np.cos(theta)
    if m1 == 1 and m2 == 0:
        return s * (cos - m3)
    if m1 != 1:
        return s * (np.cos(m1 * theta + m2) - m3)
    arc = np.cos(theta + m2)
    if easy_margin:
        target = np.where(cos > 0, arc, cos)
    else:  # beyond theta + m2 = pi: cos(theta) - m2 sin(m2), not the rising cos(theta + m2)
        target = np.where(theta + m2 < math.pi, arc, cos - m2 * np.sin(m2))
    return s * (target - m3)


@pytest.mark.parametrize("name, values, easy", [
    ("arcface", dict(), False),
    ("arcface", dict(scale=8.0, m2=0.3), False),
    ("arcface", dict(), True),
    ("cosface", dict(), False),
    ("combined", dict(), False),
    ("combined", dict(scale=30.0, m1=1.35, m2=0.25, m3=0.1), False),
])
def test_target_logit_is_insightfaces(name, values, easy):
    margin = margins.make_margin(name, **values, easy_margin=easy)
    s, m1, m2, m3 = margin.scale, margin.m1, margin.m2, margin.m3
    # Two classes per row: the target (column 0 or 1 by row) at each angle, the other at 1.0.
    cos = np.stack([np.cos(ANGLES), np.full_like(ANGLES, np.cos(1.0))], 1)
    labels = np.arange(len(ANGLES)) % 2
    cos[labels == 1] = cos[labels == 1][:, ::-1]
    logits = margin.logits(tf.constant(cos, tf.float32), tf.constant(labels)).numpy()
    target = logits[np.arange(len(ANGLES)), labels]
    other = logits[np.arange(len(ANGLES)), 1 - labels]
    # Near theta = 0 and pi the cosine is clipped to 1 - 1e-6: an angle error of ~1.4e-3 rad.
    np.testing.assert_allclose(target, _reference_target(ANGLES, s, m1, m2, m3, easy),
                               rtol=0, atol=s * 2e-3)
    inner = (ANGLES > 0.05) & (ANGLES < 3.09)
    np.testing.assert_allclose(target[inner],
                               _reference_target(ANGLES, s, m1, m2, m3, easy)[inner],
                               rtol=0, atol=s * 1e-5)
    np.testing.assert_allclose(other, s * np.cos(1.0), rtol=1e-6)
    assert logits.dtype == np.float32


def test_arcface_boundary_follows_insightface_constants():
    """Past theta = pi - m the target is cos - sin(pi - m) m (th = cos(pi - m)), as
    arcface_torch's CombinedMarginLoss: strictly below its value inside the boundary."""
    margin = margins.make_margin("arcface")  # s = 64, m = 0.5
    m = 0.5
    th, mm = math.cos(math.pi - m), math.sin(math.pi - m) * m
    cos = tf.constant([th + 1e-4, th - 1e-4, -0.99], tf.float32)
    target = margin.target(cos).numpy()
    np.testing.assert_allclose(target[0], math.cos(math.acos(th + 1e-4) + m), atol=1e-4)
    np.testing.assert_allclose(target[1:], cos.numpy()[1:] - mm, atol=1e-6)


def test_gradients_are_finite_at_the_poles():
    margin = margins.make_margin("arcface")
    cos = tf.constant([[1.0, -1.0], [-1.0, 1.0], [1.0000001, 0.0]], tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(cos)
        logits = margin.logits(cos, tf.constant([0, 0, 0]))
    grad = tape.gradient(logits, cos).numpy()
    assert np.all(np.isfinite(grad))


def test_cosines_are_float32_for_half_inputs(rng):
    x = rng.standard_normal((5, 3)).astype(np.float32)
    w = rng.standard_normal((3, 4)).astype(np.float32)
    got = margins.cosines(tf.constant(x, tf.float16), tf.constant(w))
    expected = (x / np.linalg.norm(x, axis=1, keepdims=True)) @ (
        w / np.linalg.norm(w, axis=0, keepdims=True))
    assert got.dtype == tf.float32
    np.testing.assert_allclose(got.numpy(), expected, atol=2e-3)


@pytest.mark.parametrize("options, message, flag", [
    (dict(margin="arc"), "--margin=arc is not one of: none, arcface, cosface, combined",
     "margin"),
    (dict(margin="arcface", margin_m3=0.1), "--margin_m3=0.1 does not apply to --margin=arcface",
     "margin_m3"),
    (dict(margin="cosface", margin_m2=0.2), "--margin_m2=0.2 does not apply to --margin=cosface",
     "margin_m2"),
    (dict(margin="none", margin_scale=30.0), "--margin_scale=30.0 apply to a margin, but",
     "margin"),
    (dict(margin="combined", margin_m1=0.5), "--margin_m1=0.5 must be >= 1", "margin_m1"),
    (dict(margin="arcface", margin_m2=3.5), "--margin_m2=3.5 must be in [0, pi)", "margin_m2"),
    (dict(margin="arcface", margin_scale=-1.0), "--margin_scale=-1 must be > 0", "margin_scale"),
    (dict(margin="cosface", easy_margin=True), "--easy_margin applies to an additive",
     "easy_margin"),
    (dict(margin="arcface", head="sampled_softmax", label_smoothing=0.0),
     "--head=sampled_softmax", "margin"),
    (dict(margin="cosface", loss="hinge", label_smoothing=0.0), "--loss=hinge: --margin=",
     "loss"),
])
def test_bad_margin_options_are_named(options, message, flag):
    with pytest.raises(UsageError) as err:
        TrainConfig(**options).validate()
    assert message in str(err.value)
    assert err.value.option == flag


def test_margin_needs_a_class_matrix():
    info = data.DatasetInfo(name="t", image_shape=(28, 28, 1), num_classes=10,
                            splits={"train": 64})
    config = TrainConfig(model="lenet", margin="arcface", model_dir="unused", train_steps=1)
    strategy = tf.distribute.get_strategy()
    with pytest.raises(ValueError, match="--margin=arcface needs the logits to be embedding"):
        build_training(config.resolve(info, 1), strategy)


@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16"])
@pytest.mark.parametrize("head", ["softmax", "partial_fc"])
def test_step_loss_is_the_margin_cross_entropy(rng, policy, head):
    """One step's data loss equals NumPy's cross-entropy of s*cos with ArcFace's margin, the
    class matrix's kernel and the body moved, its bias (unused) not."""
    batch, classes = 8, 6
    info = data.DatasetInfo(name="t", image_shape=(8, 8, 1), num_classes=classes,
                            splits={"train": batch})
    config = TrainConfig(model="two_layer_net", margin="arcface", margin_scale=16.0,
                         label_smoothing=0.0, weight_decay=0.0, head=head, sample_rate=1.0,
                         global_batch_size=batch, train_steps=1, lr_schedule="constant",
                         model_dir="unused")
    config.validate()
    keras.mixed_precision.set_dtype_policy(policy)
    try:
        strategy = tf.distribute.get_strategy()
        resolved = config.resolve(info, 1)
        parts = build_training(resolved, strategy)
        images = rng.standard_normal((batch, 8, 8, 1)).astype(np.float32)
        labels = rng.integers(0, classes, batch).astype(np.int32)
        embedding = parts.model(images)["embedding"].numpy().astype(np.float64)
        kernel = parts.class_kernel.numpy().astype(np.float64)
        before = {v.path: v.numpy().copy() for v in parts.model.trainable_weights}
        iterator = iter(tf.data.Dataset.from_tensor_slices(
            {"image": images, "label": labels}).batch(batch).repeat())
        step = TrainStep(strategy, parts, iterator, resolved)
        results = step.metrics.results(step.loop(tf.constant(1, tf.int64)), batch)
    finally:
        keras.mixed_precision.set_dtype_policy("float32")
    cos = (embedding / np.linalg.norm(embedding, axis=1, keepdims=True)) @ (
        kernel / np.linalg.norm(kernel, axis=0, keepdims=True))
    theta = np.arccos(np.clip(cos[np.arange(batch), labels], -1, 1))
    logits = 16.0 * cos
    logits[np.arange(batch), labels] = _reference_target(theta, 16.0, 1.0, 0.5, 0.0)
    log_p = logits - logits.max(1, keepdims=True)
    log_p -= np.log(np.exp(log_p).sum(1, keepdims=True))
    expected = -log_p[np.arange(batch), labels].mean()
    tolerance = 1e-4 if policy == "float32" else 5e-2 * 16.0
    np.testing.assert_allclose(results["data_loss"], expected, rtol=0, atol=tolerance)
    if policy == "float32":  # bfloat16 cosines may swap near-ties
        np.testing.assert_allclose(results["accuracy"],
                                   np.mean(cos.argmax(1) == labels), atol=1e-6)
    for v in parts.model.trainable_weights:
        moved = np.abs(v.numpy() - before[v.path]).max()
        if v.path.endswith("logits/bias"):
            assert moved == 0, v.path
        else:
            assert moved > 0, v.path
