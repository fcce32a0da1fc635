"""The model-directory format, unit by unit: strict atomic files, the writer lock, checkpoint
discovery and inspection, staged saves and keep-N, recovery, the typed record, identity checks.

End-to-end cases (train.py / eval.py on damaged model_dirs) are in test_model_dir_faults.py.
"""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import tensorflow as tf

from tfmodels import model_dir as model_dir_lib
from tfmodels.model_dir import checkpoints, files, recovery, writing


# --- files -------------------------------------------------------------------------------------

def test_write_json_atomic_never_leaves_a_half_file(tmp_path):
    path = tmp_path / "config.json"
    model_dir_lib.write_json_atomic(path, {"a": 1})
    with pytest.raises(TypeError):
        model_dir_lib.write_json_atomic(path, {"a": object()})  # not serialisable
    assert json.loads(path.read_text()) == {"a": 1}
    assert os.listdir(tmp_path) == ["config.json"]  # no temporary file left behind


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_json_is_strict_both_ways(tmp_path, value):
    path = tmp_path / "config.json"
    with pytest.raises(ValueError, match="not JSON compliant"):
        model_dir_lib.write_json_atomic(path, {"center_loss_weight": value})
    assert not path.exists()
    path.write_text(json.dumps({"center_loss_weight": value}))  # Python's default writes NaN
    with pytest.raises(ValueError, match=r"config.json is not valid JSON: (NaN|Infinity|-Infinity)"
                                         r" is not JSON"):
        model_dir_lib.read_json(path)


def test_writes_replace_symbolic_links_instead_of_following_them(tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("precious")
    folder = tmp_path / "run"
    folder.mkdir()
    for name in ("metrics.json", "model.keras"):
        os.symlink(outside, folder / name)
    model_dir_lib.write_json_atomic(folder / "metrics.json", {"a": 1})
    files.write_atomic(str(folder / "model.keras"), lambda tmp: open(tmp, "w").write("new"),
                       suffix=".keras")
    assert outside.read_text() == "precious"
    assert not any(os.path.islink(folder / n) for n in ("metrics.json", "model.keras"))
    assert (folder / "model.keras").read_text() == "new"

    outside_dir = tmp_path / "outside_dir"
    outside_dir.mkdir()
    (outside_dir / "keep.txt").write_text("precious")
    os.symlink(outside_dir, folder / "saved_model")
    files.replace_dir(str(folder / "saved_model"),
                      lambda tmp: open(os.path.join(tmp, "saved_model.pb"), "w").write("pb"))
    assert sorted(os.listdir(outside_dir)) == ["keep.txt"]
    assert os.listdir(folder / "saved_model") == ["saved_model.pb"]
    os.symlink(outside_dir, folder / "train")
    with pytest.raises(ValueError, match="is a symbolic link"):
        files.real_dir(str(folder / "train"))
    assert sorted(n for n in os.listdir(folder) if n.startswith(".tfmodels-tmp-")) == []


def test_is_writable_respects_permission_bits(tmp_path):
    assert files.is_writable(str(tmp_path))
    os.chmod(tmp_path, 0o555)
    try:
        assert not files.is_writable(str(tmp_path))  # also for root, who could write anyway
    finally:
        os.chmod(tmp_path, 0o755)
    assert not files.is_writable(str(tmp_path / "missing"))


def test_remove_leftovers_removes_only_names_tfmodels_makes(tmp_path):
    for name in (".tfmodels-staging-ckpt-3_ab1_cd2e",):
        (tmp_path / name).mkdir()
        (tmp_path / name / "part").write_text("x")
    old_tmp = tmp_path / ".tfmodels-tmp-k2j4_x0a.json"
    old_tmp.write_text("{")
    os.utime(old_tmp, (0, 0))
    (tmp_path / ".tfmodels-tmp-zz9_8a7b.json").write_text("{")  # an eval.py may be writing it
    # A state file's temporary of a killed trainer, however young: only the lock holder writes
    # one, and the lock holder is who cleans up.
    (tmp_path / ".tfmodels-tmp-st4te_9x").write_text("model_checkpoint_path")
    (tmp_path / "ckpt-10.index").write_text("x")
    # A user's files whose names only look like leftovers (old enough to be swept).
    users = [".tmp_thesis.tex", ".staging_photos", "ckpt-3_temp", ".tfmodels-tmp-notes.txt"]
    for name in users:
        if "." in name[1:]:
            (tmp_path / name).write_text("mine")
        else:
            (tmp_path / name).mkdir()
            (tmp_path / name / "photo.jpg").write_text("mine")
        os.utime(tmp_path / name, (0, 0))
    assert files.remove_leftovers(str(tmp_path)) == [".tfmodels-staging-ckpt-3_ab1_cd2e",
                                                     ".tfmodels-tmp-k2j4_x0a.json",
                                                     ".tfmodels-tmp-st4te_9x"]
    assert sorted(os.listdir(tmp_path)) == sorted(
        users + [".tfmodels-tmp-zz9_8a7b.json", "ckpt-10.index"])
    assert (tmp_path / "ckpt-3_temp" / "photo.jpg").read_text() == "mine"


# --- the writer lock ---------------------------------------------------------------------------

def test_writer_lock_is_exclusive_and_released(tmp_path):
    model_dir = str(tmp_path / "run")
    first = model_dir_lib.WriterLock(model_dir)
    assert open(os.path.join(model_dir, ".lock")).read().startswith(f"pid {os.getpid()} on ")
    with pytest.raises(model_dir_lib.ModelDirBusyError, match=f"another process \\(pid "
                                                              f"{os.getpid()} on "):
        model_dir_lib.WriterLock(model_dir)
    first.release()
    first.release()  # twice is fine
    with model_dir_lib.WriterLock(model_dir) as second:
        assert second.held
    assert not second.held


@pytest.mark.subprocess
def test_writer_lock_dies_with_its_process(tmp_path):
    """kill -9 leaves no stale lock: the OS releases flock locks of a dead process."""
    model_dir = str(tmp_path / "run")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time
            sys.path.insert(0, {root!r})
            from tfmodels.model_dir.lock import WriterLock
            lock = WriterLock({model_dir!r})
            time.sleep(600)
        """)], cwd=root)
    try:
        deadline = time.monotonic() + 120
        while not _lock_text(model_dir).startswith(f"pid {holder.pid} "):
            assert holder.poll() is None and time.monotonic() < deadline, "no lock taken"
            time.sleep(0.01)
        with pytest.raises(model_dir_lib.ModelDirBusyError, match=f"pid {holder.pid} on "):
            model_dir_lib.WriterLock(model_dir)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.communicate(timeout=60)
    model_dir_lib.WriterLock(model_dir).release()


def _lock_text(model_dir):
    try:
        with open(os.path.join(model_dir, ".lock")) as f:
            return f.read()
    except OSError:
        return ""


def test_writer_lock_refuses_a_symbolic_link(tmp_path):
    (tmp_path / "run").mkdir()
    os.symlink(tmp_path / "elsewhere", tmp_path / "run" / ".lock")
    with pytest.raises(ValueError, match="lock file .* it is a symbolic link"):
        model_dir_lib.WriterLock(str(tmp_path / "run"))
    assert not (tmp_path / "elsewhere").exists()


# --- checkpoints -------------------------------------------------------------------------------

def _state(value=1.0):
    return tf.train.Checkpoint(v=tf.Variable(value), w=tf.Variable(np.arange(1000.0)))


def _save(directory, step, value=1.0):
    return writing.save(_state(value), str(directory), step)


def test_save_is_staged_and_read_back_in_full(tmp_path):
    path = _save(tmp_path, 7, 2.5)
    assert path == os.path.join(tmp_path, "ckpt-7")
    assert sorted(os.listdir(tmp_path)) == ["ckpt-7.data-00000-of-00001", "ckpt-7.index"]
    found = checkpoints.inspect(path)
    assert found.readable and found.step == 7 and found.non_finite == ()
    assert tf.train.load_checkpoint(path).get_tensor("v/.ATTRIBUTES/VARIABLE_VALUE") == 2.5


def test_inspect_finds_truncated_corrupt_linked_and_non_finite_checkpoints(tmp_path):
    for step in (1, 2, 3, 4, 5):
        _save(tmp_path, step, float("nan") if step == 5 else 1.0)
    data = tmp_path / "ckpt-1.data-00000-of-00001"
    data.write_bytes(data.read_bytes()[:1000])
    (tmp_path / "ckpt-2.index").write_bytes(b"garbage")
    index = tmp_path / "ckpt-3.index"
    os.rename(index, tmp_path / "real.index")
    os.symlink(tmp_path / "real.index", index)
    results = {step: checkpoints.inspect(str(tmp_path / f"ckpt-{step}"))
               for step in (1, 2, 3, 4, 5)}
    assert "Read less bytes than requested" in results[1].problem
    assert "sstable" in results[2].problem
    assert results[3].problem == "ckpt-3.index is a symbolic link (links are not followed)"
    assert results[4].readable and results[4].usable(finite=True)
    assert results[5].readable and not results[5].usable(finite=True)
    assert results[5].non_finite == ("v/.ATTRIBUTES/VARIABLE_VALUE",)
    found, skipped = checkpoints.newest_usable(str(tmp_path), finite=True)
    assert found.step == 4 and [s.step for s in skipped] == [5]
    found, skipped = checkpoints.newest_usable(str(tmp_path), finite=False)
    assert found.step == 5 and skipped == []


def test_discovery_ignores_the_state_file(tmp_path):
    _save(tmp_path, 10)
    _save(tmp_path, 20)
    (tmp_path / "checkpoint").write_text('model_checkpoint_path: "/etc/ckpt-99"\n')
    assert checkpoints.list_checkpoints(str(tmp_path)) == [
        (10, str(tmp_path / "ckpt-10")), (20, str(tmp_path / "ckpt-20"))]
    assert model_dir_lib.latest_checkpoint(str(tmp_path)) == str(tmp_path / "ckpt-20")


def test_sweep_deletes_only_checkpoint_files_inside(tmp_path):
    model_dir, outside = tmp_path / "run", tmp_path / "outside"
    outside.mkdir()
    for step in (1, 2):  # what a hostile state file would point at
        _save(outside, step)
    before = sorted(os.listdir(outside))
    for step in (1, 2, 3, 4):
        _save(model_dir, step)
    (model_dir / "checkpoint").write_text("".join(
        f'all_model_checkpoint_paths: "{outside}/ckpt-{s}"\n' for s in (1, 2)))
    (model_dir / "ckpt-1.notes").write_text("mine")
    assert writing.sweep(str(model_dir), keep=2) == [1, 2]
    assert sorted(os.listdir(outside)) == before
    assert sorted(os.listdir(model_dir)) == ["checkpoint", "ckpt-1.notes",
                                             "ckpt-3.data-00000-of-00001", "ckpt-3.index",
                                             "ckpt-4.data-00000-of-00001", "ckpt-4.index"]
    writing.write_state(str(model_dir))
    assert tf.train.latest_checkpoint(str(model_dir)) == str(model_dir / "ckpt-4")
    assert (model_dir / "checkpoint").read_text() == (
        'model_checkpoint_path: "ckpt-4"\nall_model_checkpoint_paths: "ckpt-3"\n'
        'all_model_checkpoint_paths: "ckpt-4"\n')


def test_recover_sets_aside_bad_checkpoints_and_rebuilds_the_state_file(tmp_path, caplog):
    import logging

    caplog.set_level(logging.INFO, logger="absl")
    for step in (10, 20, 30):
        _save(tmp_path, step)
    data = tmp_path / "ckpt-30.data-00000-of-00001"
    truncated = data.read_bytes()[:500]
    data.write_bytes(truncated)
    os.remove(tmp_path / "ckpt-10.index")  # its data shard is left without an index
    (tmp_path / "checkpoint").write_text("garbage")
    (tmp_path / ".tfmodels-staging-ckpt-40_a1b2c3d4").mkdir()  # a killed save's
    found = recovery.recover(str(tmp_path))
    assert found.path == str(tmp_path / "ckpt-20")
    assert sorted(os.listdir(tmp_path)) == ["checkpoint", "ckpt-20.data-00000-of-00001",
                                            "ckpt-20.index", "unreadable"]
    assert sorted(os.listdir(tmp_path / "unreadable")) == [
        "ckpt-10.data-00000-of-00001", "ckpt-30.data-00000-of-00001", "ckpt-30.index"]
    assert (tmp_path / "unreadable" / "ckpt-30.data-00000-of-00001").read_bytes() == truncated
    assert f"checkpoint {tmp_path}/ckpt-30 cannot be resumed from (IndexError" in caplog.text
    assert "rebuilt the checkpoint state file" in caplog.text and "it was empty or corrupt" \
        in caplog.text
    assert tf.train.latest_checkpoint(str(tmp_path)) == str(tmp_path / "ckpt-20")
    assert recovery.rebuild_state(str(tmp_path)) is None  # now right

    # The same step set aside twice: nothing in unreadable/ is overwritten.
    _save(tmp_path, 30)
    (tmp_path / "ckpt-30.index").write_bytes(b"bad")
    recovery.recover(str(tmp_path))
    assert "ckpt-30.index.1" in os.listdir(tmp_path / "unreadable")


def test_recover_changes_nothing_when_no_checkpoint_reads(tmp_path):
    for step in (1, 2):
        _save(tmp_path, step)
        (tmp_path / f"ckpt-{step}.index").write_bytes(b"x")
    (tmp_path / "ckpt-3_temp").mkdir()
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(model_dir_lib.NoUsableCheckpointError) as error:
        recovery.recover(str(tmp_path))
    message = str(error.value)
    assert f"{tmp_path}/ckpt-2: OpError: file is too short to be an sstable" in message
    assert f"{tmp_path}/ckpt-1: OpError" in message
    assert sorted(os.listdir(tmp_path)) == before


def test_resolve_in_directory_stays_inside(tmp_path):
    outside = tmp_path / "outside"
    _save(outside, 5)
    folder = tmp_path / "legacy"
    folder.mkdir()
    (folder / "checkpoint").write_text(f'model_checkpoint_path: "{outside}/ckpt-5"\n')
    assert checkpoints.resolve_in_directory(str(folder)) is None
    _save(folder, 3)
    os.rename(folder / "ckpt-3.index", folder / "model.ckpt-3.index")
    for shard in checkpoints.data_files(str(folder), 3):
        os.rename(folder / shard, folder / shard.replace("ckpt-3", "model.ckpt-3"))
    (folder / "checkpoint").write_text('model_checkpoint_path: "model.ckpt-3"\n')
    assert checkpoints.resolve_in_directory(str(folder)) == str(folder / "model.ckpt-3")


# --- config.json and identity ------------------------------------------------------------------

IDENTITY = {"model": "lenet", "num_classes": 10, "image_shape": [8, 8, 1], "dataset": "digits",
            "center_loss": False, "optimizer": "momentum", "ema_decay_enabled": False,
            "loss_scaling": False, "trainable_scopes": []}


def test_check_model_dir_looks_at_the_files_not_the_state_file(tmp_path):
    assert model_dir_lib.check_model_dir(str(tmp_path / "new"), IDENTITY) == []
    _save(tmp_path, 3)
    os.remove(tmp_path / "ckpt-3.index")  # a data shard alone still marks the folder as used
    with pytest.raises(ValueError, match=r"holds ckpt-3.data-00000-of-00001 but no config.json"):
        model_dir_lib.check_model_dir(str(tmp_path), IDENTITY)
    model_dir_lib.write_json_atomic(tmp_path / "config.json", dict(IDENTITY, learning_rate=0.1))
    assert model_dir_lib.check_model_dir(str(tmp_path), dict(IDENTITY, learning_rate=1.0)) == \
        ["ckpt-3.data-00000-of-00001"]
    with pytest.raises(ValueError, match="holds another run \\(model 'lenet' there, 'cifarnet' "
                                         "in this run; num_classes 10 there, 100 in this run\\); "
                                         "nothing was changed. Resume it with the same model, "
                                         "num_classes, or use another --model_dir"):
        model_dir_lib.check_model_dir(str(tmp_path),
                                      dict(IDENTITY, model="cifarnet", num_classes=100))
    with pytest.raises(ValueError, match="dataset 'digits' there, 'synthetic:8x8x1:10' in "
                                         "this run"):
        model_dir_lib.check_model_dir(str(tmp_path), dict(IDENTITY, dataset="synthetic:8x8x1:10"))


def test_record_reads_what_config_json_says(tmp_path):
    record = model_dir_lib.ModelRecord.from_json(
        dict(IDENTITY, center_loss=True, center_alpha=0.3, ema_decay=0.99, dataset="digits",
             total_steps=30, learning_rate=0.1))
    assert (record.model, record.num_classes, record.image_shape) == ("lenet", 10, (8, 8, 1))
    assert record.center_loss and record.center_alpha == 0.3 and record.total_steps == 30
    assert record.ema_decay == 0.0 and not record.has_weight_average  # ema_decay_enabled False
    averaged = model_dir_lib.ModelRecord.from_json(dict(IDENTITY, ema_decay_enabled=True,
                                                        ema_decay=0.99))
    assert averaged.has_weight_average and averaged.ema_decay == 0.99
    with pytest.raises(ValueError, match=r"lacks \['num_classes', 'image_shape'\]"):
        model_dir_lib.ModelRecord.from_json({"model": "lenet"})


@pytest.mark.parametrize("shape", ["abc", [8, 8], [8, "8", 1], [8, 0, 1], [8, True, 1]])
def test_a_malformed_image_shape_names_the_file(tmp_path, shape):
    """eval.py reads config.json through this: a bad image_shape is one line naming the file."""
    from tfmodels.options import UsageError

    path = tmp_path / "config.json"
    path.write_text(json.dumps(dict(IDENTITY, image_shape=shape)))
    with pytest.raises(UsageError) as raised:
        model_dir_lib.read_config(str(tmp_path))
    assert str(raised.value) == (f"{path}: image_shape={shape!r} must be [height, width, "
                                 "channels] of positive ints")


def test_read_config_and_restore_errors(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        model_dir_lib.read_config(str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="has no config.json"):
        model_dir_lib.read_config(str(tmp_path))
    with pytest.raises(ValueError, match="checkpoint .*ckpt-9' does not exist"):
        model_dir_lib.restore_model(model_dir_lib.ModelRecord.from_json(IDENTITY),
                                    str(tmp_path / "ckpt-9"))
