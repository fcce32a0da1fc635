"""Processes end: train() and evaluate() free their tf.data iterators before returning,
train.py with 4 logical replicas (one iterator per replica) exits every time, and with 64 it
writes everything and exits (slow).

A process that leaves such iterators to the interpreter's shutdown can hang there for good:
the main thread destroys an iterator and waits on its autotune thread, which can no longer run
(seen on an AMD EPYC machine after every result was written). Whether that wait hangs depends
on thread timing, so the deterministic test checks the cause (no iterator outlives the call),
and the repeated run checks the symptom, each run bounded by a timeout.
"""
import gc
import json
import os
import subprocess

import pytest

from tests import scripts

RUNS = 3
EXIT_TIMEOUT = 300  # seconds; a run takes ~10 s of CPU, more on a loaded machine


def _live_iterators():
    """Iterator objects of TensorFlow or tfmodels that Python still holds, collected or not."""
    return {id(o): f"{type(o).__module__}.{type(o).__name__}" for o in gc.get_objects()
            if "Iterator" in type(o).__name__
            and type(o).__module__.startswith(("tensorflow", "tfmodels"))}


def _new_iterators_after(fn):
    gc.collect()
    before = _live_iterators()
    gc.disable()  # what is left must be left by `fn`, not by when the collector happens to run
    try:
        fn()
        return sorted(name for key, name in _live_iterators().items() if key not in before)
    finally:
        gc.enable()


def test_train_and_evaluate_leave_no_iterator_behind(tmp_path):
    from tfmodels.evaluation.evaluator import EvalConfig, evaluate
    from tfmodels.training import TrainConfig, train

    model_dir = str(tmp_path / "run")
    assert _new_iterators_after(lambda: train(TrainConfig(
        model_dir=model_dir, model="two_layer_net", train_steps=4, steps_per_loop=2,
        export=False))) == []
    assert _new_iterators_after(lambda: evaluate(EvalConfig(
        model_dir=model_dir, knn_k=(1,), plot_dir=""))) == []


@pytest.mark.subprocess
def test_train_py_with_four_replicas_always_exits(tmp_path):
    for attempt in range(RUNS):
        args = ["train.py", f"--model_dir={tmp_path / str(attempt)}", "--model=two_layer_net",
                "--virtual_devices=4", "--batch_size=16", "--train_steps=2",
                "--steps_per_loop=1", "--noexport", f"--seed={attempt}"]
        try:
            proc = scripts.run(*args, timeout=EXIT_TIMEOUT)
        except subprocess.TimeoutExpired as err:
            output = err.stdout.decode() if isinstance(err.stdout, bytes) else err.stdout or ""
            pytest.fail(f"run {attempt} did not exit within {EXIT_TIMEOUT} s "
                        f"({'after' if output.strip() else 'before'} printing its metrics):\n"
                        f"{output[-2000:]}")
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert json.loads(proc.stdout)["num_replicas"] == 4


@pytest.mark.slow  # ~4 min on 2 loaded cores
def test_train_py_with_64_replicas_writes_everything_and_exits(tmp_path):
    """64 logical devices: 64 input pipelines (each destroyed without waiting on an autotune
    thread) and an evaluation that reads each replica's outputs in place (no all-gather)."""
    model_dir = tmp_path / "run"
    try:
        proc = scripts.run("train.py", f"--model_dir={model_dir}", "--model=two_layer_net",
                           "--virtual_devices=64", "--batch_size=64", "--train_steps=2",
                           timeout=900)
    except subprocess.TimeoutExpired:
        pytest.fail(f"did not exit within 900 s; wrote {sorted(os.listdir(model_dir))}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads(proc.stdout)
    assert metrics["num_replicas"] == 64 and metrics["test_examples"] == 359
    assert {"metrics.json", "model.keras", "saved_model", "ckpt-2.index"} <= set(
        os.listdir(model_dir))
