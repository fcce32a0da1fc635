"""Custom Keras layers: stable Softmax and Center Loss."""
from tfmodels.layers.center_loss import CenterLoss
from tfmodels.layers.softmax import Softmax, log_softmax, softmax

__all__ = ["CenterLoss", "Softmax", "log_softmax", "softmax"]
