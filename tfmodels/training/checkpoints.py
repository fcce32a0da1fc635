"""Saving and restoring a run's training state in its model_dir, on every worker.

The state is one `tf.train.Checkpoint`: model, optimizer, step counter, input position, random
states, centers, weight averages, loss scale. The directory's format (file names, config.json,
the identity check) is `tfmodels.model_dir`'s.
"""
import shutil
import tempfile

import tensorflow as tf


class CheckpointSaver:
    """Saves and restores a `tf.train.Checkpoint` in model_dir, on every worker.

    Under MultiWorkerMirroredStrategy every worker must call `save()` (saving mirrored variables
    takes part in collectives); only the chief writes into model_dir, the others into a
    temporary directory that `close()` deletes.
    """

    def __init__(self, checkpoint, model_dir, *, keep, is_chief, step_counter):
        if keep < 1:
            raise ValueError(f"keep_checkpoints={keep} must be >= 1")
        self.model_dir = model_dir
        self.is_chief = is_chief
        self._tmp_dir = None if is_chief else tempfile.mkdtemp(prefix="tfmodels_worker_")
        self.checkpoint = checkpoint
        self.manager = tf.train.CheckpointManager(
            checkpoint, model_dir if is_chief else self._tmp_dir, max_to_keep=keep,
            step_counter=step_counter)

    def restore(self, path):
        """Restore everything (model, optimizer, centers, step, input position) from `path`."""
        self.checkpoint.restore(path).assert_existing_objects_matched()

    def save(self, step):
        return self.manager.save(checkpoint_number=step)

    def close(self):
        if self._tmp_dir:
            shutil.rmtree(self._tmp_dir, ignore_errors=True)
