"""Keras 3 layers behind the slim-style builders of `tfmodels.slim.scopes`: one layer per slim op.

A functional Keras model needs unique layer names, while slim repeats scopes such as
`conv1/BatchNorm` everywhere. So a slim op with a normalizer is ONE layer named after its scope
(`SlimConv2D(name='conv1')`) that owns `kernel`/`bias` and carries its normalizer (and an
activation with weights, e.g. PReLU) as sublayers. The sublayers are created in `__init__` and
built in the parent's `build()`, so Keras tracks them and their variable paths nest under the
parent: `conv1/kernel`, `conv1/BatchNorm/moving_mean`, `conv1/PReLU/alpha`.

slim semantics kept here: with a normalizer the op has no bias; the activation comes after the
normalizer. `is_training=None` follows the model call's `training` argument (the Keras way);
True/False pins the mode inside the layer (slim's way), because Keras 3 functional graphs
ignore a `training=` given at symbolic call time.

Layout is channels-last only. Kernels are HWIO for convolutions and [in, out] for dense layers,
the same as slim's `weights`, so checkpoints port without transposes.
"""
import keras
import tensorflow as tf

_PACKAGE = "tfmodels"

# slim code passes TensorFlow functions as activation_fn; Keras configs want names.
_TF_ACTIVATION_NAMES = {
    tf.nn.relu: "relu", tf.nn.relu6: "relu6", tf.nn.elu: "elu", tf.nn.selu: "selu",
    tf.nn.sigmoid: "sigmoid", tf.sigmoid: "sigmoid", tf.nn.tanh: "tanh", tf.tanh: "tanh",
    tf.nn.softplus: "softplus", tf.nn.silu: "silu",
}


def _resolve_activation(activation):
    """None | name | callable -> callable or None; a Layer (with weights) is kept as is."""
    if activation is None or isinstance(activation, keras.layers.Layer):
        return activation
    if isinstance(activation, dict):  # a serialized Layer (from get_config)
        return keras.saving.deserialize_keras_object(activation)
    try:
        activation = _TF_ACTIVATION_NAMES.get(activation, activation)
    except TypeError:  # unhashable callable: use it as is
        pass
    return keras.activations.get(activation)


def _serialize_sublayer(layer):
    # Without its build config: a sublayer built on deserialization would create its
    # variables outside the parent's name scope (and the parent's build() builds it anyway).
    config = keras.saving.serialize_keras_object(layer)
    config.pop("build_config", None)
    return config


def _serialize_activation(activation):
    if activation is None:
        return None
    if isinstance(activation, keras.layers.Layer):
        return _serialize_sublayer(activation)
    return keras.activations.serialize(activation)


def _fresh_initializer(identifier):
    """A new initializer instance per layer.

    An unseeded Keras 3 initializer draws its seed once, in `__init__`, so one instance shared
    by many layers (what an arg_scope's `weights_initializer=TruncatedNormal(...)` does) gives
    every same-shaped kernel identical values (measured: two calls of one instance are equal).
    Rebuilding it from its config draws a new seed when none was given; an explicit seed stays.
    """
    initializer = keras.initializers.get(identifier)
    if isinstance(initializer, keras.initializers.Initializer):
        initializer = initializer.__class__.from_config(initializer.get_config())
    return initializer


def _resolve_normalizer(normalizer):
    if normalizer is None or isinstance(normalizer, keras.layers.Layer):
        return normalizer
    return keras.saving.deserialize_keras_object(normalizer)


class _WeightedOp(keras.layers.Layer):
    """Shared plumbing: optional bias, normalizer sublayer, activation (function or sublayer)."""

    def __init__(self, use_bias, kernel_initializer, bias_initializer, kernel_regularizer,
                 bias_regularizer, normalizer, activation, **kwargs):
        super().__init__(**kwargs)
        self.normalizer = _resolve_normalizer(normalizer)
        # slim: a normalizer replaces the bias (BN's beta plays its role).
        self.use_bias = bool(use_bias) and self.normalizer is None
        self.kernel_initializer = _fresh_initializer(kernel_initializer)
        self.bias_initializer = _fresh_initializer(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self.activation = _resolve_activation(activation)

    def _build_weights(self, kernel_shape, output_shape):
        self.kernel = self.add_weight(
            name="kernel", shape=kernel_shape, initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer)
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(
                name="bias", shape=(kernel_shape[-1],), initializer=self.bias_initializer,
                regularizer=self.bias_regularizer)
        # Built here (not on first call) so that Keras tracks the sublayers' variables and
        # gives them paths under this layer's name.
        if self.normalizer is not None:
            self.normalizer.build(output_shape)
        if isinstance(self.activation, keras.layers.Layer):
            self.activation.build(output_shape)
        if not self.trainable:
            # `trainable=False` given to __init__ does not reach sublayers created after it
            # (their variables stayed in model.trainable_variables), and re-assigning
            # `self.trainable = False` is a no-op (the TF backend's __setattr__ skips a value
            # that is already there; measured). Keras semantics follow: a frozen BatchNorm
            # normalises with its moving statistics.
            for sublayer in (self.normalizer, self.activation):
                if isinstance(sublayer, keras.layers.Layer):
                    sublayer.trainable = False

    def _finish(self, outputs, training):
        if self.bias is not None:
            outputs = tf.nn.bias_add(outputs, self.bias)
        if self.normalizer is not None:
            outputs = self.normalizer(outputs, training=training)
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs

    def get_config(self):
        return {
            **super().get_config(),
            "use_bias": self.use_bias,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
            "bias_regularizer": keras.regularizers.serialize(self.bias_regularizer),
            "normalizer": (None if self.normalizer is None
                           else _serialize_sublayer(self.normalizer)),
            "activation": _serialize_activation(self.activation),
        }


def _pair(value):
    return (value, value) if isinstance(value, int) else tuple(value)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class SlimConv2D(_WeightedOp):
    """slim's `conv2d`: convolution (+ bias | normalizer) + activation, channels-last.

    `padding` is 'SAME', 'VALID' or explicit `[[0, 0], [top, bottom], [left, right], [0, 0]]`
    as in `tf.nn.conv2d` (ResNet's `conv2d_same` pads symmetrically, which 'SAME' does not do
    for strided convolutions of even inputs).
    """

    def __init__(self, filters, kernel_size, strides=1, padding="SAME", dilation_rate=1,
                 use_bias=True, kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, normalizer=None,
                 activation=None, **kwargs):
        super().__init__(use_bias, kernel_initializer, bias_initializer, kernel_regularizer,
                         bias_regularizer, normalizer, activation, **kwargs)
        self.filters = int(filters)
        self.kernel_size = _pair(kernel_size)
        self.strides = _pair(strides)
        self.dilation_rate = _pair(dilation_rate)
        if isinstance(padding, str):
            if padding.upper() not in ("SAME", "VALID"):
                raise ValueError(f"padding={padding!r} must be 'SAME', 'VALID' or explicit pairs")
            self.padding = padding.upper()
        else:
            self.padding = [list(map(int, pair)) for pair in padding]
            if len(self.padding) != 4 or any(len(pair) != 2 for pair in self.padding):
                raise ValueError(f"explicit padding={padding} must be 4 [before, after] pairs")
        if self.strides != (1, 1) and self.dilation_rate != (1, 1):
            # tf.nn.conv2d rejects this combination; say so when the layer is made.
            raise ValueError(f"stride={self.strides} > 1 needs rate=1, got {self.dilation_rate}")

    def build(self, input_shape):
        kernel_shape = self.kernel_size + (input_shape[-1], self.filters)
        self._build_weights(kernel_shape, self.compute_output_shape(input_shape))

    def call(self, inputs, training=None):
        outputs = tf.nn.conv2d(inputs, self.kernel, strides=self.strides, padding=self.padding,
                               dilations=self.dilation_rate)
        return self._finish(outputs, training)

    def compute_output_shape(self, input_shape):
        spatial = []
        for axis in (0, 1):
            size = input_shape[1 + axis]
            effective = (self.kernel_size[axis] - 1) * self.dilation_rate[axis] + 1
            stride = self.strides[axis]
            if size is None:
                spatial.append(None)
            elif self.padding == "SAME":
                spatial.append(-(-size // stride))
            elif self.padding == "VALID":
                spatial.append((size - effective) // stride + 1)
            else:
                padded = size + sum(self.padding[1 + axis])
                spatial.append((padded - effective) // stride + 1)
        return (input_shape[0], *spatial, self.filters)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters,
                "kernel_size": self.kernel_size, "strides": self.strides,
                "padding": self.padding, "dilation_rate": self.dilation_rate}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class SlimDense(_WeightedOp):
    """slim's `fully_connected`: x @ kernel (+ bias | normalizer) + activation on the last axis."""

    def __init__(self, units, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None,
                 normalizer=None, activation=None, **kwargs):
        super().__init__(use_bias, kernel_initializer, bias_initializer, kernel_regularizer,
                         bias_regularizer, normalizer, activation, **kwargs)
        self.units = int(units)

    def build(self, input_shape):
        self._build_weights((input_shape[-1], self.units), self.compute_output_shape(input_shape))

    def call(self, inputs, training=None):
        if len(inputs.shape) == 2:
            outputs = tf.matmul(inputs, self.kernel)
        else:  # slim (tf.layers.Dense) applies the kernel to the last axis of higher ranks
            outputs = tf.tensordot(inputs, self.kernel, [[len(inputs.shape) - 1], [0]])
        return self._finish(outputs, training)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def get_config(self):
        return {**super().get_config(), "units": self.units}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class BatchNorm(keras.layers.BatchNormalization):
    """Keras BatchNormalization with slim's extras: a pinned `is_training` and an activation.

    `is_training=None` follows the `training` argument of the call; True/False overrides it
    (False: always normalise with the moving statistics and never update them).
    """

    def __init__(self, is_training=None, activation=None, **kwargs):
        for key in ("beta_initializer", "gamma_initializer", "moving_mean_initializer",
                    "moving_variance_initializer"):
            if key in kwargs:
                kwargs[key] = _fresh_initializer(kwargs[key])
        super().__init__(**kwargs)
        self.is_training = is_training
        self.activation = _resolve_activation(activation)
        if isinstance(self.activation, keras.layers.Layer):
            raise ValueError("batch_norm's activation_fn must be a function without weights, "
                             f"got layer {self.activation.name!r}")

    def call(self, inputs, training=None, mask=None):
        if self.is_training is not None:
            training = self.is_training
        outputs = super().call(inputs, training=training, mask=mask)
        return outputs if self.activation is None else self.activation(outputs)

    def get_config(self):
        return {**super().get_config(), "is_training": self.is_training,
                "activation": _serialize_activation(self.activation)}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class PReLU(keras.layers.Layer):
    """Parametric ReLU (He et al. 2015): f(x) = max(0, x) + alpha * min(0, x).

    One `alpha` per channel (shape [C], Caffe's layout and the Wen et al. 2016 center-loss
    nets), or a single scalar shared by all channels (`channel_shared=True`, shape []).
    Caffe and the paper initialise alpha to 0.25.
    """

    def __init__(self, alpha_initializer=0.25, alpha_regularizer=None, channel_shared=False,
                 **kwargs):
        super().__init__(**kwargs)
        if isinstance(alpha_initializer, (int, float)):
            alpha_initializer = keras.initializers.Constant(float(alpha_initializer))
        self.alpha_initializer = _fresh_initializer(alpha_initializer)
        self.alpha_regularizer = keras.regularizers.get(alpha_regularizer)
        self.channel_shared = bool(channel_shared)

    def build(self, input_shape):
        shape = () if self.channel_shared else (input_shape[-1],)
        self.alpha = self.add_weight(name="alpha", shape=shape,
                                     initializer=self.alpha_initializer,
                                     regularizer=self.alpha_regularizer)

    def call(self, inputs):
        return tf.nn.relu(inputs) + self.alpha * tf.minimum(inputs, 0.0)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(),
                "alpha_initializer": keras.initializers.serialize(self.alpha_initializer),
                "alpha_regularizer": keras.regularizers.serialize(self.alpha_regularizer),
                "channel_shared": self.channel_shared}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class LocalResponseNormalization(keras.layers.Layer):
    """`tf.nn.lrn` (AlexNet / CifarNet's norm1, norm2), across channels, channels-last.

    out = x / (bias + alpha * sum_{|c'-c| <= depth_radius} x_c'^2) ** beta. Computed in float32
    (then cast back): the sum of squares overflows float16 easily.
    """

    def __init__(self, depth_radius=5, bias=1.0, alpha=1.0, beta=0.5, **kwargs):
        super().__init__(**kwargs)
        self.depth_radius = int(depth_radius)
        self.bias = float(bias)
        self.alpha = float(alpha)
        self.beta = float(beta)

    def call(self, inputs):
        outputs = tf.nn.lrn(tf.cast(inputs, tf.float32), self.depth_radius, bias=self.bias,
                            alpha=self.alpha, beta=self.beta)
        return tf.cast(outputs, inputs.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "depth_radius": self.depth_radius, "bias": self.bias,
                "alpha": self.alpha, "beta": self.beta}
