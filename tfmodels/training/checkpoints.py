"""Checkpoints and files in a model_dir: compatibility, resume, atomic writes, worker dirs.

A model_dir holds `config.json` (the resolved training config, so eval.py needs nothing else),
TF2 checkpoints `ckpt-<step>` managed by `tf.train.CheckpointManager`, TensorBoard summaries,
`metrics.json` and the exports. TensorFlow writes a checkpoint's files under temporary names
and updates the `checkpoint` index file atomically last, so a crash while saving leaves the
previous checkpoint as the latest good one.
"""
import json
import os
import shutil
import tempfile

import tensorflow as tf

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.json"
# Config keys that decide which variables a checkpoint holds: a model_dir whose config differs
# in one of them holds a checkpoint of another model and must not be resumed or overwritten.
IDENTITY_KEYS = ("model", "num_classes", "image_shape", "center_loss", "optimizer",
                 "ema_decay_enabled", "loss_scaling")


def write_json_atomic(path, obj):
    """Write JSON to a temporary file beside `path`, then rename: never a half-written file."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp_", suffix=".json")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, indent=2, sort_keys=True)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def read_json(path):
    with open(path) as f:
        return json.load(f)


def latest_checkpoint(model_dir):
    return tf.train.latest_checkpoint(model_dir) if os.path.isdir(model_dir) else None


def check_model_dir(model_dir, identity):
    """Fail before any work if `model_dir` holds a checkpoint of a different model.

    Args:
      model_dir: the training directory (may not exist yet).
      identity: the resolved config of this run (its IDENTITY_KEYS are compared).

    Returns:
      The path of the checkpoint to resume from, or None for a fresh start.
    """
    latest = latest_checkpoint(model_dir)
    config_path = os.path.join(model_dir, CONFIG_FILE)
    if latest is None:
        return None
    if not os.path.exists(config_path):
        raise ValueError(
            f"model_dir={model_dir!r} holds checkpoint {os.path.basename(latest)} but no "
            f"{CONFIG_FILE}, so it cannot be checked against this run; nothing was written. "
            "Use another --model_dir, or --init_checkpoint to start from that checkpoint.")
    saved = read_json(config_path)
    differences = [f"{key}: checkpoint has {saved.get(key)!r}, this run {identity.get(key)!r}"
                   for key in IDENTITY_KEYS if saved.get(key) != identity.get(key)]
    if differences:
        raise ValueError(
            f"model_dir={model_dir!r} holds a checkpoint of a different model "
            f"({'; '.join(differences)}); nothing was overwritten. Use another --model_dir.")
    return latest


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
