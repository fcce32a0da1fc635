"""Which checkpoint a directory stands for, chosen from its files and said in words.

    path, note = choose_in_directory("legacy_run/")
    # note: "took model.ckpt-3000, the newest readable of 3 checkpoints in legacy_run/ (found
    #        from the files); the `checkpoint` state file names model.ckpt-2000 (stale:
    #        not the newest)"

A TF1 training directory holds `<name>-<step>.index` files (a Saver's `model.ckpt-3000`, a
model_dir's `ckpt-3`) and usually a `checkpoint` state file naming the latest. The state file
goes stale (files copied without it, a run restarted elsewhere, a hand edit) or missing, so, as
train.py's model_dirs do, the files decide: the checkpoint with the highest step (then the
newest index file) whose every tensor reads (`model_dir.checkpoints.inspect`) is taken, newer
ones that do not read are passed over, and the note says what the state file said. A directory
holding one checkpoint has nothing to fall back to: it is taken unread (the port reads its
tensors, and a damaged one fails there in one line), so it is not read twice.
"""
import os
import re

from tfmodels.model_dir import checkpoints as checkpoint_files

_STEP = re.compile(r"-(\d+)$")


def _state_file_entry(directory):
    """The basename the state file names as latest, '' when it names none, None without it."""
    latest = checkpoint_files.state_file_latest(directory)
    return latest and os.path.basename(latest.rstrip("/"))


def list_prefixes(directory):
    """Checkpoint prefixes with an index file directly in `directory`, oldest first:
    by step (`-<N>` at the end of the name; none counts as -1), then index file time."""
    found = []
    for name in os.listdir(directory):
        path = os.path.join(directory, name)
        if name.endswith(".index") and os.path.isfile(path) and not os.path.islink(path):
            prefix = name[:-len(".index")]
            step = _STEP.search(prefix)
            found.append((int(step.group(1)) if step else -1, os.path.getmtime(path), prefix))
    return [os.path.join(directory, prefix) for _, _, prefix in sorted(found)]


def choose_in_directory(directory):
    """The newest readable checkpoint in `directory` and why it was taken.

    Returns:
      (prefix, note) or (None, why there is none).
    """
    prefixes = list_prefixes(directory)
    state = _state_file_entry(directory)
    if not prefixes:
        named = f" (its state file names {state!r})" if state else ""
        return None, (f"{directory} holds no checkpoint index file (*.index){named}")
    passed = []
    if len(prefixes) == 1:
        # Nothing to fall back to: its tensors are read once, by the port, whose reads of a
        # damaged file fail in one line naming the variable and the checkpoint.
        prefix = prefixes[0]
        note = f"took {os.path.basename(prefix)}, the only checkpoint in {directory}"
    else:
        for prefix in reversed(prefixes):
            found = checkpoint_files.inspect(prefix)
            if found.readable:
                break
            passed.append(found)
        else:
            return None, (f"none of the {len(prefixes)} checkpoints in {directory} reads:\n"
                          + checkpoint_files.describe_unusable(passed))
        note = (f"took {os.path.basename(prefix)}, the newest readable of {len(prefixes)} "
                f"checkpoints in {directory}")
    name = os.path.basename(prefix)
    note += " (found from the files)"
    if passed:
        note += "; passed over " + "; ".join(
            f"{os.path.basename(i.path)} ({i.reason()})" for i in passed)
    if state is None:
        note += f"; there is no `{checkpoint_files.STATE_FILE}` state file"
    elif state == "":
        note += f"; the `{checkpoint_files.STATE_FILE}` state file names no checkpoint"
    elif state != name:
        why = ("it does not read" if state in {os.path.basename(i.path) for i in passed}
               else "stale: not the newest" if state in map(os.path.basename, prefixes)
               else "not in the folder")
        note += f"; the `{checkpoint_files.STATE_FILE}` state file names {state} ({why})"
    else:
        note += f"; the `{checkpoint_files.STATE_FILE}` state file agrees"
    return prefix, note
