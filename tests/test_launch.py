"""The local launcher: TF_CONFIG per worker on free ports, prefixed output, signals forwarded,
the rest stopped when one fails, and the first failure's status. (Two train.py workers through
it match two replicas in one process: tests/test_train.py.)"""
import json
import os
import signal
import textwrap
import threading
import time

import pytest

from tests import scripts
from tfmodels import launch

# A worker that prints its task, then waits (up to 60 s) for SIGTERM; `FAIL_INDEX`'s worker
# exits with status 3 at once instead.
WORKER = textwrap.dedent("""
    import json, os, signal, sys, time
    index = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
    print(f"task {index} of {os.environ['TF_CONFIG']} argv {sys.argv[1:]}", flush=True)
    if str(index) == os.environ.get("FAIL_INDEX"):
        print("failing", file=sys.stderr, flush=True)
        sys.exit(3)
    signal.signal(signal.SIGTERM, lambda n, f: (print(f"got signal {n}", flush=True),
                                                sys.exit(0)))
    time.sleep(60)
    sys.exit(5)
""")


@pytest.fixture
def worker_script(tmp_path):
    path = tmp_path / "worker.py"
    path.write_text(WORKER)
    return str(path)


def test_tf_configs_name_every_worker_on_distinct_ports():
    configs = [json.loads(c) for c in launch.tf_configs(3)]
    workers = configs[0]["cluster"]["worker"]
    assert len(set(workers)) == 3 and all(w.startswith("localhost:") for w in workers)
    assert [c["task"] for c in configs] == [{"type": "worker", "index": i} for i in range(3)]
    assert all(c["cluster"] == configs[0]["cluster"] for c in configs)


def test_worker_command_adds_the_multi_worker_strategy_unless_given():
    assert launch.worker_command("train.py", ["--x=1"])[-2:] == ["--x=1",
                                                                 "--strategy=multi_worker"]
    assert launch.worker_command("train.py", ["--strategy=mirrored"])[-1] == \
        "--strategy=mirrored"


@pytest.mark.parametrize("argv, message", [
    (["--workers=2", "train.py"], "no `--` before the script"),
    (["--workers=0", "--", "train.py"], "--workers=0 must be >= 1"),
    (["--workers=2", "--"], "no script after `--`"),
    (["--workers=2", "--", "missing.py"], "script 'missing.py' is not a file"),
    (["--workers=x", "--", "train.py"], "argument --workers: invalid int value: 'x'"),
    (["--", "train.py"], "the following arguments are required: --workers"),
    (["--workers=2", "--gpus=1", "--", "train.py"], "unrecognized arguments: --gpus=1"),
])
def test_bad_arguments_are_one_line_and_status_2(argv, message, capsys):
    assert launch.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err


def test_a_failed_worker_stops_the_rest_and_gives_its_status(worker_script, capfd):
    start = time.monotonic()
    status = launch.launch(worker_script, ["--flag=1"], 2, grace_seconds=30,
                           env=dict(os.environ, FAIL_INDEX="1"))
    assert status == 3
    assert time.monotonic() - start < 50  # not the 60 s the other worker would wait
    out, err = capfd.readouterr()
    assert "[worker 1] failing" in err and "[launch] worker 1 failed with status 3" in err
    assert "[worker 0] got signal 15" in out  # asked to stop (SIGTERM), not killed
    assert "[worker 0] task 0 of" in out and "'--flag=1', '--strategy=multi_worker'" in out


def test_signals_are_forwarded_to_every_worker(worker_script, capfd):
    before = signal.getsignal(signal.SIGTERM)
    timer = threading.Timer(3.0, os.kill, args=(os.getpid(), signal.SIGTERM))
    timer.start()  # the launcher has installed its forwarding long before
    try:
        status = launch.launch(worker_script, [], 2, env=dict(os.environ, FAIL_INDEX=""))
    finally:
        timer.cancel()
    assert status == 0
    out, _ = capfd.readouterr()
    assert "[worker 0] got signal 15" in out and "[worker 1] got signal 15" in out
    assert signal.getsignal(signal.SIGTERM) == before  # the launcher's handler is gone


def test_the_module_runs_as_a_script(worker_script):
    """`python -m` imports tfmodels, and TensorFlow with it, first: its start-up lines are
    held and dropped (TF_CPP_MIN_LOG_LEVEL does not hide them), so the launcher's stderr is
    its workers' lines and its own, or one error line."""
    proc = scripts.run("-m tfmodels.launch", "--workers=2", "--", worker_script, timeout=120,
                       FAIL_INDEX="0", TF_CPP_MIN_LOG_LEVEL=None)
    assert proc.returncode == 3, proc.stderr[-2000:]
    assert "[launch] worker 0 failed with status 3" in proc.stderr
    assert all(line.startswith(("[worker ", "[launch] ")) for line in
               proc.stderr.splitlines()), proc.stderr[-2000:]
    proc = scripts.run("-m tfmodels.launch", "--workers=0", "--", worker_script, timeout=120,
                       TF_CPP_MIN_LOG_LEVEL=None)
    assert (proc.returncode, proc.stderr, proc.stdout) == (
        2, "error: --workers=0 must be >= 1\n", "")


@pytest.mark.slow  # two train.py workers: ~1 min, more on a loaded machine
def test_a_signal_stops_every_worker_at_the_same_step(tmp_path):
    """SIGUSR1 to the launcher reaches both workers; they agree on a step, save it together
    (the chief into model_dir), each says so in one line and both exit with 0."""
    model_dir = tmp_path / "run"
    launcher = scripts.start("-m tfmodels.launch", "--workers=2", "--", "train.py",
                             f"--model_dir={model_dir}", "--model=two_layer_net",
                             "--train_steps=100000", "--steps_per_loop=2",
                             "--checkpoint_every=1000000", "--noexport")
    try:
        deadline = time.time() + 300
        events = model_dir / "train"
        while not (events.is_dir() and any(f.stat().st_size > 200 for f in events.iterdir())):
            assert launcher.poll() is None and time.time() < deadline, "training never began"
            time.sleep(0.1)
        launcher.send_signal(signal.SIGUSR1)
        _, err = launcher.communicate(timeout=300)
    finally:
        launcher.kill()
    assert launcher.returncode == 0, err[-4000:]
    lines = sorted(line for line in err.splitlines() if "stopped by SIGUSR1" in line)
    assert [line[:len("[worker 0] ")] for line in lines] == ["[worker 0] ", "[worker 1] "], \
        err[-4000:]  # one line from each worker, naming the same checkpoint
    saved = sorted(f.name for f in model_dir.iterdir() if f.name.endswith(".index"))
    assert len(saved) == 1
    assert all(f"saved {model_dir / saved[0][:-len('.index')]};" in line for line in lines)
