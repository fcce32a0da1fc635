"""What train.py and eval.py share: a quiet start, flags generated from a config class,
`--verbosity`, errors as one line, the import path, printing results, and how `main` ends.

    if __name__ == "__main__":
        common_flags.quiet_start()      # before TensorFlow loads
    from tfmodels import training      # noqa: E402
    ...
    common_flags.run(main, training.TrainConfig)

`quiet_start()` has tfmodels import TensorFlow as `tfmodels.startup` does for `python -m
tfmodels.porting`: with the C++ log level chosen from `--verbosity` (TensorFlow reads it once, at
import) and with the lines its libraries print while loading (absl's "All log messages before
absl::InitializeLog()", CUDA stubs looking for drivers) held back; once the flags are parsed
they are shown at `--verbosity=debug` and dropped otherwise, except errors.
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
import sys
import traceback

from absl import app, flags

# Flags defined through here belong to the script (its --help lists them).
flags.disclaim_key_flags()


def quiet_start():
    """Import TensorFlow and tfmodels quietly (`tfmodels.startup`): the C++ log level from
    `--verbosity` in sys.argv, the start-up lines held until the flags are parsed
    (`setup_logging`). Call it before anything imports TensorFlow."""
    if "tensorflow" in sys.modules:
        return
    # Read (and removed) by tfmodels/__init__.py, which imports TensorFlow: this module cannot
    # import tfmodels.startup before that without importing TensorFlow itself.
    os.environ["TFMODELS_QUIET_START"] = "1"
    import tfmodels  # noqa: F401


def fail(message):
    """Print 'error: <message>' alone and exit with status 2."""
    _close_bars()
    sys.stderr.write(f"error: {message}\n")
    sys.stderr.flush()
    sys.exit(2)


def _close_bars():
    if "tfmodels.console" in sys.modules:
        sys.modules["tfmodels.console"].close_bars()


def _parse_flags(argv):
    """absl's parse, then logging set up; a bad flag is one 'error:' line, exit status 2."""
    from tfmodels import startup

    cycle = startup.flagfile_cycle(argv)
    if cycle:
        startup.show_startup(logging.INFO, probe_gpus=False)
        fail(f"--flagfile includes itself: {cycle}")
    try:
        rest = flags.FLAGS(argv)
    except flags.Error as err:
        startup.show_startup(logging.INFO, probe_gpus=False)
        fail(err)
    verbosity = 0 if flags.FLAGS["verbosity"].using_default_value else flags.FLAGS.verbosity
    setup_logging(startup.logging_level(verbosity))
    return rest


def setup_logging(level):
    """Logging through `tfmodels.console` at `level`; TensorFlow's held start-up output and its
    GPU probe's shown as `tfmodels.startup.native_lines_to_show` says."""
    from tfmodels import console, startup

    console.setup_logging(level, own_dirs=[os.path.dirname(os.path.abspath(__file__))])
    startup.show_startup(level)


def define_flags(config_class):
    """absl flags for every option of `config_class`, and `--verbosity` as names too."""
    from tfmodels import options, startup

    options.define_flags(config_class)
    startup.name_verbosity_levels()


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
