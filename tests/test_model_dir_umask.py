"""Files follow the umask, as TensorFlow's own checkpoint files do: config.json, metrics.json,
the exports, eval's JSON and the plots get `0666 & ~umask` (folders `0777 & ~umask`)."""
import os
import stat

import numpy as np
import pytest

from tests import model_dir_runs

from tfmodels import model_dir as model_dir_lib


@pytest.fixture
def umask():
    def set_to(mask):
        os.umask(mask)

    old = os.umask(0o022)
    os.umask(old)
    yield set_to
    os.umask(old)


def _modes(folder):
    """{relative path: permission bits} of everything under `folder` (the folder itself: '.')."""
    found = {".": stat.S_IMODE(os.stat(folder).st_mode)}
    for root, dirs, names in os.walk(folder):
        for name in dirs + names:
            path = os.path.join(root, name)
            found[os.path.relpath(path, folder)] = stat.S_IMODE(os.lstat(path).st_mode)
    return found


@pytest.mark.parametrize("mask", [0o077, 0o002])
def test_atomic_writes_follow_the_umask(tmp_path, umask, mask):
    from tfmodels.evaluation import plots

    umask(mask)
    model_dir_lib.write_json_atomic(tmp_path / "config.json", {"a": 1})
    model_dir_lib.files.replace_dir(str(tmp_path / "saved_model"), lambda tmp: (
        os.makedirs(os.path.join(tmp, "variables"), mode=0o700),
        open(os.path.join(tmp, "variables", "v.data"), "w").close()))
    plots.plot_confusion_matrix(str(tmp_path / "plots" / "c.png"), np.eye(2, dtype=np.int64))
    assert _modes(tmp_path) == {
        ".": _modes(tmp_path)["."], "config.json": 0o666 & ~mask, "plots": 0o777 & ~mask,
        "plots/c.png": 0o666 & ~mask, "saved_model": 0o777 & ~mask,
        "saved_model/variables": 0o777 & ~mask, "saved_model/variables/v.data": 0o666 & ~mask}


def test_a_run_and_its_evaluation_follow_a_private_umask(tmp_path, umask):
    from tfmodels.evaluation.evaluator import EvalConfig, evaluate

    umask(0o077)
    model_dir = tmp_path / "run"
    model_dir_runs.train(model_dir, train_steps=10, export=True)
    evaluate(EvalConfig(model_dir=str(model_dir), knn_k=()))
    modes = _modes(model_dir)
    for name in ("config.json", "metrics.json", "model.keras", "saved_model", "eval_test.json",
                 "plots", "plots/confusion_test.png", "ckpt-10.index"):
        assert name in modes
    loose = {name: oct(mode) for name, mode in modes.items() if mode & 0o077}
    assert loose == {}
