"""Exponential moving average of weights (evaluation and exports with averaged weights).

    shadow <- d * shadow + (1 - d) * w,   d = min(decay, (1 + t) / (10 + t))

This is TensorFlow's `ExponentialMovingAverage` with `num_updates = t` (the optimizer step), so
TF1 checkpoints' `<var>/ExponentialMovingAverage` shadows and ours mean the same thing. The
trainer updates it after each step, `model_dir.restore_model` swaps the averages into a restored
model, and porting reads them with `use_ema`.
"""
import contextlib

import keras
import tensorflow as tf

_ONLY_FIRST = tf.VariableAggregation.ONLY_FIRST_REPLICA


class WeightAverage(tf.Module):
    """Shadows of `variables` and the update / swap that use them.

    Create it inside `strategy.scope()`; `update()` runs in the replica function after the
    optimizer step (every replica computes the same value; the first replica's is applied to
    all copies).
    """

    def __init__(self, variables, decay):
        super().__init__(name="weight_average")
        if not 0.0 < decay < 1.0:
            raise ValueError(f"ema_decay={decay} must be in (0, 1)")
        self.decay = float(decay)
        self._variables = list(variables)
        self.shadows = [
            tf.Variable(v.value if isinstance(v, keras.Variable) else v, trainable=False,
                        name=v.path.replace("/", "_") + "_average", aggregation=_ONLY_FIRST)
            for v in self._variables]

    def update(self, step):
        t = tf.cast(step, tf.float32)
        decay = tf.minimum(self.decay, (1.0 + t) / (10.0 + t))
        for shadow, var in zip(self.shadows, self._variables):
            shadow.assign(decay * shadow + (1.0 - decay) * tf.cast(var, shadow.dtype))

    @contextlib.contextmanager
    def swapped(self):
        """Within the block the model holds the averaged weights; its own come back after."""
        self.swap()
        try:
            yield
        finally:
            self.swap()

    def swap(self):
        """Exchange the model's weights and the averages."""
        for shadow, var in zip(self.shadows, self._variables):
            current = tf.identity(var.value if isinstance(var, keras.Variable) else var)
            var.assign(shadow)
            shadow.assign(current)
