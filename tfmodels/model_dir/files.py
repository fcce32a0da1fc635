"""Writing files in a model_dir so that no reader ever sees half a file and no write follows a
symbolic link.

Every file is written under a temporary name in its own folder (`.tfmodels-tmp-*`), flushed,
then renamed over its final name: `os.replace` swaps the directory entry, so a crash leaves either
the old file or the new one, and a symbolic link at the final name is replaced, never written
through. A folder is swapped the same way (`replace_dir`). Files and folders get the modes the
process's umask gives (as `open` and `mkdir` would), not mkstemp's private 0600 / 0700.

Temporary names and checkpoint staging folders are names only tfmodels makes (a fixed prefix and
the random 8-character tail `tempfile` adds): `remove_leftovers` (the trainer calls it at start,
holding the model_dir's lock) removes those and nothing else, so a user's `.tmp_notes.tex` or
`.staging_photos/` in the folder is never touched.

A write that fails for want of space or permission raises `ModelDirWriteError`: one line naming
the file and saying that the previous version (if any) is kept.

JSON is strict (RFC 8259): NaN and infinities are refused when writing and when reading.
"""
import errno
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
NET_KERAS_FILE = "net.keras"
TMP_PREFIX = ".tfmodels-tmp-"
STAGING_PREFIX = ".tfmodels-staging-"
# What killed writers leave, and only that: our prefixes followed by `tempfile`'s random tail
# (TensorFlow's own `ckpt-<N>_temp/` is made inside a staging folder). Staging folders are only
# ever written by the trainer, which holds the lock when it cleans up.
_STAGING = re.compile(r"^\.tfmodels-staging-ckpt-\d+_[a-z0-9_]{8}$")
_TMP = re.compile(r"^\.tfmodels-tmp-[a-z0-9_]{8}(\.json|\.keras|\.png)?$")
# Errors of the disk or the permissions, reported in one line (not bugs).
_WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS, errno.EFBIG)


class ModelDirWriteError(OSError):
    """A file could not be written (disk full, no permission); the message names it and what
    was kept."""


def umask():
    """The process's umask: from /proc (Linux), which reads it without setting it; elsewhere
    set and put back at once (`os.umask` is the only portable way to read it)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_mode():
    return 0o666 & ~umask()


def dir_mode():
    return 0o777 & ~umask()


def write_failure(err, path, kept):
    """`err` as a `ModelDirWriteError` naming `path` and `kept`, or None for other errors.

    Args:
      err: the exception raised while writing (OSError, or TensorFlow's errors for
        ResourceExhausted / PermissionDenied).
      kept: what is left as it was, in words ('the previous config.json is kept').
    """
    import tensorflow as tf  # only for its error types; tf is loaded by every writer anyway

    if isinstance(err, ModelDirWriteError):
        return err
    if isinstance(err, OSError) and err.errno in _WRITE_ERRNOS:
        reason = os.strerror(err.errno)
    elif isinstance(err, tf.errors.ResourceExhaustedError):
        reason = "no space left on device (or quota exceeded)"
    elif isinstance(err, tf.errors.PermissionDeniedError):
        reason = "permission denied"
    else:
        return None
    return ModelDirWriteError(f"cannot write {path}: {reason}; {kept}")
# Temporary JSON and PNG files may also belong to an eval.py writing its results at this moment
# (it holds no lock, and names them so): those younger than this many seconds are left alone.
# The others (config.json's, metrics.json's, the state file's, the exports') are only ever
# written by the trainer, which holds the lock when it cleans up: a killed one's go at once.
_TMP_GRACE_SECONDS = 60.0
_SHARED_TMP_SUFFIXES = (".json", ".png")


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
    made = _make_dirs(directory)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=TMP_PREFIX, suffix=suffix)
        os.close(fd)
        write(tmp)
        os.chmod(tmp, file_mode())  # mkstemp's 0600 would ignore the umask
        os.replace(tmp, path)
    except BaseException as err:
        if tmp:
            _remove(tmp)
        _remove_empty(made)  # a failed first write leaves no empty folder behind
        failure = write_failure(err, path, _kept(path)) if isinstance(err, Exception) else None
        if failure is not None:
            raise failure from None
        raise
    return path


def _kept(path):
    name = os.path.basename(path)
    return (f"the previous {name} is kept" if os.path.lexists(path)
            else f"no {name} was written")


def _make_dirs(directory):
    """Create `directory` and missing parents; the ones created, outermost first."""
    made, current = [], directory
    while current and not os.path.lexists(current):
        made.append(current)
        current = os.path.dirname(current)
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as err:
        failure = write_failure(err, directory, "nothing was written")
        if failure is not None:
            raise failure from None
        raise
    return made[::-1]


def _remove_empty(made):
    for directory in reversed(made):
        try:
            os.rmdir(directory)
        except OSError:
            return


def write_text_atomic(path, text, *, suffix=""):
    """Write `text` (flushed to disk) to `path` through a temporary name ending in `suffix`."""
    def write(tmp):
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())

    return write_atomic(path, write, suffix=suffix)


def write_json_atomic(path, obj, *, suffix=""):
    """Write `obj` as strict JSON (no NaN / inf: ValueError) through a temporary name ending in
    `suffix` ('.json' for a writer holding no lock, such as eval.py: see `remove_leftovers`)."""
    text = json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n"
    return write_text_atomic(path, text, suffix=suffix)


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
    made = _make_dirs(parent)
    tmp = old = None
    try:
        tmp = tempfile.mkdtemp(dir=parent, prefix=TMP_PREFIX)
        write(tmp)
        apply_umask(tmp)  # mkdtemp's 0700 (and the writer's own modes) would ignore the umask
        if os.path.lexists(path):
            old = tempfile.mkdtemp(dir=parent, prefix=TMP_PREFIX)
            os.rmdir(old)
            os.rename(path, old)
        os.rename(tmp, path)
    except BaseException as err:
        if tmp:
            _remove(tmp)
        if old and not os.path.lexists(path):
            os.rename(old, path)
        _remove_empty(made)
        failure = write_failure(err, path, _kept(path)) if isinstance(err, Exception) else None
        if failure is not None:
            raise failure from None
        raise
    if old:
        _remove(old)
    return path


def apply_umask(top):
    """Give the folder `top` and everything in it the modes the umask gives new files and
    folders (links are left alone)."""
    files, dirs = file_mode(), dir_mode()
    os.chmod(top, dirs)
    for root, folders, names in os.walk(top):
        for name in folders:
            if not os.path.islink(os.path.join(root, name)):
                os.chmod(os.path.join(root, name), dirs)
        for name in names:
            if not os.path.islink(os.path.join(root, name)):
                os.chmod(os.path.join(root, name), files)


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
        if _STAGING.match(name) or (_TMP.match(name) and (
                not name.endswith(_SHARED_TMP_SUFFIXES)
                or now - _mtime(path, now) > _TMP_GRACE_SECONDS)):
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

