"""Training on one or many devices: config, the replicated step, checkpoints, exports."""
from tfmodels.training.config import DEFAULT_EPOCHS, ResolvedConfig, TrainConfig
from tfmodels.distribute import WorkerLostError
from tfmodels.training.trainer import NonFiniteLossError, train

__all__ = ["DEFAULT_EPOCHS", "NonFiniteLossError", "ResolvedConfig",
           "TrainConfig", "WorkerLostError", "train"]
