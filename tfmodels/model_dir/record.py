"""config.json: the typed `ModelRecord` readers use, and the identity check of a model_dir.

A model_dir's `config.json` is the resolved training config (train.py) or a ported model's record
(the porting CLI). `read_config` reads what every reader needs as a `ModelRecord`;
`check_model_dir` refuses, before anything is written, a folder whose checkpoint files belong to
a run with another identity (`IDENTITY_KEYS`).
"""
import dataclasses
import os
from typing import Optional, Tuple

from tfmodels.model_dir import checkpoints
from tfmodels.model_dir.files import CONFIG_FILE, read_json
from tfmodels.options import UsageError, is_int

# Config keys that decide what a checkpoint holds and what its numbers mean: a model_dir whose
# config differs in one of them holds another run's checkpoints, which must not be resumed or
# overwritten. The input pipeline's preprocessing belongs here as soon as the config has it.
IDENTITY_KEYS = ("model", "num_classes", "image_shape", "dataset", "preprocessing",
                 "center_loss", "optimizer", "ema_decay_enabled", "loss_scaling",
                 "trainable_scopes")
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
          UsageError: a required key is missing or image_shape is malformed (names `source`).
        """
        missing = [key for key in REQUIRED_KEYS if key not in values]
        if missing:
            raise UsageError(f"{source} lacks {missing}: it must name the model it describes")
        fields = {f.name for f in dataclasses.fields(cls)}
        found = {k: v for k, v in values.items() if k in fields and v is not None}
        shape = found["image_shape"]
        if not (isinstance(shape, (list, tuple)) and len(shape) == 3
                and all(is_int(d, low=1) for d in shape)):
            raise UsageError(f"{source}: image_shape={shape!r} must be [height, width, "
                             "channels] of positive ints")
        found["image_shape"] = tuple(shape)
        if not values.get("ema_decay_enabled", found.get("ema_decay", 0.0) > 0):
            found["ema_decay"] = 0.0
        return cls(**found)

    @property
    def has_weight_average(self):
        return self.ema_decay > 0


def read_config(model_dir):
    """The `ModelRecord` of `model_dir`'s config.json, or a clear error (ValueError)."""
    path = os.path.join(model_dir, CONFIG_FILE)
    if not os.path.isdir(model_dir):
        raise UsageError(f"--model_dir={model_dir} does not exist")
    if not os.path.exists(path):
        raise UsageError(f"--model_dir={model_dir} has no {CONFIG_FILE}: it was not written by "
                         "train.py or the porting CLI")
    return ModelRecord.from_json(read_json(path), source=path)


def check_model_dir(model_dir, identity):
    """Fail, writing nothing, if `model_dir` holds checkpoint files of a run with another
    identity (or checkpoint files without the config.json that says whose they are).

    Checkpoint files are found in the folder itself (`checkpoints.files_present`), not through
    the `checkpoint` state file, which may be lost or stale.

    Args:
      model_dir: the training directory (may not exist yet).
      identity: this run's values of `IDENTITY_KEYS` (as config.json stores them).

    Returns:
      The names of the checkpoint files found (empty: a fresh start).
    """
    found = checkpoints.files_present(model_dir)
    if not found:
        return []
    config_path = os.path.join(model_dir, CONFIG_FILE)
    if not os.path.exists(config_path):
        raise UsageError(
            f"--model_dir={model_dir} holds checkpoint files ({_names(found)}) but no "
            f"{CONFIG_FILE}, so they cannot be checked against this run; nothing was written. "
            "Use another --model_dir, or --init_checkpoint to start from that checkpoint.")
    saved = read_json(config_path)
    if not isinstance(saved, dict):
        raise UsageError(f"{config_path} does not hold a JSON object; nothing was written")
    differences = [f"{key}: checkpoint has {saved.get(key)!r}, this run {identity.get(key)!r}"
                   for key in IDENTITY_KEYS if saved.get(key) != identity.get(key)]
    if differences:
        raise UsageError(
            f"--model_dir={model_dir} holds a checkpoint of a different model "
            f"({'; '.join(differences)}); nothing was overwritten. Use another --model_dir.")
    return found


def _names(names, limit=4):
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit
                                       else "")
