"""The model-directory format that train.py, eval.py and the porting CLI share.

A model_dir holds:

* `config.json` (`CONFIG_FILE`): the resolved training config, or a ported model's record;
  `read_config` reads the part every reader needs as a typed `ModelRecord`.
* TF2 checkpoints `ckpt-<step>` with the `checkpoint` state file, written through
  `tf.train.CheckpointManager` (TensorFlow writes a checkpoint's files under temporary names and
  updates the state file last, so a crash while saving leaves the previous checkpoint as the
  latest good one).
* `metrics.json` (`METRICS_FILE`), TensorBoard summaries under `train/` and `eval/`, and the
  exports `saved_model/` (`SAVED_MODEL_DIR`) and `model.keras` (`KERAS_FILE`).

`check_model_dir` refuses a directory holding another model's checkpoint before anything is
written; `restore_model` rebuilds a model from its record and restores a checkpoint into it.
"""
import dataclasses
import json
import os
import tempfile
from typing import Optional, Tuple

import tensorflow as tf

from tfmodels import nets
from tfmodels.averaging import WeightAverage
from tfmodels.layers import CenterLoss

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.json"
SAVED_MODEL_DIR = "saved_model"
KERAS_FILE = "model.keras"
# Config keys that decide which variables a checkpoint holds: a model_dir whose config differs
# in one of them holds a checkpoint of another model and must not be resumed or overwritten.
IDENTITY_KEYS = ("model", "num_classes", "image_shape", "center_loss", "optimizer",
                 "ema_decay_enabled", "loss_scaling", "trainable_scopes", "preprocessing")
# What a config.json must name for its model to be rebuilt.
REQUIRED_KEYS = ("model", "num_classes", "image_shape")


@dataclasses.dataclass(frozen=True)
class ModelRecord:
    """What a model_dir's config.json says about its model and the run that made it.

    Attributes:
      model, num_classes, image_shape: the net and its input/output (enough to rebuild it).
      center_loss, center_alpha: whether checkpoints hold class centers, and their rate.
      ema_decay: > 0 when checkpoints hold weight averages (`WeightAverage`).
      loss, label_smoothing: the training data loss (evaluation reports the same loss).
      dataset, data_dir, train_split, eval_split: the run's data (None for a ported model
        recorded without a dataset).
      global_batch_size, total_steps: the run's batch and length (None when not trained here).
      preprocessing: the run's per-net preprocessing ('vgg', ...), or None for the dataset's
        normalisation (images are `image_shape` either way, resized when the run resized them).
    """
    model: str
    num_classes: int
    image_shape: Tuple[int, int, int]
    center_loss: bool = False
    center_alpha: float = 0.5
    ema_decay: float = 0.0
    loss: str = "cross_entropy"
    label_smoothing: float = 0.0
    dataset: Optional[str] = None
    data_dir: Optional[str] = None
    train_split: Optional[str] = None
    eval_split: Optional[str] = None
    global_batch_size: Optional[int] = None
    total_steps: Optional[int] = None
    preprocessing: Optional[str] = None

    @classmethod
    def from_json(cls, values, source=CONFIG_FILE):
        """The record in a config.json dict (other keys are ignored).

        Raises:
          ValueError: a required key is missing (names `source`).
        """
        missing = [key for key in REQUIRED_KEYS if key not in values]
        if missing:
            raise ValueError(f"{source} lacks {missing}: it must name the model it describes")
        fields = {f.name for f in dataclasses.fields(cls)}
        found = {k: v for k, v in values.items() if k in fields and v is not None}
        found["image_shape"] = tuple(int(d) for d in found["image_shape"])
        if not values.get("ema_decay_enabled", found.get("ema_decay", 0.0) > 0):
            found["ema_decay"] = 0.0
        return cls(**found)

    @property
    def has_weight_average(self):
        return self.ema_decay > 0


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
      identity: this run's values of `IDENTITY_KEYS` (as config.json stores them).

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


def read_config(model_dir):
    """The `ModelRecord` of `model_dir`'s config.json, or a clear error."""
    path = os.path.join(model_dir, CONFIG_FILE)
    if not os.path.isdir(model_dir):
        raise ValueError(f"model_dir={model_dir!r} does not exist")
    if not os.path.exists(path):
        raise ValueError(f"model_dir={model_dir!r} has no {CONFIG_FILE}: it was not written by "
                         "train.py or the porting CLI")
    return ModelRecord.from_json(read_json(path), source=path)


def restore_model(record, checkpoint_path, *, use_average=True):
    """Build the model a `ModelRecord` describes and restore its weights.

    Call it under the strategy's scope when evaluating with one. With `record.center_loss` the
    centers are restored too; with weight averages in the checkpoint and `use_average`, the
    averages replace the raw weights (as train.py evaluates and exports).

    Returns:
      (model, center_loss or None).

    Raises:
      ValueError: the checkpoint is missing or holds another model (names what differs).
    """
    if not checkpoint_path or not tf.io.gfile.exists(checkpoint_path + ".index"):
        raise ValueError(f"checkpoint {checkpoint_path!r} does not exist")
    model = nets.build_model(record.model, record.num_classes, record.image_shape)
    parts = {"model": model}
    center_loss = None
    if record.center_loss:
        center_loss = CenterLoss(record.num_classes, model.output["embedding"].shape[-1],
                                 alpha=record.center_alpha)
        parts["center_loss"] = center_loss
    average = None
    if use_average and record.has_weight_average:
        average = WeightAverage(model.trainable_variables, record.ema_decay)
        parts["weight_average"] = average
    try:
        tf.train.Checkpoint(**parts).restore(checkpoint_path).expect_partial() \
            .assert_existing_objects_matched()
    except (AssertionError, ValueError) as err:
        raise ValueError(
            f"checkpoint {checkpoint_path!r} does not hold a {record.model} with "
            f"{record.num_classes} classes and images {record.image_shape}: "
            f"{str(err).splitlines()[0][:300]}") from None
    if average is not None:
        average.swap()  # keep the averaged weights in the model
    return model, center_loss
