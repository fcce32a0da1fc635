"""Checkpoints in a model_dir, found from the files themselves and checked by reading them.

A checkpoint is `ckpt-<N>.index` plus its data shards `ckpt-<N>.data-<i>-of-<n>`, directly in
the model_dir, N being the training step. They are listed from the folder (`list_checkpoints`),
never from the paths the `checkpoint` state file names: that file is written for TensorFlow's
own tools (`tf.train.latest_checkpoint`, TensorBoard) and rebuilt when it is lost or wrong, but
nothing here reads, writes or deletes a path because it says so.

`inspect` reads every tensor of a checkpoint (its bytes, checked against the index's CRCs):
O(size), so it runs once per start, resume or evaluation, not at every save. `newest_usable`
walks from the newest checkpoint back to the first that reads (and, if asked, holds only finite
values), reporting the ones it passed over; `watch` yields new readable ones as they appear.
"""
import dataclasses
import errno
import os
import re
import time
from typing import Optional, Tuple

import numpy as np
import tensorflow as tf
from absl import logging

PREFIX = "ckpt"
STATE_FILE = "checkpoint"
INDEX = re.compile(r"^ckpt-(\d+)\.index$")
DATA = re.compile(r"^ckpt-(\d+)\.data-\d{5}-of-\d{5}$")


@dataclasses.dataclass(frozen=True)
class Inspection:
    """What reading a checkpoint found.

    Attributes:
      path: the checkpoint prefix.
      step: N of `ckpt-N` (None for other names).
      problem: why it cannot be read (None: every tensor was read).
      non_finite: names of floating tensors holding inf or NaN.
      denied: the problem is a permission denied (the files may be fine: not set aside).
    """
    path: str
    step: Optional[int]
    problem: Optional[str] = None
    non_finite: Tuple[str, ...] = ()
    denied: bool = False

    @property
    def readable(self):
        return self.problem is None

    def usable(self, finite):
        return self.readable and not (finite and self.non_finite)

    def reason(self):
        """Why it is not usable, in words (problem, else the non-finite tensors)."""
        if self.problem:
            return self.problem
        if self.non_finite:
            shown = ", ".join(self.non_finite[:3])
            more = f" and {len(self.non_finite) - 3} more" if len(self.non_finite) > 3 else ""
            return f"holds inf/NaN values in {shown}{more}"
        return "usable"


def checkpoint_path(directory, step):
    return os.path.join(directory, f"{PREFIX}-{step}")


def step_of(path):
    """N of a `.../ckpt-N` prefix, else None."""
    match = INDEX.match(os.path.basename(path) + ".index")
    return int(match.group(1)) if match else None


def list_checkpoints(directory):
    """[(step, prefix)] of the `ckpt-<N>.index` files in `directory`, oldest first."""
    try:
        names = os.listdir(directory)
    except (FileNotFoundError, NotADirectoryError):
        return []
    steps = sorted(int(m.group(1)) for m in map(INDEX.match, names) if m)
    return [(step, checkpoint_path(directory, step)) for step in steps]


def files_present(directory):
    """Names of checkpoint files (indexes and data shards) in `directory`, sorted."""
    try:
        names = os.listdir(directory)
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted(n for n in names if INDEX.match(n) or DATA.match(n))


def data_files(directory, step):
    """Names of the data shards of `ckpt-<step>` in `directory`."""
    return sorted(n for n in os.listdir(directory)
                  if DATA.match(n) and int(DATA.match(n).group(1)) == step)


def inspect(path):
    """Read every tensor of the checkpoint at `path` (a prefix); never raises for bad files.

    Returns:
      An `Inspection`.
    """
    step = step_of(path)
    directory, name = os.path.split(path)
    linked = [f for f in [name + ".index"] + _shard_names(directory, name)
              if os.path.islink(os.path.join(directory, f))]
    if linked:
        return Inspection(path, step, f"{linked[0]} is a symbolic link (links are not followed)")
    non_finite = []
    try:
        reader = tf.train.load_checkpoint(path)
        dtypes = reader.get_variable_to_dtype_map()
        for key in sorted(dtypes):
            value = reader.get_tensor(key)  # checks the bytes against the index's CRC
            if dtypes[key].is_floating and not np.isfinite(np.asarray(value, np.float32)).all():
                non_finite.append(key)
    except Exception as err:  # noqa: BLE001 -- any failure to read is the finding
        denied = isinstance(err, tf.errors.PermissionDeniedError) or (
            isinstance(err, OSError) and err.errno in (errno.EACCES, errno.EPERM))
        return Inspection(path, step, _describe(err), denied=denied)
    return Inspection(path, step, None, tuple(non_finite))


def _shard_names(directory, name):
    try:
        return [n for n in os.listdir(directory or ".") if n.startswith(name + ".data-")]
    except OSError:
        return []


def _describe(err):
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return f"{type(err).__name__}: {text[:300]}" if text else type(err).__name__


def newest_usable(directory, *, finite):
    """The newest checkpoint of `directory` that reads (and with `finite`, holds no inf/NaN).

    Returns:
      (Inspection of it or None, [Inspection] of the newer ones passed over, newest first).
    """
    skipped = []
    for _, path in reversed(list_checkpoints(directory)):
        found = inspect(path)
        if found.usable(finite):
            return found, skipped
        if found.readable or os.path.lexists(path + ".index"):
            skipped.append(found)
        # else: deleted while it was read (a writer's keep-N sweep): no longer a checkpoint
    return None, skipped


def watch(directory, timeout, poll_seconds=1.0, until=None):
    """Yield (as `Inspection`) the newest readable checkpoint whenever one newer than the last
    yielded appears in `directory`'s files; return after `timeout` seconds without one, or as
    soon as `until()` (checked at each poll, when given) is true.

    A newer checkpoint that does not read (yet: another program may still be copying it) is
    retried at each poll and reported once.
    """
    last_step, reported = -1, set()
    deadline = time.monotonic() + timeout
    while True:
        if until is not None and until():
            return
        newer = [path for step, path in list_checkpoints(directory) if step > last_step]
        for path in reversed(newer):
            found = inspect(path)
            if found.readable:
                last_step = found.step
                yield found
                deadline = time.monotonic() + timeout
                break
            if path not in reported:
                reported.add(path)
                logging.warning("checkpoint %s cannot be read (%s); passed over while it stays "
                                "so", path, found.problem)
        else:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            time.sleep(min(poll_seconds, remaining))


def describe_unusable(inspections):
    """One line per checkpoint: its path and why it was passed over."""
    return "\n".join(f"  {i.path}: {i.reason()}" for i in inspections)


def state_file_latest(directory):
    """The path the state file in `directory` names as latest, as written (possibly absolute
    or elsewhere): '' when it names none or cannot be read, None without a state file."""
    state = os.path.join(directory, STATE_FILE)
    if not os.path.isfile(state):
        return None
    try:
        with open(state) as f:
            text = f.read(1 << 20)
    except (OSError, UnicodeDecodeError):
        return ""
    match = re.search(r'^\s*model_checkpoint_path:\s*"([^"]*)"\s*$', text, re.M)
    return match.group(1) if match else ""


def resolve_in_directory(directory):
    """The checkpoint a folder stands for (e.g. `--init_checkpoint=DIR`), confined to it.

    The newest `ckpt-<N>` found in the folder; for other naming schemes (a TF1 Saver's
    `model.ckpt-1000`), the state file's latest entry if it names a file directly inside the
    folder. Paths the state file names elsewhere are never followed.

    Returns:
      The prefix, or None.
    """
    found = list_checkpoints(directory)
    if found:
        return found[-1][1]
    name = state_file_latest(directory)
    if not name:
        return None
    inside = os.path.join(directory, os.path.basename(name))
    if os.path.isabs(name) and os.path.dirname(os.path.abspath(name)) == os.path.abspath(directory):
        name = os.path.basename(name)
    if os.path.basename(name) != name or name in ("", ".", ".."):
        return None
    return inside if os.path.isfile(inside + ".index") else None
