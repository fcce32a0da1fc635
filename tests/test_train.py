"""train.py end to end: outputs, resume, exact resume after SIGKILL, the non-finite loss guard, bad
input, a mocked tfds dataset, and two workers on localhost (its exports: tests/test_exports.py)."""
import json
import os
import random
import shutil
import signal
import textwrap
import time

import numpy as np
import pytest
import tensorflow as tf

from tests import scripts

FAST = ["--model=lenet", "--learning_rate=0.05", "--train_steps=30", "--checkpoint_every=10",
        "--steps_per_loop=10", "--log_every=10", "--keep_checkpoints=2"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    model_dir = str(tmp_path_factory.mktemp("train") / "lenet")
    proc = scripts.run("train.py", f"--model_dir={model_dir}", *FAST)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return model_dir, proc


def _read(path):
    with open(path) as f:
        return json.load(f)


def _checkpoint_values(prefix):
    reader = tf.train.load_checkpoint(prefix)
    return {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map()
            if k != "_CHECKPOINTABLE_OBJECT_GRAPH" and not k.startswith("save_counter")}


@pytest.mark.subprocess
def test_outputs_of_a_run(trained):
    model_dir, proc = trained
    metrics = _read(os.path.join(model_dir, "metrics.json"))
    assert json.loads(proc.stdout) == metrics  # printed and written
    assert metrics["steps"] == 30 and metrics["test_examples"] == 359
    assert metrics["num_replicas"] == 1 and metrics["global_batch_size"] == 64
    assert 0.5 < metrics["test_accuracy"] <= 1.0 and metrics["images_per_sec"] > 0
    config = _read(os.path.join(model_dir, "config.json"))
    assert (config["model"], config["dataset"], config["total_steps"]) == ("lenet", "digits", 30)
    assert config["per_replica_batch_size"] == 64
    assert os.path.basename(tf.train.latest_checkpoint(model_dir)) == "ckpt-30"
    assert sorted(f for f in os.listdir(model_dir) if f.endswith(".index")) == \
        ["ckpt-20.index", "ckpt-30.index"]  # --keep_checkpoints=2
    assert any(f.startswith("events.out") for f in os.listdir(os.path.join(model_dir, "train")))
    assert "batch      64 = 1 replica(s) x 64 per replica" in proc.stderr
    assert "training from scratch" in proc.stderr


def _restored_test_outputs(model_dir):
    from tfmodels import data
    from tfmodels.data.preprocessing import normalize
    from tfmodels import model_dir as model_dir_lib

    model, _ = model_dir_lib.restore_model(model_dir_lib.read_config(model_dir),
                                           tf.train.latest_checkpoint(model_dir))
    info = data.get_dataset_info("digits")
    pixels, labels = data.load_arrays(info, "test")
    images = normalize(pixels, pixel_max=info.pixel_max, mean=info.mean, std=info.std)
    return model, pixels, labels, model(images, training=False)["logits"].numpy()


@pytest.mark.subprocess
def test_metrics_equal_numpy_on_the_restored_model(trained):
    model_dir, _ = trained
    _, _, labels, logits = _restored_test_outputs(model_dir)
    logits = logits.astype(np.float64)
    log_p = logits - logits.max(1, keepdims=True)
    log_p -= np.log(np.exp(log_p).sum(1, keepdims=True))
    metrics = _read(os.path.join(model_dir, "metrics.json"))
    assert metrics["test_accuracy"] == np.mean(logits.argmax(1) == labels)
    # test_loss is the training data loss: cross-entropy against smoothed targets
    eps = _read(os.path.join(model_dir, "config.json"))["label_smoothing"]
    assert eps > 0  # the default recipe smooths; the reference below must follow it
    targets = np.full(log_p.shape, eps / log_p.shape[1])
    targets[np.arange(len(labels)), labels] += 1.0 - eps
    np.testing.assert_allclose(metrics["test_loss"], -(targets * log_p).sum(1).mean(), rtol=1e-5)


@pytest.mark.subprocess
def test_resume_continues_from_the_latest_checkpoint(trained, tmp_path):
    model_dir = str(tmp_path / "copy")
    shutil.copytree(trained[0], model_dir)
    proc = scripts.run("train.py", f"--model_dir={model_dir}", "--noexport",
                       *[f for f in FAST if not f.startswith("--train_steps")], "--train_steps=40")
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "resuming from step 30" in proc.stderr
    assert _read(os.path.join(model_dir, "metrics.json"))["steps"] == 40


def _latest_step(model_dir):
    latest = os.path.isdir(model_dir) and tf.train.latest_checkpoint(model_dir)
    return int(latest.rsplit("-", 1)[1]) if latest else 0


@pytest.mark.subprocess
def test_exact_resume_after_sigkill(tmp_path):
    """Killed at an arbitrary step (checkpoints every 2 steps: often while saving), then
    restarted: the final weights equal an uninterrupted run's, bit for bit."""
    flags = ["--model=lenet", "--learning_rate=0.05", "--deterministic", "--augment",  # dropout
             "--train_steps=40", "--checkpoint_every=2", "--steps_per_loop=2", "--log_every=2",
             "--keep_checkpoints=2", "--noexport"]
    straight, resumed = str(tmp_path / "straight"), str(tmp_path / "resumed")
    proc = scripts.run("train.py", f"--model_dir={straight}", *flags)
    assert proc.returncode == 0, proc.stderr[-4000:]

    # Kill by progress, not by wall time (a fast machine would finish before a timed kill):
    # once checkpoint `target` exists, within the next save or two.
    rng = random.Random(os.getpid())
    target = 2 * rng.randint(1, 15)
    victim = scripts.start("train.py", f"--model_dir={resumed}", *flags)
    deadline = time.time() + 300
    while _latest_step(resumed) < target:
        assert victim.poll() is None and time.time() < deadline, \
            f"no checkpoint {target} appeared"
        time.sleep(0.005)
    time.sleep(rng.uniform(0.0, 0.02))
    victim.send_signal(signal.SIGKILL)
    victim.communicate(timeout=60)
    killed_at = tf.train.latest_checkpoint(resumed)
    assert killed_at is not None and not killed_at.endswith("ckpt-40"), killed_at

    proc = scripts.run("train.py", f"--model_dir={resumed}", *flags)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "resuming from step" in proc.stderr
    a = _checkpoint_values(os.path.join(straight, "ckpt-40"))
    b = _checkpoint_values(os.path.join(resumed, "ckpt-40"))
    assert a.keys() == b.keys() and len(a) > 10
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


@pytest.mark.subprocess
def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    model_dir = str(tmp_path / "nan")
    steps = ["--model=lenet", "--checkpoint_every=5", "--steps_per_loop=5", "--noexport"]
    assert scripts.run("train.py", f"--model_dir={model_dir}", "--train_steps=10",
                       *steps).returncode == 0
    proc = scripts.run("train.py", f"--model_dir={model_dir}", "--train_steps=30",
                       "--learning_rate=1e12", *steps)
    assert proc.returncode != 0
    assert "the training loss became nan between step 10 and step 15" in proc.stderr
    assert "the last good checkpoint is" in proc.stderr
    latest = tf.train.latest_checkpoint(model_dir)
    assert latest.endswith("ckpt-10")
    assert all(np.all(np.isfinite(v)) for v in _checkpoint_values(latest).values()
               if np.issubdtype(np.asarray(v).dtype, np.floating))


def _snapshot(model_dir):
    return {f: (os.path.getmtime(os.path.join(model_dir, f)),
                open(os.path.join(model_dir, f), "rb").read())
            for f in os.listdir(model_dir) if os.path.isfile(os.path.join(model_dir, f))}


@pytest.mark.subprocess
def test_a_bad_flag_is_one_line_and_exit_status_2(tmp_path):
    """The script's side of the checks in tests/test_options.py (which makes them in-process):
    one `error:` line naming the flag, exit status 2, nothing written."""
    model_dir = str(tmp_path / "never")
    proc = scripts.run("train.py", f"--model_dir={model_dir}", "--seed=-1", timeout=300)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert proc.stderr.splitlines() == ["error: --seed=-1 must be an int in [0, 4294967295]"]
    assert not os.path.exists(model_dir)


@pytest.mark.subprocess
def test_a_bug_in_a_custom_net_is_a_traceback(tmp_path):
    """A ValueError raised inside a net's builder is a bug, not bad input: its traceback, exit
    status 1 (never an `error:` line that hides where it came from)."""
    (tmp_path / "buggy_net.py").write_text(textwrap.dedent("""
        def net(images, num_classes=10, is_training=None, scope="Buggy"):
            raise ValueError("a bug in the builder")
    """))
    model_dir = str(tmp_path / "run")
    proc = scripts.run("train.py", f"--model_dir={model_dir}", "--model=buggy_net:net",
                       "--weight_decay=0", "--train_steps=1", timeout=300,
                       PYTHONPATH=str(tmp_path))
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "Traceback (most recent call last):" in proc.stderr
    assert 'buggy_net.py", line 3, in net' in proc.stderr
    assert proc.stderr.rstrip().splitlines()[-1] == "ValueError: a bug in the builder"
    assert "error:" not in proc.stderr


@pytest.mark.subprocess
def test_model_dir_of_another_model_is_left_untouched(trained, tmp_path):
    model_dir = str(tmp_path / "other")
    shutil.copytree(trained[0], model_dir)
    before = _snapshot(model_dir)
    proc = scripts.run("train.py", f"--model_dir={model_dir}", "--model=lenet_pp")
    assert proc.returncode != 0
    assert "holds another run (model 'lenet' there, 'lenet_pp' in this run)" in proc.stderr
    assert _snapshot(model_dir) == before


def test_in_process_errors_before_any_work(tmp_path):
    from tfmodels import data
    from tfmodels.options import UsageError
    from tfmodels.training import TrainConfig, train

    with pytest.raises(UsageError, match=r"--num_gpus=2 but only 0 GPU\(s\) are visible"):
        train(TrainConfig(model_dir=str(tmp_path / "a"), train_steps=1, num_gpus=2))
    start = time.time()
    with pytest.raises(data.DatasetUnavailableError, match="mnist"):
        train(TrainConfig(model_dir=str(tmp_path / "b"), train_steps=1, dataset="mnist",
                          data_dir=str(tmp_path / "tfds")))
    assert time.time() - start < 60  # no download retries
    assert not os.path.exists(tmp_path / "a") and not os.path.exists(tmp_path / "b")


def test_mocked_tfds_dataset_end_to_end(tmp_path):
    from tests import fake_tfds
    from tfmodels.training import TrainConfig, train

    data_dir, model_dir = str(tmp_path / "tfds"), str(tmp_path / "run")
    with fake_tfds.fake_prepared({"mnist": {"train": 256, "test": 100}}, data_dir):
        metrics = train(TrainConfig(model_dir=model_dir, model="softmax_regression",
                                    dataset="mnist", data_dir=data_dir, train_steps=8,
                                    global_batch_size=32, steps_per_loop=4, export=False))
    assert metrics["test_examples"] == 100 and metrics["steps"] == 8
    config = _read(os.path.join(model_dir, "config.json"))
    assert config["image_shape"] == [28, 28, 1] and config["steps_per_epoch"] == 8


def test_two_workers_on_localhost_match_two_local_replicas(tmp_path):
    """Two workers started by `python -m tfmodels.launch` (TF_CONFIG on free ports) equal two
    replicas in one process."""
    flags = ["--model=lenet", "--train_steps=6", "--batch_size=32", "--steps_per_loop=3",
             "--checkpoint_every=3", "--log_every=3", "--noexport", "--seed=3"]
    local = str(tmp_path / "mirrored")
    proc = scripts.run("train.py", f"--model_dir={local}", "--strategy=mirrored",
                       "--virtual_devices=2", *flags)
    assert proc.returncode == 0, proc.stderr[-4000:]

    shared = str(tmp_path / "workers")
    proc = scripts.run("-m tfmodels.launch", "--workers=2", "--", "train.py",
                       f"--model_dir={shared}", *flags, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "[worker 0] " in proc.stderr  # the chief's lines, prefixed
    assert "2 replica(s) x 16 per replica" in proc.stderr
    assert os.path.exists(os.path.join(shared, "metrics.json"))  # written by the chief only
    a = _checkpoint_values(os.path.join(local, "ckpt-6"))
    b = _checkpoint_values(os.path.join(shared, "ckpt-6"))
    assert a.keys() == b.keys() and len(a) > 10  # weights, optimizer slots, step, input position
    for key in a:
        np.testing.assert_allclose(b[key], a[key], rtol=0, atol=1e-5, err_msg=key)


@pytest.mark.subprocess
def test_init_checkpoint_mismatch_prints_the_report_alone(trained, tmp_path):
    """A checkpoint that does not fill the net: the porting report, exit 2, no flag help, and
    nothing written."""
    model_dir = str(tmp_path / "never")
    proc = scripts.run("train.py", f"--model_dir={model_dir}", "--model=small_cnn",
                       f"--init_checkpoint={trained[0]}", "--train_steps=2")
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Result: FAILED" in proc.stderr and "Nothing was assigned" in proc.stderr
    assert "--keep_checkpoints" not in proc.stderr and "Traceback" not in proc.stderr
    # Its hints name train.py's flags, not the porting CLI's.
    hint = [line for line in proc.stderr.splitlines() if line.startswith("Hint: ")]
    assert len(hint) == 1 and "--init_checkpoint_overrides={" in hint[0], proc.stderr[-3000:]
    assert not any(f"--{flag}=" in hint[0] for flag in ("exclude_scopes", "ignore", "overrides",
                                                        "strip_scope")), hint[0]
    assert not os.path.exists(model_dir)
