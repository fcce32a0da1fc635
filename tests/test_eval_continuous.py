"""Continuous evaluation: each new checkpoint once, stop at the final step or on the timeout.

A publisher thread plays the trainer: it copies pre-made checkpoints (`ckpt-<step>` holding a
model and a `step` variable, as the trainer saves them) into the model_dir, file by file (so the
evaluator may see a half-copied one, which it must pass over until it reads), and then updates
the `checkpoint` state file. It publishes the next checkpoint only
after the evaluation's JSON shows the previous step, so none is skipped by the iterator's
polling, and publishes one more after the final step: an evaluator that did not stop there
would evaluate it.
"""
import glob
import json
import logging
import os
import shutil
import threading
import time

import pytest

from tests.test_eval import _scalars

TOTAL_STEPS = 3
CONFIG = {"model": "two_layer_net", "num_classes": 10, "image_shape": [8, 8, 1],
          "dataset": "digits", "total_steps": TOTAL_STEPS, "global_batch_size": 128}


@pytest.fixture(scope="module")
def staged(tmp_path_factory):
    """Checkpoints of steps 1..TOTAL_STEPS + 1 (different weights each) in a staging folder."""
    import keras
    import tensorflow as tf

    from tfmodels import nets

    folder = str(tmp_path_factory.mktemp("staged"))
    keras.utils.set_random_seed(11)
    model = nets.build_model("two_layer_net", 10, (8, 8, 1))
    step = tf.Variable(0, dtype=tf.int64)
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(model=model, step=step), folder,
                                         max_to_keep=None)
    for n in range(1, TOTAL_STEPS + 2):
        step.assign(n)
        for weight in model.trainable_weights:
            weight.assign(weight * 0.9)
        manager.save(checkpoint_number=n)
    return folder


def _model_dir(path):
    os.makedirs(path)
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(CONFIG, f)
    return str(path)


def _publish(staged, model_dir, step):
    for source in glob.glob(os.path.join(staged, f"ckpt-{step}.*")):
        shutil.copy(source, model_dir)
    _point_to(model_dir, f"ckpt-{step}")


def _point_to(model_dir, name):
    tmp = os.path.join(model_dir, "checkpoint.tmp")
    with open(tmp, "w") as f:
        f.write(f'model_checkpoint_path: "{name}"\nall_model_checkpoint_paths: "{name}"\n')
    os.replace(tmp, os.path.join(model_dir, "checkpoint"))


def _evaluated_step(output):
    try:
        with open(output) as f:
            return json.load(f)["step"]
    except (OSError, ValueError, KeyError):
        return None


def test_each_checkpoint_until_the_final_step(staged, tmp_path):
    from tfmodels.evaluation.evaluator import EvalConfig, evaluate

    model_dir = _model_dir(tmp_path / "run")
    output = str(tmp_path / "eval.json")
    errors = []

    def trainer():
        for step in range(1, TOTAL_STEPS + 2):
            _publish(staged, model_dir, step)
            deadline = time.monotonic() + 300  # a safety net against hanging, not an assertion
            while _evaluated_step(output) != step and step <= TOTAL_STEPS:
                if time.monotonic() > deadline:
                    errors.append(f"step {step} was not evaluated")
                    return
                time.sleep(0.05)

    thread = threading.Thread(target=trainer, daemon=True)
    thread.start()  # the evaluator starts before the first checkpoint exists
    history = evaluate(EvalConfig(model_dir=model_dir, continuous=True, timeout=60,
                                  output=output, knn_k=(1,), plot_dir=""))
    thread.join(timeout=300)
    assert not errors
    assert [r["step"] for r in history] == [1, 2, 3]
    assert [os.path.basename(r["checkpoint"]) for r in history] == ["ckpt-1", "ckpt-2",
                                                                    "ckpt-3"]
    assert len({r["loss"] for r in history}) == 3  # three different models were evaluated
    scalars = _scalars(os.path.join(model_dir, "eval"))
    assert sorted(step for tag, step in scalars if tag == "accuracy") == [1, 2, 3]
    for results in history:
        assert scalars[("accuracy", results["step"])] == pytest.approx(results["accuracy"])


def test_timeout_stops_without_a_final_checkpoint(staged, tmp_path, caplog):
    from tfmodels.evaluation.evaluator import EvalConfig, evaluate

    caplog.set_level(logging.INFO)
    caplog.set_level(logging.INFO, logger="absl")  # parsing flags in-process sets it to WARNING
    model_dir = _model_dir(tmp_path / "run")
    _publish(staged, model_dir, 1)
    history = evaluate(EvalConfig(model_dir=model_dir, continuous=True, timeout=1.0,
                                  knn_k=(), plot_dir=""))
    assert [r["step"] for r in history] == [1]
    assert "no new checkpoint" in caplog.text and "after 1 evaluation(s)" in caplog.text

    # No checkpoint at all: the timeout ends it with no evaluation.
    empty = _model_dir(tmp_path / "empty")
    _point_to(empty, "ckpt-9")  # a state file entry without files is not a checkpoint
    assert evaluate(EvalConfig(model_dir=empty, continuous=True, timeout=1.0, knn_k=(),
                               plot_dir="")) == []
    assert "after 0 evaluation(s)" in caplog.text


def test_checkpoint_deleted_before_it_is_read_is_skipped(staged, tmp_path, monkeypatch, caplog):
    """The trainer's keep_checkpoints may delete a checkpoint between the poller's look and
    the restore: that one is skipped, the next evaluated."""
    from tfmodels.evaluation.evaluator import EvalConfig, evaluate
    from tfmodels.model_dir import Inspection, checkpoints

    caplog.set_level(logging.INFO)
    model_dir = _model_dir(tmp_path / "run")
    _publish(staged, model_dir, TOTAL_STEPS)
    seen = [Inspection(os.path.join(model_dir, "ckpt-2"), 2),  # read, then deleted
            Inspection(os.path.join(model_dir, f"ckpt-{TOTAL_STEPS}"), TOTAL_STEPS)]
    monkeypatch.setattr(checkpoints, "watch", lambda *args, **kwargs: iter(seen))
    history = evaluate(EvalConfig(model_dir=model_dir, continuous=True, knn_k=(), plot_dir=""))
    assert [r["step"] for r in history] == [TOTAL_STEPS]
    assert "ckpt-2 was deleted before it could be evaluated; skipped" in caplog.text
