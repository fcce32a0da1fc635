"""Bring a model_dir back to a consistent state before a writer resumes in it.

    resume = recover(model_dir)       # holding the model_dir's WriterLock

After a crash, a kill -9, a full disk or a careless `rm`, a model_dir may hold: staging folders
and temporary files of an interrupted write, a newest checkpoint that does not read (truncated,
corrupt, a link, inf/NaN weights from an older version), data shards whose index is gone, and a
`checkpoint` state file that is missing, corrupt, stale or names paths elsewhere. `recover`
removes the temporary leftovers, moves unusable checkpoint files into `unreadable/` (kept for
inspection, out of the way of the keep-N policy and of new saves of the same step), rebuilds
the state file from the checkpoint files, and says what it did in the log. It changes nothing
when no checkpoint is usable: that is an error listing each checkpoint and why.
"""
import os
import re

from absl import logging

from tfmodels.model_dir import checkpoints, writing
from tfmodels.model_dir.files import real_dir, remove_leftovers
from tfmodels.options import UsageError

UNREADABLE_DIR = "unreadable"


class NoUsableCheckpointError(UsageError):
    """Checkpoints exist but none of them can be read."""


def recover(model_dir):
    """Make `model_dir` consistent for a writer (hold its lock); see the module docstring.

    Returns:
      The `checkpoints.Inspection` of the checkpoint to resume from, or None (fresh start).

    Raises:
      NoUsableCheckpointError: there are checkpoints and none reads with finite values.
      ValueError: `unreadable/` is a symbolic link or not a folder, or a checkpoint cannot be
        read for want of permission (files that may be fine are never set aside).
    """
    resume, skipped = checkpoints.newest_usable(model_dir, finite=True)
    if skipped and resume is None:
        raise NoUsableCheckpointError(
            f"--model_dir={model_dir} holds checkpoints but none can be resumed from; nothing "
            f"was changed:\n{checkpoints.describe_unusable(skipped)}\nMove them away (or use "
            "another --model_dir) to start again.")
    denied = [bad for bad in skipped if bad.denied]
    if denied:
        raise UsageError(
            f"checkpoint {denied[0].path} cannot be read: permission denied; nothing was moved "
            "or changed. Give this user read access to its files (chmod/chown), or use another "
            "--model_dir")
    if not os.path.isdir(model_dir):
        return None
    removed = remove_leftovers(model_dir)
    if removed:
        logging.info("removed what interrupted writes left in %s: %s", model_dir,
                     ", ".join(removed))
    for bad in skipped:
        moved = set_aside(model_dir, bad.step)
        logging.warning("checkpoint %s cannot be resumed from (%s); resuming from %s instead. "
                        "Its files are kept for inspection in %s: %s", bad.path, bad.reason(),
                        os.path.basename(resume.path), os.path.join(model_dir, UNREADABLE_DIR),
                        ", ".join(moved))
    indexed = {step for step, _ in checkpoints.list_checkpoints(model_dir)}
    orphans = sorted({int(checkpoints.DATA.match(n).group(1))
                      for n in checkpoints.files_present(model_dir)
                      if checkpoints.DATA.match(n)} - indexed)
    for step in orphans:
        moved = set_aside(model_dir, step)
        logging.warning("data files without an index (an interrupted save or a deleted index) "
                        "moved to %s: %s", os.path.join(model_dir, UNREADABLE_DIR),
                        ", ".join(moved))
    rebuild_state(model_dir)
    return resume


def set_aside(model_dir, step):
    """Move the files of `ckpt-<step>` into `<model_dir>/unreadable/` (never overwriting a
    file there); their new names."""
    target_dir = real_dir(os.path.join(model_dir, UNREADABLE_DIR), "folder")
    name = f"{checkpoints.PREFIX}-{step}"
    moved = []
    files = [name + ".index"] + checkpoints.data_files(model_dir, step)
    for file_name in files:  # the index first: the checkpoint stops being one at once
        source = os.path.join(model_dir, file_name)
        if not os.path.lexists(source):
            continue
        target, n = os.path.join(target_dir, file_name), 0
        while os.path.lexists(target):
            n += 1
            target = os.path.join(target_dir, f"{file_name}.{n}")
        os.rename(source, target)
        moved.append(os.path.relpath(target, model_dir))
    return moved


def rebuild_state(model_dir):
    """Rewrite the `checkpoint` state file when it does not describe the checkpoint files.

    Returns:
      Why it was rewritten (also logged), or None when it was right.
    """
    path = os.path.join(model_dir, checkpoints.STATE_FILE)
    expected = writing.state_text(model_dir)
    problem = _state_problem(path, expected, model_dir)
    if problem is None:
        return None
    if expected is None:  # no checkpoint left: a state file would only mislead
        os.remove(path)
        logging.warning("removed the checkpoint state file %s: %s, and there is no checkpoint",
                        path, problem)
        return problem
    writing.write_state(model_dir)
    latest = re.search(r'"([^"]*)"', expected).group(1)
    logging.warning("rebuilt the checkpoint state file %s from the checkpoint files (latest "
                    "%s): %s", path, latest, problem)
    return problem


def _state_problem(path, expected, model_dir):
    if not os.path.lexists(path):
        return None if expected is None else "it was missing"
    if os.path.islink(path):
        return "it was a symbolic link"
    try:
        with open(path) as f:
            text = f.read(1 << 20)
    except (OSError, UnicodeDecodeError) as err:
        return f"it could not be read ({err})"
    if text == expected:
        return None
    names = re.findall(r'^\s*(?:model_checkpoint_path|all_model_checkpoint_paths):\s*"(.*)"\s*$',
                       text, re.M)
    if not names:
        return "it was empty or corrupt"
    root = os.path.abspath(model_dir)
    outside = [n for n in names if os.path.dirname(os.path.abspath(os.path.join(root, n)))
               != root]
    if outside:
        return f"it named paths outside the model_dir ({', '.join(outside[:3])}), ignored"
    return f"it listed {', '.join(names[:4])}, not the checkpoint files present"
