"""MultiHeadAttention: Keras's layer with copied weights, masks against NumPy, mixed precision,
the layer contract, and attention dropout with the same mask per example on 1, 2 or 4 replicas.
"""
import keras
import numpy as np
import pytest
import tensorflow as tf

from tests import replicas
from tfmodels.layers import MultiHeadAttention
from tfmodels.layers import attention as attention_module

B, T, S, D = 3, 5, 7, 16


def _pair(num_heads=4, key_dim=4, query_width=D, value_width=D, key_width=None, **kwargs):
    """(ours, Keras's) built on the same shapes, Keras's weights copied into ours."""
    ours = MultiHeadAttention(num_heads, key_dim, **kwargs)
    theirs = keras.layers.MultiHeadAttention(num_heads, key_dim, **kwargs)
    shapes = [(None, T, query_width), (None, S, value_width)]
    if key_width is not None:
        shapes.append((None, S, key_width))
    theirs.build(*shapes)
    ours.build(*shapes)
    ours.set_weights(theirs.get_weights())
    return ours, theirs


def _padding_mask(rng, batch=B, queries=T, keys=S):
    """[B, T, S] key padding (each example keeps its first n keys, n >= 1) AND random holes,
    with every query keeping at least one key."""
    lengths = rng.integers(1, keys + 1, batch)
    mask = (np.arange(keys)[None, None, :] < lengths[:, None, None]) & (
        rng.random((batch, queries, keys)) > 0.3)
    mask[:, :, 0] = True
    return mask


def np_attention(query, value, key, weights, mask, num_heads, key_dim):
    """Float64 reference: masked keys weigh 0, a query without keys gets a zero context."""
    wq, bq, wk, bk, wv, bv, wo, bo = (np.asarray(w, np.float64) for w in weights)
    q = np.einsum("btd,dhk->bhtk", query, wq) + bq.transpose(0, 1)[None, :, None, :]
    k = np.einsum("bsd,dhk->bhsk", key, wk) + bk[None, :, None, :]
    v = np.einsum("bsd,dhk->bhsk", value, wv) + bv[None, :, None, :]
    scores = np.einsum("bhtk,bhsk->bhts", q, k) / np.sqrt(key_dim)
    keep = np.broadcast_to(mask[:, None], scores.shape)
    kept = np.where(keep, scores, -np.inf)
    top = kept.max(-1, keepdims=True)
    e = np.where(keep, np.exp(kept - np.where(np.isfinite(top), top, 0.0)), 0.0)
    total = e.sum(-1, keepdims=True)
    probs = np.where(total > 0, e / np.where(total > 0, total, 1.0), 0.0)
    context = np.einsum("bhts,bhsk->bthk", probs, v)
    return np.einsum("bthk,hkd->btd", context, wo) + bo


# ---------------------------------------------------------------- Keras's layer, copied weights


def test_weights_have_keras_order_shapes_and_names():
    ours, theirs = _pair(num_heads=2, key_dim=3, value_dim=5, output_shape=6)
    assert [tuple(w.shape) for w in ours.weights] == [tuple(w.shape) for w in theirs.weights]
    assert [w.path.split("/", 1)[1] for w in ours.weights] == [
        w.path.split("/", 1)[1] for w in theirs.weights] == [
        f"{name}/{leaf}" for name in ("query", "key", "value", "attention_output")
        for leaf in ("kernel", "bias")]
    assert [tuple(w.shape) for w in ours.weights] == [
        (D, 2, 3), (2, 3), (D, 2, 3), (2, 3), (D, 2, 5), (2, 5), (2, 5, 6), (6,)]


def test_parameter_count_is_4d2_plus_4d():
    for width, heads in ((16, 4), (64, 8), (192, 3)):
        layer = MultiHeadAttention(heads, width // heads)
        layer.build((None, 9, width), (None, 9, width))
        assert layer.count_params() == 4 * width ** 2 + 4 * width


CASES = {
    "self": dict(),
    "cross": dict(value_width=12, key_width=10, query_width=8),
    "value_dim_output_shape": dict(value_dim=6, output_shape=9),
    "output_shape_tuple": dict(output_shape=(2, 3)),
    "no_bias": dict(use_bias=False),
}


def _inputs(rng, case):
    options = CASES[case]
    if not options:  # self-attention: one [B, T, D] input
        return rng.standard_normal((B, T, D)).astype(np.float32), None, None
    query = rng.standard_normal((B, T, options.get("query_width", D))).astype(np.float32)
    value = rng.standard_normal((B, S, options.get("value_width", D))).astype(np.float32)
    key = None
    if "key_width" in options:
        key = rng.standard_normal((B, S, options["key_width"])).astype(np.float32)
    return query, value, key


@pytest.mark.parametrize("masking", ["none", "padding", "causal", "padding_and_causal"])
@pytest.mark.parametrize("case", list(CASES))
def test_equals_keras_with_copied_weights(case, masking, rng):
    ours, theirs = _pair(**CASES[case])
    inputs = [tf.constant(t) for t in _inputs(rng, case) if t is not None]
    if case == "self":  # query is value: the self-attention call
        inputs = inputs[:1]
    args = inputs * 2 if case == "self" else inputs
    kwargs = {}
    if masking.startswith("padding"):
        kwargs["attention_mask"] = _padding_mask(rng, keys=args[1].shape[1])
    if "causal" in masking:
        kwargs["use_causal_mask"] = True  # lower triangular [T, S]: row 0 keeps key 0
    with tf.GradientTape(persistent=True) as tape:
        for t in inputs:
            tape.watch(t)
        expected = theirs(*args, **kwargs)
        actual = ours(*args, **kwargs)
    np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-5)
    upstream = tf.constant(rng.standard_normal(expected.shape).astype(np.float32))
    ours_grads = tape.gradient(actual, inputs + ours.trainable_variables,
                               output_gradients=upstream)
    keras_grads = tape.gradient(expected, inputs + theirs.trainable_variables,
                                output_gradients=upstream)
    assert len(ours_grads) == len(inputs) + (8 if CASES[case].get("use_bias", True) else 4)
    for got, want in zip(ours_grads, keras_grads):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)


def test_set_weights_works_both_ways(rng):
    ours, theirs = _pair()
    ours.set_weights([w * 0.5 + 0.1 for w in ours.get_weights()])  # differ from Keras's now
    theirs.set_weights(ours.get_weights())
    x = rng.standard_normal((B, T, D)).astype(np.float32)
    np.testing.assert_allclose(theirs(x, x), ours(x, x), rtol=0, atol=1e-5)


def test_keras_masks_of_the_inputs_are_used_like_keras(rng):
    """Embedding(mask_zero=True) masks: value and key padding as in Keras (queries padded in
    the query are compared on their real positions only; see the fully masked tests)."""
    tokens = rng.integers(1, 20, (B, S))
    tokens[0, 4:] = 0
    tokens[1, 2:] = 0
    embedding = keras.layers.Embedding(20, D, mask_zero=True)
    ours, theirs = _pair(num_heads=2, key_dim=8)
    query = tf.constant(rng.standard_normal((B, T, D)).astype(np.float32))
    actual = ours(query, embedding(tokens))
    expected = theirs(query, embedding(tokens))  # Keras removes the mask from its inputs
    np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-5)
    values = embedding(tokens)
    explicit = np.broadcast_to((tokens != 0)[:, None, :], (B, T, S))
    np.testing.assert_allclose(ours(query, tf.constant(values.numpy()),
                                    attention_mask=explicit), expected, rtol=0, atol=1e-5)


# ---------------------------------------------------------------- masks against NumPy


@pytest.mark.parametrize("causal", [False, True])
def test_masks_match_numpy_including_fully_masked_queries(causal, rng):
    layer = MultiHeadAttention(4, 4, value_dim=3)
    query = rng.standard_normal((B, T, D)).astype(np.float32)
    value = rng.standard_normal((B, S, D)).astype(np.float32)
    layer(query, value)
    layer.set_weights([rng.standard_normal(w.shape).astype(np.float32) * 0.3
                       for w in layer.weights])
    mask = rng.random((B, T, S)) > 0.5
    mask[0, 1] = False  # query 1 of example 0 sees no key
    mask[2] = False     # example 2 sees nothing at all
    expected_mask = mask & np.tril(np.ones((T, S), bool))[None] if causal else mask
    expected = np_attention(query, value, value, layer.get_weights(), expected_mask, 4, 4)
    actual = layer(query, value, attention_mask=mask, use_causal_mask=causal).numpy()
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5)
    bias = layer.get_weights()[-1]
    empty = ~expected_mask.any(-1)
    assert empty[0, 1] and empty[2].all()
    np.testing.assert_array_equal(actual[empty], np.broadcast_to(bias, actual[empty].shape))


def test_masked_keys_get_exactly_zero_weight(rng):
    """Whatever masked keys and values hold (here 1e30), the output does not move a bit."""
    layer = MultiHeadAttention(2, 8)
    query = rng.standard_normal((B, T, D)).astype(np.float32)
    value = rng.standard_normal((B, S, D)).astype(np.float32)
    key_padding = np.arange(S)[None, :] < np.array([7, 3, 1])[:, None]  # [B, S]
    mask = np.broadcast_to(key_padding[:, None, :], (B, T, S))
    before = layer(query, value, attention_mask=mask).numpy()
    value[~key_padding] = 1e30
    after = layer(query, value, attention_mask=mask).numpy()
    np.testing.assert_array_equal(after, before)


def test_keras_averages_fully_masked_queries_where_ours_gives_nothing(rng):
    ours, theirs = _pair()
    query = rng.standard_normal((1, T, D)).astype(np.float32)
    value = rng.standard_normal((1, S, D)).astype(np.float32)
    mask = np.zeros((1, T, S), bool)
    bias = ours.get_weights()[-1]
    np.testing.assert_array_equal(ours(query, value, attention_mask=mask)[0],
                                  np.broadcast_to(bias, (T, D)))
    keras_out = theirs(query, value, attention_mask=mask).numpy()
    # Keras: every masked logit is the same large negative number -> a uniform average, which
    # is attention with zero queries (all scores equal) and nothing masked.
    values_mean = np_attention(np.zeros_like(query), value, value,
                               [np.zeros_like(w) if i in (0, 1) else w
                                for i, w in enumerate(theirs.get_weights())],
                               np.ones((1, T, S), bool), 4, 4)
    np.testing.assert_allclose(keras_out, values_mean, rtol=1e-5, atol=1e-5)
    assert np.abs(keras_out - bias).max() > 1e-2


def test_fully_masked_queries_have_finite_zero_gradients(rng):
    layer = MultiHeadAttention(2, 8)
    query = tf.constant(rng.standard_normal((B, T, D)).astype(np.float32))
    mask = np.ones((B, T, T), bool)
    mask[1, 2] = False
    layer(query, query)
    layer.set_weights([rng.standard_normal(w.shape).astype(np.float32) for w in layer.weights])
    with tf.GradientTape() as tape:
        tape.watch(query)
        out = layer(query, query, attention_mask=mask)
        loss = tf.reduce_sum(out[1, 2] ** 2)  # depends on the empty query only via the bias
    grads = tape.gradient(loss, [query] + layer.trainable_variables)
    assert all(np.all(np.isfinite(g)) for g in grads)
    np.testing.assert_array_equal(grads[0], np.zeros_like(grads[0]))
    names = [v.path.rsplit("/", 2)[-2:] for v in layer.trainable_variables]
    for name, grad in zip(names, grads[1:]):
        if name == ["attention_output", "bias"]:
            assert np.any(grad != 0)
        else:
            np.testing.assert_array_equal(grad, np.zeros_like(grad), err_msg=str(name))


# ---------------------------------------------------------------- precision, contract, errors


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_softmax_in_float32(policy, rng, monkeypatch):
    seen, real_softmax = [], attention_module.softmax

    def recording_softmax(x, *args, **kwargs):
        probs = real_softmax(x, *args, **kwargs)
        seen.append((x.dtype, probs.dtype))
        return probs

    monkeypatch.setattr(attention_module, "softmax", recording_softmax)
    query = rng.standard_normal((B, T, D)).astype(np.float32)
    mask = _padding_mask(rng, queries=T, keys=T)
    reference = MultiHeadAttention(4, 4)
    expected = reference(query, query, attention_mask=mask).numpy()
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        layer = MultiHeadAttention(4, 4)
        layer.build((None, T, D), (None, T, D))
    finally:
        keras.config.set_dtype_policy(previous)
    layer.set_weights(reference.get_weights())
    seen.clear()
    actual = layer(query, query, attention_mask=mask)
    compute = policy.split("_")[1]
    assert actual.dtype == compute and {w.dtype for w in layer.weights} == {"float32"}
    assert seen == [(tf.as_dtype(compute), tf.float32)]
    tolerance = {"float16": 1e-2, "bfloat16": 6e-2}[compute]  # the projections' precision
    np.testing.assert_allclose(tf.cast(actual, tf.float32), expected, atol=tolerance)


def test_every_variable_gets_a_gradient_and_config_round_trips(rng):
    layer = MultiHeadAttention(2, 4, value_dim=3, dropout=0.2, output_shape=5, seed=3,
                               kernel_regularizer="l2", name="mha")
    query = tf.constant(rng.standard_normal((B, T, D)).astype(np.float32))
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(query, query, training=True) ** 2)
    grads = tape.gradient(loss, layer.trainable_variables)
    assert len(grads) == 8 and all(np.any(np.asarray(g) != 0) for g in grads)
    assert len(layer.losses) == 4  # the four kernels
    clone = MultiHeadAttention.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert (restored.num_heads, restored.key_dim, restored.value_dim, restored.dropout,
            restored._output_shape, restored.seed) == (2, 4, 3, 0.2, (5,), 3)


def test_functional_model_saves_and_loads(tmp_path, rng):
    inputs = keras.Input((T, D))
    outputs = MultiHeadAttention(4, 4, name="attention")(inputs, inputs, use_causal_mask=True)
    model = keras.Model(inputs, outputs)
    x = rng.standard_normal((2, T, D)).astype(np.float32)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(loaded(x), model(x))


def test_dropout_training_and_pinned_modes(rng):
    x = rng.standard_normal((B, T, D)).astype(np.float32)
    layer = MultiHeadAttention(2, 8, dropout=0.5, seed=1)
    np.testing.assert_array_equal(layer(x, x, training=False), layer(x, x))
    assert np.abs(layer(x, x, training=True) - layer(x, x)).max() > 1e-3
    pinned = MultiHeadAttention(2, 8, dropout=0.5, seed=1, is_training=True)
    assert np.abs(pinned(x, x, training=False) - pinned(x, x, training=False)).max() > 1e-3


@pytest.mark.parametrize("kwargs, match", [
    (dict(num_heads=0, key_dim=4), r"num_heads=0 must be an int >= 1"),
    (dict(num_heads=2, key_dim=2.5), r"key_dim=2.5 must be an int >= 1"),
    (dict(num_heads=2, key_dim=4, value_dim=-1), r"value_dim=-1"),
    (dict(num_heads=2, key_dim=4, dropout=1.0), r"dropout=1.0 must be a number in \[0, 1\)"),
    (dict(num_heads=2, key_dim=4, output_shape=(0,)), r"output_shape=\(0,\)"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MultiHeadAttention(**kwargs)


def test_bad_shapes(rng):
    layer = MultiHeadAttention(2, 4)
    with pytest.raises(ValueError, match=r"query must be \[batch, length, width\]"):
        layer(np.zeros((2, 3, 4, 5), np.float32), np.zeros((2, 3, 5), np.float32))
    layer = MultiHeadAttention(2, 4)
    with pytest.raises(ValueError, match="key and value need the same length"):
        layer(np.zeros((2, 3, 5), np.float32), np.zeros((2, 4, 5), np.float32),
              np.zeros((2, 6, 5), np.float32))
    layer = MultiHeadAttention(2, 4)
    x = np.zeros((2, 3, 5), np.float32)
    with pytest.raises(ValueError, match=r"attention_mask must be \[B, T, S\]"):
        layer(x, x, attention_mask=np.ones((2, 1, 3, 3), bool))


# ---------------------------------------------------------------- replicas

GLOBAL_BATCH, STEPS = 8, 3


@replicas.scenario(1, 2, 4)
def attention_dropout_outputs(strategy):
    keras.utils.set_random_seed(0)  # the same weights in every subprocess
    with strategy.scope():
        layer = MultiHeadAttention(2, 4, dropout=0.5, seed=5)
        layer.build((None, 6, 8), (None, 6, 8))
    x = np.random.default_rng(0).standard_normal((GLOBAL_BATCH, 6, 8)).astype(np.float32)
    data = tf.data.Dataset.from_tensors(x).repeat(STEPS)
    step = tf.function(lambda b: strategy.run(lambda t: layer(t, t, training=True), (b,)))
    outputs = []
    for batch in strategy.experimental_distribute_dataset(data):
        outputs.append(tf.concat(strategy.experimental_local_results(step(batch)), 0).numpy())
    return {"outputs": np.stack(outputs)}


def test_attention_dropout_is_the_same_per_example_on_any_number_of_replicas(replica_runner):
    one = replica_runner.run(attention_dropout_outputs, 1)["outputs"]
    assert np.abs(one[0] - one[1]).max() > 1e-3  # a new mask every step
    for n in (2, 4):
        many = replica_runner.run(attention_dropout_outputs, n)["outputs"]
        np.testing.assert_allclose(many, one, rtol=0, atol=1e-6)
