"""Readers never crash on a writer's sweep: eval.py, given no --checkpoint, evaluates the next
newest checkpoint when the one it picked is deleted by a training run's keep-N sweep before it
is restored; run many times against a writer saving and pruning in the same process."""
import os
import threading

import pytest
import tensorflow as tf

from tests import model_dir_runs

from tfmodels import model_dir as model_dir_lib
from tfmodels.model_dir import checkpoints, writing


@pytest.fixture(scope="module")
def run30(tmp_path_factory):
    model_dir = tmp_path_factory.mktemp("sweep") / "run"
    model_dir_runs.train(model_dir)
    return model_dir


@pytest.fixture
def run(run30, tmp_path):
    return model_dir_runs.copy(run30, tmp_path / "run")


def _evaluate(model_dir, output):
    from tfmodels.evaluation.evaluator import EvalConfig, evaluate

    [results] = evaluate(EvalConfig(model_dir=str(model_dir), knn_k=(), output=str(output),
                                    plot_dir="", summary_dir=""))
    return results


def test_a_checkpoint_swept_before_restore_gives_way_to_the_next_newest(run, tmp_path,
                                                                        monkeypatch):
    real_restore = model_dir_lib.restore_model
    swept = []

    def restore(record, path, **options):
        if not swept:  # the writer's keep-N sweep, between inspection and restore
            swept.append(path)
            writing.remove(os.path.dirname(path), checkpoints.step_of(path))
        return real_restore(record, path, **options)

    monkeypatch.setattr(model_dir_lib, "restore_model", restore)
    results = _evaluate(run, tmp_path / "eval.json")
    assert swept == [str(run / "ckpt-30")]
    assert (results["checkpoint"], results["step"]) == (str(run / "ckpt-20"), 20)
    assert os.path.isfile(tmp_path / "eval.json")


def test_eval_against_a_pruning_writer_never_crashes(run, tmp_path):
    from tfmodels import nets

    model = nets.build_model("two_layer_net", 10, (8, 8, 1))
    state = tf.train.Checkpoint(model=model)
    _ = state.save_counter  # saved in every checkpoint, as the trainer's CheckpointSaver does
    stop, saved, errors = threading.Event(), [], []

    def writer():  # saves a checkpoint every 20 ms and keeps the newest only, as train.py would
        step = 31
        try:
            while not stop.is_set():
                writing.save(state, str(run), step)
                writing.sweep(str(run), keep=1)
                saved.append(step)
                step += 1
                stop.wait(0.02)
        except Exception as err:  # noqa: BLE001 -- reported by the test below
            errors.append(err)

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    try:
        steps = [_evaluate(run, tmp_path / f"eval_{i}.json")["step"] for i in range(5)]
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not errors and len(saved) > 5
    assert all(30 <= step <= saved[-1] for step in steps), (steps, saved[-1])
