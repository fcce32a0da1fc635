"""How a tfmodels program starts quietly: TensorFlow's C++ start-up lines held back.

Loading TensorFlow prints lines on stderr from C++ (absl's "All log messages before
absl::InitializeLog()", oneDNN and CPU-feature notices, CUDA stubs looking for drivers) that
TF_CPP_MIN_LOG_LEVEL does not all hide. A program imports TensorFlow inside `quiet_start()`:
the C++ log level is chosen from `--verbosity` in the command line (TensorFlow reads it once,
at import) and what file descriptor 2 receives meanwhile is held; once the program has parsed
its flags, `show_startup(level)` prints what `native_lines_to_show` keeps at that level
(everything at `--verbosity=debug`; errors, Python warnings and other text otherwise).

Who starts quietly: `tfmodels/__init__.py`, which imports TensorFlow, does it when

- Python is importing the package on the way to running one of `PROGRAMS` as
  `python -m tfmodels.<program>` (while it locates the module, `sys.argv[0]` is '-m'), or
- a script asked for it before importing tfmodels (train.py / eval.py, through
  `common_flags.quiet_start()`, which sets `QUIET_START_VARIABLE`; the package removes it, so
  child processes do not inherit it).

Anything else that imports tfmodels (a notebook, a test, a user's script) gets TensorFlow's
output as usual. Importing this module imports nothing but absl's flags and logging.
"""
import logging
import os
import re
import sys
import tempfile

from absl import flags
from absl import logging as absl_logging

# The `python -m tfmodels.<program>` commands that show the held lines once their flags are read.
PROGRAMS = ("tfmodels.porting", "tfmodels.launch")
# Set by a script that will call `show_startup` (the package reads and removes it).
QUIET_START_VARIABLE = "TFMODELS_QUIET_START"

VERBOSITY_NAMES = {"debug": 1, "info": 0, "warning": -1, "error": -2}
VERBOSITY_HELP = (
    "How much to print: debug (everything, TensorFlow's own logs included), info (default: "
    "progress bars, a summary at the start and a table at the end, this program's log "
    "lines), warning (warnings and errors only), error; or absl's numeric levels.")


class VerbosityParser(flags.IntegerParser):
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


def name_verbosity_levels(flag_values=flags.FLAGS):
    """absl's `--verbosity` flag (defined by absl.logging) takes the names too."""
    flag_values["verbosity"].parser = VerbosityParser()
    flag_values["verbosity"].help = VERBOSITY_HELP


def logging_level(verbosity):
    """Python's logging level of an absl verbosity (1 and above: DEBUG)."""
    if verbosity >= 1:
        return logging.DEBUG
    return absl_logging.converter.absl_to_standard(verbosity)


def flagfile_cycle(argv):
    """The chain of flag files in `argv` that includes itself ('a -> b -> a'), or None. absl
    only warns about such a file and goes on with what it read: for us it is bad input."""
    def visit(path, chain):
        real = os.path.realpath(path)
        if real in chain:
            return " -> ".join(chain + [real])
        try:
            with open(real) as lines:
                included = [line.strip()[len("--flagfile="):] for line in lines
                            if line.strip().startswith("--flagfile=")]
        except OSError:
            return None  # absl's parse names the unreadable file
        for name in included:
            cycle = visit(name, chain + [real])
            if cycle:
                return cycle
        return None

    for arg in argv[1:]:
        if arg.startswith("--flagfile="):
            cycle = visit(arg[len("--flagfile="):], [])
            if cycle:
                return cycle
    return None


def verbosity_in(argv):
    """--verbosity / -v as given in `argv` (flag files read, parsing stops at `--`), before
    the flags are defined; None when absent or unreadable (the real parse reports it, as it
    does a flag file that includes itself)."""
    if flagfile_cycle(argv):
        return None
    early = flags.FlagValues()
    flags.DEFINE_flag(flags.Flag(VerbosityParser(), flags.ArgumentSerializer(), "verbosity",
                                 None, "", short_name="v"), flag_values=early)
    try:
        early(list(argv), known_only=True)
    except (flags.Error, OSError):
        return None
    return early.verbosity


class HeldStderr:
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
# Python's own warning lines ("path.py:3: UserWarning: ..."), which never continue a C++ line.
_PYTHON_WARNING = re.compile(r"^\S.*:\d+: \w+: ")
_NATIVE_CHATTER = (
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",)
# Errors that only say there is no GPU driver (the CUDA build on a machine without GPUs);
# the run's start says which devices it uses.
_NO_GPU_ERRORS = ("failed call to cuInit",)


def native_lines_to_show(text, level):
    """The lines of TensorFlow's start-up output `text` worth showing at logging `level`:
    all at DEBUG; otherwise C++ lines below ERROR (with the lines that continue their
    message), absl's pre-initialisation notice and the no-driver error are dropped, and
    everything else (Python warnings, real errors) is kept."""
    if level <= logging.DEBUG:
        return text
    kept, dropping = [], False  # dropping: the lines that continue a dropped C++ message
    for line in text.splitlines(keepends=True):
        native = _NATIVE_LINE.match(line)
        if native:
            severity, message = native.groups()
            dropping = (severity in "IW" or any(e in message for e in _NO_GPU_ERRORS)
                        or level > logging.ERROR)
            if dropping:
                continue
        elif line.rstrip("\n") in _NATIVE_CHATTER:
            continue
        elif dropping and not _PYTHON_WARNING.match(line):
            continue  # "To enable the following instructions: ..." after cpu_feature_guard's
        dropping = False
        kept.append(line)
    return "".join(kept)


_held = {"text": ""}  # what quiet_start held, until show_startup prints it


def program_argv():
    """The command line of the program starting now, when its start is to be quiet: a script
    that set `QUIET_START_VARIABLE` (removed here), or `python -m` on one of `PROGRAMS` while
    Python imports its parent packages; else None."""
    asked = os.environ.pop(QUIET_START_VARIABLE, None) is not None
    if asked:
        return list(sys.argv)
    if sys.argv[:1] != ["-m"]:
        return None
    original = getattr(sys, "orig_argv", [])
    for i, arg in enumerate(original):
        module = original[i + 1] if arg == "-m" and i + 1 < len(original) else (
            arg[2:] if arg.startswith("-m") and len(arg) > 2 else None)
        if module is not None:
            return list(sys.argv) if module in PROGRAMS else None
    return None


def quiet_start(argv):
    """Import TensorFlow with the C++ log level from `--verbosity` in `argv` (2, errors only,
    unless debug) and its output held for `show_startup`. Nothing when TensorFlow is loaded."""
    if "tensorflow" in sys.modules:
        return
    early = verbosity_in(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if (early or 0) >= 1 else "2")
    with HeldStderr() as held:
        import tensorflow  # noqa: F401,PLC0415 -- the import whose output is held
    _held["text"] += held.text


def show_startup(level, probe_gpus=True):
    """Print what TensorFlow printed while `quiet_start` loaded it, as `native_lines_to_show`
    keeps it at logging `level` (once); then, with `probe_gpus`, list the GPUs under the same
    filter: looking for them loads the CUDA driver, which complains where there is none (the
    strategy looks again later, quietly)."""
    text, _held["text"] = _held["text"], ""
    sys.stderr.write(native_lines_to_show(text, level))
    if probe_gpus:
        import tensorflow as tf  # noqa: PLC0415 -- loaded by quiet_start

        with HeldStderr() as probe:
            tf.config.list_physical_devices("GPU")
        sys.stderr.write(native_lines_to_show(probe.text, level))
    sys.stderr.flush()
