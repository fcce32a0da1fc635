"""Multi-head attention whose masked keys get exactly zero weight, with Keras's weights.

    attention(Q, K, V) = softmax(Q K^T / sqrt(key_dim), over keys, mask) V

per head, with Q = query W_q + b_q, K = key W_k + b_k, V = value W_v + b_v, and the heads'
contexts projected back by W_o + b_o: 4·d² + 4·d parameters for d-wide inputs and
num_heads · key_dim = d.

The call and the weights are Keras's (`keras.layers.MultiHeadAttention`): kernels [d, heads,
key_dim] / [d, heads, value_dim] / [heads, value_dim, d], biases [heads, key_dim] / [d], in the
order query, key, value, attention_output, so `set_weights(keras_mha.get_weights())` copies a
Keras layer both ways. What differs is the softmax: Keras adds a large negative number to masked
logits, so a query whose keys are all masked averages every value uniformly. Here the softmax
over the key axis is `tfmodels.layers.softmax` with the mask: masked keys get probability 0, and
a query with no key left gets a zero context (its output is the output projection's bias). The
softmax runs in float32 under mixed precision.

Attention dropout is `tfmodels.layers.Dropout` on the probabilities: each example gets the same
mask however the global batch is split across replicas.

Each projection is one matrix product on [B * L, d] (1 / sqrt(key_dim) folded into the query's
kernel and bias) and the heads are batched matrix products on [B, heads, L, size]; the softmax
takes TensorFlow's fused kernel, masked or not. One product over the three kernels side by side
measured 1.3x slower forward + backward: the 5-D transpose that splits it costs more than the
two extra products.
"""
import math

import keras
import tensorflow as tf

from tfmodels.layers.dropout import Dropout
from tfmodels.layers.softmax import softmax
from tfmodels.options import check_int, is_int


@keras.saving.register_keras_serializable(package="tfmodels")
class MultiHeadAttention(keras.layers.Layer):
    """Multi-head scaled dot-product attention (Vaswani et al. 2017) with exact masking.

    Args:
      num_heads: number of heads.
      key_dim: size of each head for query and key.
      value_dim: size of each head for value (default key_dim).
      dropout: rate of dropout on the attention probabilities, in [0, 1).
      use_bias: projections with biases.
      output_shape: last dimension(s) of the output (int or tuple); default the query's width.
      kernel_initializer, bias_initializer, kernel_regularizer, bias_regularizer: for every
        projection (Keras's defaults: glorot_uniform, zeros).
      seed: seed of the attention dropout.
      is_training: attention dropout mode; None follows the call's `training`, True/False pin
        it (slim's pinned mode, as `tfmodels.layers.Dropout`). Not in Keras's layer.

    Call arguments:
      query: [B, T, d_q]. value: [B, S, d_v]. key: [B, S, d_k] (default `value`).
      attention_mask: boolean, broadcastable to [B, T, S] (True = attend); Keras masks
        carried by query/value/key are combined with it, as Keras does.
      use_causal_mask: query i attends to keys j <= i only.
      training: attention dropout on or off.

    Returns:
      [B, T, d_q] (or [B, T, *output_shape]) in the layer's compute dtype.
    """

    def __init__(self, num_heads, key_dim, value_dim=None, dropout=0.0, use_bias=True,
                 output_shape=None, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None,
                 seed=None, is_training=None, **kwargs):
        super().__init__(**kwargs)
        for name, value in (("num_heads", num_heads), ("key_dim", key_dim),
                            ("value_dim", value_dim)):
            if value is None and name == "value_dim":
                continue
            check_int(name, value, low=1)
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) \
                or not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout={dropout!r} must be a number in [0, 1)")
        self.num_heads = num_heads
        self.key_dim = key_dim
        self.value_dim = value_dim or key_dim
        self.dropout = float(dropout)
        self.use_bias = bool(use_bias)
        self._output_shape = _output_shape_tuple(output_shape)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self.seed = seed
        self.is_training = is_training
        self.dropout_layer = Dropout(self.dropout, seed=seed, is_training=is_training,
                                     name="attention_dropout")
        self.supports_masking = True

    def build(self, query_shape, value_shape, key_shape=None):
        key_shape = value_shape if key_shape is None else key_shape
        for name, shape in (("query", query_shape), ("value", value_shape), ("key", key_shape)):
            if len(shape) != 3 or shape[-1] is None:
                raise ValueError(f"{name} must be [batch, length, width] with a known width, "
                                 f"got shape {tuple(shape)}")
        if value_shape[1] is not None and key_shape[1] is not None \
                and value_shape[1] != key_shape[1]:
            raise ValueError(f"key and value need the same length, got key shape "
                             f"{tuple(key_shape)} and value shape {tuple(value_shape)}")
        heads, out = self.num_heads, self._output_shape or (query_shape[-1],)
        # Keras's EinsumDense layouts, built in Keras's order: `weights` line up one to one.
        self.query_dense = self._projection("query", "abc,cde->abde", (heads, self.key_dim),
                                            query_shape)
        self.key_dense = self._projection("key", "abc,cde->abde", (heads, self.key_dim),
                                          key_shape)
        self.value_dense = self._projection("value", "abc,cde->abde", (heads, self.value_dim),
                                            value_shape)
        equation = "abcd,cde->abe" if len(out) == 1 else "abcd,cdef->abef"
        self.output_dense = self._projection(
            "attention_output", equation, out,
            (query_shape[0], query_shape[1], heads, self.value_dim))

    def _projection(self, name, equation, output_shape, input_shape):
        bias_axes = "".join(equation.split("->")[1][-len(output_shape):])
        # Fresh initializer instances: one shared unseeded instance gives equal kernels.
        initializer = self.kernel_initializer.__class__.from_config(
            self.kernel_initializer.get_config())
        layer = keras.layers.EinsumDense(
            equation, output_shape=(None, *output_shape), bias_axes=bias_axes if self.use_bias
            else None, kernel_initializer=initializer,
            bias_initializer=self.bias_initializer.__class__.from_config(
                self.bias_initializer.get_config()),
            kernel_regularizer=self.kernel_regularizer, bias_regularizer=self.bias_regularizer,
            dtype=self.dtype_policy, name=name)
        layer.build(input_shape)
        return layer

    def call(self, query, value, key=None, attention_mask=None, use_causal_mask=False,
             training=None, query_mask=None, value_mask=None, key_mask=None):
        # Keras passes the Keras masks carried by query / value / key as `<name>_mask`.
        if key is value:
            key, key_mask = None, None
        mask = _combined_mask(query, value, attention_mask, use_causal_mask, query_mask,
                              value_mask, key_mask)
        key = value if key is None else key
        # 1 / sqrt(key_dim) scales the query's kernel and bias, not the projected queries.
        q = self._project(query, self.query_dense, scale=1.0 / math.sqrt(self.key_dim))
        k = self._project(key, self.key_dense)
        v = self._project(value, self.value_dense)
        # q, k: [B, heads, T or S, key_dim]; v: [B, heads, S, value_dim].
        scores = tf.matmul(q, k, transpose_b=True)  # [B, heads, T, S]
        if mask is not None:
            mask = mask[:, None]  # the same mask for every head
        probs = softmax(scores, axis=-1, mask=mask)  # float32, masked keys exactly 0
        probs = self.dropout_layer(tf.cast(probs, v.dtype), training=training)
        context = tf.transpose(tf.matmul(probs, v), [0, 2, 1, 3])  # [B, T, heads, value_dim]
        return self._output(context)

    def _project(self, inputs, dense, scale=None):
        """One projection, [B, L, d] -> [B, heads, L, size], times `scale` if given."""
        d, size = inputs.shape[-1], dense.kernel.shape[-1]
        shape = tf.shape(inputs)
        kernel = tf.cast(tf.reshape(dense.kernel, [d, self.num_heads * size]), inputs.dtype)
        bias = tf.cast(tf.reshape(dense.bias, [-1]), inputs.dtype) if self.use_bias else None
        if scale is not None:
            kernel = kernel * tf.constant(scale, inputs.dtype)
            bias = None if bias is None else bias * tf.constant(scale, inputs.dtype)
        projected = tf.matmul(tf.reshape(inputs, [-1, d]), kernel)
        if bias is not None:
            projected = tf.nn.bias_add(projected, bias)
        return self._heads(projected, shape, size)

    def _heads(self, projected, shape, size):
        return tf.transpose(tf.reshape(projected, [shape[0], shape[1], self.num_heads, size]),
                            [0, 2, 1, 3])

    def _output(self, context):
        dense = self.output_dense
        out = self._output_shape or (dense.kernel.shape[-1],)
        shape = tf.shape(context)
        kernel = tf.cast(tf.reshape(dense.kernel, [self.num_heads * self.value_dim, -1]),
                         context.dtype)
        outputs = tf.matmul(tf.reshape(context, [-1, self.num_heads * self.value_dim]), kernel)
        if self.use_bias:
            outputs = tf.nn.bias_add(outputs, tf.cast(tf.reshape(dense.bias, [-1]),
                                                      context.dtype))
        return tf.reshape(outputs, tf.concat([shape[:2], out], axis=0))

    def compute_output_shape(self, query_shape, value_shape, key_shape=None):
        return (*tuple(query_shape)[:-1], *(self._output_shape or (query_shape[-1],)))

    def compute_output_spec(self, query, value, key=None, attention_mask=None,
                            use_causal_mask=False, training=None, query_mask=None,
                            value_mask=None, key_mask=None):
        return keras.KerasTensor(self.compute_output_shape(query.shape, value.shape),
                                 dtype=self.compute_dtype)

    def get_config(self):
        return {**super().get_config(), "num_heads": self.num_heads, "key_dim": self.key_dim,
                "value_dim": self.value_dim, "dropout": self.dropout,
                "use_bias": self.use_bias, "output_shape": self._output_shape,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
                "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
                "bias_regularizer": keras.regularizers.serialize(self.bias_regularizer),
                "seed": self.seed, "is_training": self.is_training}


def _output_shape_tuple(output_shape):
    if output_shape is None:
        return None
    shape = (output_shape,) if isinstance(output_shape, int) else tuple(output_shape)
    if not shape or not all(is_int(d, low=1) for d in shape):
        raise ValueError(f"output_shape={output_shape!r} must be a positive int or a "
                         "non-empty tuple of them")
    return shape


def _combined_mask(query, value, attention_mask, use_causal_mask, query_mask, value_mask,
                   key_mask):
    """The [B or 1, T or 1, S] boolean mask (True = attend), or None when nothing is masked.

    As in Keras, the masks are ANDed: query's Keras mask [B, T] -> [B, T, 1], value's and key's
    [B, S] -> [B, 1, S], `attention_mask`, and the causal mask [1, T, S] (lower triangular).
    """
    masks = []
    if query_mask is not None:
        masks.append(tf.cast(query_mask, tf.bool)[:, :, None])
    for keys_mask in (value_mask, key_mask):
        if keys_mask is not None:
            masks.append(tf.cast(keys_mask, tf.bool)[:, None, :])
    if attention_mask is not None:
        attention_mask = tf.convert_to_tensor(attention_mask)
        if attention_mask.shape.rank not in (2, 3):
            raise ValueError(f"attention_mask must be [B, T, S] (or [T, S]), got shape "
                             f"{attention_mask.shape}")
        if attention_mask.shape.rank == 2:
            attention_mask = attention_mask[None]
        masks.append(tf.cast(attention_mask, tf.bool))
    if use_causal_mask:
        length_q, length_s = tf.shape(query)[1], tf.shape(value)[1]
        masks.append(tf.linalg.band_part(tf.ones([length_q, length_s], tf.bool), -1, 0)[None])
    if not masks:
        return None
    mask = masks[0]
    for other in masks[1:]:
        mask = tf.logical_and(mask, other)
    return mask
