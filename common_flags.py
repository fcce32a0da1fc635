"""What train.py and eval.py share: the strategy flags, the import path, how `main` ends."""
import gc
import os
import sys
import traceback

from absl import flags

from tfmodels import distribute
from tfmodels.data import decoding


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
        help), exit status 2.
      failures: exception types reported as 'error: <message>' with exit status 1.

    Returns:
      `work()`'s result (any other exception: its traceback is printed, exit status 1).
    """
    report = status = None
    try:
        result = work()
    except usage_errors as err:
        report, status = f"error: {err}\n", 2
    except failures as err:
        report, status = f"error: {err}\n", 1
    except Exception as err:  # noqa: BLE001 -- printed below, once the run's objects are freed
        # An image the input pipeline could not decode: its one-line report, not a traceback.
        message = decoding.undecodable_message(err)
        report, status = (f"error: {message}\n" if message else traceback.format_exc()), 1
    gc.collect()
    if report is not None:
        sys.stderr.write(report)
        sys.stderr.flush()
        sys.exit(status)
    return result
