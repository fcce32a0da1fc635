"""A worker lost in any phase of a multi-worker train() or evaluate(), not only while training:
TensorFlow's error for a lost task (UNAVAILABLE, with the texts `distribute.LostWorkerGuard` reads)
raised while the workers connect, while the variables are created and broadcast, while the
checkpoint is restored, or in the middle of an evaluation becomes one `WorkerLostError` line
naming the lost worker and what is left; an error that is not a lost worker keeps its type and
traceback, and a single-process run maps nothing. In process: the errors are TensorFlow's own
classes and texts (tests/test_multi_worker.py makes them for real with two processes), raised
where TensorFlow raised them.
"""
import os

import pytest
import tensorflow as tf

from tfmodels import distribute
from tfmodels.evaluation import evaluator
from tfmodels.training import TrainConfig, WorkerLostError, checkpoints, train, trainer

# What TensorFlow 2.21 raised in the surviving worker of two (the same texts as
# tests/test_distribute.py's): the coordination service's heartbeat check, as the chief got it
# while broadcasting the first variable to a worker killed after it connected, and a call to a
# killed task 0.
_HEARTBEATS = ("{{function_node __wrapped__CollectiveBcastSend_device_/job:worker/replica:0/"
               "task:0/device:CPU:0}} Collective ops is aborted by: Error reported from "
               "/job:worker/task:1: The following tasks are unhealthy (stopped sending "
               "heartbeats):\n/job:worker/replica:0/task:1\nThe tasks have crashed. [Op:"
               "CollectiveBcastSend]")
_CALL = ("Collective ops is aborted by: recvmsg:Connection reset by peer\nAdditional GRPC error "
         "information from remote target /job:worker/replica:0/task:0 while calling "
         "/tensorflow.WorkerService/CompleteInstance:")
_AGAIN = "start every worker again with the same --model_dir to resume"


def _raise(error):
    def fail(*args, **kwargs):
        raise error
    return fail


def _config(model_dir, **overrides):
    values = dict(model_dir=str(model_dir), model="two_layer_net", train_steps=2,
                  steps_per_loop=2, export=False)
    return TrainConfig(**{**values, **overrides})


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A model_dir holding ckpt-2 of a finished two-step run."""
    model_dir = tmp_path_factory.mktemp("lost") / "run"
    train(_config(model_dir))
    return model_dir


@pytest.fixture
def several_workers(monkeypatch):
    """The run's strategy counts as spanning several workers (one process stands for them)."""
    monkeypatch.setattr(distribute, "in_multi_worker_mode", lambda strategy: True)


def test_guard_maps_only_a_lost_worker_and_only_across_workers():
    unavailable = tf.errors.UnavailableError(None, None, _HEARTBEATS)
    guard = distribute.LostWorkerGuard(strategy_name="multi_worker")
    guard.advice = lambda: "the last checkpoint saved: none yet"
    with pytest.raises(WorkerLostError) as raised:
        with guard:
            raise unavailable
    assert str(raised.value) == ("lost worker 1 of the multi-worker run (stopped sending "
                                 "heartbeats); this worker stops too; the last checkpoint "
                                 "saved: none yet")
    assert raised.value.__suppress_context__  # the line alone, not TensorFlow's text
    # A bug under several workers, and the same UNAVAILABLE in one process, keep their type.
    for guard, error in [(distribute.LostWorkerGuard(strategy_name="multi_worker"),
                          tf.errors.InternalError(None, None, _HEARTBEATS)),
                         (distribute.LostWorkerGuard(strategy_name="mirrored"), unavailable),
                         (distribute.LostWorkerGuard(tf.distribute.get_strategy(),
                                                     strategy_name="multi_worker"),
                          unavailable)]:
        with pytest.raises(type(error)) as raised:
            with guard:
                raise error
        assert raised.value is error
    # --strategy=multi_worker over a cluster of one worker is one process once it exists.
    guard = distribute.LostWorkerGuard(strategy_name="multi_worker")
    guard.use(tf.distribute.get_strategy())
    with pytest.raises(tf.errors.UnavailableError):
        with guard:
            raise unavailable


def test_lost_while_the_workers_connect(tmp_path, monkeypatch):
    """MultiWorkerMirroredStrategy's constructor waits for every worker and fails when one of
    them stops: the strategy does not exist yet, --strategy=multi_worker says it would."""
    monkeypatch.setattr(distribute, "setup", _raise(
        tf.errors.UnavailableError(None, None, _CALL)))
    with pytest.raises(WorkerLostError) as raised:
        train(_config(tmp_path / "run", strategy="multi_worker"))
    assert str(raised.value) == ("lost worker 0 of the multi-worker run (stopped answering); "
                                 f"this worker stops too; the last checkpoint saved: none yet; "
                                 f"{_AGAIN}")
    assert not os.path.exists(tmp_path / "run")
    # The same error in a run of one process is not a lost worker: it keeps its traceback.
    with pytest.raises(tf.errors.UnavailableError):
        train(_config(tmp_path / "run", strategy="auto"))


def test_lost_while_the_variables_are_created_names_an_earlier_runs_checkpoint(
        saved, monkeypatch, several_workers):
    """Creating a variable under the strategy broadcasts its initial value from the chief, a
    collective that fails when a worker is gone; the model_dir's checkpoint is what is left."""
    monkeypatch.setattr(trainer, "build_training", _raise(
        tf.errors.UnavailableError(None, None, _HEARTBEATS)))
    before = sorted(os.listdir(saved))
    with pytest.raises(WorkerLostError) as raised:
        train(_config(saved, train_steps=4), strategy=tf.distribute.get_strategy())
    assert str(raised.value) == ("lost worker 1 of the multi-worker run (stopped sending "
                                 "heartbeats); this worker stops too; the last checkpoint "
                                 f"saved: {saved / 'ckpt-2'}; {_AGAIN}")
    assert sorted(os.listdir(saved)) == before
    # A bug in the same place is not a lost worker.
    monkeypatch.setattr(trainer, "build_training", _raise(ValueError("a bug")))
    with pytest.raises(ValueError, match="^a bug$"):
        train(_config(saved, train_steps=4), strategy=tf.distribute.get_strategy())


def test_lost_while_restoring_is_not_a_checkpoint_of_another_run(saved, monkeypatch,
                                                                  several_workers):
    """A restore that fails for a lost worker is not the checkpoint's fault (which would be
    bad input, exit status 2)."""
    monkeypatch.setattr(checkpoints.CheckpointSaver, "restore", _raise(
        tf.errors.UnavailableError(None, None, _HEARTBEATS)))
    with pytest.raises(WorkerLostError) as raised:
        train(_config(saved, train_steps=4), strategy=tf.distribute.get_strategy())
    assert str(raised.value).endswith(f"; the last checkpoint saved: {saved / 'ckpt-2'}; "
                                      f"{_AGAIN}")


def test_lost_while_evaluating_writes_nothing(saved, tmp_path, monkeypatch, several_workers):
    monkeypatch.setattr(evaluator, "collect_outputs", _raise(
        tf.errors.UnavailableError(None, None, _HEARTBEATS)))
    output = tmp_path / "eval.json"
    config = evaluator.EvalConfig(model_dir=str(saved), output=str(output), knn_k=(1,))
    with pytest.raises(WorkerLostError) as raised:
        evaluator.evaluate(config, strategy=tf.distribute.get_strategy())
    assert str(raised.value) == ("lost worker 1 of the multi-worker run (stopped sending "
                                 "heartbeats); this worker stops too; nothing was written for "
                                 f"{saved / 'ckpt-2'}; start every worker again to evaluate it")
    assert not output.exists()
