"""Small training runs for the model_dir tests: CS231n's two-layer net on the bundled digits,
30 steps in-process (the default strategy), a checkpoint every 10, 3 kept, no export."""
import os
import shutil

BASE = dict(model="two_layer_net", train_steps=30, checkpoint_every=10, steps_per_loop=10,
            log_every=10, export=False)


def train(model_dir, **changes):
    from tfmodels.training import TrainConfig, train as run

    return run(TrainConfig(model_dir=str(model_dir), **dict(BASE, **changes)))


def copy(source, target):
    """A copy of a run's model_dir (its lock file left out: a fresh one is made)."""
    shutil.copytree(source, target, ignore=shutil.ignore_patterns(".lock"))
    return target


def snapshot(folder):
    """{relative path: bytes} of every file under `folder` but the lock (links: their text)."""
    found = {}
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            if name == ".lock":
                continue
            found[os.path.relpath(path, folder)] = (
                os.readlink(path).encode() if os.path.islink(path) else open(path, "rb").read())
    return found
