"""Custom Keras layers: stable Softmax, Center Loss, Dropout, attention and ViT tokens."""
from tfmodels.layers.attention import MultiHeadAttention
from tfmodels.layers.center_loss import CenterLoss
from tfmodels.layers.dropout import Dropout
from tfmodels.layers.softmax import Softmax, log_softmax, softmax
from tfmodels.layers.tokens import ClassToken, PositionEmbedding

__all__ = ["CenterLoss", "ClassToken", "Dropout", "MultiHeadAttention", "PositionEmbedding",
           "Softmax", "log_softmax", "softmax"]
