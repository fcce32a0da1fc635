"""What a training run shows while it runs: a live bar, or plain lines, and whether it learns.

On a terminal, one line redrawn in place after each loop of `steps_per_loop` steps:

    train ━━━━━━━━━━━━╸━━━━━━━━━━━━━━━━━ 300/660 epoch 14/30  loss 0.4127  acc 92.3%  5,120 img/s 0:00:05

Where stderr is not a terminal (CI, files), the same numbers as a log line every `log_every`
steps and at the end (`tfmodels.console.ProgressBar`). After the first epoch past the warmup,
a training accuracy still at chance logs a warning naming the likely causes
(`learning_check.ChanceCheck`).
"""
import math

from tfmodels import console
from tfmodels.training.learning_check import ChanceCheck


class Progress:
    """Reports step, epoch, loss, accuracy and images/s after each training loop.

    Args:
      resolved: the run's `ResolvedConfig` (total steps, steps per epoch, classes, recipe).
      start_step: the step the run starts (or resumes) at.
    """

    def __init__(self, resolved, start_step):
        self.steps_per_epoch = resolved.steps_per_epoch
        self.epochs = math.ceil(resolved.total_steps / resolved.steps_per_epoch)
        self.bar = console.ProgressBar("train", resolved.total_steps, start=start_step,
                                       log_every=resolved.config.log_every)
        self.chance = ChanceCheck(resolved)

    def update(self, step, metrics, images_per_sec):
        """After the loop that ended at `step`: `metrics` are its training 'loss' and
        'accuracy' (averages over the loop), `images_per_sec` its speed."""
        epoch = max(1, math.ceil(step / self.steps_per_epoch))
        self.bar.update(step, f"epoch {epoch}/{self.epochs}  loss {metrics['loss']:.4f}  "
                              f"acc {metrics['accuracy']:.1%}  {images_per_sec:,.0f} img/s")
        self.chance.observe(step, metrics["accuracy"])

    def close(self):
        """Stop redrawing the bar (an interrupted run's; a finished one stops by itself)."""
        self.bar.close()
