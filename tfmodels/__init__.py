"""tfmodels: image classifiers on one or many devices with TF2 / Keras 3.

Softmax and center-loss heads, slim-style model builders, a MirroredStrategy trainer, and a
bridge that brings TF1 / tf-slim models and checkpoints into TF2.

`import tfmodels` registers every custom Keras class (layers, regularizers, schedules) with
`keras.saving`, so `keras.saving.load_model("model.keras")` works after it; it does nothing
else, except when a tfmodels program is starting (`python -m tfmodels.porting`, train.py):
then TensorFlow's C++ start-up lines are held for the program to show or drop (`startup`).
"""
import os as _os

from tfmodels import startup as _startup

# Keras 3 picks its backend at import time; this library is written for TensorFlow.
_os.environ.setdefault("KERAS_BACKEND", "tensorflow")

_program_argv = _startup.program_argv()
if _program_argv is not None:  # before anything imports TensorFlow
    _startup.quiet_start(_program_argv)

# The modules defining @keras.saving.register_keras_serializable classes: a `.keras` file
# names them as "tfmodels>SlimConv2D" etc. and loading needs them registered.
from tfmodels.data.pipelines import serving as _serving  # noqa: E402,F401  EvalPreprocessing
from tfmodels.layers import attention as _attention  # noqa: E402,F401  MultiHeadAttention
from tfmodels.layers import center_loss as _center_loss  # noqa: E402,F401  CenterLoss
from tfmodels.layers import dropout as _dropout  # noqa: E402,F401  Dropout
from tfmodels.slim import layers as _slim_layers  # noqa: E402,F401  SlimConv2D, ...
from tfmodels.slim import regularizers as _regularizers  # noqa: E402,F401  L2WeightDecay
from tfmodels.slim import separable as _separable  # noqa: E402,F401  SlimSeparableConv2D
from tfmodels.slim import depthwise as _depthwise  # noqa: E402,F401  SlimDepthwiseConv2D
from tfmodels.layers import softmax as _softmax  # noqa: E402,F401  Softmax
from tfmodels.layers import tokens as _tokens  # noqa: E402,F401  ClassToken, PositionEmbedding
from tfmodels import schedules as _schedules  # noqa: E402,F401  WarmupSchedule

__version__ = "0.1.0"
