"""Training on one or many devices: config, strategies, the replicated step, checkpoints."""
from tfmodels.training.config import TrainConfig
from tfmodels.training.trainer import ConfigError, NonFiniteLossError, train

__all__ = ["ConfigError", "NonFiniteLossError", "TrainConfig", "train"]
