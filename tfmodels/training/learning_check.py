"""Is the run learning? A training accuracy still at chance well into the run is reported.

A recipe that does not suit a net (a rate too high or too low for it, a schedule, label
smoothing, weight decay, a center loss from the first step) can leave it predicting one class
for good, and the run would otherwise end at chance without a word. So once, at the first loop
that ends at or after `check_step(...)`, the loop's training accuracy is compared with chance;
at or below `chance_threshold(num_classes)` a warning names the recipe's likely culprits. Runs
shorter than that are not judged.

When: one epoch past the warmup at the earliest, and not before a quarter of the run (some nets
sit at chance for two or three epochs of a ten-epoch run and then learn: cifarnet and LeNets++
on the digits), but at most five epochs past the warmup (a long run is told early).
"""
from absl import logging


def chance_threshold(num_classes):
    """The accuracy that still counts as chance: 1.5 / classes (15% for 10), at most 60%
    (two classes: a net stuck on one gets 50%)."""
    return min(1.5 / num_classes, 0.6)


def check_step(warmup_steps, steps_per_epoch, total_steps):
    """The step from which the training accuracy is judged (see the module's docstring)."""
    earliest = warmup_steps + steps_per_epoch
    return max(earliest, min(total_steps // 4, warmup_steps + 5 * steps_per_epoch))


class ChanceCheck:
    """Warns once if the training accuracy is still at chance at `check_step`.

    Args:
      resolved: the run's `ResolvedConfig` (classes, steps per epoch, the recipe to name).
    """

    def __init__(self, resolved):
        self.resolved = resolved
        self.check_at = check_step(resolved.config.warmup_steps, resolved.steps_per_epoch,
                                   resolved.total_steps)
        self.threshold = chance_threshold(resolved.num_classes)
        self.checked = False

    def observe(self, step, accuracy):
        """After the loop that ended at `step`, whose training accuracy was `accuracy`.

        Returns:
          The warning's text if it was logged now, else None.
        """
        if self.checked or step < self.check_at:
            return None
        self.checked = True
        if not accuracy <= self.threshold:
            return None
        text = warning_text(self.resolved, step, accuracy)
        logging.warning("%s", text)
        return text


def warning_text(resolved, step, accuracy):
    """What the warning says: the accuracy, chance, and the options most likely at fault."""
    config = resolved.config
    epochs = step / resolved.steps_per_epoch
    causes = [f"--learning_rate={config.learning_rate:g} too high or too low for "
              f"{config.model} with --optimizer={config.optimizer} (try 10x lower and higher)"]
    if config.lr_schedule != "constant" or config.warmup_steps:
        causes.append(f"--lr_schedule={config.lr_schedule}, --warmup_steps={config.warmup_steps}")
    if config.label_smoothing:
        causes.append(f"--label_smoothing={config.label_smoothing:g}")
    if config.weight_decay:
        causes.append(f"--weight_decay={config.weight_decay:g}")
    if config.center_loss_weight:
        causes.append(f"--center_loss_weight={config.center_loss_weight:g} from the first step")
    if config.clip_grad_norm:
        causes.append(f"--clip_grad_norm={config.clip_grad_norm:g}")
    return (f"training accuracy is {accuracy:.1%} after {epochs:.3g} epoch(s) (step {step}): "
            f"chance for {resolved.num_classes} classes, the net is not learning. Likely "
            f"causes: {'; '.join(causes)}. The README's table of nets gives a command for "
            "each net.")
