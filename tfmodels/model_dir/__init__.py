"""The model-directory format that train.py, eval.py and the porting CLI share.

`ModelDir` (`layout`) names every file of the format and is how the others read and write it.
A model_dir holds:

* `config.json` (`CONFIG_FILE`): the resolved training config, or a ported model's record;
  `read_config` reads the part every reader needs as a typed `ModelRecord`, and
  `check_model_dir` refuses a folder holding another run's checkpoints (`IDENTITY_KEYS`).
* checkpoints `ckpt-<step>` (`checkpoints`), found from their files, read in full before use;
  written by staging and renaming (`writing`); the `checkpoint` state file is kept for
  TensorFlow's tools and rebuilt when lost or wrong (`recovery`).
* `.lock`: one writer at a time (`lock.WriterLock`, an OS lock released when its process ends).
* `metrics.json` (`METRICS_FILE`), TensorBoard summaries under `train/` and `eval/`
  (`summaries.ScalarWriter`), the exports
  `saved_model/` (`SAVED_MODEL_DIR`), `model.keras` (`KERAS_FILE`) and `net.keras`
  (`NET_KERAS_FILE`), and `unreadable/`, where
  checkpoint files that could not be resumed from are kept for inspection.
* eval.py's `eval_<split>.json`, `plots/` and `eval_<split>/` (TensorBoard, other splits).

Every file is written under a temporary name and renamed (`files`), with the umask's modes; no
write follows a symbolic link; nothing outside the model_dir is read, written or deleted because
a file inside names it; temporary names are ones only tfmodels makes, and only those are cleaned
up; a failed write for want of space or permission is one line (`ModelDirWriteError`).
`restore_model` rebuilds a model from its record and restores a checkpoint into it.
"""
from tfmodels.model_dir import checkpoints, files, layout, lock, recovery, summaries, writing
from tfmodels.model_dir.checkpoints import Inspection, inspect, list_checkpoints, newest_usable
from tfmodels.model_dir.files import (CONFIG_FILE, KERAS_FILE, METRICS_FILE, NET_KERAS_FILE,
                                      SAVED_MODEL_DIR,
                                      ModelDirWriteError, is_writable, read_json,
                                      write_json_atomic)
from tfmodels.model_dir.layout import ModelDir, check_target
from tfmodels.model_dir.lock import ModelDirBusyError, WriterLock
from tfmodels.model_dir.record import (IDENTITY_KEYS, REQUIRED_KEYS, ModelRecord,
                                       check_model_dir, read_config)
from tfmodels.model_dir.recovery import UNREADABLE_DIR, NoUsableCheckpointError, recover
from tfmodels.model_dir.restore import restore_model
from tfmodels.model_dir.summaries import ScalarWriter


def latest_checkpoint(model_dir):
    """The newest `ckpt-<N>` found in `model_dir` (unchecked; see `newest_usable`), or None."""
    found = checkpoints.list_checkpoints(model_dir)
    return found[-1][1] if found else None


__all__ = ["CONFIG_FILE", "IDENTITY_KEYS", "Inspection", "KERAS_FILE", "METRICS_FILE",
           "ModelDir", "ModelDirBusyError", "ModelDirWriteError", "ModelRecord",
           "NET_KERAS_FILE", "NoUsableCheckpointError", "REQUIRED_KEYS", "SAVED_MODEL_DIR", "UNREADABLE_DIR",
           "ScalarWriter", "WriterLock", "check_model_dir", "check_target", "checkpoints", "files", "inspect",
           "is_writable", "latest_checkpoint", "layout", "list_checkpoints", "lock",
           "newest_usable", "read_config", "read_json", "recover", "recovery", "restore_model",
           "summaries", "write_json_atomic", "writing"]
