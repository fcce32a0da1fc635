"""What train.py and eval.py share: a quiet start, flags generated from a config class,
`--verbosity`, errors as one line, the import path, printing results, and how `main` ends.

    if __name__ == "__main__":
        common_flags.quiet_start()      # before TensorFlow loads
    from tfmodels import training      # noqa: E402
    ...
    common_flags.run(main, training.TrainConfig)

`quiet_start()` imports TensorFlow with the C++ log level chosen from `--verbosity` (TensorFlow
reads it once, at import) and with the lines its libraries print while loading (absl's "All log
messages before absl::InitializeLog()", CUDA stubs looking for drivers) held back; once the
flags are parsed they are shown at `--verbosity=debug` and dropped otherwise, except errors.
`run(main, config_class)` defines one flag per option of the config class (see
`tfmodels.options` for how an option is declared), parses them, routes all logging through
`tfmodels.console` and calls `main(config)` with the config the flags describe. Importing this
module does nothing else.

Exit statuses: 0 done; 2 bad input (`tfmodels.options.UsageError`, absl's flag errors, a flag
file that includes itself): one line `error: --flag=value ...`; 1 a failure the library names
(`failures`; an undecodable image): one line; 1 anything else: its traceback (a bug is not bad
input).
"""
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

# Flags defined through here belong to the script (its --help lists them).
flags.disclaim_key_flags()

VERBOSITY_NAMES = {"debug": 1, "info": 0, "warning": -1, "error": -2}


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
    None when absent or unreadable (the real parse reports it, as it does a flag file that
    includes itself)."""
    if flagfile_cycle(argv):
        return None
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



_STARTUP = None  # what TensorFlow printed while loading (`quiet_start`)


def quiet_start(argv=None):
    """Import TensorFlow (and tfmodels) quietly: the C++ log level from `--verbosity` in `argv`
    (default: sys.argv), the start-up lines held until the flags are parsed (`setup_logging`).
    Call it before anything imports TensorFlow."""
    global _STARTUP
    if "tensorflow" in sys.modules:
        return
    early = _verbosity_in(sys.argv if argv is None else argv)
    # TensorFlow's C++ code reads its level once, when the library loads (2: errors only).
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if (early or 0) >= 1 else "2")
    with _HeldStderr() as _STARTUP:
        import tensorflow  # noqa: F401

        import tfmodels  # noqa: F401


def _startup_text():
    return _STARTUP.text if _STARTUP is not None else ""


def fail(message):
    """Print 'error: <message>' alone and exit with status 2."""
    _close_bars()
    sys.stderr.write(f"error: {message}\n")
    sys.stderr.flush()
    sys.exit(2)


def _close_bars():
    if "tfmodels.console" in sys.modules:
        sys.modules["tfmodels.console"].close_bars()


def flagfile_cycle(argv):
    """The chain of flag files in `argv` that includes itself ('a -> b -> a'), or None. absl
    only warns about such a file and goes on with what it read: here it is bad input."""
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


def _parse_flags(argv):
    """absl's parse, then logging set up; a bad flag is one 'error:' line, exit status 2."""
    cycle = flagfile_cycle(argv)
    if cycle:
        fail(f"--flagfile includes itself: {cycle}")
    try:
        rest = flags.FLAGS(argv)
    except flags.Error as err:
        sys.stderr.write(native_lines_to_show(_startup_text(), logging.INFO))
        fail(err)
    verbosity = 0 if flags.FLAGS["verbosity"].using_default_value else flags.FLAGS.verbosity
    setup_logging(_absl_to_logging(verbosity))
    return rest


def setup_logging(level):
    """Logging through `tfmodels.console` at `level`; TensorFlow's held start-up output and its
    GPU probe's shown as `native_lines_to_show` says."""
    import tensorflow as tf

    from tfmodels import console

    console.setup_logging(level, own_dirs=[os.path.dirname(os.path.abspath(__file__))])
    sys.stderr.write(native_lines_to_show(_startup_text(), level))
    # Looking for GPUs loads the CUDA driver, which complains where there is none; the
    # strategy looks again later, quietly. Listing devices starts no runtime.
    with _HeldStderr() as probe:
        tf.config.list_physical_devices("GPU")
    sys.stderr.write(native_lines_to_show(probe.text, level))
    sys.stderr.flush()


def define_flags(config_class):
    """absl flags for every option of `config_class`, and `--verbosity` as names too."""
    from tfmodels import options

    options.define_flags(config_class)
    flags.FLAGS["verbosity"].parser = _VerbosityParser()
    flags.FLAGS["verbosity"].help = (
        "How much to print: debug (everything, TensorFlow's own logs included), info (default: "
        "progress bars, a summary at the start and a table at the end, this program's log "
        "lines), warning (warnings and errors only), error; or absl's numeric levels.")


def run(main, config_class, failures=()):
    """Define the flags of `config_class`'s options, parse them, call `main(config)` with the
    config they describe and print its result (`print_result`); how it ends: the module
    docstring. The flag help is printed only for --help / --helpfull."""
    from tfmodels import options

    define_flags(config_class)

    def main_with_config(argv):
        if len(argv) > 1:
            fail(f"unexpected arguments: {' '.join(argv[1:])}")
        import_from_working_directory()
        print_result(run_and_release(lambda: main(options.from_flags(config_class)),
                                     failures=failures))

    app.run(main_with_config, flags_parser=_parse_flags)


def print_result(value):
    """`value` as JSON on stdout, unless stdout is the terminal that has just shown it as a
    table (`python train.py > metrics.json` and pipes still get it)."""
    from tfmodels import console

    if console.stream_is_terminal(sys.stdout) and console.shows_progress():
        return
    print(json.dumps(value, indent=2))


def import_from_working_directory():
    """Put the working directory on the import path, as `python -m` does, so that
    `--model=package.module:function` (and a model_dir recording one) finds the user's code."""
    if os.getcwd() not in sys.path:
        sys.path.insert(1, os.getcwd())


def run_and_release(work, failures=()):
    """`work()`'s result, with every TensorFlow object it made released before we go on.

    A process that leaves tf.data iterators (one per replica, each with an autotune thread) to
    the interpreter's shutdown can hang there for good: the main thread destroys an iterator
    and waits on a thread that can no longer run. The iterators live in reference cycles, and an
    exception's traceback keeps the frames that hold them. So the exception is reduced to its
    text and dropped first, then `gc.collect()` frees everything, and only then does the script
    report and exit.

    Args:
      work: fn() -> result.
      failures: exception types reported as 'error: <message>' with exit status 1 (besides
        `model_dir.ModelDirWriteError`: a file of the run that could not be written).

    A `stopping.Stopped` (the work stopped on SIGTERM / SIGINT / SIGUSR1 after saving its
    state, and logged one line saying so) exits with status 0. SIGTERM, SIGINT and SIGUSR1
    are handled (`stopping.on_signals`) from the call until the report is written: the work
    reads the same request, and a signal after it is only recorded (a second one ends the
    process at once).

    Returns:
      `work()`'s result. A `UsageError`: 'error: <message>' alone, exit status 2; an image the
      input pipeline could not decode (`decoding.UndecodableImageError`) or one of `failures`:
      its one line, status 1; any other exception: its traceback, exit status 1.
    """
    from tfmodels import stopping
    from tfmodels.data.pipelines import decoding
    from tfmodels.model_dir import ModelDirWriteError
    from tfmodels.options import UsageError

    # The signals are held until the report is written: one that comes while a failed run
    # is reported (the launcher stops the other workers when one fails) is only recorded.
    with stopping.on_signals():
        report = status = None
        try:
            result = work()
        except stopping.Stopped:  # saved and said so: a requeue can tell by the status
            report, status = "", 0
        except UsageError as err:
            report, status = f"error: {err}\n", 2
        except (ModelDirWriteError,) + tuple(failures) as err:  # out of space, no permission
            report, status = f"error: {err}\n", 1
        except Exception as err:  # noqa: BLE001 -- printed below, once the objects are freed
            undecodable = decoding.undecodable_error(err)
            report = f"error: {undecodable}\n" if undecodable else traceback.format_exc()
            status = 1
        gc.collect()
        if report is not None:
            _close_bars()
            sys.stderr.write(report)
            sys.stderr.flush()
            sys.exit(status)
        return result
