"""What train.py and eval.py share: a quiet start, the strategy flags, `--verbosity`, errors as
one line naming flags, the import path, printing results, and how `main` ends.

Import this module before anything that imports TensorFlow: it imports TensorFlow itself, with
the C++ log level chosen from `--verbosity` (TensorFlow reads it once, at import) and with the
lines its libraries print while loading (absl's "All log messages before absl::InitializeLog()",
CUDA stubs looking for drivers) held back; once the flags are parsed they are shown at
`--verbosity=debug` and dropped otherwise, except errors. Then `run(main, defaults)` parses the
flags, routes all logging through `tfmodels.console` and runs `main`.
"""
import dataclasses
import gc
import json
import logging
import os
import re
import sys
import tempfile
import traceback

from absl import app, flags
from absl import logging as absl_logging

# absl's --verbosity as names too; absl's own numbers (-v 1) keep working.
VERBOSITY_NAMES = {"debug": 1, "info": 0, "warning": -1, "error": -2}
# TrainConfig / EvalConfig fields whose flag has another name; every other field's flag has the
# field's name. The scripts build their configs through it, and errors are translated by it.
FLAG_OF_FIELD = {"global_batch_size": "batch_size"}


class _VerbosityParser(flags.IntegerParser):
    """absl's integer levels, or debug (1), info (0), warning (-1), error (-2)."""

    def parse(self, argument):
        if isinstance(argument, str) and argument.strip().lower() in VERBOSITY_NAMES:
            return VERBOSITY_NAMES[argument.strip().lower()]
        try:
            return super().parse(argument)
        except ValueError:
            raise ValueError(f"must be one of {', '.join(VERBOSITY_NAMES)}, or an int") from None

    def flag_type(self):
        return "level"


def _verbosity_in(argv):
    """--verbosity / -v as given in `argv` (flag files read), before the flags are defined;
    None when absent or unreadable (the real parse reports it)."""
    early = flags.FlagValues()
    flags.DEFINE_flag(flags.Flag(_VerbosityParser(), flags.ArgumentSerializer(), "verbosity",
                                 None, "", short_name="v"), flag_values=early)
    try:
        early(list(argv), known_only=True)
    except (flags.Error, OSError):
        return None
    return early.verbosity


class _HeldStderr:
    """What is written to file descriptor 2 (by C++ libraries too) inside the block, held in a
    temporary file; `text` afterwards. An exception inside shows it all at once."""

    def __enter__(self):
        self.text = ""
        sys.stderr.flush()
        try:
            self._saved = os.dup(2)
        except OSError:  # no stderr to hold
            self._saved = None
            return self
        self._file = tempfile.TemporaryFile()
        os.dup2(self._file.fileno(), 2)
        return self

    def __exit__(self, exc_type, *exc):
        if self._saved is None:
            return False
        sys.stderr.flush()
        os.dup2(self._saved, 2)
        os.close(self._saved)
        self._file.seek(0)
        self.text = self._file.read().decode(errors="replace")
        self._file.close()
        if exc_type is not None:
            sys.stderr.write(self.text)
        return False


# A line of TensorFlow's C++ logging (absl's format): severity, date, time, thread, file:line.
# Before absl's initialisation the time is seconds since the epoch: "I0000 00:00:1795839692.09".
_NATIVE_LINE = re.compile(r"^([IWEF])\d{4} [\d:.]+\s+\d+ \S+:\d+\] (.*)")
_NATIVE_CHATTER = (
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",)
# Errors that only say there is no GPU driver (the CUDA build on a machine without GPUs);
# the run's start says which devices it uses.
_NO_GPU_ERRORS = ("failed call to cuInit",)


def native_lines_to_show(text, level):
    """The lines of TensorFlow's start-up output `text` worth showing at logging `level`:
    all at DEBUG; otherwise C++ lines below ERROR, absl's pre-initialisation notice and the
    no-driver error are dropped, and everything else (Python warnings, real errors) is kept."""
    if level <= logging.DEBUG:
        return text
    kept = []
    for line in text.splitlines(keepends=True):
        native = _NATIVE_LINE.match(line)
        if native:
            severity, message = native.groups()
            if severity in "IW" or any(e in message for e in _NO_GPU_ERRORS):
                continue
            if level > logging.ERROR:
                continue
        elif line.rstrip("\n") in _NATIVE_CHATTER:
            continue
        kept.append(line)
    return "".join(kept)


def _absl_to_logging(verbosity):
    return logging.DEBUG if verbosity >= 1 else absl_logging.converter.absl_to_standard(verbosity)


_EARLY_VERBOSITY = _verbosity_in(sys.argv) if "tensorflow" not in sys.modules else None
# TensorFlow's C++ code reads its level once, when the library loads (2: errors only).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL",
                      "0" if (_EARLY_VERBOSITY or 0) >= 1 else "2")
with _HeldStderr() as _STARTUP:
    import tensorflow as tf  # noqa: E402

    from tfmodels import console, distribute, stopping  # noqa: E402
    from tfmodels.data import decoding  # noqa: E402

flags.FLAGS["verbosity"].parser = _VerbosityParser()
flags.FLAGS["verbosity"].help = (
    "How much to print: debug (everything, TensorFlow's own logs included), info (default: "
    "progress bars, a summary at the start and a table at the end, this program's log lines), "
    "warning (warnings and errors only), error; or absl's numeric levels.")
_fields = set()  # the config fields of the running script, named as flags in messages


def define_strategy_flags(defaults):
    """`--strategy`, `--num_gpus`, `--all_reduce`, `--virtual_devices`, with the defaults of
    `defaults` (a `TrainConfig` or `EvalConfig`)."""
    flags.DEFINE_enum("strategy", defaults.strategy, distribute.STRATEGIES,
                      "auto: mirrored over all GPUs (or over --virtual_devices CPUs), "
                      "else one CPU.")
    flags.DEFINE_integer("num_gpus", defaults.num_gpus, "GPUs to use (default: all visible).",
                         lower_bound=0)
    flags.DEFINE_enum("all_reduce", defaults.all_reduce, distribute.ALL_REDUCE,
                      "Cross-device all-reduce.")
    flags.DEFINE_integer("virtual_devices", defaults.virtual_devices, "Split each physical "
                         "device into this many logical devices (simulates several GPUs).",
                         lower_bound=1)


def strategy_options():
    """The parsed strategy flags as keyword arguments of TrainConfig / EvalConfig."""
    return dict(strategy=flags.FLAGS.strategy, num_gpus=flags.FLAGS.num_gpus,
                all_reduce=flags.FLAGS.all_reduce, virtual_devices=flags.FLAGS.virtual_devices)


def renamed_options():
    """The parsed flags of the fields in `FLAG_OF_FIELD`, as config keyword arguments
    (`global_batch_size=FLAGS.batch_size`)."""
    return {field: flags.FLAGS[flag].value for field, flag in FLAG_OF_FIELD.items()}


def flag_message(text, fields=None, defined=None):
    """`text` with the library's `field=value` written as the user types it: `--flag=value`.

    Args:
      text: a message of the library (`global_batch_size=64 ...`, `model='alexnet' ...`).
      fields: the config fields to rewrite (default: the running script's, see `run`).
      defined: the flag names that exist (default: absl's FLAGS); fields without a flag stay.

    Returns:
      `text` with `--batch_size=64`, `--model=alexnet` (quotes dropped where the value has no
      spaces).
    """
    fields = _fields if fields is None else fields
    defined = flags.FLAGS if defined is None else defined
    names = {field: FLAG_OF_FIELD.get(field, field) for field in fields}
    names = {field: flag for field, flag in names.items() if flag in defined}
    if not names:
        return text
    pattern = re.compile(r"(?<![\w.-])(%s)=('[^'\s]+'|\"[^\"\s]+\")?" % "|".join(
        sorted(map(re.escape, names), key=len, reverse=True)))

    def as_typed(match):
        value = match.group(2)
        return f"--{names[match.group(1)]}=" + (value[1:-1] if value else "")

    return pattern.sub(as_typed, text)


def fail(message):
    """Print 'error: <message>' (flags named as typed) alone and exit with status 2."""
    console.close_bars()
    sys.stderr.write(f"error: {flag_message(str(message))}\n")
    sys.stderr.flush()
    sys.exit(2)


class _FlagNamesInWarnings(logging.Filter):
    """Warnings of this package name flags as the user types them (`--learning_rate=0.1`)."""

    def filter(self, record):
        if record.levelno >= logging.WARNING and "tfmodels" in record.pathname:
            record.msg, record.args = flag_message(record.getMessage()), None
        return True


def _parse_flags(argv):
    """absl's parse, then logging set up; a bad flag is one 'error:' line, exit status 2."""
    try:
        rest = flags.FLAGS(argv)
    except flags.Error as err:
        sys.stderr.write(native_lines_to_show(_STARTUP.text, logging.INFO))
        fail(err)
    verbosity = 0 if flags.FLAGS["verbosity"].using_default_value else flags.FLAGS.verbosity
    setup_logging(_absl_to_logging(verbosity))
    return rest


def setup_logging(level):
    """Logging through `tfmodels.console` at `level`; TensorFlow's held start-up output and its
    GPU probe's shown as `native_lines_to_show` says."""
    console.setup_logging(level, own_dirs=[os.path.dirname(os.path.abspath(__file__))])
    for handler in logging.getLogger().handlers:
        handler.addFilter(_FlagNamesInWarnings())
    sys.stderr.write(native_lines_to_show(_STARTUP.text, level))
    # Looking for GPUs loads the CUDA driver, which complains where there is none; the
    # strategy looks again later, quietly. Listing devices starts no runtime.
    with _HeldStderr() as probe:
        tf.config.list_physical_devices("GPU")
    sys.stderr.write(native_lines_to_show(probe.text, level))
    sys.stderr.flush()


def run(main, defaults):
    """`app.run(main)`, with every bad flag value reported as one 'error:' line (exit status
    2): absl's parse errors, `app.UsageError`s from `main`, and the library's errors through
    `run_and_release`, where `defaults`' fields (a `TrainConfig` / `EvalConfig`) are named as
    flags. The flag help is printed only for --help / --helpfull."""
    _fields.update(f.name for f in dataclasses.fields(defaults))

    def main_without_usage(argv):
        try:
            return main(argv)
        except app.UsageError as err:
            fail(err)

    app.run(main_without_usage, flags_parser=_parse_flags)


def print_result(value):
    """`value` as JSON on stdout, unless stdout is the terminal that has just shown it as a
    table (`python train.py > metrics.json` and pipes still get it)."""
    if console.stream_is_terminal(sys.stdout) and console.shows_progress():
        return
    print(json.dumps(value, indent=2))


def import_from_working_directory():
    """Put the working directory on the import path, as `python -m` does, so that
    `--model=package.module:function` (and a model_dir recording one) finds the user's code."""
    if os.getcwd() not in sys.path:
        sys.path.insert(1, os.getcwd())


def run_and_release(work, usage_errors=(), failures=()):
    """`work()`'s result, with every TensorFlow object it made released before we go on.

    A process that leaves tf.data iterators (one per replica, each with an autotune thread) to
    the interpreter's shutdown can hang there for good: the main thread destroys an iterator
    and waits on a thread that can no longer run. The iterators live in reference cycles, and an
    exception's traceback keeps the frames that hold them. So the exception is reduced to its
    text and dropped first, then `gc.collect()` frees everything, and only then does the script
    report and exit.

    Args:
      work: fn() -> result.
      usage_errors: exception types that mean bad input: 'error: <message>' alone (no flag
        help; the library's option names written as flags), exit status 2.
      failures: exception types reported as 'error: <message>' with exit status 1.

    A `stopping.Stopped` (the work stopped on SIGTERM / SIGINT / SIGUSR1 after saving its
    state, and logged one line saying so) exits with status 0.

    Returns:
      `work()`'s result (any other exception: its traceback is printed, exit status 1).
    """
    report = status = None
    try:
        result = work()
    except stopping.Stopped:
        report, status = "", 0
    except usage_errors as err:
        report, status = f"error: {flag_message(str(err))}\n", 2
    except failures as err:
        report, status = f"error: {err}\n", 1
    except Exception as err:  # noqa: BLE001 -- printed below, once the run's objects are freed
        # An image the input pipeline could not decode: its one-line report, not a traceback.
        message = decoding.undecodable_message(err)
        report, status = (f"error: {message}\n" if message else traceback.format_exc()), 1
    gc.collect()
    if report is not None:
        console.close_bars()
        sys.stderr.write(report)
        sys.stderr.flush()
        sys.exit(status)
    return result
