"""Learning-rate schedules with linear warmup: constant, piecewise (step) and cosine.

All schedules are functions of the optimizer step (0-based, counted in global batches):

    constant:  lr(t) = base
    piecewise: lr(t) = base * factor^k,  k = number of boundaries <= t
    cosine:    lr(t) = base * (alpha + (1 - alpha) * (1 + cos(pi * u)) / 2),
               u = min(1, (t - warmup) / (total - warmup))
    warmup:    for t < warmup, lr(t) = base_schedule(warmup) * (t + 1) / warmup

Not Keras's `CosineDecay` / `PiecewiseConstantDecay`: eagerly they give these float32 rates
exactly, but inside a tf.function (the training step) 130 of the 661 cosine rates of the default
run differ (by up to 8.5e-6 relative, near the end) and its losses change; and Keras's warmup
gives step t the rate of our step t - 1, so the first step would train at rate 0.
"""
import math

import keras
import tensorflow as tf

from tfmodels.options import UsageError

SCHEDULES = ("constant", "piecewise", "cosine")


@keras.saving.register_keras_serializable(package="tfmodels")
class WarmupSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """One of SCHEDULES after `warmup_steps` of linear warmup (see the module docstring)."""

    def __init__(self, kind, base_learning_rate, total_steps, warmup_steps=0, boundaries=(),
                 decay_factor=0.1, alpha=0.0):
        check_schedule(kind, base_learning_rate, total_steps, warmup_steps, boundaries,
                       decay_factor, alpha)
        self.kind = kind
        self.base_learning_rate = float(base_learning_rate)
        self.total_steps = int(total_steps)
        self.warmup_steps = int(warmup_steps)
        self.boundaries = tuple(int(b) for b in boundaries)
        self.decay_factor = float(decay_factor)
        self.alpha = float(alpha)

    def _after_warmup(self, step):
        base = tf.constant(self.base_learning_rate, tf.float32)
        if self.kind == "constant":
            return base
        if self.kind == "piecewise":
            passed = tf.reduce_sum(tf.cast(
                step >= tf.constant(self.boundaries, tf.float32), tf.float32))
            return base * tf.pow(tf.constant(self.decay_factor, tf.float32), passed)
        span = max(self.total_steps - self.warmup_steps, 1)
        progress = tf.clip_by_value((step - self.warmup_steps) / span, 0.0, 1.0)
        cosine = 0.5 * (1.0 + tf.cos(math.pi * progress))
        return base * (self.alpha + (1.0 - self.alpha) * cosine)

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        rate = self._after_warmup(step)
        if not self.warmup_steps:
            return rate
        warm = self._after_warmup(tf.constant(float(self.warmup_steps))) * (
            (step + 1.0) / self.warmup_steps)
        return tf.where(step < self.warmup_steps, warm, rate)

    def get_config(self):
        return {"kind": self.kind, "base_learning_rate": self.base_learning_rate,
                "total_steps": self.total_steps, "warmup_steps": self.warmup_steps,
                "boundaries": list(self.boundaries), "decay_factor": self.decay_factor,
                "alpha": self.alpha}


def check_schedule(kind, base_learning_rate, total_steps, warmup_steps=0, boundaries=(),
                   decay_factor=0.1, alpha=0.0):
    """Raise UsageError naming the bad argument; used by the config before any work."""
    if kind not in SCHEDULES:
        raise UsageError(f"--lr_schedule={kind} is not one of: {', '.join(SCHEDULES)}",
                         "lr_schedule")
    if not base_learning_rate > 0:
        raise UsageError(f"--learning_rate={base_learning_rate} must be > 0", "learning_rate")
    if total_steps < 1:
        raise UsageError(f"total steps={total_steps} must be >= 1", "train_steps")
    if not 0 <= warmup_steps <= total_steps:
        raise UsageError(f"--warmup_steps={warmup_steps} must be in [0, {total_steps}] "
                         "(the total number of steps)", "warmup_steps")
    if list(boundaries) != sorted(set(boundaries)) or any(b <= 0 for b in boundaries):
        raise UsageError(f"--lr_boundaries={','.join(map(str, boundaries))} must be increasing "
                         "positive steps", "lr_boundaries")
    if kind == "piecewise" and not boundaries:
        raise UsageError("--lr_schedule=piecewise needs --lr_boundaries (steps where the rate "
                         "is multiplied by --lr_decay_factor)", "lr_boundaries")
    if not 0 < decay_factor <= 1:
        raise UsageError(f"--lr_decay_factor={decay_factor} must be in (0, 1]", "lr_decay_factor")
    if not 0 <= alpha <= 1:
        raise UsageError(f"cosine alpha={alpha} must be in [0, 1]")
