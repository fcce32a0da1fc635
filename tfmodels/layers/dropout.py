"""Dropout whose mask does not depend on how the global batch is split across replicas.

Keras's Dropout draws its mask from a SeedGenerator whose state is a mirrored variable with
aggregation "none": under MirroredStrategy every replica advances an identical copy, so every
replica applies the *same* mask pattern to its own slice of the batch (measured: two replicas,
masks identical at every step). The replicas' examples then share their dropout noise, and N
replicas drop other units than one device on the whole batch does.

Here every replica draws the mask of the *global* batch from the shared seed and keeps its own
rows. The input pipeline hands replica r the rows [r*B, (r+1)*B) of each global batch, so example
i gets the same mask on one device or on N replicas (or workers). The extra random numbers
(N times the replica's share) are cheap next to the layers dropout follows.

The seed state is a Keras SeedGenerator variable: the trainer checkpoints it (Keras keeps it out
of `weights`, and TensorFlow's object-graph checkpoints do not reach it by themselves), so a
resumed run continues the same mask sequence.
"""
import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="tfmodels")
class Dropout(keras.layers.Layer):
    """Inverted dropout: y = x * m / (1 - rate), m ~ Bernoulli(1 - rate), exact across replicas.

    Args:
      rate: fraction of units dropped, in [0, 1).
      noise_shape: like Keras's (None entries follow the input); a batch entry of 1 shares one
        mask across the batch.
      seed: integer seed of the mask sequence (None: drawn from Keras's global seed).
      is_training: None follows the call's `training`; True always drops (slim's pinned mode).
    """

    def __init__(self, rate, noise_shape=None, seed=None, is_training=None, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"dropout rate={rate} must be in [0, 1)")
        self.rate = float(rate)
        self.noise_shape = None if noise_shape is None else tuple(noise_shape)
        self.seed = seed
        self.is_training = is_training
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.supports_masking = True

    def call(self, inputs, training=False):
        if self.is_training is not None:
            training = self.is_training
        if not training or self.rate == 0.0:
            return inputs
        context = tf.distribute.get_replica_context()
        replicas = context.num_replicas_in_sync if context else 1
        replica = context.replica_id_in_sync_group if context else 0
        shape = self._noise_shape(inputs)
        batch = shape[0]
        per_example = self.noise_shape is None or self.noise_shape[0] != 1
        if per_example:
            shape = tf.concat([[batch * replicas], shape[1:]], axis=0)
        seed = tf.cast(self.seed_generator.next(), tf.int64)
        uniform = tf.random.stateless_uniform(shape, seed=seed)
        if per_example:
            uniform = uniform[replica * batch:(replica + 1) * batch]
        keep = uniform >= self.rate
        scale = tf.constant(1.0 / (1.0 - self.rate), inputs.dtype)
        return tf.where(keep, inputs * scale, tf.zeros_like(inputs))

    def _noise_shape(self, inputs):
        shape = tf.shape(inputs)
        if self.noise_shape is None:
            return shape
        return tf.stack([shape[i] if d is None else d for i, d in enumerate(self.noise_shape)])

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "noise_shape": self.noise_shape,
                "seed": self.seed, "is_training": self.is_training}
