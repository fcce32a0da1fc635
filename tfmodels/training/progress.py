"""Training progress: a one-line bar on a terminal, plain log lines elsewhere (CI, files)."""
import sys
import time

from absl import logging


class Progress:
    """Reports step, loss, accuracy, images/s and ETA after each training loop."""

    def __init__(self, total_steps, start_step, global_batch_size, stream=None, interactive=None):
        self.total_steps = total_steps
        self.start_step = start_step
        self.global_batch_size = global_batch_size
        self.stream = stream or sys.stderr
        self.interactive = (self.stream.isatty() if interactive is None else interactive)
        self._started = time.perf_counter()

    def update(self, step, metrics, images_per_sec):
        done = step - self.start_step
        elapsed = time.perf_counter() - self._started
        remaining = (self.total_steps - step) * elapsed / done if done else float("nan")
        text = (f"step {step}/{self.total_steps}  loss {metrics['loss']:.4f}  "
                f"acc {metrics['accuracy']:.4f}  {images_per_sec:,.0f} images/s  "
                f"ETA {_duration(remaining)}")
        if self.interactive:
            width = 24
            filled = int(width * step / self.total_steps)
            bar = "#" * filled + "." * (width - filled)
            end = "\n" if step >= self.total_steps else ""
            self.stream.write(f"\r[{bar}] {text}{end}")
            self.stream.flush()
        else:
            logging.info(text)


def _duration(seconds):
    if seconds != seconds:  # NaN: nothing measured yet
        return "?"
    seconds = int(round(seconds))
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"
