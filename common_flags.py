"""Flags shared by train.py and eval.py: where the replicas run."""
from absl import flags

from tfmodels.training import strategy


def define_strategy_flags():
    flags.DEFINE_enum("strategy", "auto", strategy.STRATEGIES,
                      "auto: mirrored over all GPUs (or over --virtual_devices CPUs), "
                      "else one CPU.")
    flags.DEFINE_integer("num_gpus", None, "GPUs to use (default: all visible).", lower_bound=0)
    flags.DEFINE_enum("all_reduce", "auto", strategy.ALL_REDUCE, "Cross-device all-reduce.")
    flags.DEFINE_integer("virtual_devices", 1, "Split each physical device into this many "
                         "logical devices (simulates several GPUs).", lower_bound=1)
