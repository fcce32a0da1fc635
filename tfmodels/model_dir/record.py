"""config.json: the typed `ModelRecord` readers use, and the identity check of a model_dir.

A model_dir's `config.json` is the resolved training config (train.py) or a ported model's record
(the porting CLI). `read_config` reads what every reader needs as a `ModelRecord`;
`check_model_dir` refuses, before anything is written, a folder whose records (config.json,
metrics.json, the exports, checkpoint files) belong to a run with another identity
(`IDENTITY_KEYS`) or to no record at all.

A resume may change the recipe (`resume_changes`): options in `IDENTITY_KEYS` are refused,
options in `UNRECORDED_KEYS` are not kept, and every other change is appended to the record's
`history` (`with_history`), so config.json always says how each stretch of steps was made.
"""
import dataclasses
import os
from typing import Optional, Tuple

from tfmodels.model_dir import checkpoints
from tfmodels.model_dir.files import (CONFIG_FILE, KERAS_FILE, METRICS_FILE, SAVED_MODEL_DIR,
                                      read_json)
from tfmodels.options import UsageError, is_int

# Config keys that decide what a checkpoint holds and what its numbers mean: a model_dir whose
# config differs in one of them holds another run's checkpoints, which must not be resumed or
# overwritten. The input pipeline's preprocessing belongs here as soon as the config has it.
IDENTITY_KEYS = ("model", "num_classes", "image_shape", "dataset", "preprocessing",
                 "center_loss", "optimizer", "ema_decay_enabled", "loss_scaling",
                 "trainable_scopes", "loss")
# Not `head`: every head trains the net's own logits layer, so a run may go on with another one
# (docs/MANY_CLASSES.md); the change is kept in the history.
# Options that change nothing the run produces (where it is, how often it talks): a resume may
# change them without a history entry.
UNRECORDED_KEYS = ("model_dir", "log_every", "export")
HISTORY_KEY = "history"
# metrics.json's keys that say whose numbers it holds.
_METRICS_IDENTITY = ("model", "dataset")
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
      train_classes: the classes the run trained on (`TrainConfig.train_classes`), None: all.
      margin: the run's margin softmax ('none', 'arcface', 'cosface', 'combined').
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
    train_classes: Optional[str] = None  # the classes trained on ("0-6"); None: all
    margin: str = "none"  # a margin softmax ('arcface', ...): classes scored by cosine

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
    if not os.path.isdir(model_dir):
        raise UsageError(f"--model_dir={model_dir} does not exist")
    values = read_config_json(model_dir)
    if values is None:
        raise UsageError(f"--model_dir={model_dir} has no {CONFIG_FILE}: it was not written by "
                         "train.py or the porting CLI")
    return ModelRecord.from_json(values, source=os.path.join(model_dir, CONFIG_FILE))


def read_config_json(model_dir):
    """config.json as a dict, or None when there is none.

    Raises:
      ValueError: it is a symbolic link (never followed: it could name a file outside the
        model_dir), not a file, not valid JSON, or not a JSON object.
    """
    path = os.path.join(model_dir, CONFIG_FILE)
    if os.path.islink(path):
        raise UsageError(f"{path!r} is a symbolic link (to {os.readlink(path)!r}); a model_dir's "
                         "record is read only from the folder itself: replace the link by the "
                         "file")
    if not os.path.lexists(path):
        return None
    if not os.path.isfile(path):
        raise UsageError(f"{path!r} is not a file (a folder?); it cannot be the model_dir's "
                         "record: move it away or use another model_dir")
    values = read_json(path)
    if not isinstance(values, dict):
        raise UsageError(f"{path} does not hold a JSON object")
    return values


def check_model_dir(model_dir, identity):
    """Fail, writing nothing, if `model_dir` holds records of a run with another identity:
    config.json, else metrics.json, checkpoint files or exports without the config.json that
    says whose they are.

    Checkpoint files are found in the folder itself (`checkpoints.files_present`), not through
    the `checkpoint` state file, which may be lost or stale.

    Args:
      model_dir: the training directory (may not exist yet).
      identity: this run's values of `IDENTITY_KEYS` (as config.json stores them).

    Returns:
      The names of the checkpoint files found (empty: a fresh start).
    """
    found = checkpoints.files_present(model_dir)
    saved = read_config_json(model_dir)
    if saved is None:
        exports = [name for name in (KERAS_FILE, SAVED_MODEL_DIR)
                   if os.path.lexists(os.path.join(model_dir, name))]
        if found or exports:
            held = _names(found + exports)
            raise UsageError(
                f"--model_dir={model_dir} holds {held} but no {CONFIG_FILE}, so they cannot be "
                "checked against this run; nothing was written. Use another --model_dir, or "
                "--init_checkpoint to start from a checkpoint there.")
        _check_metrics(model_dir, identity)
        return []
    differences = [(key, saved.get(key), identity.get(key)) for key in IDENTITY_KEYS
                   if key in saved and saved.get(key) != identity.get(key)]
    missing = [key for key in REQUIRED_KEYS if key not in saved]
    if missing:
        raise UsageError(f"{os.path.join(model_dir, CONFIG_FILE)} lacks {missing}: it is not a "
                         "record tfmodels wrote; nothing was written. Use another --model_dir.")
    if differences:
        said = "; ".join(f"{key} {old!r} there, {new!r} in this run"
                         for key, old, new in differences)
        raise UsageError(
            f"--model_dir={model_dir} holds another run ({said}); nothing was changed. Resume "
            f"it with the same {', '.join(key for key, _, _ in differences)}, or use another "
            "--model_dir.")
    return found


def _check_metrics(model_dir, identity):
    path = os.path.join(model_dir, METRICS_FILE)
    if not os.path.lexists(path) or os.path.islink(path) or not os.path.isfile(path):
        return
    try:
        saved = read_json(path)
    except (ValueError, OSError):
        saved = None
    if not isinstance(saved, dict):
        raise UsageError(f"--model_dir={model_dir} holds a {METRICS_FILE} that tfmodels did not "
                         "write; nothing was written. Use another --model_dir.")
    differences = [f"{key} {saved.get(key)!r} there, {identity.get(key)!r} in this run"
                   for key in _METRICS_IDENTITY if saved.get(key) != identity.get(key)]
    if differences:
        raise UsageError(f"--model_dir={model_dir} holds the {METRICS_FILE} of another run "
                         f"({'; '.join(differences)}); nothing was changed. Use another "
                         "--model_dir.")


def resume_changes(saved, new):
    """What a resume changes in the record: {key: (old, new)} of the recorded options.

    Identity keys are left out (`check_model_dir` refuses those), and so are
    `UNRECORDED_KEYS` and the history itself.
    """
    skip = set(IDENTITY_KEYS) | set(UNRECORDED_KEYS) | {HISTORY_KEY}
    keys = sorted((set(saved) | set(new)) - skip)
    return {key: (saved.get(key), new.get(key)) for key in keys
            if saved.get(key) != new.get(key)}


def with_history(saved, new, step):
    """The record to write when a run resumed at `step` with `new` options over `saved`:
    `new`'s values, and `saved`'s history plus one
    entry {'step', 'changed': {key: {'from', 'to'}}} when something changed."""
    record = dict(new)
    history = list(saved.get(HISTORY_KEY, []))
    changed = resume_changes(saved, new)
    if changed:
        history.append({"step": int(step), "changed": {
            key: {"from": old, "to": value} for key, (old, value) in changed.items()}})
    if history:
        record[HISTORY_KEY] = history
    return record


def _names(names, limit=4):
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit
                                       else "")
