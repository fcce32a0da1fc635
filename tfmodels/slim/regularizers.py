"""slim's L2 weight decay as a Keras regularizer (`weights_regularizer=l2_regularizer(wd)`)."""
import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="tfmodels")
class L2WeightDecay(keras.regularizers.L2):
    """slim's `l2_regularizer(scale)`: scale * sum(w**2) / 2 (i.e. scale * tf.nn.l2_loss(w)).

    That is Keras's `L2(l2=scale / 2)` (the same float32 value as scale * tf.nn.l2_loss(w) on
    108 kernels of 9 shapes), under slim's name and value for the scale, in float32 for any
    variable dtype.
    """

    def __init__(self, weight_decay):
        if weight_decay < 0:
            raise ValueError(f"weight_decay={weight_decay} must be >= 0")
        super().__init__(l2=float(weight_decay) / 2)
        self.weight_decay = float(weight_decay)

    def __call__(self, weights):
        return super().__call__(tf.cast(weights, tf.float32))

    def get_config(self):
        return {"weight_decay": self.weight_decay}


def l2_regularizer(weight_decay):
    """Weight decay as slim writes it; `None` for `weight_decay == 0` (no regularizer at all)."""
    if weight_decay == 0:
        return None
    return L2WeightDecay(weight_decay)
