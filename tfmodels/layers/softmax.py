"""Numerically stable softmax / log-softmax with explicit axis handling, masks and temperature.

    softmax(x)_i = exp(x_i - m) / sum_j exp(x_j - m),   m = max_j x_j   (over `axis`)

Subtracting the max means exp() never overflows ([1e7, 1e8, 2e5, 2e7] -> [0, 1, 0, 0]) and the
largest term is exp(0) = 1, so the sum never underflows to 0 ([-1e10, -1e9, -2e10, -1e10] ->
[0, 1, 0, 0]). Infinite logits are treated as limits: -inf entries get probability 0, a row with
+inf entries splits the mass evenly among them, and a row with nothing left (every entry masked
or -inf) is all zeros rather than NaN.

`axis` is an int (negative counts from the end) or a tuple of ints: the softmax is then taken
over the joint axes (the probabilities of each slice over those axes sum to one). A boolean
`mask` (broadcastable to the input, True = keep) gives masked positions exactly 0 and is not the
`-1e9` additive trick, which silently turns fully masked rows into uniform ones.

float16 / bfloat16 inputs are computed in float32 and returned as float32: a softmax over many
classes sums many small probabilities, and in float16 the row sums drift by ~1e-3 over 1000
classes (bfloat16: ~2e-3) against ~2e-7 in float32; the losses that consume these need float32.

One axis (or trailing axes), with or without a mask, dispatches to TensorFlow's fused kernel
(masked entries set to the dtype's lowest value going in and to exactly 0 coming out): about
0.72x the general path's time forward + backward on masked attention scores (bench/attention.py).
"""
import warnings

import keras
import tensorflow as tf

from tfmodels.options import is_int

_LOW_PRECISION = (tf.float16, tf.bfloat16)


def softmax(x, axis=-1, mask=None, temperature=None, *, dim=None):
    """Stable softmax of `x` over `axis` (int or tuple of ints).

    Args:
      x: float tensor.
      axis: int or tuple of ints, negative allowed; the axes the probabilities sum over.
      mask: optional boolean tensor broadcastable to `x`; False positions get probability 0.
      temperature: optional positive float; computes softmax(x / temperature).
      dim: deprecated alias of `axis` (TF1's `tf.nn.softmax(dim=...)`).

    Returns:
      Probabilities with the shape of `x`; float32 for float16/bfloat16 input.
    """
    x, axes = _prepare(x, _resolve_axis(axis, dim, "softmax"), temperature, "softmax")
    return _softmax(x, axes, _broadcast_mask(mask, x), log=False)


def log_softmax(x, axis=-1, mask=None, temperature=None, *, dim=None):
    """Stable log-softmax: x - m - log(sum exp(x - m)); masked positions are -inf (log 0).

    Same arguments as `softmax`.
    """
    x, axes = _prepare(x, _resolve_axis(axis, dim, "log_softmax"), temperature, "log_softmax")
    return _softmax(x, axes, _broadcast_mask(mask, x), log=True)


@keras.saving.register_keras_serializable(package="tfmodels")
class Softmax(keras.layers.Layer):
    """Keras layer form of `softmax`: `Softmax(axis=-1, temperature=None)(x, mask=None)`.

    A Keras mask propagated from an upstream layer is used as `mask`. Under a mixed-precision
    policy the layer does not autocast its input and returns float32 (see the module docstring).
    """

    def __init__(self, axis=-1, temperature=None, *, dim=None, **kwargs):
        kwargs["autocast"] = False  # keep float32 logits float32 under mixed precision
        super().__init__(**kwargs)
        self.axis = _resolve_axis(axis, dim, "Softmax")
        _check_axis_type(self.axis)
        self.temperature = _check_temperature(temperature)
        self.supports_masking = True

    def build(self, input_shape):
        _normalize_axes(self.axis, input_shape)  # fail at build time on a bad axis
        super().build(input_shape)

    def call(self, inputs, mask=None):
        return softmax(inputs, self.axis, mask=mask, temperature=self.temperature)

    def compute_output_shape(self, input_shape):
        return input_shape

    def compute_output_spec(self, inputs, mask=None):
        dtype = "float32" if inputs.dtype in ("float16", "bfloat16") else inputs.dtype
        return keras.KerasTensor(inputs.shape, dtype=dtype)

    def get_config(self):
        config = super().get_config()
        axis = list(self.axis) if isinstance(self.axis, tuple) else self.axis
        config.update(axis=axis, temperature=self.temperature)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config.get("axis"), list):
            config["axis"] = tuple(config["axis"])
        return cls(**config)


# --------------------------------------------------------------------------------------------
# Argument handling: every error names the argument, the received value and what is allowed.

def _resolve_axis(axis, dim, caller):
    if dim is None:
        return axis
    if axis != -1:
        raise ValueError(
            f"{caller}() got both axis={axis} and its deprecated alias dim={dim}; pass axis only")
    warnings.warn(f"{caller}(dim=...) is deprecated; use axis={dim}", DeprecationWarning,
                  stacklevel=3)
    return dim


def _check_axis_type(axis):
    items = axis if isinstance(axis, tuple) else (axis,)
    if not items or not all(is_int(a, low=None, high=None) for a in items):
        raise ValueError(f"axis={axis!r} must be an int or a non-empty tuple of ints")


def _check_temperature(temperature):
    if temperature is None:
        return None
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) \
            or not temperature > 0 or temperature == float("inf"):
        raise ValueError(f"temperature={temperature!r} must be a positive finite number or None")
    return float(temperature)


def _normalize_axes(axis, shape):
    """Non-negative, sorted axes for an input of `shape`, or a ValueError naming both."""
    _check_axis_type(axis)
    shape = tf.TensorShape(shape)
    if shape.rank is None:
        raise ValueError(f"softmax needs an input of known rank, got shape {shape}")
    rank = shape.rank
    items = axis if isinstance(axis, tuple) else (axis,)
    for a in items:
        if not -rank <= a < rank:
            raise ValueError(
                f"axis={axis} is out of range for input of rank {rank} (shape {shape}); "
                f"allowed: ints in [{-rank}, {rank - 1}] or a tuple of them")
    axes = tuple(sorted(a % rank for a in items))
    if len(set(axes)) != len(axes):
        raise ValueError(f"axis={axis} names the same axis twice for input of shape {shape}")
    return axes


def _prepare(x, axis, temperature, caller):
    x = tf.convert_to_tensor(x)
    if not x.dtype.is_floating:
        raise ValueError(
            f"{caller} needs a float input, got dtype {x.dtype.name} with shape {x.shape}")
    axes = _normalize_axes(axis, x.shape)
    if x.dtype in _LOW_PRECISION:
        x = tf.cast(x, tf.float32)
    temperature = _check_temperature(temperature)
    if temperature is not None and temperature != 1.0:
        x = x / tf.constant(temperature, x.dtype)
    return x, axes


def _broadcast_mask(mask, x):
    if mask is None:
        return None
    mask = tf.convert_to_tensor(mask)
    if mask.dtype != tf.bool:
        mask = tf.cast(mask, tf.bool)
    try:
        tf.broadcast_static_shape(mask.shape, x.shape)
    except ValueError:
        raise ValueError(
            f"mask of shape {mask.shape} is not broadcastable to the input shape {x.shape}"
        ) from None
    # tf.where broadcasts, so a mask that only repeats along some of x's axes (attention's
    # [B, 1, T, S] for [B, heads, T, S] scores) is not materialised at x's size. A mask whose
    # fit cannot be seen statically is broadcast here, which fails at run time if it must.
    if mask.shape.rank is not None and x.shape.rank is not None \
            and mask.shape.rank <= x.shape.rank \
            and all(m == 1 or (m is not None and m == n)
                    for m, n in zip(reversed(mask.shape.as_list()), reversed(x.shape.as_list()))):
        return mask
    return tf.broadcast_to(mask, tf.shape(x))


# --------------------------------------------------------------------------------------------
# Computation.

def _softmax(x, axes, mask, log):
    rank = x.shape.rank
    if not (len(axes) == 1 or axes == tuple(range(axes[0], rank))):
        return _general(x, axes, mask, log)
    # The fused kernel is exact for finite inputs but gives NaN for a row holding +inf or
    # only -inf. One reduction tells whether every entry is finite (a sum that overflows
    # merely takes the general path, which is exact too); NaN inputs stay NaN either way.
    finite = tf.math.is_finite(tf.reduce_sum(x))
    if mask is None:
        return tf.cond(finite, lambda: _fused(x, axes, log), lambda: _general(x, axes, mask, log))
    # Masked entries set to the dtype's lowest value weigh exp(lowest - max) = 0 exactly when
    # the row's kept max is above lowest: then lowest - max is at most minus one spacing of the
    # largest floats (2e31 in float32). Every entry > lowest guarantees it.
    fast = tf.logical_and(finite, tf.reduce_min(x) > x.dtype.min)
    return tf.cond(fast, lambda: _fused_masked(x, axes, mask, log),
                   lambda: _general(x, axes, mask, log))


def _fused(x, axes, log):
    """TensorFlow's fused kernel (and its registered gradient) over one axis."""
    op = tf.nn.log_softmax if log else tf.nn.softmax
    rank = x.shape.rank
    if axes == (rank - 1,):
        return op(x, axis=-1)
    if len(axes) == 1:
        # Swap the axis last with a static permutation: tf.nn.softmax's own is computed at run
        # time, which XLA rejects in tf.cond's gradient ("0 is duplicated in the input").
        perm = list(range(rank))
        perm[axes[0]], perm[-1] = perm[-1], perm[axes[0]]
        return tf.transpose(op(tf.transpose(x, perm), axis=-1), perm)
    shape = tf.shape(x)  # trailing axes: softmax over one flattened axis
    return tf.reshape(op(tf.reshape(x, tf.concat([shape[:axes[0]], [-1]], 0)), axis=-1), shape)


def _fused_masked(x, axes, mask, log):
    """The fused kernel with masked entries at the lowest value, then set to 0 (log: -inf).

    A fully masked row comes out of the kernel uniform and is then zeroed. The closed-form
    gradient from y gives masked entries 0 with no extra pass (autodiff through the two
    `where`s would add two).
    """
    lowest = tf.constant(x.dtype.min, x.dtype)
    fill = tf.constant(-float("inf") if log else 0.0, x.dtype)
    return _with_closed_form_gradient(
        lambda t: tf.where(mask, _fused(tf.where(mask, t, lowest), axes, log), fill),
        x, axes, log)


def _general(x, axes, mask, log):
    """exp(x - m) / sum over `axes` with masks and infinities handled as limits.

    The gradient is the closed form, which stays finite where autodiff through the masking
    and infinity fix-ups would produce 0 * NaN.
    """
    return _with_closed_form_gradient(lambda t: _general_forward(t, axes, mask, log), x, axes,
                                      log)


def _with_closed_form_gradient(forward_fn, x, axes, log):
    """y = forward_fn(x) with TensorFlow's own softmax gradient written from y."""

    @tf.custom_gradient
    def forward(x):
        y = forward_fn(x)

        def grad(g):
            if not log:  # d softmax: s * (g - sum(g * s)); 0 wherever s is 0 (masked)
                return y * (g - tf.reduce_sum(g * y, axis=axes, keepdims=True))
            # d log_softmax: g - s * sum(g); entries at -inf (masked) are constants.
            g = tf.where(tf.math.is_finite(y), g, tf.zeros_like(g))
            return g - tf.exp(y) * tf.reduce_sum(g, axis=axes, keepdims=True)
        return y, grad

    return forward(x)


def _general_forward(x, axes, mask, log):
    neg_inf = tf.constant(-float("inf"), x.dtype)
    kept = x if mask is None else tf.where(mask, x, neg_inf)
    row_max = tf.reduce_max(kept, axis=axes, keepdims=True)
    # Finite rows shift by their max; a row holding +inf becomes "exp(0) at each +inf entry".
    has_pos_inf = tf.equal(row_max, float("inf"))
    shift = tf.where(tf.math.is_finite(row_max), row_max, tf.zeros_like(row_max))
    at_pos_inf = tf.where(tf.equal(kept, float("inf")), tf.zeros_like(x), neg_inf)
    shifted = tf.where(has_pos_inf, at_pos_inf, kept - shift)
    total = tf.reduce_sum(tf.exp(shifted), axis=axes, keepdims=True)
    empty = tf.equal(total, 0.0)  # every entry masked or -inf: all zeros, not 0 / 0
    safe_total = tf.where(empty, tf.ones_like(total), total)
    if log:
        return tf.where(empty, neg_inf, shifted - tf.math.log(safe_total))
    return tf.exp(shifted) / safe_total
