"""Model directories under hostile or careless use: each case is something that lost work or
misled before (numbered as in the model_dir promise in README.md), then a fault-injection run.

1 lost / truncated state file or deleted latest index    4 paths outside the model_dir
2 truncated latest checkpoint                            5 read-only model_dir for eval
3 non-finite values (options, saves, eval)               6 identity, one writer, leftovers,
                                                           metrics after a resume, bad files
Runs train in-process (the default strategy) on CS231n's two-layer net and the bundled digits:
30 steps, a checkpoint every 10, 3 kept.
"""
import json
import logging
import os
import random
import shutil
import signal
import time

import numpy as np
import pytest
import tensorflow as tf

from tests import scripts

BASE = dict(model="two_layer_net", train_steps=30, checkpoint_every=10, steps_per_loop=10,
            log_every=10, export=False)


def _train(model_dir, **changes):
    from tfmodels.training import TrainConfig, train

    return train(TrainConfig(model_dir=str(model_dir), **dict(BASE, **changes)))


@pytest.fixture(scope="module")
def run30(tmp_path_factory):
    model_dir = tmp_path_factory.mktemp("faults") / "run"
    _train(model_dir)
    return model_dir


@pytest.fixture
def run(run30, tmp_path):
    """A fresh copy of the 30-step model_dir."""
    target = tmp_path / "run"
    shutil.copytree(run30, target)
    return target


@pytest.fixture
def absl_logs(caplog):
    caplog.set_level(logging.INFO, logger="absl")  # parsing flags in-process sets WARNING
    return caplog


def _snapshot(folder, lock=True):
    """{relative path: bytes} of every file under `folder` (links as their target text), the
    writer lock's file included if `lock`."""
    found = {}
    for root, dirs, names in os.walk(folder):
        for name in names + [d for d in dirs if os.path.islink(os.path.join(root, d))]:
            path = os.path.join(root, name)
            key = os.path.relpath(path, folder)
            found[key] = (f"-> {os.readlink(path)}" if os.path.islink(path)
                          else open(path, "rb").read())
    if not lock:
        found.pop(".lock", None)
    return found


def _checkpoint_bytes(folder):
    return {k: v for k, v in _snapshot(folder).items() if k.startswith("ckpt-")}


def _truncate(path, fraction=0.5):
    data = open(path, "rb").read()
    with open(path, "wb") as f:
        f.write(data[:int(len(data) * fraction)])
    return data[:int(len(data) * fraction)]


def _all_finite(prefix):
    reader = tf.train.load_checkpoint(str(prefix))
    dtypes = reader.get_variable_to_dtype_map()
    return all(np.isfinite(reader.get_tensor(k)).all() for k in dtypes if dtypes[k].is_floating)


# --- 1: a lost or damaged state file never reads as "empty" ------------------------------------

def _damage(run, how):
    if how == "state file deleted":
        os.remove(run / "checkpoint")
    elif how == "latest index deleted":
        os.remove(run / "ckpt-30.index")
    else:
        _truncate(run / "checkpoint", 0.3)


@pytest.mark.parametrize("how", ["state file deleted", "latest index deleted",
                                 "state file truncated"])
def test_1_damaged_dir_of_another_model_is_refused_untouched(run, how):
    from tfmodels.options import UsageError

    _damage(run, how)
    before = _snapshot(run)
    with pytest.raises(UsageError, match="holds another run \\(model 'two_layer_net' there, "
                                          "'lenet' in this run\\); nothing was changed"):
        _train(run, model="lenet")
    assert _snapshot(run) == before


def test_1_same_model_resumes_from_the_files_and_keeps_every_checkpoint(run, absl_logs):
    _damage(run, "state file truncated")
    before = _checkpoint_bytes(run)
    metrics = _train(run)
    assert metrics["start_step"] == 30 and metrics["steps"] == 30
    assert _checkpoint_bytes(run) == before  # ckpt-10, 20, 30 as they were
    assert "rebuilt the checkpoint state file" in absl_logs.text
    assert tf.train.latest_checkpoint(str(run)) == str(run / "ckpt-30")


# --- 2: a truncated latest checkpoint: fall back, name it, keep it ---------------------------

def test_2_train_falls_back_to_the_newest_readable_checkpoint(run, absl_logs):
    truncated = _truncate(run / "ckpt-30.data-00000-of-00001")
    metrics = _train(run)
    assert metrics["start_step"] == 20 and metrics["steps"] == 30
    assert (f"checkpoint {run}/ckpt-30 cannot be resumed from (IndexError: Read less bytes "
            "than requested)") in absl_logs.text
    kept = run / "unreadable" / "ckpt-30.data-00000-of-00001"
    assert kept.read_bytes() == truncated  # kept for inspection
    assert sorted(os.listdir(run / "unreadable")) == ["ckpt-30.data-00000-of-00001",
                                                      "ckpt-30.index"]
    from tfmodels.model_dir import inspect
    assert inspect(str(run / "ckpt-30")).readable  # saved again, whole


def test_2_eval_falls_back_and_names_the_bad_file(run, tmp_path, absl_logs):
    from tfmodels.evaluation.evaluator import EvalConfig, evaluate
    from tfmodels.options import UsageError

    _truncate(run / "ckpt-30.data-00000-of-00001")
    options = dict(model_dir=str(run), output=str(tmp_path / "out.json"), knn_k=(),
                   plot_dir="")
    [results] = evaluate(EvalConfig(**options))
    assert results["step"] == 20 and results["checkpoint"] == str(run / "ckpt-20")
    assert f"checkpoint {run}/ckpt-30 cannot be read (IndexError: Read less bytes" \
        in absl_logs.text
    with pytest.raises(UsageError, match=f"checkpoint '{run}/ckpt-30' cannot be read: "
                                              "IndexError: Read less bytes than requested"):
        evaluate(EvalConfig(checkpoint="ckpt-30", **options))


def test_2_none_readable_is_an_error_listing_each(run, tmp_path):
    from tfmodels.evaluation.evaluator import EvalConfig, evaluate
    from tfmodels.options import UsageError

    for step in (10, 20, 30):
        _truncate(run / f"ckpt-{step}.data-00000-of-00001")
    before = _snapshot(run, lock=False)
    lines = [f"{run}/ckpt-{step}: IndexError: Read less bytes than requested"
             for step in (30, 20, 10)]
    with pytest.raises(UsageError) as error:
        _train(run)
    assert all(line in str(error.value) for line in lines), str(error.value)
    with pytest.raises(UsageError) as error:
        evaluate(EvalConfig(model_dir=str(run), output=str(tmp_path / "out.json")))
    assert all(line in str(error.value) for line in lines), str(error.value)
    assert _snapshot(run, lock=False) == before  # the lock holder's pid aside


# --- 3: inf and NaN never get into a checkpoint or a JSON file --------------------------------

def test_3_weights_that_become_non_finite_are_never_saved(tmp_path, monkeypatch):
    from tfmodels.training import NonFiniteLossError
    from tfmodels.training.checkpoints import CheckpointSaver

    run = tmp_path / "run"
    _train(run, train_steps=10)
    save = CheckpointSaver.save

    def overflowing(self, step):  # the update overflowed; the loop's loss did not see it yet
        self.checkpoint.model.weights[0].assign(
            tf.fill(self.checkpoint.model.weights[0].shape, float("inf")))
        return save(self, step)

    monkeypatch.setattr(CheckpointSaver, "save", overflowing)
    with pytest.raises(NonFiniteLossError, match=r"the weights became inf/NaN between step 10 "
                                                 r"and step 11 \(TwoLayerNet/fc1/kernel\); step "
                                                 f"11 was not saved, the last good checkpoint is "
                                                 f"{run}/ckpt-10"):
        _train(run, train_steps=20, checkpoint_every=1, steps_per_loop=1)
    assert sorted(f for f in os.listdir(run) if f.endswith(".index")) == ["ckpt-10.index"]
    assert _all_finite(run / "ckpt-10")


def test_3_non_finite_loss_names_a_finite_checkpoint(tmp_path):
    from tfmodels.training import NonFiniteLossError

    run = tmp_path / "run"
    _train(run, train_steps=10)
    # The largest rate float32 holds: the weights blow up within a few steps.
    with pytest.raises(NonFiniteLossError) as error:
        _train(run, train_steps=20, checkpoint_every=1, steps_per_loop=1, learning_rate=3.4e38)
    named = str(error.value).split("the last good checkpoint is ")[1].split(" ")[0]
    assert os.path.exists(named + ".index") and _all_finite(named)
    for name in os.listdir(run):
        if name.endswith(".index"):
            assert _all_finite(run / name[:-len(".index")]), name
    with open(run / "config.json") as f:
        json.load(f, parse_constant=lambda c: pytest.fail(f"{c} in config.json"))


# --- 4: nothing outside the model_dir is touched because a file inside says so ---------------

def test_4_state_file_naming_outside_files_deletes_nothing_there(run, tmp_path):
    outside = tmp_path / "outside"
    for step in (1, 2):
        tf.train.Checkpoint(v=tf.Variable(1.0)).write(str(outside / f"ckpt-{step}"))
    (outside / "notes.txt").write_text("precious")
    before = _snapshot(outside)
    (run / "checkpoint").write_text(
        f'model_checkpoint_path: "{outside}/ckpt-2"\n' + "".join(
            f'all_model_checkpoint_paths: "{outside}/ckpt-{s}"\n' for s in (1, 2)))
    metrics = _train(run, train_steps=50, keep_checkpoints=2)
    assert metrics["start_step"] == 30 and metrics["steps"] == 50
    assert _snapshot(outside) == before
    assert sorted(f for f in os.listdir(run) if f.startswith("ckpt-")) == [
        "ckpt-40.data-00000-of-00001", "ckpt-40.index", "ckpt-50.data-00000-of-00001",
        "ckpt-50.index"]
    assert (run / "checkpoint").read_text().startswith('model_checkpoint_path: "ckpt-50"\n')


def test_4_exports_replace_links_instead_of_writing_through_them(run, tmp_path):
    import keras

    target, target_dir = tmp_path / "target.keras", tmp_path / "target_dir"
    target.write_text("precious")
    target_dir.mkdir()
    (target_dir / "keep.txt").write_text("precious")
    os.symlink(target, run / "model.keras")
    os.symlink(target_dir, run / "saved_model")
    _train(run, export=True)
    assert target.read_bytes() == b"precious" and os.listdir(target_dir) == ["keep.txt"]
    assert not os.path.islink(run / "model.keras") and not os.path.islink(run / "saved_model")
    keras.models.load_model(str(run / "model.keras"))
    assert tf.saved_model.load(str(run / "saved_model")).signatures["serving_default"]


# --- 5: eval of a read-only model_dir ----------------------------------------------------------

def test_5_eval_reads_a_read_only_model_dir_and_writes_elsewhere(run, tmp_path):
    from tfmodels.evaluation.evaluator import EvalConfig, evaluate
    from tfmodels.options import UsageError

    before = _snapshot(run)
    folders = [root for root, _, _ in os.walk(run)]
    for folder in folders:
        os.chmod(folder, 0o555)
    try:
        [results] = evaluate(EvalConfig(model_dir=str(run), output=str(tmp_path / "out.json"),
                                        knn_k=(1,)))
        with pytest.raises(UsageError, match="is not writable: pass --output"):
            evaluate(EvalConfig(model_dir=str(run)))
    finally:
        for folder in folders:
            os.chmod(folder, 0o755)
    assert results["step"] == 30 and results["plots"] == {}
    assert json.loads((tmp_path / "out.json").read_text())["step"] == 30
    assert _snapshot(run) == before


def test_5_eval_writes_tensorboard_where_told(run, tmp_path):
    from tfmodels.evaluation.evaluator import EvalConfig, evaluate

    summaries = tmp_path / "summaries"
    evaluate(EvalConfig(model_dir=str(run), output=str(tmp_path / "out.json"), knn_k=(),
                        plot_dir="", summary_dir=str(summaries)))
    assert any(n.startswith("events.out") for n in os.listdir(summaries))
    assert not os.path.exists(run / "eval")


# --- 6: identity, one writer, leftovers, metrics after a resume, unreadable files ------------

def test_6_resume_with_another_dataset_of_the_same_shape_is_refused(run):
    from tfmodels.options import UsageError

    before = _snapshot(run)
    with pytest.raises(UsageError, match="dataset 'digits' there, 'synthetic:8x8x1:10' in "
                                          "this run"):
        _train(run, dataset="synthetic:8x8x1:10")
    assert _snapshot(run) == before


@pytest.mark.subprocess
def test_6_a_second_writer_fails_at_once_naming_the_holder(run):
    from tfmodels.model_dir import WriterLock

    before = _checkpoint_bytes(run)
    with WriterLock(str(run)):  # this process plays the first writer
        proc = scripts.run("train.py", f"--model_dir={run}", "--model=two_layer_net",
                           "--train_steps=40", "--noexport", timeout=300)
    assert proc.returncode != 0
    assert f"is being written by another process (pid {os.getpid()} on " in proc.stderr
    assert "Traceback" not in proc.stderr
    assert _checkpoint_bytes(run) == before


def test_6_leftovers_of_killed_saves_are_removed_at_start(run):
    staging = run / ".tfmodels-staging-ckpt-40_abc1def2"  # a killed save's
    (staging / "ckpt-40_temp").mkdir(parents=True)
    (staging / "ckpt-40_temp" / "part-00000-of-00001.data-00000-of-00001").write_bytes(b"x" * 9)
    _train(run)
    assert not os.path.exists(staging)


def test_6_rerun_after_the_last_checkpoint_says_what_it_measured(run):
    os.remove(run / "metrics.json")  # killed after saving ckpt-30, before metrics.json
    metrics = _train(run)
    saved = json.loads((run / "metrics.json").read_text())
    assert saved == metrics and None not in saved.values()
    assert saved["start_step"] == saved["steps"] == 30
    assert saved["measured_in_this_run"] == ["test_accuracy", "test_examples", "test_loss",
                                             "test_skipped_undecodable", "top_5_accuracy"]
    assert "train_loss" not in saved and "images_per_sec" not in saved


def test_6_garbage_checkpoint_files_are_named(tmp_path):
    from tfmodels import porting
    from tfmodels.options import UsageError

    (tmp_path / "legacy.ckpt.index").write_bytes(b"not a checkpoint")
    (tmp_path / "legacy.ckpt.data-00000-of-00001").write_bytes(b"")
    prefix = str(tmp_path / "legacy.ckpt")
    message = f"={prefix} cannot be read as a TensorFlow checkpoint: .*sstable"
    with pytest.raises(UsageError, match="--init_checkpoint" + message):
        _train(tmp_path / "run", init_checkpoint=prefix)
    with pytest.raises(UsageError, match="--checkpoint" + message):
        porting.port_checkpoint(prefix, "lenet", 10, (8, 8, 1), str(tmp_path / "ported"))


# --- fault injection: 12 kill -9s, a lost state file, truncated checkpoints ------------------

KILLS = 12  # each is a fresh process; 20 took ~3.5 min of CI for little more coverage
FAULT_FLAGS = ["--model=two_layer_net", "--deterministic", "--train_steps=100",
               "--checkpoint_every=1", "--steps_per_loop=1", "--keep_checkpoints=3",
               "--log_every=1000", "--noexport"]


def _readable(model_dir):
    """{step: bytes of its files} of the checkpoints that read in full."""
    from tfmodels.model_dir import checkpoints

    found = {}
    for step, path in checkpoints.list_checkpoints(str(model_dir)):
        if checkpoints.inspect(path).readable:
            names = [f"ckpt-{step}.index"] + checkpoints.data_files(str(model_dir), step)
            try:
                found[step] = {n: open(os.path.join(model_dir, n), "rb").read() for n in names}
            except FileNotFoundError:
                continue
    return found


def _wait(condition, victim, what, timeout=300, poll=0.005):
    deadline = time.monotonic() + timeout
    while not condition():
        if victim.poll() is not None:
            return False  # it ended on its own (e.g. finished)
        if time.monotonic() > deadline:
            victim.kill()
            pytest.fail(f"{what} did not happen within {timeout} s:\n"
                        f"{victim.communicate(timeout=60)[1][-3000:]}")
        time.sleep(poll)
    return True


def _newest_step(model_dir):
    from tfmodels.model_dir import checkpoints

    found = checkpoints.list_checkpoints(str(model_dir))
    return found[-1][0] if found else 0


def _saving(model_dir):
    """Whether a checkpoint is being written (its staging folder exists)."""
    try:
        return any(n.startswith(".tfmodels-staging-") for n in os.listdir(model_dir))
    except FileNotFoundError:
        return False


def _holds_lock(model_dir, pid):
    try:
        return open(os.path.join(model_dir, ".lock")).read().startswith(f"pid {pid} ")
    except OSError:
        return False


@pytest.mark.subprocess
def test_fault_injection_kills_lost_state_files_truncated_checkpoints(tmp_path):
    """12 kill -9s at random moments (while starting and recovering, while writing a
    checkpoint, or after a save), with the state file deleted and the newest checkpoint
    truncated in between at random; then a run to the end. Its final checkpoint equals an
    uninterrupted run's bit for bit, no checkpoint that existed is lost except by the keep-3
    policy (or set aside into unreadable/ when we truncated it), and every truncated file is
    kept there."""
    from tfmodels.model_dir import checkpoints

    straight, run = tmp_path / "straight", tmp_path / "run"
    reference = scripts.start("train.py", f"--model_dir={straight}", *FAULT_FLAGS)  # meanwhile
    rng = random.Random(20)
    truncated, killed, deleted, mid_save, started = [], 0, 0, 0, time.monotonic()
    try:
        for attempt in range(KILLS):
            before = _readable(run)
            start = max(before, default=0)
            victim = scripts.start("train.py", f"--model_dir={run}", *FAULT_FLAGS)
            moment = rng.random()
            if moment < 0.35:  # while it starts: recovery, restore, tracing
                alive = _wait(lambda: _holds_lock(run, victim.pid), victim, "taking the lock")
                time.sleep(rng.uniform(0.0, 1.5))
            elif moment < 0.75:  # while it writes a checkpoint
                alive = _wait(lambda: _saving(run), victim, "a save", poll=0.0005)
                time.sleep(rng.uniform(0.0, 0.005))
            else:  # after a save: between steps, or during the next save
                alive = _wait(lambda: _newest_step(run) > start, victim, "a new checkpoint")
                time.sleep(rng.uniform(0.0, 0.03))
            killed += alive and victim.poll() is None
            victim.send_signal(signal.SIGKILL)
            victim.communicate(timeout=60)
            mid_save += _saving(run)

            after = _readable(run)
            for step, files in before.items():
                if step in after:
                    assert after[step] == files, f"ckpt-{step} changed (kill {attempt})"
                else:  # only the keep-N policy may delete it: 3 newer ones must exist
                    assert len([s for s in after if s > step]) >= 3, \
                        f"ckpt-{step} was lost at kill {attempt}: {sorted(after)}"
            if rng.random() < 0.5 and os.path.exists(run / "checkpoint"):
                os.remove(run / "checkpoint")
                deleted += 1
            if rng.random() < 0.5 and len(after) >= 2:
                newest = max(after)
                data = checkpoints.data_files(str(run), newest)[0]
                truncated.append(_truncate(run / data, rng.uniform(0.1, 0.9)))
    finally:
        _, reference_err = reference.communicate(timeout=600)
    proc = scripts.run("train.py", f"--model_dir={run}", *FAULT_FLAGS, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert reference.returncode == 0, reference_err[-3000:]
    assert killed >= KILLS - 2, f"only {killed} of {KILLS} runs were alive when killed"
    a = tf.train.load_checkpoint(str(straight / "ckpt-100"))
    b = tf.train.load_checkpoint(str(run / "ckpt-100"))
    keys = a.get_variable_to_shape_map()
    assert keys == b.get_variable_to_shape_map() and len(keys) > 5
    for key in keys:
        np.testing.assert_array_equal(a.get_tensor(key), b.get_tensor(key), err_msg=key)
    assert _checkpoint_bytes(run).keys() == _checkpoint_bytes(straight).keys()  # keep-3
    kept = [open(os.path.join(root, n), "rb").read()
            for root, _, names in os.walk(run / "unreadable") for n in names]
    assert all(data in kept for data in truncated), "a truncated checkpoint file was lost"
    assert not [n for n in os.listdir(run) if n.endswith("_temp") or n.startswith(".tfmodels-")]
    print(f"{killed} kills ({mid_save} during a save), {deleted} state files deleted, "
          f"{len(truncated)} checkpoints "
          f"truncated, {len(os.listdir(run / 'unreadable'))} files set aside; "
          f"{time.monotonic() - started:.0f} s")
