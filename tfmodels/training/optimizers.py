"""Optimizers that take gradients already summed over replicas, and float16 loss scaling.

The trainer all-reduces gradients itself, *then* clips them and checks them for inf/NaN, so all
replicas see the same numbers and make the same decision. Keras 3 optimizers would all-reduce a
second time inside `apply()` (and clip, and LossScaleOptimizer would test finiteness, on each
replica's local gradients first), so ours skip that summation; everything else (update rules,
decoupled weight decay, iteration counter, schedules) is Keras's own.
"""
import keras
import tensorflow as tf

from tfmodels.options import UsageError

OPTIMIZERS = ("sgd", "momentum", "adam", "adamw")
_ONLY_FIRST = tf.VariableAggregation.ONLY_FIRST_REPLICA


def create_optimizer(name, learning_rate, *, momentum=0.9, nesterov=False, weight_decay=0.0,
                     beta_1=0.9, beta_2=0.999, epsilon=1e-7):
    """A Keras optimizer whose `apply()` expects gradients already summed over replicas.

    Create it inside `strategy.scope()` and build it there on the model's trainable variables.

    Args:
      name: `sgd`, `momentum` (SGD with momentum), `adam` or `adamw`.
      learning_rate: float or `keras.optimizers.schedules.LearningRateSchedule`.
      momentum, nesterov: for `momentum`.
      weight_decay: decoupled weight decay, w <- w - lr * weight_decay * w after each step
        (Keras's form; 0 disables it). L2 decay in the loss is the nets' `weight_decay`.
      beta_1, beta_2, epsilon: for `adam` / `adamw`.
    """
    if name not in OPTIMIZERS:
        raise UsageError(f"--optimizer={name} is not one of {', '.join(OPTIMIZERS)}")
    if weight_decay < 0:
        raise UsageError(f"--weight_decay={weight_decay} must be >= 0")
    decay = weight_decay or None
    if name in ("sgd", "momentum"):
        return _PreReducedSGD(learning_rate, momentum=momentum if name == "momentum" else 0.0,
                              nesterov=nesterov and name == "momentum", weight_decay=decay)
    cls = _PreReducedAdamW if name == "adamw" else _PreReducedAdam
    return cls(learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon, weight_decay=decay)


def exclude_from_weight_decay(optimizer, variables):
    """Decay only kernels (conv / dense / depthwise), as slim's weights_regularizer does."""
    excluded = [v for v in variables if v.path.rsplit("/", 1)[-1] != "kernel"]
    if excluded:
        optimizer.exclude_from_weight_decay(var_list=excluded)


class _PreReduced:
    """Mixin: gradients reach `apply()` already all-reduced; do not sum them again."""

    def _all_reduce_sum_gradients(self, grads_and_vars):
        return list(grads_and_vars)


class _PreReducedSGD(_PreReduced, keras.optimizers.SGD):
    pass


class _PreReducedAdam(_PreReduced, keras.optimizers.Adam):
    pass


class _PreReducedAdamW(_PreReduced, keras.optimizers.AdamW):
    pass


if not hasattr(keras.optimizers.SGD, "_all_reduce_sum_gradients"):  # pragma: no cover
    raise ImportError(
        f"keras {keras.__version__} has no Optimizer._all_reduce_sum_gradients; tfmodels needs "
        "to know where Keras all-reduces gradients to reduce them exactly once")


class DynamicLossScale(tf.Module):
    """float16 loss scaling decided on all-reduced gradients.

    The loss is multiplied by `scale` before differentiation and the (summed) gradients divided
    by it. A step whose summed gradients hold inf/NaN is skipped and halves the scale; after
    `growth_steps` finite steps in a row the scale doubles.
    """

    def __init__(self, initial_scale=2.0 ** 15, growth_steps=2000):
        super().__init__(name="loss_scale")
        self.growth_steps = int(growth_steps)
        self.scale = tf.Variable(float(initial_scale), trainable=False, aggregation=_ONLY_FIRST)
        self.good_steps = tf.Variable(0, dtype=tf.int64, trainable=False,
                                      aggregation=_ONLY_FIRST)

    def after_finite_step(self):
        grow = self.good_steps + 1 >= self.growth_steps
        self.scale.assign(tf.where(grow, self.scale * 2.0, self.scale))
        self.good_steps.assign(tf.where(grow, tf.zeros_like(self.good_steps),
                                        self.good_steps + 1))

    def after_skipped_step(self):
        self.scale.assign(tf.maximum(self.scale / 2.0, 1.0))
        self.good_steps.assign(tf.zeros_like(self.good_steps))
