"""Token layers of a Vision Transformer: a learned class token and learned position embeddings.

    tokens = ClassToken(name="cls")(patches)            # [N, T, d] -> [N, 1 + T, d]
    tokens = PositionEmbedding(name="posembed")(tokens)  # + a learned [1 + T, d] table

As in Dosovitskiy et al. 2021 (and big_vision's ViT): the class token starts at zero, the
positions from a normal distribution with stddev 0.02. Their variables are named `token` and
`embedding`, not `kernel`, so decoupled weight decay (which decays kernels only) leaves them
alone, as ViT recipes do.
"""
import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="tfmodels")
class ClassToken(keras.layers.Layer):
    """Prepends one learned token to a sequence: [N, T, d] -> [N, 1 + T, d].

    Args:
      initializer: of the token (default zeros).
    """

    def __init__(self, initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        self.initializer = keras.initializers.get(initializer)

    def build(self, input_shape):
        if len(input_shape) != 3 or input_shape[-1] is None:
            raise ValueError(f"ClassToken needs [batch, length, width] inputs with a known "
                             f"width, got shape {tuple(input_shape)}")
        self.token = self.add_weight(name="token", shape=(1, 1, input_shape[-1]),
                                     initializer=self.initializer)

    def call(self, inputs):
        token = tf.cast(self.token, inputs.dtype)
        return tf.concat([tf.tile(token, [tf.shape(inputs)[0], 1, 1]), inputs], axis=1)

    def compute_output_shape(self, input_shape):
        length = None if input_shape[1] is None else input_shape[1] + 1
        return (input_shape[0], length, input_shape[2])

    def get_config(self):
        return {**super().get_config(),
                "initializer": keras.initializers.serialize(self.initializer)}


@keras.saving.register_keras_serializable(package="tfmodels")
class PositionEmbedding(keras.layers.Layer):
    """Adds a learned embedding per position: x + E[None, :T], E of shape [T, d].

    Args:
      initializer: of the table (default normal, stddev 0.02).
    """

    def __init__(self, initializer=None, **kwargs):
        super().__init__(**kwargs)
        self.initializer = keras.initializers.get(
            initializer or keras.initializers.RandomNormal(stddev=0.02))

    def build(self, input_shape):
        if len(input_shape) != 3 or None in tuple(input_shape)[1:]:
            raise ValueError(f"PositionEmbedding needs [batch, length, width] inputs with a "
                             f"known length and width, got shape {tuple(input_shape)}")
        self.embedding = self.add_weight(name="embedding", shape=tuple(input_shape)[1:],
                                         initializer=self.initializer)

    def call(self, inputs):
        return inputs + tf.cast(self.embedding, inputs.dtype)[None]

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(),
                "initializer": keras.initializers.serialize(self.initializer)}
