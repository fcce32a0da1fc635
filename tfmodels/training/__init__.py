"""Training on one or many devices: config, the replicated step, checkpoints, exports."""
from tfmodels.training.config import DEFAULT_EPOCHS, ResolvedConfig, TrainConfig
from tfmodels.training.trainer import ConfigError, NonFiniteLossError, train

__all__ = ["ConfigError", "DEFAULT_EPOCHS", "NonFiniteLossError", "ResolvedConfig",
           "TrainConfig", "train"]
