"""Every path a run writes is checked before any work; disk-full and permission errors are one
line naming the file and what was kept; a permission error never moves a checkpoint to
`unreadable/`; a checkpoint of another net, or config.json / `checkpoint` as folders, are one
line; eval reads config.json only from the model_dir itself and leaves no empty `plots/`."""
import errno
import os

import numpy as np
import pytest
import tensorflow as tf

from tests import model_dir_runs

from tfmodels import model_dir as model_dir_lib


@pytest.fixture(scope="module")
def run30(tmp_path_factory):
    model_dir = tmp_path_factory.mktemp("paths") / "run"
    model_dir_runs.train(model_dir)
    return model_dir


@pytest.fixture
def run(run30, tmp_path):
    return model_dir_runs.copy(run30, tmp_path / "run")


def _evaluate(model_dir, **options):
    from tfmodels.evaluation.evaluator import EvalConfig, evaluate

    return evaluate(EvalConfig(model_dir=str(model_dir), knn_k=(), **options))


@pytest.mark.parametrize("name, export", [("metrics.json", False), ("model.keras", True),
                                          ("config.json", False), ("checkpoint", False)])
def test_a_file_of_the_run_that_is_a_folder_stops_it_before_any_work(run, name, export):
    from tfmodels.options import UsageError

    if os.path.exists(run / name):
        os.remove(run / name)
    (run / name).mkdir()
    before = model_dir_runs.snapshot(run)
    with pytest.raises(UsageError, match=rf"{name}' is (a folder|not a file).*; nothing was "
                                          "written|cannot be the model_dir's record") as err:
        model_dir_runs.train(run, train_steps=40, export=export)
    assert "\n" not in str(err.value)
    assert model_dir_runs.snapshot(run) == before


def test_a_saved_model_that_is_a_file_stops_the_run_before_any_work(run):
    from tfmodels.options import UsageError

    (run / "saved_model").write_text("mine")
    with pytest.raises(UsageError, match="saved_model' is a file, where the SavedModel"):
        model_dir_runs.train(run, train_steps=40, export=True)
    assert not os.path.exists(run / "ckpt-40.index")


def test_a_read_only_model_dir_stops_the_run_before_any_work(run):
    from tfmodels.options import UsageError

    before = model_dir_runs.snapshot(run)
    os.chmod(run, 0o555)  # read-only (also for root: the permission bits are what counts)
    try:
        with pytest.raises(UsageError, match=r"--model_dir .* cannot be written: .* is not a "
                                              "writable folder; nothing was written"):
            model_dir_runs.train(run, train_steps=40)
    finally:
        os.chmod(run, 0o755)
    assert model_dir_runs.snapshot(run) == before


def test_eval_output_that_is_a_folder_stops_before_evaluating(run, tmp_path, monkeypatch):
    from tfmodels.evaluation import evaluator
    from tfmodels.options import UsageError

    monkeypatch.setattr(evaluator, "evaluate_model", lambda *a, **k: pytest.fail("evaluated"))
    (tmp_path / "out").mkdir()
    with pytest.raises(UsageError, match=r"'.*/out' is a folder, where --output \(a file\) "
                                         "is written; nothing was written"):
        _evaluate(run, output=str(tmp_path / "out"))
    (tmp_path / "plots").write_text("mine")
    with pytest.raises(UsageError, match=r"is a file, where --plot_dir \(a folder\)"):
        _evaluate(run, output=str(tmp_path / "e.json"), plot_dir=str(tmp_path / "plots"))


def test_eval_does_not_follow_a_config_json_link_out_of_the_model_dir(run, tmp_path):
    from tfmodels.options import UsageError

    outside = tmp_path / "other.json"
    outside.write_bytes((run / "config.json").read_bytes())
    os.remove(run / "config.json")
    os.symlink(outside, run / "config.json")
    with pytest.raises(UsageError, match="config.json' is a symbolic link .*read only from "
                                         "the folder itself"):
        _evaluate(run, output=str(tmp_path / "e.json"))


def test_eval_of_config_json_as_a_folder_is_one_line(run, tmp_path):
    from tfmodels.options import UsageError

    os.remove(run / "config.json")
    (run / "config.json").mkdir()
    with pytest.raises(UsageError, match="config.json' is not a file"):
        _evaluate(run, output=str(tmp_path / "e.json"))


def test_a_checkpoint_of_another_net_is_one_line(run):
    from tfmodels import nets
    from tfmodels.options import UsageError

    other = nets.build_model("lenet", 10, (8, 8, 1))
    tf.train.Checkpoint(model=other).write(str(run / "ckpt-40"))  # readable, not this run's
    before = model_dir_runs.snapshot(run)
    with pytest.raises(UsageError, match=r"checkpoint .*ckpt-40 does not hold this run's "
                                          r"state \(--model=two_layer_net\).*it was left as it "
                                          "is") as err:
        model_dir_runs.train(run, train_steps=50)
    assert "\n" not in str(err.value)
    after = model_dir_runs.snapshot(run)
    after.pop("checkpoint")  # the state file now lists ckpt-40, as recovery rebuilds it
    before.pop("checkpoint")
    assert after == before


def test_a_full_disk_during_a_save_is_one_line_naming_what_was_kept(tmp_path, monkeypatch):
    from tfmodels.model_dir import writing

    real_write = tf.train.Checkpoint.write

    def write(self, path, *args, **kwargs):
        if os.path.basename(path) == "ckpt-20":
            raise tf.errors.ResourceExhaustedError(None, None, f"{path}; No space left on device")
        return real_write(self, path, *args, **kwargs)

    monkeypatch.setattr(tf.train.Checkpoint, "write", write)
    with pytest.raises(model_dir_lib.ModelDirWriteError) as err:
        model_dir_runs.train(tmp_path / "run")
    assert str(err.value) == (f"cannot write {tmp_path / 'run' / 'ckpt-20'}: no space left on "
                              "device (or quota exceeded); the checkpoints before it are kept "
                              "(newest ckpt-10)")
    assert [os.path.basename(p) for _, p in model_dir_lib.list_checkpoints(
        str(tmp_path / "run"))] == ["ckpt-10"]
    assert not [n for n in os.listdir(tmp_path / "run") if n.startswith(".tfmodels-")]
    assert writing.state_text(str(tmp_path / "run")) is not None


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EACCES])
def test_a_failed_json_write_is_one_line_and_keeps_the_old_file(tmp_path, monkeypatch, code):
    path = tmp_path / "config.json"
    model_dir_lib.write_json_atomic(path, {"a": 1})

    def fsync(fd):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(model_dir_lib.ModelDirWriteError) as err:
        model_dir_lib.write_json_atomic(path, {"a": 2})
    assert str(err.value) == (f"cannot write {path}: {os.strerror(code)}; the previous "
                              "config.json is kept")
    assert path.read_text() == '{\n  "a": 1\n}\n' and os.listdir(tmp_path) == ["config.json"]
    with pytest.raises(model_dir_lib.ModelDirWriteError, match="; no metrics.json was written"):
        model_dir_lib.write_json_atomic(tmp_path / "metrics.json", {"a": 2})


def test_a_failed_first_plot_leaves_no_empty_plots_folder(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    from tfmodels.evaluation import plots

    def savefig(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(Figure, "savefig", savefig)
    with pytest.raises(model_dir_lib.ModelDirWriteError, match="confusion_test.png: No space"):
        plots.plot_confusion_matrix(str(tmp_path / "run" / "plots" / "confusion_test.png"),
                                    np.eye(3, dtype=np.int64))
    assert os.listdir(tmp_path) == []


def test_a_permission_denied_checkpoint_is_never_set_aside(run, monkeypatch):
    from tfmodels.options import UsageError

    real_load = tf.train.load_checkpoint

    def load(path):
        if os.path.basename(path) == "ckpt-30":
            raise tf.errors.PermissionDeniedError(None, None, f"{path}.index; Permission denied")
        return real_load(path)

    monkeypatch.setattr(tf.train, "load_checkpoint", load)
    before = model_dir_runs.snapshot(run)
    with pytest.raises(UsageError, match=r"checkpoint .*ckpt-30 cannot be read: permission "
                                          "denied; nothing was moved or changed"):
        model_dir_runs.train(run, train_steps=40)
    assert not os.path.exists(run / "unreadable")
    assert model_dir_runs.snapshot(run) == before


def _summaries_fail_from_step(monkeypatch, first_step, error):
    """TensorFlow's summary writers raise `error` (as the real one does on a full disk: at the
    flush that leaving `as_default` does) for every step >= `first_step`."""
    real_create = tf.summary.create_file_writer

    def create(logdir, *args, **kwargs):
        writer = real_create(logdir, *args, **kwargs)
        real_flush = writer.flush

        def flush():
            step = tf.summary.experimental.get_step()
            if step is not None and int(step) >= first_step:
                raise error(None, None, f"{logdir}/events.out.tfevents.1.host.2.0.v2; "
                                        f"{os.strerror(errno.ENOSPC)}")
            return real_flush()

        writer.flush = flush
        return writer

    monkeypatch.setattr(tf.summary, "create_file_writer", create)


def test_a_full_disk_while_writing_summaries_is_one_line_naming_what_was_kept(
        tmp_path, monkeypatch, capsys):
    """The training summaries of step 20 do not fit: the run ends with one line and status 1,
    ckpt-10 (saved before) is kept and reads."""
    import sys

    from tests import scripts

    sys.path.insert(0, scripts.ROOT)
    try:
        import common_flags
    finally:
        sys.path.remove(scripts.ROOT)
    _summaries_fail_from_step(monkeypatch, 20, tf.errors.ResourceExhaustedError)
    with pytest.raises(SystemExit) as exit_:
        common_flags.run_and_release(lambda: model_dir_runs.train(tmp_path / "run"))
    assert exit_.value.code == 1
    assert capsys.readouterr().err == (
        f"error: cannot write {tmp_path / 'run' / 'train'}/ (TensorBoard summaries): no space "
        "left on device (or quota exceeded); the checkpoints are kept (newest ckpt-10)\n")
    assert [os.path.basename(p) for _, p in model_dir_lib.list_checkpoints(
        str(tmp_path / "run"))] == ["ckpt-10"]
    assert model_dir_lib.inspect(str(tmp_path / "run" / "ckpt-10")).readable


def test_a_permission_error_on_eval_summaries_is_one_line_after_the_results(
        run, monkeypatch):
    _summaries_fail_from_step(monkeypatch, 0, tf.errors.PermissionDeniedError)
    before = model_dir_runs.snapshot(run)
    with pytest.raises(model_dir_lib.ModelDirWriteError) as err:
        _evaluate(run)
    assert str(err.value) == (
        f"cannot write {run / 'eval'}/ (TensorBoard summaries): permission denied; the "
        f"checkpoints are untouched and the results are in {run / 'eval_test.json'}")
    assert model_dir_lib.read_json(str(run / "eval_test.json"))["count"] > 0
    after = model_dir_runs.snapshot(run)
    assert {k: v for k, v in after.items() if k in before} == before


def test_a_full_disk_at_the_lock_is_one_line_and_leaves_it_free(tmp_path, monkeypatch):
    """The writer lock is the first file a run writes (our pid into it): no space there is
    one line, and the lock is not left held."""
    def pwrite(fd, data, offset):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with monkeypatch.context() as patched:
        patched.setattr(os, "pwrite", pwrite)
        with pytest.raises(model_dir_lib.ModelDirWriteError) as err:
            model_dir_lib.WriterLock(str(tmp_path / "run"))
    assert str(err.value) == (f"cannot write {tmp_path / 'run' / '.lock'}: No space left on "
                              "device; nothing was written")
    with model_dir_lib.WriterLock(str(tmp_path / "run")) as lock:
        assert lock.held
