"""Stopping on a signal: the handler only records it, the first signal gives the default action
back (a second one ends the process at once); train() stops after its current loop of steps,
saving that step, and a resumed run ends bitwise equal to an uninterrupted one (in process, by a
stop request, and through train.py with a real SIGTERM); eval.py stops writing nothing; a block
inside another shares its request; SIGTERM is taken back from TensorFlow's coordination service
under MultiWorkerMirroredStrategy."""
import os
import signal
import time

import numpy as np
import pytest
import tensorflow as tf

from tests import scripts
from tfmodels import launch, stopping

SCRIPT_TIMEOUT = 300  # seconds for one short train.py / eval.py run on a loaded machine


def test_first_signal_sets_the_request_and_restores_the_default_action():
    before = {number: signal.getsignal(number) for number in stopping.SIGNALS}
    with stopping.on_signals() as stop:
        assert not stop.requested
        os.kill(os.getpid(), signal.SIGUSR1)
        time.sleep(0.05)  # the Python-level handler runs at the next bytecode boundary
        assert stop.requested and stop.signal_name == "SIGUSR1"
        # A second signal now gets the operating system's default action: the end of the
        # process, without waiting for the work.
        assert all(signal.getsignal(number) == signal.SIG_DFL for number in stopping.SIGNALS)
        message = str(stop.stopped("at step 3"))
        assert message == "stopped by SIGUSR1 at step 3"
    assert {number: signal.getsignal(number) for number in stopping.SIGNALS} == before


class _StopAfter(stopping.StopRequest):
    """A stop request that turns on at its `reads`-th read (the trainer reads it once before
    each loop of steps)."""

    def __init__(self, reads):
        super().__init__()
        self.reads_left = reads

    @property
    def requested(self):
        self.reads_left -= 1
        if self.reads_left <= 0:
            self.signal_number = signal.SIGTERM
        return self.signal_number is not None


def _weights(prefix):
    reader = tf.train.load_checkpoint(prefix)
    return {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map()
            if k != "_CHECKPOINTABLE_OBJECT_GRAPH" and not k.startswith("save_counter")}


def _assert_same(a, b):
    assert a.keys() == b.keys() and len(a) > 5
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_stop_saves_the_current_step_and_resume_ends_equal(tmp_path):
    from tfmodels.training import TrainConfig, train

    def config(model_dir):
        return TrainConfig(model_dir=str(tmp_path / model_dir), model="two_layer_net",
                           train_steps=8, steps_per_loop=2, checkpoint_every=100,
                           deterministic=True, export=False, seed=5)

    train(config("straight"))
    with pytest.raises(stopping.Stopped, match=r"^stopped by SIGTERM at step 4 of 8: saved .*"
                                               r"ckpt-4; running again"):
        train(config("stopped"), stop=_StopAfter(reads=3))  # read at steps 0, 2, 4
    saved = sorted(f for f in os.listdir(tmp_path / "stopped") if f.startswith("ckpt-"))
    assert saved == ["ckpt-4.data-00000-of-00001", "ckpt-4.index"]
    assert not os.path.exists(tmp_path / "stopped" / "metrics.json")
    metrics = train(config("stopped"))
    assert metrics["start_step"] == 4 and metrics["steps"] == 8
    _assert_same(_weights(str(tmp_path / "straight" / "ckpt-8")),
                 _weights(str(tmp_path / "stopped" / "ckpt-8")))


def test_stop_after_the_last_step_keeps_it_and_leaves_the_rest_to_the_next_run(tmp_path):
    from tfmodels.training import TrainConfig, train

    config = TrainConfig(model_dir=str(tmp_path / "run"), model="two_layer_net", train_steps=2,
                         steps_per_loop=2, export=False)
    with pytest.raises(stopping.Stopped, match="after the last step \\(2\\), before the "
                                               "evaluation: kept .*ckpt-2"):
        train(config, stop=_StopAfter(reads=2))  # read before the loop, then after it
    assert not os.path.exists(tmp_path / "run" / "metrics.json")
    metrics = train(config)
    assert metrics["start_step"] == 2 and metrics["test_examples"] > 0


def test_evaluation_stopped_writes_nothing(tmp_path):
    from tfmodels.evaluation.evaluator import EvalConfig, evaluate
    from tfmodels.training import TrainConfig, train

    model_dir = str(tmp_path / "run")
    train(TrainConfig(model_dir=model_dir, model="two_layer_net", train_steps=2, export=False))
    before = sorted(os.listdir(model_dir))
    requested = stopping.StopRequest()
    requested.request(signal.SIGINT)
    with pytest.raises(stopping.Stopped, match="^stopped by SIGINT while evaluating .*ckpt-2: "
                                               "nothing was written for it$"):
        evaluate(EvalConfig(model_dir=model_dir, knn_k=(1,)), stop=requested)
    with pytest.raises(stopping.Stopped, match="^stopped by SIGINT while waiting for a new "
                                               "checkpoint in .*, after 0 evaluation"):
        evaluate(EvalConfig(model_dir=model_dir, continuous=True, timeout=600), stop=requested)
    assert sorted(os.listdir(model_dir)) == before  # no results, plots or event files


def _latest_step(model_dir):
    latest = os.path.isdir(model_dir) and tf.train.latest_checkpoint(model_dir)
    return int(latest.rsplit("-", 1)[1]) if latest else 0


@pytest.mark.slow  # three train.py runs: ~1 min, minutes on a loaded machine
def _sigterm_once_training_began(victim, model_dir):
    """SIGTERM to the train.py process `victim` once training has begun (its first summaries
    are in model_dir/train); its (stdout, stderr) once it has ended."""
    try:
        deadline = time.time() + SCRIPT_TIMEOUT
        events = os.path.join(model_dir, "train")
        while not (os.path.isdir(events) and any(os.path.getsize(os.path.join(events, f)) > 200
                                                 for f in os.listdir(events))):
            assert victim.poll() is None and time.time() < deadline, "training never began"
            time.sleep(0.05)
        victim.send_signal(signal.SIGTERM)
        return victim.communicate(timeout=SCRIPT_TIMEOUT)
    finally:
        victim.kill()


def test_sigterm_to_train_py_saves_exits_0_and_resumes_bitwise(tmp_path):
    """A real SIGTERM once training has begun (checkpoints every 1000 steps, so the one found
    afterwards is the stop's own), exit status 0, one line, then a resumed run equal to an
    uninterrupted one bit for bit."""
    flags = ["--model=two_layer_net", "--deterministic", "--train_steps=300",
             "--steps_per_loop=2", "--checkpoint_every=1000", "--noexport", "--log_every=2"]
    straight, stopped = str(tmp_path / "straight"), str(tmp_path / "stopped")
    proc = scripts.run("train.py", f"--model_dir={straight}", *flags, timeout=SCRIPT_TIMEOUT)
    assert proc.returncode == 0, proc.stderr[-4000:]

    victim = scripts.start("train.py", f"--model_dir={stopped}", *flags)
    out, err = _sigterm_once_training_began(victim, stopped)
    assert victim.returncode == 0, err[-4000:]
    step = _latest_step(stopped)
    assert 0 < step < 300, err[-4000:]
    lines = [line for line in err.splitlines() if "stopped by SIGTERM" in line]
    assert len(lines) == 1 and f"at step {step} of 300: saved " in lines[0], err[-4000:]
    assert "Traceback" not in err and out == ""  # no metrics: the run is not finished
    assert not os.path.exists(os.path.join(stopped, "metrics.json"))

    proc = scripts.run("train.py", f"--model_dir={stopped}", *flags, timeout=SCRIPT_TIMEOUT)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert f"resuming from step {step}" in proc.stderr
    _assert_same(_weights(os.path.join(straight, "ckpt-300")),
                 _weights(os.path.join(stopped, "ckpt-300")))


def test_reclaim_signals_takes_back_a_handler_another_library_installed():
    """TensorFlow's coordination service installs its own SIGTERM handler when a multi-worker
    strategy starts; `reclaim_signals` puts ours back (a SIGTERM then reaches the run)."""
    taken = []
    with stopping.on_signals() as stop:
        signal.signal(signal.SIGUSR1, lambda number, frame: taken.append(number))
        stop.reclaim_signals()
        os.kill(os.getpid(), signal.SIGUSR1)
        time.sleep(0.05)
        assert stop.signal_name == "SIGUSR1" and not taken
        stop.reclaim_signals()  # after a signal: the default actions stay (a second one ends)
        assert all(signal.getsignal(number) == signal.SIG_DFL for number in stopping.SIGNALS)


def test_a_block_inside_another_shares_its_request_and_handlers():
    before = {number: signal.getsignal(number) for number in stopping.SIGNALS}
    with stopping.on_signals() as outer:
        handlers = {number: signal.getsignal(number) for number in stopping.SIGNALS}
        with stopping.on_signals() as inner:
            assert inner is outer
            assert {n: signal.getsignal(n) for n in stopping.SIGNALS} == handlers
        os.kill(os.getpid(), signal.SIGINT)  # after the inner block: still ours, recorded
        time.sleep(0.05)
        assert outer.signal_name == "SIGINT"
        own = stopping.StopRequest()
        with stopping.on_signals(own) as given:  # a request of its own: its own handlers
            assert given is own
    assert {number: signal.getsignal(number) for number in stopping.SIGNALS} == before


@pytest.mark.subprocess
def test_sigterm_stops_a_multi_worker_run(tmp_path):
    """Under MultiWorkerMirroredStrategy (here one worker) TensorFlow's coordination service
    installs a SIGTERM handler of its own that only notes the signal, and the run would go on;
    the run takes SIGTERM back, stops at a step, saves it and exits 0."""
    model_dir = tmp_path / "run"
    config = ('{"cluster": {"worker": ["localhost:%d"]}, "task": {"type": "worker", "index": 0}}'
              % launch.free_ports(1)[0])
    victim = scripts.start("train.py", f"--model_dir={model_dir}", "--model=two_layer_net",
                           "--strategy=multi_worker", "--train_steps=100000",
                           "--steps_per_loop=2", "--checkpoint_every=1000000", "--noexport",
                           TF_CONFIG=config)
    _, err = _sigterm_once_training_began(victim, model_dir)
    assert victim.returncode == 0, err[-4000:]
    step = _latest_step(str(model_dir))
    lines = [line for line in err.splitlines() if "stopped by SIGTERM" in line]
    assert len(lines) == 1 and f"at step {step} of 100000: saved " in lines[0], err[-4000:]
