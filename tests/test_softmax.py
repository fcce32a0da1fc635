"""Softmax / log-softmax against a NumPy reference, closed-form gradients and the layer contract."""
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

from tests import replicas
from tfmodels.layers import Softmax, log_softmax, softmax

INF = np.inf


def np_softmax(x, axis, mask=None):
    """Reference in float64: exp(x - max) / sum over `axis`, masked entries 0, empty rows 0,
    and rows holding +inf split evenly among their +inf entries (the limit)."""
    x = np.asarray(x, np.float64)
    keep = np.ones(x.shape, bool) if mask is None else np.broadcast_to(mask, x.shape)
    kept = np.where(keep, x, -INF)
    m = kept.max(axis=axis, keepdims=True)
    with np.errstate(invalid="ignore", over="ignore"):
        e = np.where(keep, np.exp(kept - np.where(np.isfinite(m), m, 0.0)), 0.0)
    e = np.where(m == INF, (kept == INF).astype(np.float64), e)
    s = e.sum(axis=axis, keepdims=True)
    return np.where(s > 0, e / np.where(s > 0, s, 1.0), 0.0)


def np_log_softmax(x, axis):
    """Reference log-softmax in float64: x - m - log(sum(exp(x - m)))."""
    x = np.asarray(x, np.float64)
    m = x.max(axis=axis, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=axis, keepdims=True))


@st.composite
def arrays_and_axes(draw):
    rank = draw(st.integers(1, 4))
    shape = tuple(draw(st.lists(st.integers(1, 5), min_size=rank, max_size=rank)))
    scale = draw(st.sampled_from([1.0, 30.0, 1e4]))
    seed = draw(st.integers(0, 2**31 - 1))
    x = (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)
    axes = draw(st.lists(st.integers(-rank, rank - 1), min_size=1, max_size=rank,
                         unique_by=lambda a: a % rank))
    axis = axes[0] if len(axes) == 1 and draw(st.booleans()) else tuple(axes)
    return x, axis


def _np_axis(axis, rank):
    return tuple(a % rank for a in (axis if isinstance(axis, tuple) else (axis,)))


@settings(max_examples=60, deadline=None)
@given(arrays_and_axes())
def test_matches_numpy_over_shapes_and_axes(case):
    x, axis = case
    expected = np_softmax(x, _np_axis(axis, x.ndim))
    np.testing.assert_allclose(softmax(x, axis).numpy(), expected, rtol=2e-5, atol=1e-7)
    np.testing.assert_allclose(log_softmax(x, axis).numpy(),
                               np_log_softmax(x, _np_axis(axis, x.ndim)), rtol=2e-5, atol=1e-5)


@settings(max_examples=40, deadline=None)
@given(arrays_and_axes(), st.integers(0, 2**31 - 1))
def test_masked_matches_numpy(case, seed):
    x, axis = case
    mask = np.random.default_rng(seed).random(x.shape) < 0.6
    expected = np_softmax(x, _np_axis(axis, x.ndim), mask)
    got = softmax(x, axis, mask=mask).numpy()
    np.testing.assert_allclose(got, expected, rtol=2e-5, atol=1e-7)
    assert np.all(got[~mask] == 0.0)  # exactly zero, not 1e-30


@pytest.mark.parametrize("x, expected", [
    ([1e7, 1e8, 2e5, 2e7], [0, 1, 0, 0]),                # overflow without the max shift
    ([-1e10, -1e9, -2e10, -1e10], [0, 1, 0, 0]),         # underflow without the max shift
    ([INF, 0.0, 1.0], [1, 0, 0]),
    ([INF, INF, 3.0, -INF], [0.5, 0.5, 0, 0]),
    ([-INF, 0.0, 0.0], [0, 0.5, 0.5]),
    ([-INF, -INF, -INF], [0, 0, 0]),                    # nothing left: zeros, not NaN
])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_extreme_values(x, expected, dtype):
    got = softmax(np.array([x], dtype)).numpy()[0]
    np.testing.assert_allclose(got, expected, atol=1e-12)
    upstream = np.arange(1, len(x) + 1, dtype=dtype)[None]
    assert np.all(np.isfinite(_grad(softmax, np.array([x], dtype), upstream)))


def test_nan_input_stays_nan():
    assert np.isnan(softmax(np.array([[np.nan, 1.0, 2.0]], np.float32)).numpy()).all()


def test_fully_masked_row_is_zero_with_finite_gradient():
    x = np.random.default_rng(0).standard_normal((3, 5)).astype(np.float32)
    mask = np.ones((3, 5), bool)
    mask[1] = False
    y = softmax(x, mask=mask).numpy()
    assert np.all(y[1] == 0.0)
    np.testing.assert_allclose(y.sum(-1), [1, 0, 1], rtol=1e-6)
    for fn in (softmax, log_softmax):
        assert np.all(np.isfinite(_grad(lambda t: fn(t, mask=mask), x, np.ones_like(x))))


def _grad(fn, x, g):
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = fn(x)
    return tape.gradient(y, x, output_gradients=tf.constant(g, y.dtype)).numpy()


@pytest.mark.parametrize("axis", [-1, 0, 1, (1, 2), (0, 2)])
@pytest.mark.parametrize("masked", [False, True])
def test_gradient_closed_form(rng, axis, masked):
    """d softmax: s * (g - sum(g * s));  d log_softmax: g - s * sum(g), over the softmax axes."""
    x = rng.standard_normal((3, 4, 5)).astype(np.float64)
    g = rng.standard_normal(x.shape)
    mask = rng.random(x.shape) < 0.7 if masked else None
    axes = _np_axis(axis, 3)
    s = np_softmax(x, axes, mask)
    expected = s * (g - (g * s).sum(axis=axes, keepdims=True))
    got = _grad(lambda t: softmax(t, axis, mask=mask), x, g)
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)
    keep = np.ones(x.shape, bool) if mask is None else mask
    g_kept = np.where(keep, g, 0.0)
    expected_log = g_kept - s * g_kept.sum(axis=axes, keepdims=True)
    got_log = _grad(lambda t: log_softmax(t, axis, mask=mask), x, g)
    np.testing.assert_allclose(got_log, expected_log, rtol=1e-10, atol=1e-12)


def test_temperature(rng):
    x = rng.standard_normal((4, 6)).astype(np.float32)
    np.testing.assert_allclose(softmax(x, temperature=2.5).numpy(), np_softmax(x / 2.5, -1),
                               rtol=1e-6)
    np.testing.assert_allclose(Softmax(temperature=0.5)(x).numpy(), np_softmax(x / 0.5, -1),
                               rtol=1e-6)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_low_precision_computes_in_float32(dtype, rng):
    x = rng.standard_normal((8, 1000)).astype(np.float32) * 4
    x_low = tf.cast(x, dtype)
    y = softmax(x_low)
    assert y.dtype == tf.float32
    expected = np_softmax(tf.cast(x_low, tf.float32).numpy(), -1)  # same rounded inputs
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(y.numpy().sum(-1), 1.0, atol=1e-6)


def test_layer_under_mixed_policy_keeps_float32():
    x = np.random.default_rng(0).standard_normal((2, 7)).astype(np.float32) * 20
    layer = Softmax(dtype="mixed_float16")
    y = layer(x)
    assert y.dtype == tf.float32
    # float32 accuracy; a float16 round trip of the inputs would be off by ~1e-3
    np.testing.assert_allclose(y.numpy(), np_softmax(x, -1), rtol=1e-5)
    inputs = keras.Input((7,), dtype="float16")
    assert Softmax(dtype="mixed_float16")(inputs).dtype == "float32"


def test_dim_alias():
    x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    with pytest.warns(DeprecationWarning, match="dim"):
        y = softmax(x, dim=0)
    np.testing.assert_allclose(y.numpy(), np_softmax(x, 0), rtol=1e-6)
    with pytest.warns(DeprecationWarning):
        assert Softmax(dim=0).axis == 0
    with pytest.raises(ValueError, match="both axis=1 and .* dim=0"):
        softmax(x, axis=1, dim=0)


@pytest.mark.parametrize("call, match", [
    (lambda: softmax(np.zeros((2, 3), np.float32), axis=2), r"axis=2 is out of range .* rank 2"),
    (lambda: softmax(np.zeros((2, 3), np.float32), axis=-3), r"axis=-3 is out of range"),
    (lambda: softmax(np.zeros((2, 3), np.float32), axis=(1, -1)), r"names the same axis twice"),
    (lambda: softmax(np.zeros((2, 3), np.int32)), r"float input, got dtype int32 .*\(2, 3\)"),
    (lambda: softmax(np.zeros((2, 3), np.float32), axis=1.0), r"axis=1.0 must be an int"),
    (lambda: softmax(np.zeros((2, 3), np.float32), axis=()), r"non-empty tuple"),
    (lambda: softmax(np.zeros((2, 3), np.float32), mask=np.ones((4,), bool)),
     r"mask of shape \(4,\) is not broadcastable to the input shape \(2, 3\)"),
    (lambda: softmax(np.zeros((2, 3), np.float32), temperature=0.0), r"temperature=0.0"),
    (lambda: Softmax(axis=3)(np.zeros((2, 3), np.float32)), r"axis=3 is out of range"),
    (lambda: Softmax(axis=[0, 1]), r"must be an int or a non-empty tuple"),
])
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_layer_config_round_trip_and_save(tmp_path, rng):
    layer = Softmax(axis=(1, 2), temperature=2.0, name="probs")
    clone = Softmax.from_config(layer.get_config())
    assert clone.axis == (1, 2) and clone.temperature == 2.0 and clone.name == "probs"
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert isinstance(restored, Softmax) and restored.axis == (1, 2)

    inputs = keras.Input((3, 4))
    model = keras.Model(inputs, Softmax(axis=(1, 2), temperature=2.0)(inputs))
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    x = rng.standard_normal((2, 3, 4)).astype(np.float32)
    np.testing.assert_allclose(loaded(x).numpy(), np_softmax(x / 2.0, (1, 2)), rtol=1e-6)


def test_attention_padding_mask_over_key_axis(rng):
    """Scores [N, heads, Tq, Tk] with a key-padding mask [N, 1, 1, Tk]: padded keys get 0."""
    lengths = np.array([3, 1])
    scores = rng.standard_normal((2, 2, 4, 5)).astype(np.float32) * 10
    key_mask = (np.arange(5)[None] < lengths[:, None])[:, None, None, :]
    y = Softmax(axis=-1)(scores, mask=key_mask).numpy()
    np.testing.assert_allclose(y, np_softmax(scores, -1, key_mask), rtol=1e-6, atol=1e-8)
    assert np.all(y[1, ..., 1:] == 0.0)
    np.testing.assert_allclose(y.sum(-1), 1.0, rtol=1e-6)


@pytest.mark.parametrize("jit", [False, True])
def test_tf_function_and_xla(rng, jit):
    x = rng.standard_normal((6, 10)).astype(np.float32)
    mask = rng.random((6, 10)) < 0.5
    x[0, 3] = INF

    @tf.function(jit_compile=jit)
    def f(t):
        with tf.GradientTape() as tape:
            tape.watch(t)
            y = softmax(t) + softmax(t, axis=0, mask=mask) + softmax(t, axis=(0, 1))
        return y, tape.gradient(y, t)

    y, g = f(tf.constant(x))
    expected = np_softmax(x, 1) + np_softmax(x, 0, mask) + np_softmax(x, (0, 1))
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-5, atol=1e-7)
    assert np.all(np.isfinite(g.numpy()))


@replicas.scenario(1, 2)
def softmax_under_strategy(strategy):
    x = np.random.default_rng(7).standard_normal((8, 5)).astype(np.float32)
    mask = np.random.default_rng(8).random((8, 5)) < 0.6
    with strategy.scope():
        layer = Softmax(axis=-1)
    dataset = tf.data.Dataset.from_tensor_slices((x, mask)).batch(8)
    batch = next(iter(strategy.experimental_distribute_dataset(dataset)))

    @tf.function
    def step(batch):
        return strategy.run(lambda b: layer(b[0], mask=b[1]), args=(batch,))

    out = tf.concat(strategy.experimental_local_results(step(batch)), axis=0)
    return {"probs": out.numpy(), "expected": np_softmax(x, -1, mask)}


def test_under_mirrored_strategy(replica_runner):
    for n in (1, 2):
        result = replica_runner.run(softmax_under_strategy, n)
        np.testing.assert_allclose(result["probs"], result["expected"], rtol=1e-6, atol=1e-8)


def test_no_warnings_on_plain_use(rng):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        softmax(rng.standard_normal((2, 3)).astype(np.float32))


# ---------------------------------------------------------------- the fused path with a mask


@pytest.mark.parametrize("axis", [-1, 0, (1, 2)])
@pytest.mark.parametrize("fn", [softmax, log_softmax])
def test_masked_fused_path_equals_the_general_path(fn, axis, rng):
    """Masked single / trailing axes take the fused kernel; values and gradients (fully masked
    slices included) equal the general path's closed form."""
    from tfmodels.layers.softmax import _general

    x = rng.standard_normal((3, 4, 5)).astype(np.float32) * 5
    mask = rng.random(x.shape) < 0.6
    axes = _np_axis(axis, 3)
    empty = tuple(slice(None) if a in axes else 1 for a in range(3))
    mask[empty] = False  # one slice over the softmax axes with nothing kept
    g = rng.standard_normal(x.shape).astype(np.float32)

    def general(t):
        return _general(t, axes, tf.constant(mask), log=fn is log_softmax)

    expected, got = general(tf.constant(x)).numpy(), fn(x, axis, mask=mask).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)
    assert np.all(got[~mask] == (-INF if fn is log_softmax else 0.0))
    np.testing.assert_allclose(_grad(lambda t: fn(t, axis, mask=mask), x, g),
                               _grad(general, x, g), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_masked_rows_exact_at_the_lowest_value_and_with_garbage_where_masked(dtype):
    lowest = np.finfo(dtype).min
    kept = np.exp([1.0, 2.0]) / np.exp([1.0, 2.0]).sum()
    for row, keep, expected in (
            ([lowest, 0.0, 1.0], [True, False, False], [1, 0, 0]),  # one kept value, lowest
            ([np.nan, 1.0, 2.0], [False, True, True], [0, *kept]),
            ([INF, 1.0, 2.0], [False, True, True], [0, *kept])):
        got = softmax(np.array([row], dtype), mask=np.array([keep])).numpy()[0]
        np.testing.assert_allclose(got, expected, rtol=1e-6, err_msg=str(row))


@pytest.mark.parametrize("axis", [0, 1])
def test_xla_with_infinite_inputs_on_any_axis(rng, axis):
    """The general-path branch under XLA, for an axis other than the last."""
    x = rng.standard_normal((6, 10)).astype(np.float32)
    x[0, 3] = INF

    @tf.function(jit_compile=True)
    def f(t):
        with tf.GradientTape() as tape:
            tape.watch(t)
            y = softmax(t, axis=axis)
        return y, tape.gradient(y, t)

    y, g = f(tf.constant(x))
    np.testing.assert_allclose(y.numpy(), np_softmax(x, axis), rtol=1e-5, atol=1e-7)
    assert np.all(np.isfinite(g.numpy()))


@pytest.mark.parametrize("mask_shape", [(2, 1, 4, 5), (1, 1, 4, 5), (5,), (4, 1)])
@pytest.mark.parametrize("axis", [-1, 1])
def test_broadcast_masks_equal_their_full_size(mask_shape, axis, rng):
    """Masks that repeat along some axes are used without materialising them at x's size."""
    x = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    mask = rng.random(mask_shape) < 0.6
    full = np.broadcast_to(mask, x.shape)
    for fn in (softmax, log_softmax):
        np.testing.assert_array_equal(fn(x, axis, mask=mask).numpy(),
                                      fn(x, axis, mask=full).numpy())
        g = rng.standard_normal(x.shape).astype(np.float32)
        np.testing.assert_array_equal(_grad(lambda t: fn(t, axis, mask=mask), x, g),
                                      _grad(lambda t: fn(t, axis, mask=full), x, g))


def test_mask_larger_than_the_input_is_refused(rng):
    with pytest.raises((ValueError, tf.errors.InvalidArgumentError)):
        softmax(rng.standard_normal((1, 5)).astype(np.float32), mask=np.ones((3, 5), bool))
