"""A model_dir owns only what it wrote: the lock file must be one we made (no hard link out, no
lock shared by `cp -al` snapshots), start-up cleanup removes only names tfmodels makes, and
every record present (config.json, metrics.json, exports), not only checkpoints, is checked
against the run before a byte is written."""
import json
import os
import subprocess

import pytest

from tests import model_dir_runs

from tfmodels import model_dir as model_dir_lib


@pytest.fixture(scope="module")
def run30(tmp_path_factory):
    model_dir = tmp_path_factory.mktemp("owned") / "run"
    model_dir_runs.train(model_dir)
    return model_dir


def test_a_lock_hard_linked_to_a_file_outside_is_refused_untouched(tmp_path):
    outside = tmp_path / "notes.txt"
    outside.write_text("precious\n")
    model_dir = tmp_path / "run"
    model_dir.mkdir()
    os.link(outside, model_dir / ".lock")
    with pytest.raises(ValueError, match=r"the lock file .*\.lock' has 2 hard links: it is "
                                         r"shared with another file .*; it was left untouched\. "
                                         r"Remove it \(rm .*\.lock\) and run again"):
        model_dir_lib.WriterLock(str(model_dir))
    assert outside.read_text() == "precious\n"


def test_two_cp_al_snapshots_do_not_share_a_lock(tmp_path):
    first = tmp_path / "a"
    model_dir_lib.WriterLock(str(first)).release()
    subprocess.run(["cp", "-al", str(first), str(tmp_path / "b")], check=True, timeout=30)
    for folder in (first, tmp_path / "b"):
        with pytest.raises(ValueError, match="has 2 hard links") as err:
            model_dir_lib.WriterLock(str(folder))
        assert not isinstance(err.value, model_dir_lib.ModelDirBusyError)
    os.remove(tmp_path / "b" / ".lock")  # as the message says: B gets a lock of its own
    with model_dir_lib.WriterLock(str(tmp_path / "b")) as lock:
        assert lock.held
        with model_dir_lib.WriterLock(str(first)):  # not "being written by" b's holder
            pass


def test_a_lock_file_holding_something_else_is_refused_untouched(tmp_path):
    (tmp_path / ".lock").write_text("my shopping list\n")
    with pytest.raises(ValueError, match="holds something else than the writer's pid"):
        model_dir_lib.WriterLock(str(tmp_path))
    assert (tmp_path / ".lock").read_text() == "my shopping list\n"
    os.remove(tmp_path / ".lock")
    os.mkfifo(tmp_path / ".lock")
    with pytest.raises(ValueError, match="is not a regular file"):
        model_dir_lib.WriterLock(str(tmp_path))


def test_training_into_a_used_folder_leaves_the_users_files(tmp_path):
    folder = tmp_path / "home"
    folder.mkdir()
    mine = {".tmp_thesis.tex": "\\section{x}", ".staging_photos/cat.jpg": "jpg",
            "ckpt-3_temp/part": "mine", ".tfmodels-tmp-notes.txt": "mine"}
    for name, text in mine.items():
        os.makedirs(os.path.dirname(folder / name), exist_ok=True)
        (folder / name).write_text(text)
        os.utime(folder / name, (0, 0))  # old enough to look like a killed writer's
    model_dir_runs.train(folder, train_steps=10)
    assert {name: (folder / name).read_text() for name in mine} == mine


@pytest.mark.parametrize("kept", [
    ("config.json", "metrics.json", "model.keras", "saved_model"),  # a finished run, no ckpt
    ("metrics.json",),
    ("model.keras",),
    ("saved_model",),
])
def test_records_without_checkpoints_are_checked_too(run30, tmp_path, kept):
    model_dir = tmp_path / "run"
    model_dir.mkdir()
    for name in kept:
        if name == "saved_model":
            (model_dir / name).mkdir()
            (model_dir / name / "saved_model.pb").write_bytes(b"pb")
        elif name == "model.keras":
            (model_dir / name).write_bytes(b"PK")
        else:
            (model_dir / name).write_bytes((run30 / name).read_bytes())
    before = model_dir_runs.snapshot(model_dir)
    from tfmodels.options import UsageError

    with pytest.raises(UsageError, match=r"(holds another run \(model 'two_layer_net' there, "
                                          r"'lenet' in this run|holds the metrics.json of another "
                                          r"run \(model 'two_layer_net' there, 'lenet' in this "
                                          r"run|holds (model.keras|saved_model) but no "
                                          r"config.json).*nothing was"):
        model_dir_runs.train(model_dir, model="lenet", train_steps=10)
    assert model_dir_runs.snapshot(model_dir) == before


def test_the_same_model_over_its_own_records_trains(run30, tmp_path):
    model_dir = tmp_path / "run"
    model_dir.mkdir()
    for name in ("config.json", "metrics.json"):
        (model_dir / name).write_bytes((run30 / name).read_bytes())
    model_dir_runs.train(model_dir)
    assert json.loads((model_dir / "metrics.json").read_text())["steps"] == 30
