"""Multi-worker runs stop together and survive a lost worker: two train.py workers on localhost
(started raw, each with its own TF_CONFIG, or by `python -m tfmodels.launch`). A SIGTERM to one
worker stops both at one step, both save it and exit 0, and the restarted run ends bit for bit
where an uninterrupted one does; a worker killed with SIGKILL makes the other stop with one line
naming it, and the restarted run resumes from the last checkpoint both saved and ends equal too.
"""
import os
import re
import signal
import subprocess
import time

import numpy as np
import pytest
import tensorflow as tf

from tests import scripts
from tfmodels import launch

pytestmark = pytest.mark.subprocess

TIMEOUT = 300  # seconds for one short two-worker run on a loaded machine
# Long enough to stop in the middle (a two_layer_net step on digits takes milliseconds).
FLAGS = ["--model=two_layer_net", "--deterministic", "--train_steps=400", "--steps_per_loop=2",
         "--checkpoint_every=20", "--keep_checkpoints=50", "--noexport", "--log_every=2",
         "--strategy=multi_worker"]


class Workers:
    """Two train.py workers on free localhost ports, their output in files."""

    def __init__(self, tmp_path, name, model_dir, flags=()):
        self.logs = [tmp_path / f"{name}_{i}.log" for i in range(2)]
        self.procs = []
        for config, log in zip(launch.tf_configs(2), self.logs):
            with open(log, "w") as out:
                self.procs.append(subprocess.Popen(
                    scripts._command("train.py", [f"--model_dir={model_dir}", *FLAGS, *flags]),
                    cwd=scripts.ROOT, env=scripts.script_env(TF_CONFIG=config),
                    stdout=out, stderr=subprocess.STDOUT, text=True))

    def wait(self, timeout):
        """Return codes, each process waited for at most `timeout` seconds from now."""
        deadline = time.monotonic() + timeout
        try:
            return [p.wait(timeout=max(0.1, deadline - time.monotonic())) for p in self.procs]
        finally:
            self.kill()

    def kill(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()

    def output(self, index):
        return self.logs[index].read_text()


def _checkpoint_steps(model_dir):
    return sorted(int(f[len("ckpt-"):-len(".index")]) for f in os.listdir(model_dir)
                  if f.startswith("ckpt-") and f.endswith(".index"))


def _wait_for(condition, procs, what):
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        assert all(p.poll() is None for p in procs) and time.monotonic() < deadline, what
        time.sleep(0.02)


def _training_began(model_dir):
    events = os.path.join(model_dir, "train")
    return lambda: os.path.isdir(events) and any(
        os.path.getsize(os.path.join(events, f)) > 200 for f in os.listdir(events))


def _weights(prefix):
    reader = tf.train.load_checkpoint(prefix)
    return {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map()
            if k != "_CHECKPOINTABLE_OBJECT_GRAPH" and not k.startswith("save_counter")}


def _assert_bitwise(a, b):
    assert a.keys() == b.keys() and len(a) > 5  # weights, optimizer slots, step, input position
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def _run_launcher(model_dir):
    proc = scripts.run("-m tfmodels.launch", "--workers=2", "--", "train.py",
                       f"--model_dir={model_dir}", *FLAGS, timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """An uninterrupted two-worker run's last checkpoint."""
    model_dir = tmp_path_factory.mktemp("straight") / "run"
    _run_launcher(model_dir)
    return str(model_dir / "ckpt-400")


def _stopped_lines(text):
    return [line for line in text.splitlines() if "stopped by " in line]


def _only_error_line(text):
    """The one `error:` line of a worker's output, which holds no traceback."""
    errors = [line for line in text.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in text, text[-3000:]
    return errors[0]


def _assert_worker_1_lost(text, last_checkpoint):
    """The output `text` ends with the one line that worker 1 was lost (its heartbeats stopped
    or a call to it failed), naming `last_checkpoint`."""
    line = _only_error_line(text)
    assert re.fullmatch(r"error: lost worker 1 of the multi-worker run \((stopped sending "
                        r"heartbeats|stopped answering)\); this worker stops too; the last "
                        rf"checkpoint saved: {re.escape(last_checkpoint)}; start every worker "
                        r"again with the same --model_dir to resume", line), line


@pytest.mark.slow  # three two-worker runs: ~1 min, more on a loaded machine
def test_sigterm_to_one_worker_stops_both_at_one_step_and_resume_ends_bitwise(
        tmp_path, straight):
    """SIGTERM reaches our handler although TensorFlow's coordination service installs its own
    (the run reclaims it), the other worker learns of it through the loop's all-reduce, both
    save the same step and exit 0; restarted, the run ends where an uninterrupted one does."""
    model_dir = tmp_path / "stopped"
    workers = Workers(tmp_path, "stopped", model_dir)
    try:
        _wait_for(_training_began(model_dir), workers.procs, "training never began")
        workers.procs[1].send_signal(signal.SIGTERM)  # the worker that is not the chief
        assert workers.wait(TIMEOUT) == [0, 0], workers.output(0)[-3000:] + workers.output(1)
    finally:
        workers.kill()
    by_signal, = _stopped_lines(workers.output(1))
    by_other, = _stopped_lines(workers.output(0))
    assert "stopped by SIGTERM at step " in by_signal, by_signal
    assert "stopped by a signal to another worker at step " in by_other, by_other
    step = int(by_signal.split(" at step ")[1].split()[0])
    assert f" at step {step} of 400: saved {model_dir / f'ckpt-{step}'};" in by_other
    assert 0 < step < 400 and _checkpoint_steps(model_dir)[-1] == step
    assert not (model_dir / "metrics.json").exists()

    proc = _run_launcher(model_dir)
    assert f"resuming from step {step}" in proc.stderr
    _assert_bitwise(_weights(straight), _weights(str(model_dir / "ckpt-400")))


@pytest.mark.slow  # three two-worker runs and a heartbeat timeout: ~1 min
def test_a_killed_worker_stops_the_other_and_the_run_resumes_bitwise(tmp_path, straight):
    """kill -9 of the worker that is not the chief: the chief's collectives fail (at once when
    one calls the dead worker, else when the coordination service misses its heartbeats, 10 s)
    and it exits with status 1 and one line naming the lost worker; restarted, the run resumes
    from the last checkpoint saved and ends bit for bit where an uninterrupted one does."""
    model_dir = tmp_path / "killed"
    workers = Workers(tmp_path, "killed", model_dir)
    try:
        _wait_for(lambda: os.path.isdir(model_dir) and any(
            s >= 40 for s in _checkpoint_steps(model_dir)), workers.procs,
            "no checkpoint 40 appeared")
        workers.procs[1].send_signal(signal.SIGKILL)
        # Bounded, not hung: the heartbeat timeout (10 s) and an exit.
        assert workers.wait(120) == [1, -signal.SIGKILL], workers.output(0)[-3000:]
    finally:
        workers.kill()
    # Its collective's next call to the dead worker fails, or the heartbeats stop: either way
    # the line names it.
    last = _checkpoint_steps(model_dir)[-1]
    _assert_worker_1_lost(workers.output(0), f"{model_dir}/ckpt-{last}")
    assert 40 <= last < 400

    proc = _run_launcher(model_dir)
    assert f"resuming from step {last}" in proc.stderr
    _assert_bitwise(_weights(straight), _weights(str(model_dir / "ckpt-400")))


@pytest.mark.slow  # a two-worker start and a heartbeat timeout: ~40 s
def test_a_worker_killed_before_training_stops_the_other_with_one_line(tmp_path):
    """kill -9 of the worker that is not the chief as soon as it has connected (TensorFlow logs
    "Enabled multi-worker collective ops" once the workers' collectives are set up), before
    any variable exists: the chief, whose first variable's broadcast then waits on the dead
    worker, stops when the coordination service misses its heartbeats, with status 1 and one
    line, before its run's summary; nothing was saved, and the line says so."""
    model_dir = tmp_path / "early"
    workers = Workers(tmp_path, "early", model_dir, flags=["--verbosity=debug"])
    try:
        _wait_for(lambda: "Enabled multi-worker collective ops" in workers.output(1),
                  workers.procs, "worker 1 never connected")
        workers.procs[1].send_signal(signal.SIGKILL)
        assert workers.wait(120) == [1, -signal.SIGKILL], workers.output(0)[-3000:]
    finally:
        workers.kill()
    text = workers.output(0)
    _assert_worker_1_lost(text, "none yet")
    # Lost before the chief's start summary (written once the variables exist) and before any
    # step: the phase that the training loop's own handling never sees.
    assert "parameters," not in text and "training from scratch" not in text, text[-3000:]
    assert not model_dir.exists()  # made once the chief holds its lock, after the variables


def _children(pid):
    """The process ids of `pid`'s children (Linux)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except FileNotFoundError:
        return []


@pytest.mark.slow  # a two-worker run through the launcher: ~30 s
def test_the_launcher_ends_with_the_killed_workers_status_and_the_other_stops(tmp_path):
    """kill -9 of the chief (task 0, which hosts the coordination service) under the launcher:
    the other worker stops with one line naming it, the launcher exits with the killed
    worker's status (128 + 9)."""
    model_dir = tmp_path / "run"
    launcher = scripts.start("-m tfmodels.launch", "--workers=2", "--grace_seconds=60", "--",
                             "train.py", f"--model_dir={model_dir}", *FLAGS)
    try:
        _wait_for(_training_began(model_dir), [launcher], "training never began")
        workers = _children(launcher.pid)
        assert len(workers) == 2, workers
        with open(f"/proc/{workers[0]}/environ", "rb") as f:  # the chief: task 0
            chief = workers[0] if b'"index": 0' in f.read() else workers[1]
        os.kill(chief, signal.SIGKILL)
        _, err = launcher.communicate(timeout=120)  # bounded: the other does not hang
    finally:
        launcher.kill()
    assert launcher.returncode == 128 + signal.SIGKILL, err[-4000:]
    lost = [line for line in err.splitlines() if "lost worker" in line]
    assert len(lost) == 1 and lost[0].startswith("[worker 1] error: lost worker 0 of the "
                                                 "multi-worker run"), err[-4000:]
    assert "[launch] worker 0 failed with status 137" in err and "Traceback" not in err


@pytest.mark.slow
@pytest.mark.parametrize("started, missing", [(0, 1), (1, 0)])
def test_a_worker_that_never_connects_ends_the_wait_with_one_line(tmp_path, started, missing):
    """Only one worker of two starts: the chief (which hosts the coordination service) or the
    other one. It gives up after --worker_connect_timeout with status 1 and one line naming the
    worker that did not connect (TensorFlow's default waited past 5 minutes)."""
    model_dir = tmp_path / "alone"
    config = launch.tf_configs(2)[started]
    done = subprocess.run(
        scripts._command("train.py", [f"--model_dir={model_dir}", *FLAGS,
                                      "--worker_connect_timeout=5"]),
        cwd=scripts.ROOT, env=scripts.script_env(TF_CONFIG=config), capture_output=True,
        text=True, timeout=120)
    text = done.stdout + done.stderr
    assert done.returncode == 1, text[-3000:]
    line = _only_error_line(text)
    assert line == (f"error: worker {missing} of the multi-worker run did not connect within "
                         "--worker_connect_timeout seconds; this worker stops too; the last "
                         "checkpoint saved: none yet; start every worker again with the same "
                         "--model_dir to resume"), line
    assert not model_dir.exists()
