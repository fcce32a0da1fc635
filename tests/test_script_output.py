"""What train.py and eval.py print, run as a user runs them: on a terminal (a pseudo-terminal)
and with output to pipes (CI, files), at the default verbosity and at --verbosity=debug, and
each kind of bad value as one 'error:' line with exit status 2.

TF_CPP_MIN_LOG_LEVEL is removed from the scripts' environment: the scripts choose it.
"""
import fcntl
import json
import os
import pty
import re
import select
import struct
import subprocess
import termios
import time

import pytest

from tests import scripts

pytestmark = pytest.mark.subprocess  # every test starts a script or a fresh interpreter

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
RUN = ["--train_steps=30", "--steps_per_loop=10", "--log_every=10", "--checkpoint_every=30"]
# What TensorFlow prints on its own at start-up, while saving and exporting.
CHATTER = ["absl::InitializeLog", "cudart_stub", "cuInit", "cpu_feature_guard",
           "Sharding callback duration", "Function `_serve` contains input name(s)",
           "Assets written to", "Writing fingerprint", "INFO:tensorflow", "Using MirroredStrategy"]
# A log prefix with a thread id (absl's, C++'s): 'I1128 01:13:49.168896 140617650801536 x.py:34]'.
LONG_PREFIX = re.compile(r"^[IWEF]\d{4} [\d:.]+\s+\d+ \S+:\d+\]", re.M)


def run_on_terminal(script, *args, timeout=600):
    """`python <script> args` with stdin, stdout and stderr on a pseudo-terminal of 120
    columns; (exit status, everything it printed)."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    env = scripts.script_env(TF_CPP_MIN_LOG_LEVEL=None, COLUMNS=None, LINES=None)
    env.pop("NO_COLOR", None)
    env["TERM"] = "xterm-256color"
    proc = subprocess.Popen(scripts._command(script, args), cwd=scripts.ROOT, env=env,
                            stdin=slave, stdout=slave, stderr=slave, close_fds=True)
    os.close(slave)
    output, deadline = b"", time.time() + timeout
    try:
        while True:
            assert time.time() < deadline, f"no end after {timeout} s:\n{output[-3000:]!r}"
            ready, _, _ = select.select([master], [], [], 1.0)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: every writer closed the terminal
                    break
                if not chunk:
                    break
                output += chunk
        status = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=60)
        os.close(master)
    return status, output.decode(errors="replace").replace("\r\n", "\n")


def _assert_quiet(text):
    found = [c for c in CHATTER if c in text] + LONG_PREFIX.findall(text)
    assert not found, f"TensorFlow chatter or long log prefixes: {found}\n{text[-4000:]}"


@pytest.fixture(scope="module")
def terminal_run(tmp_path_factory):
    model_dir = str(tmp_path_factory.mktemp("terminal") / "run")
    status, output = run_on_terminal("train.py", f"--model_dir={model_dir}", *RUN)
    assert status == 0, output[-4000:]
    return model_dir, output


def test_terminal_shows_a_live_bar_that_reaches_the_end(terminal_run):
    _, output = terminal_run
    assert "\x1b[?25l" in output  # the cursor is hidden while the bar is redrawn in place
    text = ANSI.sub("", output)
    frames = text.split("\r")  # each redraw starts at the line's beginning
    assert any(re.search(r"train .* 10/30 epoch 1/2  loss \d\.\d{4}  acc \d+\.\d%  [\d,]+ img/s",
                         frame) for frame in frames), text[-3000:]
    assert re.search(r"train .* 30/30 epoch 2/2", text) and re.search(r"test .* 6/6", text)
    assert output.rstrip().endswith("\x1b[?25h") or "\x1b[?25h" in output  # cursor back


def test_terminal_run_starts_with_a_summary_and_ends_with_a_table(terminal_run):
    model_dir, output = terminal_run
    text = ANSI.sub("", output)
    for line in ("model      small_cnn, 62,250 parameters, 10 classes",
                 "data       digits: train 1,438 / test 359 images of 8x8x1",
                 "batch      64 = 1 replica(s) x 64 per replica",
                 "steps      30 = 1.36 epoch(s) of 22", f"model_dir  {model_dir}"):
        assert re.search(rf"^I \d\d:\d\d:\d\d {re.escape(line)}", text, re.M), (line, text)
    metrics = json.load(open(os.path.join(model_dir, "metrics.json")))
    assert "small_cnn on digits" in text
    assert re.search(rf"test accuracy +{metrics['test_accuracy']:.2%} of 359 test examples",
                     text)
    assert re.search(r"exports +saved_model, model\.keras", text)
    assert '"test_accuracy"' not in text  # the JSON is for pipes; the terminal got the table


def test_terminal_run_has_no_tensorflow_chatter(terminal_run):
    _assert_quiet(terminal_run[1])


@pytest.fixture(scope="module")
def piped_run(tmp_path_factory):
    model_dir = str(tmp_path_factory.mktemp("piped") / "run")
    proc = scripts.run("train.py", f"--model_dir={model_dir}", *RUN, TF_CPP_MIN_LOG_LEVEL=None)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return model_dir, proc


def test_piped_run_logs_plain_progress_lines_and_prints_the_metrics(piped_run):
    model_dir, proc = piped_run
    assert "\x1b[" not in proc.stderr and "\r" not in proc.stderr  # nothing redrawn
    progress = re.findall(r"^I \d\d:\d\d:\d\d train (\d+)/30  epoch (\d)/2  loss \d\.\d{4}  "
                          r"acc \d+\.\d%  [\d,]+ img/s  ETA (?:\d+:\d\d|\?)$", proc.stderr, re.M)
    assert [int(step) for step, _ in progress] == [10, 20, 30], proc.stderr
    assert json.loads(proc.stdout) == json.load(open(os.path.join(model_dir, "metrics.json")))
    assert re.search(r"^test accuracy +\d+\.\d\d% of 359 test examples", proc.stderr, re.M)
    _assert_quiet(proc.stderr)


def test_debug_shows_what_the_default_hides(piped_run, tmp_path):
    """--verbosity=debug lets TensorFlow's own lines through: the quiet default is the filter's
    doing, not a run that happened to say nothing."""
    proc = scripts.run("train.py", f"--model_dir={tmp_path / 'run'}", *RUN, "--verbosity=debug",
                       TF_CPP_MIN_LOG_LEVEL=None)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "Sharding callback duration" in proc.stderr and "Assets written to" in proc.stderr
    assert re.search(r"^D \d\d:\d\d:\d\d config: \{", proc.stderr, re.M)


# The script's side only (absl's parse, the environment): the values themselves are checked
# in-process by tests/test_options.py.
ERRORS = [
    (["--strategy=multi_worker"], {"TF_CONFIG": "{bad"},
     "TF_CONFIG='{bad' is not JSON with 'cluster' and 'task' keys"),
    (["--verbosity=loud"], {},
     "flag --verbosity=loud: must be one of debug, info, warning, error, or an int"),
]


@pytest.mark.parametrize("args, env, message", ERRORS, ids=lambda v: str(v)[:40])
def test_a_bad_value_is_one_line_and_status_2(tmp_path, args, env, message):
    model_dir = tmp_path / "never"
    proc = scripts.run("train.py", f"--model_dir={model_dir}", *args, TF_CPP_MIN_LOG_LEVEL=None,
                       **env)
    assert (proc.returncode, proc.stderr, proc.stdout) == (2, f"error: {message}\n", "")
    assert not model_dir.exists()


def test_a_bad_value_on_a_terminal_is_one_line_too(tmp_path):
    status, output = run_on_terminal("train.py", f"--model_dir={tmp_path / 'never'}",
                                     "--epochs=-1", timeout=300)
    assert (status, ANSI.sub("", output).strip()) == (2, "error: --epochs=-1 must be > 0")


def test_eval_errors_are_one_line(tmp_path):
    proc = scripts.run("eval.py", TF_CPP_MIN_LOG_LEVEL=None)
    assert (proc.returncode, proc.stderr) == (
        2, "error: --model_dir is required (the directory train.py wrote)\n")
    proc = scripts.run("eval.py", f"--model_dir={tmp_path / 'none'}", TF_CPP_MIN_LOG_LEVEL=None)
    assert (proc.returncode, proc.stderr) == (2, f"error: --model_dir={tmp_path / 'none'} does "
                                                 "not exist\n")


def test_help_is_printed_when_asked(tmp_path):
    proc = scripts.run("train.py", "--helpshort", TF_CPP_MIN_LOG_LEVEL=None)
    assert proc.stderr == "" and "--batch_size: Global batch size" in proc.stdout
    assert "--verbosity" not in proc.stdout  # absl's flags are in --helpfull


def test_eval_on_a_terminal_shows_its_bars_and_table(terminal_run):
    model_dir, _ = terminal_run
    status, output = run_on_terminal("eval.py", f"--model_dir={model_dir}", "--plot_dir=",
                                     timeout=300)
    assert status == 0, output[-4000:]
    text = ANSI.sub("", output)
    assert re.search(r"test .* 6/6", text) and re.search(r"train .* 23/23", text)  # k-NN gallery
    assert re.search(r"small_cnn on digits:test\n.*checkpoint +\S+ckpt-30 \(step 30", text)
    assert re.search(r"knn 1 accuracy +\d+\.\d\d%", text)
    _assert_quiet(output)
