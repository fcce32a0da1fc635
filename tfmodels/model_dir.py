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
                 "ema_decay_enabled", "loss_scaling", "trainable_scopes")


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


def read_config(model_dir):
    """The config a run saved in `model_dir` (see CONFIG_FILE), or a clear error."""
    path = os.path.join(model_dir, CONFIG_FILE)
    if not os.path.isdir(model_dir):
        raise ValueError(f"model_dir={model_dir!r} does not exist")
    if not os.path.exists(path):
        raise ValueError(f"model_dir={model_dir!r} has no {CONFIG_FILE}: it was not written by "
                         "train.py or the porting CLI")
    return read_json(path)


def restore_model(config, checkpoint_path, *, use_average=True):
    """Build the model a saved `config` describes and restore its weights.

    Call it under the strategy's scope when evaluating with one. `config` needs `model`,
    `num_classes` and `image_shape`; `center_loss` / `center_alpha` add the centers, `ema_decay_enabled` / `ema_decay` the averaged weights, which then replace the raw
    ones when `use_average` (as train.py evaluates and exports).

    Returns:
      (model, center_loss or None).

    Raises:
      ValueError: the checkpoint is missing or holds another model (names what differs).
    """
    from tfmodels import nets
    from tfmodels.layers import CenterLoss
    from tfmodels.training.optimizers import WeightAverage

    if not checkpoint_path or not tf.io.gfile.exists(checkpoint_path + ".index"):
        raise ValueError(f"checkpoint {checkpoint_path!r} does not exist")
    model = nets.build_model(config["model"], config["num_classes"],
                             tuple(config["image_shape"]))
    parts = {"model": model}
    center_loss = None
    if config.get("center_loss"):
        center_loss = CenterLoss(config["num_classes"], model.output["embedding"].shape[-1],
                                 alpha=config.get("center_alpha", 0.5))
        parts["center_loss"] = center_loss
    average = None
    if use_average and config.get("ema_decay_enabled"):
        average = WeightAverage(model.trainable_variables, config["ema_decay"])
        parts["weight_average"] = average
    try:
        tf.train.Checkpoint(**parts).restore(checkpoint_path).expect_partial() \
            .assert_existing_objects_matched()
    except (AssertionError, ValueError) as err:
        raise ValueError(
            f"checkpoint {checkpoint_path!r} does not hold a {config['model']} with "
            f"{config['num_classes']} classes and images {tuple(config['image_shape'])}: "
            f"{str(err).splitlines()[0][:300]}") from None
    if average is not None:
        average.swap()  # keep the averaged weights in the model
    return model, center_loss
