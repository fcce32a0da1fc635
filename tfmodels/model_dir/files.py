"""Writing files in a model_dir so that no reader ever sees half a file and no write follows a
symbolic link.

Every file is written under a temporary name in its own folder (`.tmp_*`), flushed, then renamed
over its final name: `os.replace` swaps the directory entry, so a crash leaves either the old
file or the new one, and a symbolic link at the final name is replaced, never written through.
A folder is swapped the same way (`replace_dir`). Temporary names and checkpoint staging folders
left by a killed process are removed by `remove_leftovers` (the trainer calls it at start,
holding the model_dir's lock).

JSON is strict (RFC 8259): NaN and infinities are refused when writing and when reading.
"""
import json
import os
import re
import shutil
import stat
import tempfile
import time

from tfmodels.options import UsageError

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.json"
SAVED_MODEL_DIR = "saved_model"
KERAS_FILE = "model.keras"
TMP_PREFIX = ".tmp_"
STAGING_PREFIX = ".staging_"
# What killed writers leave. Checkpoint staging folders (ours and TensorFlow's `ckpt-<N>_temp/`)
# are only ever written by the trainer, which holds the lock when it cleans up.
_STAGING = re.compile(r"^(\.staging_.*|ckpt-\d+_temp)$")
# Temporary files may also belong to an eval.py writing its JSON at this moment: those younger
# than this many seconds are left alone.
_TMP_GRACE_SECONDS = 60.0


def write_atomic(path, write, *, suffix=""):
    """Call `write(tmp_path)` on a temporary name beside `path`, then rename it to `path`.

    Args:
      path: the final file name.
      write: fn(tmp_path) that creates the file (the temporary name ends with `suffix`).
      suffix: e.g. '.keras' for writers that insist on an extension.

    Returns:
      `path`.
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=TMP_PREFIX, suffix=suffix)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide the file from other readers
        os.replace(tmp, path)
    except BaseException:
        _remove(tmp)
        raise
    return path


def write_text_atomic(path, text):
    """Write `text` (flushed to disk) to `path` through a temporary name."""
    def write(tmp):
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())

    return write_atomic(path, write)


def write_json_atomic(path, obj):
    """Write `obj` as strict JSON (no NaN / inf: ValueError) through a temporary name."""
    text = json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n"
    return write_text_atomic(path, text)


def _reject_constant(name):
    raise UsageError(f"{name} is not JSON (strict JSON has no NaN or infinity)")


def read_json(path):
    """The JSON in `path`, strictly (NaN / Infinity refused); errors name the file."""
    try:
        with open(path) as f:
            return json.load(f, parse_constant=_reject_constant)
    except ValueError as err:
        raise UsageError(f"{path} is not valid JSON: {err}") from None


def replace_dir(path, write):
    """Build a folder with `write(tmp_dir)` beside `path`, then swap it in for `path`.

    An existing `path` (folder or symbolic link) is renamed aside first and removed after the
    swap; a link is unlinked, never followed.
    """
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=parent, prefix=TMP_PREFIX)
    old = None
    try:
        write(tmp)
        os.chmod(tmp, 0o755)  # mkdtemp's 0700 would hide the export from other readers
        if os.path.lexists(path):
            old = tempfile.mkdtemp(dir=parent, prefix=TMP_PREFIX)
            os.rmdir(old)
            os.rename(path, old)
        os.rename(tmp, path)
    except BaseException:
        _remove(tmp)
        if old and not os.path.lexists(path):
            os.rename(old, path)
        raise
    if old:
        _remove(old)
    return path


def real_dir(path, what="folder"):
    """Create `path` as a folder, or check that it is one (not a symbolic link).

    Raises:
      ValueError: `path` is a symbolic link or not a folder (writing there would land outside
        the model_dir, or fail).
    """
    if os.path.islink(path):
        raise UsageError(f"{what} {path!r} is a symbolic link (to {os.readlink(path)!r}); "
                         "nothing is written through links: remove it or pass another path")
    if os.path.lexists(path) and not os.path.isdir(path):
        raise UsageError(f"{what} {path!r} exists and is not a folder")
    os.makedirs(path, exist_ok=True)
    return path


def is_writable(directory):
    """Whether `directory` may be written: the OS allows it and a write permission bit is set
    (a folder made read-only with chmod counts as read-only even for root)."""
    try:
        mode = os.stat(directory).st_mode
    except OSError:
        return False
    return os.access(directory, os.W_OK) and bool(mode & (stat.S_IWUSR | stat.S_IWGRP |
                                                           stat.S_IWOTH))


def remove_leftovers(directory):
    """Remove temporary files and folders killed writers left in `directory`; their names."""
    removed, now = [], time.time()
    for name in sorted(os.listdir(directory)):
        path = os.path.join(directory, name)
        if _STAGING.match(name) or (name.startswith(TMP_PREFIX) and
                                    now - _mtime(path, now) > _TMP_GRACE_SECONDS):
            _remove(path)
            removed.append(name)
    return removed


def _mtime(path, default):
    try:
        return os.lstat(path).st_mtime
    except FileNotFoundError:  # its writer renamed it meanwhile
        return default


def _remove(path):
    """Remove a file, a link (not its target) or a folder tree; missing is fine."""
    if os.path.islink(path) or (os.path.lexists(path) and not os.path.isdir(path)):
        try:
            os.remove(path)
        except FileNotFoundError:
            pass
    elif os.path.isdir(path):
        shutil.rmtree(path, ignore_errors=True)
