"""slim's `separable_conv2d` as one Keras layer: depthwise (+ pointwise) convolution.

tf-slim's `separable_convolution2d(inputs, num_outputs, kernel_size, depth_multiplier, ...)`:

- `num_outputs=None`: a depthwise convolution only, `tf.nn.depthwise_conv2d` with kernel
  [kh, kw, C, depth_multiplier] (slim's `depthwise_weights`), C * depth_multiplier outputs;
- otherwise `tf.nn.separable_conv2d`: that depthwise kernel, then a 1x1 pointwise kernel
  [1, 1, C * depth_multiplier, num_outputs] (`pointwise_weights`).

Then bias (or normalizer) and activation, like `SlimConv2D`. The weights are named
`depthwise_kernel` / `pointwise_kernel` / `bias`, the names of Keras's `SeparableConv2D`, which
the porting rules map to slim's `depthwise_weights` / `pointwise_weights` / `biases`.
"""
import keras
import tensorflow as tf

from tfmodels.slim import layers as slim_layers


@keras.saving.register_keras_serializable(package="tfmodels")
class SlimSeparableConv2D(slim_layers._WeightedOp):  # pylint: disable=protected-access
    """Depthwise (+ pointwise) convolution with slim's variables, 'SAME' or 'VALID' padding.

    Args:
      filters: num_outputs of the pointwise convolution, or None for depthwise only.
      kernel_size: int or (kh, kw) of the depthwise kernel.
      depth_multiplier: depthwise outputs per input channel.
      strides, dilation_rate: int or pairs (a stride > 1 needs rate 1, as in TF).
      padding: 'SAME' or 'VALID'.
      pointwise_initializer: initializer of the pointwise kernel (None: kernel_initializer's).
      Other arguments as `SlimConv2D`; the regularizer applies to both kernels (slim's).
    """

    def __init__(self, filters, kernel_size, depth_multiplier=1, strides=1, padding="SAME",
                 dilation_rate=1, use_bias=True, kernel_initializer="glorot_uniform",
                 pointwise_initializer=None, bias_initializer="zeros", kernel_regularizer=None,
                 bias_regularizer=None, normalizer=None, activation=None, **kwargs):
        super().__init__(use_bias, kernel_initializer, bias_initializer, kernel_regularizer,
                         bias_regularizer, normalizer, activation, **kwargs)
        self.filters = None if filters is None else int(filters)
        self.kernel_size = slim_layers._pair(kernel_size)  # pylint: disable=protected-access
        self.depth_multiplier = int(depth_multiplier)
        self.strides = slim_layers._pair(strides)  # pylint: disable=protected-access
        self.dilation_rate = slim_layers._pair(dilation_rate)  # pylint: disable=protected-access
        if not isinstance(padding, str) or padding.upper() not in ("SAME", "VALID"):
            raise ValueError(f"padding={padding!r} must be 'SAME' or 'VALID'")
        self.padding = padding.upper()
        if self.depth_multiplier < 1:
            raise ValueError(f"depth_multiplier={depth_multiplier!r} must be an integer >= 1")
        if self.strides != (1, 1) and self.dilation_rate != (1, 1):
            raise ValueError(f"stride={self.strides} > 1 needs rate=1, got {self.dilation_rate}")
        fresh = slim_layers._fresh_initializer  # pylint: disable=protected-access
        self.pointwise_initializer = fresh(
            kernel_initializer if pointwise_initializer is None else pointwise_initializer)

    def build(self, input_shape):
        channels = input_shape[-1]
        self.depthwise_kernel = self.add_weight(
            name="depthwise_kernel", shape=(*self.kernel_size, channels, self.depth_multiplier),
            initializer=self.kernel_initializer, regularizer=self.kernel_regularizer)
        self.pointwise_kernel = None
        if self.filters is not None:
            self.pointwise_kernel = self.add_weight(
                name="pointwise_kernel",
                shape=(1, 1, channels * self.depth_multiplier, self.filters),
                initializer=self.pointwise_initializer, regularizer=self.kernel_regularizer)
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(
                name="bias", shape=(self.compute_output_shape(input_shape)[-1],),
                initializer=self.bias_initializer, regularizer=self.bias_regularizer)
        output_shape = self.compute_output_shape(input_shape)
        if self.normalizer is not None:
            self.normalizer.build(output_shape)
        if isinstance(self.activation, keras.layers.Layer):
            self.activation.build(output_shape)
        if not self.trainable:  # as SlimConv2D: freeze the sublayers too
            for sublayer in (self.normalizer, self.activation):
                if isinstance(sublayer, keras.layers.Layer):
                    sublayer.trainable = False

    def call(self, inputs, training=None):
        strides = (1, *self.strides, 1)
        if self.pointwise_kernel is None:
            outputs = tf.nn.depthwise_conv2d(inputs, self.depthwise_kernel, strides,
                                             self.padding, dilations=self.dilation_rate)
        else:
            outputs = tf.nn.separable_conv2d(inputs, self.depthwise_kernel,
                                             self.pointwise_kernel, strides, self.padding,
                                             dilations=self.dilation_rate)
        return self._finish(outputs, training)

    def compute_output_shape(self, input_shape):
        spatial = []
        for axis in (0, 1):
            size = input_shape[1 + axis]
            effective = (self.kernel_size[axis] - 1) * self.dilation_rate[axis] + 1
            if size is None:
                spatial.append(None)
            elif self.padding == "SAME":
                spatial.append(-(-size // self.strides[axis]))
            else:
                spatial.append((size - effective) // self.strides[axis] + 1)
        depth = (input_shape[-1] * self.depth_multiplier if self.filters is None
                 else self.filters)
        return (input_shape[0], *spatial, depth)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters,
                "kernel_size": self.kernel_size, "depth_multiplier": self.depth_multiplier,
                "strides": self.strides, "padding": self.padding,
                "dilation_rate": self.dilation_rate,
                "pointwise_initializer": keras.initializers.serialize(
                    self.pointwise_initializer)}
