"""`ModelDir`: every name of the model_dir format, and the reads and writes of its records.

    layout = ModelDir("runs/lenet-mnist")
    layout.check_for_training(record, export=True)   # before any work: identity, every path
    layout.write_config(record)                       # config.json
    layout.eval_json("test"), layout.plots_dir, layout.eval_summaries("test", "test")

train.py, eval.py and the porting CLI name the files of a model_dir only through this class;
the modules beside it (`files`, `record`, `checkpoints`, `writing`, `recovery`, `lock`) do the
work.
"""
import os

from absl import logging

from tfmodels.model_dir import checkpoints, record, recovery
from tfmodels.options import UsageError

from tfmodels.model_dir.files import (CONFIG_FILE, KERAS_FILE, METRICS_FILE, NET_KERAS_FILE,
                                      SAVED_MODEL_DIR, is_writable, write_json_atomic)
from tfmodels.model_dir.lock import LOCK_FILE, WriterLock

TRAIN_DIR = "train"  # the training run's TensorBoard summaries
EVAL_DIR = "eval"  # eval.py's TensorBoard scalars of the run's own eval split
PLOTS_DIR = "plots"  # eval.py's PNGs


class ModelDir:
    """A model_dir: its file names, its record (config.json), metrics, lock and checkpoints.

    Args:
      path: the folder (it may not exist yet).
    """

    def __init__(self, path):
        self.path = os.fspath(path)

    def __repr__(self):
        return f"ModelDir({self.path!r})"

    def join(self, name):
        return os.path.join(self.path, name)

    # --- names ---------------------------------------------------------------------------------
    @property
    def config_path(self):
        return self.join(CONFIG_FILE)

    @property
    def metrics_path(self):
        return self.join(METRICS_FILE)

    @property
    def keras_path(self):
        return self.join(KERAS_FILE)

    @property
    def net_keras_path(self):
        return self.join(NET_KERAS_FILE)

    @property
    def saved_model_path(self):
        return self.join(SAVED_MODEL_DIR)

    @property
    def train_dir(self):
        return self.join(TRAIN_DIR)

    @property
    def plots_dir(self):
        return self.join(PLOTS_DIR)

    @property
    def lock_path(self):
        return self.join(LOCK_FILE)

    @property
    def state_path(self):
        return self.join(checkpoints.STATE_FILE)

    @property
    def unreadable_dir(self):
        return self.join(recovery.UNREADABLE_DIR)

    def eval_json(self, split):
        """eval.py's results of `split`."""
        return self.join(f"eval_{split}.json")

    def eval_summaries(self, split, default_split):
        """eval.py's TensorBoard folder: the run's own eval split sits beside `train/`, other
        splits get their own."""
        return self.join(EVAL_DIR if split == default_split else f"{EVAL_DIR}_{split}")

    def checkpoint_path(self, name):
        """A checkpoint named inside the folder (`ckpt-2000`)."""
        return self.join(name)

    # --- records -------------------------------------------------------------------------------
    def read_config_json(self):
        """config.json as a dict (None: none); links, folders and non-objects refused."""
        return record.read_config_json(self.path)

    def read_record(self):
        """config.json as a `ModelRecord` (ValueError naming the problem)."""
        return record.read_config(self.path)

    def write_config(self, values):
        return write_json_atomic(self.config_path, values)

    def write_metrics(self, metrics):
        return write_json_atomic(self.metrics_path, metrics)

    def record_writer(self, values, start_step):
        """Write config.json now when there is none; else return the fn that writes it with
        this run's changed options appended to its `history` (None: nothing to write).

        The trainer calls that fn just before the run's first checkpoint, so a run that fails
        before saving (a diverging `--learning_rate`) leaves the record as it was.
        """
        saved = self.read_config_json()
        if saved is None:
            self.write_config(values)
            return None
        changes = record.resume_changes(saved, values)
        updated = record.with_history(saved, values, start_step)
        if updated == saved:
            return None

        def write():
            if changes:
                logging.info("options changed since step %d's record (kept in %s's history): %s",
                             start_step, CONFIG_FILE, ", ".join(
                                 f"{k} {old!r} -> {new!r}" for k, (old, new) in changes.items()))
            self.write_config(updated)

        return write

    # --- checks before any work ----------------------------------------------------------------
    def check_identity(self, identity):
        """`record.check_model_dir`: the checkpoint files found (ValueError: another run's)."""
        return record.check_model_dir(self.path, identity)

    def check_for_training(self, identity, *, export):
        """Check, reading only, that a training run may write here: the records are this
        run's (`check_identity`) and every path it writes is missing or of the right kind in
        a writable folder.

        Returns:
          The checkpoint files found.

        Raises:
          ValueError: one line naming the path and what is wrong.
        """
        check_target(self.path, "folder", "--model_dir")
        for path in (self.config_path, self.metrics_path, self.state_path, self.lock_path):
            check_target(path, "file")
        for path in (self.train_dir, self.unreadable_dir):
            check_target(path, "folder")
        if export:
            check_target(self.keras_path, "file")
            check_target(self.net_keras_path, "file")
            # A link at saved_model/ is replaced (never followed); a file is not a SavedModel.
            if os.path.isfile(self.saved_model_path) and not os.path.islink(
                    self.saved_model_path):
                raise UsageError(f"{self.saved_model_path!r} is a file, where the SavedModel "
                                 "(a folder) is written; nothing was written: move it away or "
                                 "use another --model_dir")
        return self.check_identity(identity)

    # --- the writer's side ---------------------------------------------------------------------
    def lock(self):
        """The model_dir's `WriterLock` (held until released or the process ends)."""
        return WriterLock(self.path)

    def recover(self):
        """`recovery.recover`: the `Inspection` to resume from, or None (hold the lock)."""
        return recovery.recover(self.path)

    def checkpoints(self):
        """[(step, prefix)] of the checkpoints, oldest first."""
        return checkpoints.list_checkpoints(self.path)

    def newest_usable(self, *, finite):
        return checkpoints.newest_usable(self.path, finite=finite)


def check_target(path, kind, what=None):
    """Check, before any work, that `path` can be written as a `kind` ('file' or 'folder'):
    missing, or already one (a link at a file's name is fine: it is replaced, not followed).

    Raises:
      ValueError: `path` exists as the other kind (or a folder's name is a link), or its
        folder is not writable.
    """
    what = what or os.path.basename(path)
    if kind == "file" and os.path.isdir(path) and not os.path.islink(path):
        raise UsageError(f"{path!r} is a folder, where {what} (a file) is written; nothing was "
                         "written: move it away or use another folder")
    if kind == "folder":
        if os.path.islink(path):
            raise UsageError(f"{what} {path!r} is a symbolic link (to {os.readlink(path)!r}); "
                             "nothing is written through links: remove it or use another path")
        if os.path.lexists(path) and not os.path.isdir(path):
            raise UsageError(f"{path!r} is a file, where {what} (a folder) is written; nothing "
                             "was written: move it away or use another folder")
    if kind == "folder" and os.path.isdir(path):
        where = path  # written into
    else:
        where = os.path.dirname(os.path.abspath(path))  # renamed into
        while not os.path.lexists(where):
            where = os.path.dirname(where)
    if not os.path.isdir(where) or not is_writable(where):
        raise UsageError(f"{what} {path!r} cannot be written: {where!r} is not a writable "
                         "folder; nothing was written")
    return path
