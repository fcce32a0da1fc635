"""Custom Keras layers: stable Softmax and Center Loss."""
from tfmodels.layers.softmax import Softmax, log_softmax, softmax

__all__ = ["Softmax", "log_softmax", "softmax"]
