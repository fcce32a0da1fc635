"""ViT nets and the Transformer block builders: closed-form parameter counts, patch sizes, the
forward pass against a NumPy ViT, arg_scope reaching the attention, dropout modes, and training
with attention dropout on 1, 2 and 4 replicas equal to one device.

(Variable paths, end points, gradients, mixed precision and `.keras` files: tests/test_nets.py.)
"""
import dataclasses
import functools

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy.special import erf

from tests import replicas
from tfmodels import nets
from tfmodels.slim import scopes
from tfmodels.nets import transformer, vit

SIZES = {"vit_tiny": (64, 4, 4, 256), "vit_small": (192, 6, 3, 768)}  # d, blocks, heads, MLP


def closed_form(image_shape, patch, width, depth, mlp_dim, num_classes):
    height, image_width, channels = image_shape
    tokens = (height // patch) * (image_width // patch)
    block = (4 * width * width + 4 * width  # attention: 4 kernels d x d and 4 biases
             + 2 * width * mlp_dim + mlp_dim + width  # MLP
             + 4 * width)  # two layer norms
    return (patch * patch * channels * width + width  # patch embedding
            + width + (tokens + 1) * width  # class token, positions
            + depth * block + 2 * width  # blocks, final norm
            + width * num_classes + num_classes)  # classifier


@pytest.mark.parametrize("shape, patch", [((8, 8, 1), 2), ((28, 28, 1), 4), ((32, 32, 3), 4),
                                          ((16, 16, 3), 2)])
@pytest.mark.parametrize("name", sorted(SIZES))
def test_parameter_count_is_the_closed_form(name, shape, patch):
    width, depth, _, mlp_dim = SIZES[name]
    model = nets.build_model(name, num_classes=7, input_shape=shape)
    assert model.count_params() == closed_form(shape, patch, width, depth, mlp_dim, 7)
    assert model.get_layer("posembed").weights[0].shape == ((shape[0] // patch) ** 2 + 1, width)


def test_patch_size_follows_the_image_size():
    assert [vit.default_patch_size(s) for s in (2, 8, 16, 17, 28, 32, 64, 65, 224)] == [
        2, 2, 2, 4, 4, 4, 4, 16, 16]
    model = nets.build_model("vit_tiny", 10, (30, 30, 3), patch_size=5)
    assert model.output["embedding"].shape == (None, 64)
    assert model.get_layer("posembed").weights[0].shape == (37, 64)


@pytest.mark.parametrize("shape, kwargs, match", [
    ((30, 30, 3), {}, r"vit_tiny: patch_size=4 does not divide the image size 30x30"),
    ((9, 9, 1), {}, r"patch_size=2 does not divide the image size 9x9"),
    ((8, 12, 1), dict(patch_size=3), r"patch_size=3 does not divide the image size 8x12"),
    ((1, 1, 1), {}, r"vit_tiny needs height and width >= 2"),
    ((8, 8, 1), dict(patch_size=0), r"vit_tiny: patch_size=0 must be an int >= 1"),
])
def test_sizes_the_patch_does_not_divide_are_refused(shape, kwargs, match):
    with pytest.raises(ValueError, match=match):
        nets.build_model("vit_tiny", 10, shape, **kwargs)


def test_width_must_split_into_heads():
    with pytest.raises(ValueError, match=r"width=30 is not divisible by num_heads=4"):
        vit.vit(keras.Input((8, 8, 1)), 10, width=30, num_heads=4)


# ---------------------------------------------------------------- the forward pass in NumPy


def _layer_norm(x, gamma, beta, epsilon=1e-6):
    mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + epsilon) * gamma + beta


def _np_vit(images, w, depth, patch, heads):
    """Dosovitskiy et al.'s ViT in float64 NumPy from the model's weights (`w`: path -> array)."""
    n, height, width, channels = images.shape
    grid = (height // patch, width // patch)
    patches = images.reshape(n, grid[0], patch, grid[1], patch, channels).transpose(
        0, 1, 3, 2, 4, 5).reshape(n, grid[0] * grid[1], patch * patch * channels)
    kernel = w["embedding/kernel"].reshape(-1, w["embedding/kernel"].shape[-1])
    x = patches @ kernel + w["embedding/bias"]
    x = np.concatenate([np.broadcast_to(w["cls/token"], (n, 1, x.shape[-1])), x], axis=1)
    x = x + w["posembed/embedding"]
    for i in range(depth):
        p = {key.split("/", 1)[1]: value for key, value in w.items()
             if key.startswith(f"block_{i}/")}
        y = _layer_norm(x, p["ln1/gamma"], p["ln1/beta"])
        q, k, v = (np.einsum("btd,dhk->bhtk", y, p[f"attention/{name}/kernel"])
                   + p[f"attention/{name}/bias"][None, :, None, :]
                   for name in ("query", "key", "value"))
        scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(q.shape[-1])
        probs = np.exp(scores - scores.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        context = probs @ v
        x = x + np.einsum("bhtk,hkd->btd", context, p["attention/attention_output/kernel"]) \
            + p["attention/attention_output/bias"]
        y = _layer_norm(x, p["ln2/gamma"], p["ln2/beta"])
        hidden = y @ p["mlp/fc1/kernel"] + p["mlp/fc1/bias"]
        hidden = 0.5 * hidden * (1 + erf(hidden / np.sqrt(2)))  # exact GELU
        x = x + hidden @ p["mlp/fc2/kernel"] + p["mlp/fc2/bias"]
    x = _layer_norm(x, w["encoder_norm/gamma"], w["encoder_norm/beta"])
    embedding = x[:, 0]
    return embedding @ w["logits/kernel"] + w["logits/bias"], embedding


@pytest.mark.parametrize("shape, patch", [((8, 8, 2), 2), ((12, 8, 3), 4)])
def test_forward_matches_numpy_vit(shape, patch, rng):
    images = keras.Input(shape)
    logits, end_points = vit.vit(images, 5, width=16, depth=2, num_heads=2, mlp_dim=24,
                                 patch_size=patch, scope="v")
    model = keras.Model(images, {"logits": logits, "embedding": end_points["embedding"]})
    for variable in model.weights:  # random values everywhere, biases and norms included
        variable.assign(rng.normal(size=variable.shape).astype(np.float32) * 0.5)
    weights = {v.path.split("/", 1)[1]: v.numpy().astype(np.float64) for v in model.weights}
    x = rng.normal(size=(3, *shape)).astype(np.float32)
    expected_logits, expected_embedding = _np_vit(x.astype(np.float64), weights, 2, patch, 2)
    outputs = model(x, training=False)
    np.testing.assert_allclose(outputs["embedding"], expected_embedding, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(outputs["logits"], expected_logits, rtol=1e-4,
                               atol=1e-4 * np.abs(expected_logits).max())


# ---------------------------------------------------------------- builders, scopes, dropout


def test_encoder_block_names_and_arg_scope_reach_the_attention():
    inputs = keras.Input((5, 12))
    regularizer = keras.regularizers.L2(0.1)
    with keras.name_scope("net"), scopes.arg_scope(
            [scopes.fully_connected, transformer.multi_head_attention],
            weights_regularizer=regularizer), scopes.arg_scope([transformer.layer_norm],
                                                                epsilon=1e-3):
        outputs = transformer.encoder_block(inputs, num_heads=3, mlp_dim=20, scope="block_0")
    model = keras.Model(inputs, outputs)
    paths = sorted(v.path for v in model.weights)
    assert paths == sorted(
        [f"net/block_0/{norm}/{leaf}" for norm in ("ln1", "ln2") for leaf in ("gamma", "beta")]
        + [f"net/block_0/attention/{p}/{leaf}" for p in ("query", "key", "value",
                                                          "attention_output")
           for leaf in ("kernel", "bias")]
        + [f"net/block_0/mlp/{fc}/{leaf}" for fc in ("fc1", "fc2") for leaf in ("kernel",
                                                                                "bias")])
    assert len(model.losses) == 6  # 4 attention kernels + fc1 + fc2
    norms = [layer for layer in model.get_layer("block_0").layers
             if isinstance(layer, keras.layers.LayerNormalization)]
    assert [n.epsilon for n in norms] == [1e-3, 1e-3]


def test_encoder_block_is_pre_ln_residual(rng):
    """With the attention output and fc2 zeroed, a block is the identity (x + 0 + 0)."""
    inputs = keras.Input((4, 8))
    model = keras.Model(inputs, transformer.encoder_block(inputs, 2, 16, scope="block"))
    for v in model.weights:
        if "attention_output" in v.path or "/fc2/" in v.path:
            v.assign(np.zeros(v.shape, np.float32))
    x = rng.normal(size=(2, 4, 8)).astype(np.float32)
    np.testing.assert_array_equal(model(x), x)


def test_dropout_follows_training_or_is_pinned(rng):
    x = rng.normal(size=(4, 8, 8, 1)).astype(np.float32)
    model = nets.build_model("vit_tiny", 10, (8, 8, 1), dropout_rate=0.1,
                             attention_dropout_rate=0.2)
    np.testing.assert_array_equal(model(x, training=False)["logits"], model(x)["logits"])
    assert np.abs(model(x, training=True)["logits"] - model(x)["logits"]).max() > 1e-4
    pinned = nets.build_model("vit_tiny", 10, (8, 8, 1), attention_dropout_rate=0.2,
                              is_training=True)
    first, second = (pinned(x, training=False)["logits"] for _ in range(2))
    assert np.abs(first - second).max() > 1e-4  # attention dropout alone, pinned on
    off = nets.build_model("vit_tiny", 10, (8, 8, 1), dropout_rate=0.1,
                           attention_dropout_rate=0.2, is_training=False)
    np.testing.assert_array_equal(off(x, training=True)["logits"], off(x)["logits"])


# ---------------------------------------------------------------- replicas

GLOBAL_BATCH, STEPS = 16, 3
DROPOUT = dict(dropout_rate=0.1, attention_dropout_rate=0.3)


def _train_vit(strategy, net_kwargs):
    """vit_tiny (with `net_kwargs`) trained by the trainer for a few steps; its weights."""
    from tfmodels import data
    from tfmodels.training import TrainConfig
    from tfmodels.training.parts import build_training
    from tfmodels.training.step import TrainStep

    rng = np.random.default_rng(0)
    images = rng.standard_normal((STEPS * GLOBAL_BATCH, 8, 8, 1)).astype(np.float32)
    labels = rng.integers(0, 10, STEPS * GLOBAL_BATCH).astype(np.int32)
    info = data.DatasetInfo(name="test", image_shape=(8, 8, 1), num_classes=10,
                            splits={"train": STEPS * GLOBAL_BATCH})
    spec = nets.NETS["vit_tiny"]
    nets.NETS["vit_tiny"] = dataclasses.replace(spec, fn=functools.partial(spec.fn,
                                                                           **net_kwargs))
    try:
        config = TrainConfig(model_dir="unused", model="vit_tiny", global_batch_size=GLOBAL_BATCH,
                             train_steps=STEPS, lr_schedule="constant", optimizer="momentum",
                             learning_rate=0.05, weight_decay=1e-3)
        keras.utils.set_random_seed(7)
        resolved = config.resolve(info, strategy.num_replicas_in_sync)
        parts = build_training(resolved, strategy)
        dataset = tf.data.Dataset.from_tensor_slices({"image": images, "label": labels})
        iterator = iter(strategy.experimental_distribute_dataset(dataset.batch(GLOBAL_BATCH)))
        TrainStep(strategy, parts, iterator, resolved).loop(tf.constant(STEPS, tf.int64))
        return {v.path: v.numpy() for v in parts.model.weights}
    finally:
        nets.NETS["vit_tiny"] = spec


@replicas.scenario(1, 2, 4)
def vit_training_with_dropout(strategy):
    return _train_vit(strategy, DROPOUT)


@replicas.scenario(1)
def vit_training_without_dropout(strategy):
    return _train_vit(strategy, {})


@pytest.mark.parametrize("num_replicas", [2, 4])
def test_vit_training_with_attention_dropout_on_replicas_equals_one_device(replica_runner,
                                                                          num_replicas):
    one = replica_runner.run(vit_training_with_dropout, 1)
    many = replica_runner.run(vit_training_with_dropout, num_replicas)
    assert one.keys() == many.keys() and any("attention/query/kernel" in k for k in one)
    for name, value in one.items():
        assert np.all(np.isfinite(value)), name
        np.testing.assert_allclose(many[name], value, rtol=0, atol=1e-5,
                                   err_msg=f"{name} with {num_replicas} replicas")


def test_dropout_changes_the_training(replica_runner):
    """The comparison above is not vacuous: the dropout masks move the weights."""
    with_dropout = replica_runner.run(vit_training_with_dropout, 1)
    without = replica_runner.run(vit_training_without_dropout, 1)
    assert max(np.abs(with_dropout[k] - without[k]).max() for k in without) > 1e-4
