"""tfmodels: image classifiers on one or many devices with TF2 / Keras 3.

Softmax and center-loss heads, slim-style model builders, a MirroredStrategy trainer, and a
bridge that brings TF1 / tf-slim models and checkpoints into TF2.
"""
import os as _os

# Keras 3 picks its backend at import time; this library is written for TensorFlow.
_os.environ.setdefault("KERAS_BACKEND", "tensorflow")

__version__ = "0.1.0"
