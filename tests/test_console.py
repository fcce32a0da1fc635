"""The console: bars drawn in place on a terminal and plain lines elsewhere, short log lines that
keep only our own info, TensorFlow's start-up output filtered, library names written as flags,
and the warning of a run that does not learn."""
import io
import logging
import re

import pytest
from rich.console import Console

from tests import scripts
from tfmodels import console, startup
from tfmodels.training import learning_check

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@pytest.fixture
def terminal():
    """The console drawing on a fake 100-column terminal; its text (escapes removed) after."""
    buffer = io.StringIO()
    saved = dict(console._state)
    console._state.update(console=Console(file=buffer, force_terminal=True, width=100),
                          level=logging.INFO)
    yield lambda: ANSI.sub("", buffer.getvalue())
    console.close_bars()
    console._state.update(saved)


@pytest.fixture
def no_terminal(caplog):
    """The console on a plain file, its info lines captured."""
    saved = dict(console._state)
    console._state.update(console=Console(file=io.StringIO(), force_terminal=False),
                          level=logging.INFO)
    caplog.set_level(logging.INFO)
    yield caplog
    console._state.update(saved)


def test_bar_on_a_terminal_is_redrawn_in_place_to_the_end(terminal):
    bar = console.ProgressBar("train", 30, log_every=10)
    assert bar.live
    for step in (10, 20, 30):
        bar.update(step, f"loss {1 / step:.4f}")
    assert not bar.live  # closed at its total
    text = terminal()
    assert "30/30" in text and "loss 0.0333" in text
    assert "\r" in text or "\x1b" in text  # redrawn, not one line per update


def test_bar_elsewhere_logs_every_log_every_steps_and_the_end(no_terminal):
    bar = console.ProgressBar("train", 25, start=0, log_every=10)
    assert not bar.live
    for step in (5, 10, 15, 20, 25):
        bar.update(step, "loss 1")
    lines = [r.getMessage() for r in no_terminal.records]
    assert [line.split("  ")[0] for line in lines] == ["train 10/25", "train 20/25",
                                                       "train 25/25"]
    assert all(re.search(r"ETA (\d+:\d\d|\?)$", line) for line in lines)


def test_bars_and_tables_stay_quiet_at_warning(terminal):
    console.set_verbosity("warning")
    bar = console.ProgressBar("train", 10)
    bar.update(10)
    console.print_table("results", [("test accuracy", "99%")])
    assert not bar.live and terminal() == ""


def test_table_lists_the_rows(terminal):
    console.print_table("lenet on digits", [("test accuracy", "98.33%"), ("model_dir", "runs/x")])
    text = terminal()
    assert "lenet on digits" in text
    assert re.search(r"test accuracy +98\.33%", text) and re.search(r"model_dir +runs/x", text)


def _record(level, pathname, message="hello"):
    return logging.LogRecord("absl", level, pathname, 1, message, None, None)


def test_log_lines_are_short_and_keep_only_our_info():
    handler = console.LogHandler(logging.INFO, own_dirs=[scripts.ROOT])
    ours = console.__file__
    theirs = logging.__file__
    assert handler.filter(_record(logging.INFO, ours))
    assert handler.filter(_record(logging.INFO, f"{scripts.ROOT}/train.py"))
    assert not handler.filter(_record(logging.INFO, theirs))
    assert not handler.filter(_record(logging.INFO, f"{scripts.ROOT}/.venv/lib/x.py"))
    assert handler.filter(_record(logging.WARNING, theirs))
    assert console.LogHandler(logging.DEBUG).filter(_record(logging.INFO, theirs))
    line = handler.format(_record(logging.WARNING, ours, "careful"))
    assert re.fullmatch(r"W \d\d:\d\d:\d\d careful", line), line


def test_verbosity_names():
    assert console.level_of("debug") == logging.DEBUG and console.level_of("INFO") == logging.INFO
    with pytest.raises(ValueError, match="verbosity='loud' is not one of: debug, info"):
        console.level_of("loud")


STARTUP = """\
WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
I0000 00:00:1795838918.701464   20323 cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will not be used.
I0000 00:00:1796671857.304789   11942 cpu_feature_guard.cc:227] This TensorFlow binary is optimized to use available CPU instructions in performance-critical operations.
To enable the following instructions: AVX2 AVX512F FMA, in other operations, rebuild TensorFlow with the appropriate compiler flags.
W1128 04:08:48.532798 140591920749440 some.cc:12] a C++ warning
E0000 00:00:1795838928.373486   20323 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)
E1128 04:08:48.532798 140591920749440 other.cc:7] a real C++ error
/path/module.py:3: UserWarning: a Python warning
  warnings.warn("a Python warning")
"""


def test_startup_output_keeps_errors_and_python_warnings():
    """A dropped C++ line goes with the lines that continue its message."""
    shown = startup.native_lines_to_show(STARTUP, logging.INFO)
    assert shown.splitlines() == [
        "E1128 04:08:48.532798 140591920749440 other.cc:7] a real C++ error",
        "/path/module.py:3: UserWarning: a Python warning",
        '  warnings.warn("a Python warning")']
    assert startup.native_lines_to_show(STARTUP, logging.DEBUG) == STARTUP
    assert "real C++ error" not in startup.native_lines_to_show(STARTUP, logging.CRITICAL)


@pytest.mark.parametrize("given, level", [("debug", 1), ("INFO", 0), ("warning", -1),
                                          ("error", -2), ("2", 2), ("-1", -1)])
def test_verbosity_flag_takes_names_and_absl_numbers(given, level):
    assert startup.VerbosityParser().parse(given) == level
    assert startup.verbosity_in(["x", f"--verbosity={given}", "--other=1"]) == level
    assert startup.verbosity_in(["x", "-v", given]) == level


def test_verbosity_flag_refuses_other_words():
    with pytest.raises(ValueError, match="must be one of debug, info, warning, error, or an int"):
        startup.VerbosityParser().parse("loud")
    assert startup.verbosity_in(["x", "--verbosity=loud"]) is None  # the real parse says


class _Resolved:
    """The fields of a ResolvedConfig that the check reads."""

    def __init__(self, **config):
        from tfmodels.training import TrainConfig

        self.config = TrainConfig(**config)
        self.num_classes, self.steps_per_epoch = 10, 22
        self.total_steps = config.get("train_steps") or 660


def test_chance_check_warns_once_after_the_first_epoch_past_warmup(caplog):
    check = learning_check.ChanceCheck(_Resolved(model="lenet_pp", center_loss_weight=0.1,
                                                 warmup_steps=10, train_steps=100))
    assert check.check_at == 32
    with caplog.at_level(logging.WARNING):
        assert check.observe(30, 0.10) is None  # not judged before warmup + one epoch
        text = check.observe(40, 0.12)
        assert check.observe(50, 0.10) is None  # once
    assert [r.getMessage() for r in caplog.records] == [text]
    assert text.startswith("training accuracy is 12.0% after 1.82 epoch(s) (step 40): chance "
                           "for 10 classes")
    for cause in ("--learning_rate=0.1 too high or too low for lenet_pp",
                  "--lr_schedule=cosine, --warmup_steps=10", "--label_smoothing=0.1",
                  "--weight_decay=0.001", "--center_loss_weight=0.1"):
        assert cause in text


@pytest.mark.parametrize("warmup, total, step", [
    (0, 80, 22),      # one epoch past the warmup at the earliest
    (10, 100, 32),
    (0, 220, 55),     # a quarter of the run: slow starters get two more epochs
    (0, 660, 110),    # at most five epochs past the warmup
    (100, 10000, 210),
])
def test_chance_check_step(warmup, total, step):
    assert learning_check.check_step(warmup, 22, total) == step


def test_chance_check_is_quiet_when_the_net_learns():
    check = learning_check.ChanceCheck(_Resolved())
    assert check.observe(110, 0.16) is None and check.checked


@pytest.mark.parametrize("classes, threshold", [(2, 0.6), (3, 0.5), (10, 0.15), (1000, 0.0015)])
def test_chance_threshold(classes, threshold):
    assert learning_check.chance_threshold(classes) == pytest.approx(threshold)
