"""Flags shared by train.py and eval.py: where the replicas run."""
from absl import flags

from tfmodels import distribute


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
