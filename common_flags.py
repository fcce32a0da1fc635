"""What train.py and eval.py share: the strategy flags, the import path, error exits."""
import os
import sys

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


def exit_with_error(err, status=2):
    """Bad input found after flag parsing: the one message (no flag help), exit status 2 (or
    `status`)."""
    print(f"error: {err}", file=sys.stderr)
    sys.exit(status)


def exit_if_undecodable(err):
    """An image the input pipeline could not decode: its one-line report, exit status 1.
    Returns (for the caller to re-raise) when `err` is another error."""
    message = decoding.undecodable_message(err)
    if message is not None:
        exit_with_error(message, status=1)
