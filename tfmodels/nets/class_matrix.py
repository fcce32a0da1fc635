"""The class matrix of a registry model: its logits layer, read as rows per class.

A registry model ends with `logits = embedding @ kernel + bias` for most nets: one dense layer
(`SmallCNN/logits`, `LeNetPP/logits`, `resnet20/logits`, ...) whose input is exactly
`end_points['embedding']`. Its kernel [D, C] and bias [C] are the class matrix: column c of the
kernel (with bias[c]) scores class c. Heads that touch only some classes per step (sampled
softmax, Partial FC) and evaluation over many classes in chunks work on that layer's own
variables, so checkpoints, porting and evaluation see the same paths whatever the head.

    matrix = class_matrix(model)                 # ValueError for nets without such a layer
    body = matrix.embedding_model                # images -> embedding, sharing the layers
    logits = body(images) @ matrix.kernel + matrix.bias   # == model(images)['logits']

Nets whose logits layer is not fed by the embedding are refused rather than guessed at: LeNet
and the VGGs put dropout between them, tf-slim's ResNet v1 uses a 1x1 convolution and a squeeze.
"""
import dataclasses
from typing import Optional

import keras

from tfmodels.slim.layers import SlimDense
from tfmodels.options import UsageError


@dataclasses.dataclass(frozen=True)
class ClassMatrix:
    """A model's logits layer as a class matrix.

    Attributes:
      layer: the dense logits layer (`<scope>/logits`, LeNet's `fc4`, ...).
      kernel: its kernel variable [D, C] (column c: class c).
      bias: its bias variable [C], or None.
      embedding_model: `keras.Model(model.input, model.output['embedding'])`, sharing the
        model's layers (and weights): the net up to the class matrix.
    """
    layer: keras.layers.Layer
    kernel: keras.Variable
    bias: Optional[keras.Variable]
    embedding_model: keras.Model

    @property
    def num_classes(self):
        return int(self.kernel.shape[1])

    @property
    def embedding_size(self):
        return int(self.kernel.shape[0])

    @property
    def variables(self):
        """The trainable variables of the class matrix (kernel, then bias if any)."""
        return [v for v in (self.kernel, self.bias) if v is not None]


def class_matrix(model, purpose="this"):
    """The class matrix of a registry model (`nets.build_model`).

    Args:
      model: a functional model with outputs {'logits', 'embedding'}.
      purpose: what needs it, for the error message (e.g. "--head=sampled_softmax").

    Returns:
      A `ClassMatrix`.

    Raises:
      ValueError: the logits are not one dense layer (no normalizer, no activation) applied
        to the embedding; the message names the model, its logits layer and `purpose`.
    """
    logits, embedding = model.output["logits"], model.output["embedding"]
    layer, node_index, _ = logits._keras_history
    reason = None
    if not isinstance(layer, SlimDense):
        reason = f"its logits come from a {type(layer).__name__} op, not a dense layer"
    elif layer.normalizer is not None or layer.activation is not None:
        reason = f"its logits layer {layer.name!r} has a normalizer or an activation"
    else:
        inputs = layer._inbound_nodes[node_index].input_tensors
        if len(inputs) != 1 or inputs[0] is not embedding or len(embedding.shape) != 2:
            reason = (f"its logits layer {layer.name!r} is not applied to the embedding "
                      "end point (e.g. dropout in between)")
    if reason:
        raise UsageError(f"{purpose} needs the logits to be embedding @ kernel + bias, but "
                         f"{model.name} is not such a net: {reason}. Use the default "
                         "--head=softmax with it, or a net whose logits layer reads the "
                         "embedding (e.g. small_cnn, lenet_pp, resnet20, cifarnet)")
    return ClassMatrix(layer=layer, kernel=layer.kernel, bias=layer.bias,
                       embedding_model=keras.Model(model.input, embedding,
                                                   name=f"{model.name}_embedding"))
