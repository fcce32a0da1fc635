"""slim's depthwise convolution (`separable_conv2d(num_outputs=None)`) as one Keras layer.

`SlimDepthwiseConv2D(name='Conv2d_1_depthwise')` owns `depthwise_kernel` [kh, kw, C, mult]
(slim's `depthwise_weights`, same layout as `tf.nn.depthwise_conv2d`'s filter), then a bias or
its normalizer sublayer (`BatchNorm`), then the activation, as `SlimConv2D` does.
"""
import keras
import tensorflow as tf

from tfmodels.slim.layers import SlimConv2D


@keras.saving.register_keras_serializable(package="tfmodels")
class SlimDepthwiseConv2D(SlimConv2D):
    """Depthwise convolution: C * depth_multiplier outputs, channel c feeding outputs
    c * mult .. c * mult + mult - 1 (TF's order). Arguments as `SlimConv2D`, with
    `depth_multiplier` in place of `filters`."""

    def __init__(self, kernel_size, depth_multiplier=1, **kwargs):
        kwargs.pop("filters", None)
        super().__init__(1, kernel_size, **kwargs)
        self.depth_multiplier = int(depth_multiplier)
        if self.depth_multiplier < 1:
            raise ValueError(f"depth_multiplier={depth_multiplier} must be an integer >= 1")

    def build(self, input_shape):
        self.filters = int(input_shape[-1]) * self.depth_multiplier
        self.depthwise_kernel = self.add_weight(
            name="depthwise_kernel",
            shape=self.kernel_size + (int(input_shape[-1]), self.depth_multiplier),
            initializer=self.kernel_initializer, regularizer=self.kernel_regularizer)
        output_shape = self.compute_output_shape(input_shape)
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(name="bias", shape=(self.filters,),
                                        initializer=self.bias_initializer,
                                        regularizer=self.bias_regularizer)
        if self.normalizer is not None:
            self.normalizer.build(output_shape)
        if isinstance(self.activation, keras.layers.Layer):
            self.activation.build(output_shape)
        if not self.trainable:
            for sublayer in (self.normalizer, self.activation):
                if isinstance(sublayer, keras.layers.Layer):
                    sublayer.trainable = False

    def call(self, inputs, training=None):
        padding = self.padding
        if not isinstance(padding, str):
            inputs = tf.pad(inputs, padding)
            padding = "VALID"
        outputs = tf.nn.depthwise_conv2d(inputs, self.depthwise_kernel,
                                         strides=(1, *self.strides, 1), padding=padding,
                                         dilations=self.dilation_rate)
        return self._finish(outputs, training)

    def compute_output_shape(self, input_shape):
        self.filters = int(input_shape[-1]) * self.depth_multiplier
        return super().compute_output_shape(input_shape)

    def get_config(self):
        config = super().get_config()
        del config["filters"]
        return {**config, "depth_multiplier": self.depth_multiplier}
