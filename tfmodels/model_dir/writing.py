"""Writing checkpoints into a model_dir: staged, verified, renamed in, then the state file.

    path = save(tf_checkpoint, model_dir, step)      # <model_dir>/ckpt-<step>
    sweep(model_dir, keep=3)                          # the keep-N policy
    write_state(model_dir)                            # the `checkpoint` file for TF's tools

`save` writes the checkpoint into a staging folder inside the model_dir (`.staging_*`, where
TensorFlow also puts its own `ckpt-<N>_temp/`), checks that the data shards are complete
against the index, and renames the shards, then the index, into place: a checkpoint's index
appears only once all its data is there, so a crash at any moment leaves no readable-looking
half checkpoint. `sweep` deletes only files directly in the model_dir whose names match the
checkpoint pattern. `write_state` writes the state file atomically with relative paths.
"""
import os
import shutil
import tempfile

import numpy as np
import tensorflow as tf

from tfmodels.model_dir import checkpoints
from tfmodels.model_dir.files import STAGING_PREFIX, write_failure, write_text_atomic


class CheckpointWriteError(OSError):
    """A checkpoint came out incomplete (its data shards do not match its index)."""


def save(checkpoint, directory, step):
    """Write `checkpoint` (a `tf.train.Checkpoint`) as `<directory>/ckpt-<step>`.

    Every worker of a multi-worker strategy must call it (saving takes part in collectives).
    An existing `ckpt-<step>` is replaced (its index goes first, so it is never mixed with the
    new data). The state file is not touched (see `write_state`).

    Returns:
      The checkpoint prefix.

    Raises:
      CheckpointWriteError: the written shards are shorter than the index says.
      ModelDirWriteError: no space or no permission (the message names what was kept).
    """
    name = f"{checkpoints.PREFIX}-{step}"
    try:
        _save(checkpoint, directory, name, step)
    except Exception as err:
        found = [os.path.basename(p) for s, p in checkpoints.list_checkpoints(directory)
                 if s != step]
        kept = (f"the checkpoints before it are kept (newest {found[-1]})" if found
                else "no checkpoint was written")
        failure = write_failure(err, os.path.join(directory, name), kept)
        if failure is not None:
            raise failure from None
        raise
    return checkpoints.checkpoint_path(directory, step)


def _save(checkpoint, directory, name, step):
    os.makedirs(directory, exist_ok=True)
    staging = tempfile.mkdtemp(dir=directory, prefix=f"{STAGING_PREFIX}{name}_")
    try:
        checkpoint.write(os.path.join(staging, name))
        shards = _verify(staging, name)
        remove(directory, step)
        for shard in shards:
            os.replace(os.path.join(staging, shard), os.path.join(directory, shard))
        os.replace(os.path.join(staging, name + ".index"),
                   os.path.join(directory, name + ".index"))
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _verify(staging, name):
    """The data shard names of a freshly written checkpoint, after a cheap completeness check:
    every shard the names promise exists, and together they hold at least the bytes of the
    index's fixed-size tensors (reading the values is left to `checkpoints.inspect`)."""
    prefix = os.path.join(staging, name)
    shards = [n for n in os.listdir(staging) if n.startswith(name + ".data-")]
    expected = {int(n.rsplit("-of-", 1)[1]) for n in shards}
    if len(expected) != 1 or len(shards) != expected.pop():
        raise CheckpointWriteError(f"checkpoint {name} was written with shards {sorted(shards)}")
    reader = tf.train.load_checkpoint(prefix)
    shapes, dtypes = reader.get_variable_to_shape_map(), reader.get_variable_to_dtype_map()
    least = sum(int(np.prod(shapes[k], dtype=np.int64)) * dtypes[k].size for k in dtypes
                if dtypes[k] != tf.string)
    written = sum(os.path.getsize(os.path.join(staging, n)) for n in shards)
    if written < least:
        raise CheckpointWriteError(f"checkpoint {name}: data shards hold {written} bytes, the "
                                   f"index's tensors need at least {least}")
    return sorted(shards)


def remove(directory, step):
    """Delete `ckpt-<step>` from `directory`: the index first (so it stops being a
    checkpoint), then its data shards. Only exact checkpoint names directly inside."""
    index = os.path.join(directory, f"{checkpoints.PREFIX}-{step}.index")
    if os.path.lexists(index):
        os.remove(index)
    for shard in checkpoints.data_files(directory, step):
        os.remove(os.path.join(directory, shard))


def sweep(directory, keep):
    """Keep the `keep` newest checkpoints of `directory`, delete older ones; their steps."""
    found = checkpoints.list_checkpoints(directory)
    old = [step for step, _ in found[:-keep]] if keep > 0 else []
    for step in old:
        remove(directory, step)
    return old


def state_text(directory):
    """The `checkpoint` state file for the checkpoints in `directory` (relative names, the
    newest last and latest), or None when there is none."""
    found = checkpoints.list_checkpoints(directory)
    if not found:
        return None
    names = [os.path.basename(path) for _, path in found]
    return "".join([f'model_checkpoint_path: "{names[-1]}"\n'] +
                   [f'all_model_checkpoint_paths: "{n}"\n' for n in names])


def write_state(directory):
    """Write the state file for the checkpoints in `directory` (atomically); its text."""
    text = state_text(directory)
    if text is not None:
        write_text_atomic(os.path.join(directory, checkpoints.STATE_FILE), text)
    return text
