"""Saving and restoring a run's training state in its model_dir, on every worker.

The state is one `tf.train.Checkpoint`: model, optimizer, step counter, input position, random
states, centers, weight averages, loss scale. Saves go through `tfmodels.model_dir.writing`
(staged, verified, renamed in; keep-N by exact file names; the state file rewritten), and only
when every floating variable is finite: a checkpoint never holds inf/NaN, so the checkpoint the
non-finite guard names as the last good one is one to resume from.
"""
import os
import shutil
import tempfile

from tfmodels.model_dir import checkpoints, writing
from tfmodels.training.guards import NonFiniteLossError
from tfmodels.options import UsageError


class CheckpointSaver:
    """Saves and restores a `tf.train.Checkpoint` in model_dir, on every worker.

    Under MultiWorkerMirroredStrategy every worker must call `save()` (saving mirrored variables
    takes part in collectives); only the chief writes into model_dir, the others into a
    temporary directory that `close()` deletes.

    Args:
      checkpoint: the run's `tf.train.Checkpoint`.
      model_dir: where the chief saves.
      keep: checkpoints kept (the newest; older ones are deleted after each save).
      is_chief: whether this worker writes into model_dir.
      finite_check: a `guards.FiniteCheck` over the checkpoint's floating variables, run before
        each save (None: no check).
      last_good: the checkpoint the run resumed from (None: a fresh start).
      before_first_save: fn() called once, on the chief, before the first checkpoint this run
        writes (after the finite check): the record of a resume's changed options is written
        there, so a run that diverges before saving leaves the record as it was.
    """

    def __init__(self, checkpoint, model_dir, *, keep, is_chief, finite_check=None,
                 last_good=None, before_first_save=None):
        if keep < 1:
            raise UsageError(f"--keep_checkpoints={keep} must be >= 1")
        self.checkpoint = checkpoint
        # `restore` creates the Checkpoint's save counter and then expects it in the file;
        # create it before the first write so every checkpoint holds it (left at 0: the step
        # numbers the checkpoints).
        _ = checkpoint.save_counter
        self.model_dir = model_dir
        self.keep = keep
        self.is_chief = is_chief
        self.last_good = last_good
        self._finite_check = finite_check
        self._before_first_save = before_first_save if is_chief else None
        self._last_step = (checkpoints.step_of(last_good) or 0) if last_good else 0
        self._tmp_dir = None if is_chief else tempfile.mkdtemp(prefix="tfmodels_worker_")
        self.directory = model_dir if is_chief else self._tmp_dir

    def call_before_first_save(self, fn):
        """Call `fn()` (chief; None: nothing) once before this run's first checkpoint."""
        self._before_first_save = fn if self.is_chief else None

    @property
    def last_step(self):
        """The step of the newest checkpoint saved or restored (0 when none)."""
        return self._last_step

    def restore(self, path):
        """Restore everything (model, optimizer, centers, step, input position) from `path`."""
        self.checkpoint.restore(path).assert_existing_objects_matched()
        self.last_good = path
        self._last_step = checkpoints.step_of(path) or self._last_step

    def save(self, step):
        """Save `ckpt-<step>` if every checked variable is finite.

        Returns:
          The checkpoint's path (in model_dir on the chief).

        Raises:
          NonFiniteLossError: a variable holds inf/NaN; nothing was written.
        """
        if self._finite_check is not None and not self._finite_check():
            names = self._finite_check.offenders()
            shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3
                                            else "")
            good = self.last_good or "none (no checkpoint was written)"
            raise NonFiniteLossError(
                f"the weights became inf/NaN between step {self._last_step} and step {step} "
                f"({shown}); step {step} was not saved, the last good checkpoint is {good} "
                "(try a lower --learning_rate or --clip_grad_norm)")
        if self._before_first_save is not None:
            self._before_first_save()
            self._before_first_save = None
        path = writing.save(self.checkpoint, self.directory, step)
        writing.sweep(self.directory, self.keep)
        if self.is_chief:
            writing.write_state(self.directory)
        self._last_step = step
        self.last_good = os.path.join(self.model_dir, os.path.basename(path))
        return path

    def close(self):
        if self._tmp_dir:
            shutil.rmtree(self._tmp_dir, ignore_errors=True)
