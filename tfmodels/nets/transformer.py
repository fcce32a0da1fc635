"""Transformer builders in tf-slim's style: layer norm, self-attention, MLP, a pre-LN encoder block.

    with scopes.arg_scope(vit_arg_scope(weight_decay=1e-4)):
        net = transformer.encoder_block(tokens, num_heads=3, mlp_dim=768, scope="block_0")
        # block_0/ln1/{gamma,beta}, block_0/attention/{query,key,value,attention_output}/
        # {kernel,bias}, block_0/ln2/..., block_0/mlp/fc1/{kernel,bias}, block_0/mlp/fc2/...

The encoder block is the pre-LN block of ViT (Dosovitskiy et al. 2021) and GPT-2:

    x = x + dropout(attention(ln1(x)))
    x = x + dropout(fc2(dropout(gelu(fc1(ln2(x))))))

`layer_norm`, `multi_head_attention` and `mlp` are arg_scope'd like `tfmodels.slim.scopes`'
builders (`weights_regularizer` reaches the attention kernels too); a block is a nested
functional model (`scopes.nested_model`), so its layer names repeat from block to block while
the variable paths stay unique. Attention is `tfmodels.layers.MultiHeadAttention` (Keras's
weight layout, exact masking, dropout exact across replicas).
"""
import keras

from tfmodels.slim import scopes
from tfmodels.layers.attention import MultiHeadAttention


@scopes.add_arg_scope
def layer_norm(inputs, epsilon=1e-6, trainable=True, scope=None):
    """Layer normalization over the last axis: gamma * (x - mean) / sqrt(var + eps) + beta.

    Args:
      inputs: Keras tensor [..., d].
      epsilon: added to the variance (1e-6 as in ViT; Keras's default is 1e-3).
      trainable: False freezes gamma and beta.
      scope: layer name (variables `<scope>/gamma`, `<scope>/beta`).

    Returns:
      The Keras tensor, shaped like `inputs` (normalized in float32 under mixed precision).
    """
    return keras.layers.LayerNormalization(epsilon=epsilon, trainable=trainable,
                                           name=scope)(inputs)


@scopes.add_arg_scope
def multi_head_attention(inputs, num_heads, key_dim=None, dropout_rate=0.0, is_training=None,
                         weights_initializer="glorot_uniform", weights_regularizer=None,
                         biases_initializer="zeros", trainable=True, scope="attention"):
    """Self-attention of `inputs` with `num_heads` heads, projected back to its width.

    Args:
      inputs: Keras tensor [N, T, d].
      num_heads: number of heads.
      key_dim: size per head (default d // num_heads; d must then be divisible).
      dropout_rate: dropout on the attention probabilities.
      is_training: None follows the model call's `training`; True/False pins the dropout.
      weights_initializer, weights_regularizer: of the four kernels.
      biases_initializer: of the biases; None means no biases.
      trainable: False freezes the layer.
      scope: layer name.

    Returns:
      The Keras tensor [N, T, d].
    """
    width = inputs.shape[-1]
    if key_dim is None:
        if width % num_heads:
            raise ValueError(f"width {width} is not divisible by num_heads={num_heads}; pass "
                             "key_dim or choose a width that is a multiple of num_heads")
        key_dim = width // num_heads
    layer = MultiHeadAttention(
        num_heads, key_dim, dropout=dropout_rate, use_bias=biases_initializer is not None,
        kernel_initializer=weights_initializer, bias_initializer=biases_initializer or "zeros",
        kernel_regularizer=weights_regularizer, is_training=is_training, trainable=trainable,
        name=scope)
    return layer(inputs, inputs)


def _dropout(inputs, rate, is_training, scope):
    return scopes.dropout(inputs, keep_prob=1.0 - rate, is_training=is_training, scope=scope)


@scopes.add_arg_scope
def mlp(inputs, mlp_dim, activation_fn="gelu", dropout_rate=0.0, is_training=None,
        scope="mlp"):
    """The block's MLP: fc1 (mlp_dim, activation) -> dropout -> fc2 (back to d) -> dropout.

    Args:
      inputs: Keras tensor [N, T, d].
      mlp_dim: hidden width.
      activation_fn: of fc1 (GELU as in ViT).
      dropout_rate: after fc1's activation and after fc2.
      is_training: None follows the model call's `training`; True/False pins the dropout.
      scope: name scope (`<scope>/fc1`, `<scope>/fc2`).

    Returns:
      The Keras tensor [N, T, d].
    """
    with keras.name_scope(scope):
        net = scopes.fully_connected(inputs, mlp_dim, activation_fn=activation_fn, scope="fc1")
        net = _dropout(net, dropout_rate, is_training, "dropout1")
        net = scopes.fully_connected(net, inputs.shape[-1], activation_fn=None, scope="fc2")
        return _dropout(net, dropout_rate, is_training, "dropout2")


def encoder_block(inputs, num_heads, mlp_dim, dropout_rate=0.0, attention_dropout_rate=0.0,
                  is_training=None, scope="block"):
    """Pre-LN Transformer encoder block (see the module docstring) as a nested model.

    Args:
      inputs: Keras tensor [N, T, d].
      num_heads: attention heads (d must be divisible by them).
      mlp_dim: hidden width of the MLP.
      dropout_rate: on the attention output and in the MLP.
      attention_dropout_rate: on the attention probabilities.
      is_training: None follows the model call's `training`; True/False pins every dropout.
      scope: the block's name and name scope.

    Returns:
      The Keras tensor [N, T, d].
    """
    return scopes.nested_model(_encoder_block, inputs, scope, num_heads=num_heads,
                               mlp_dim=mlp_dim, dropout_rate=dropout_rate,
                               attention_dropout_rate=attention_dropout_rate,
                               is_training=is_training)


def _encoder_block(inputs, num_heads, mlp_dim, dropout_rate, attention_dropout_rate,
                   is_training):
    net = layer_norm(inputs, scope="ln1")
    net = multi_head_attention(net, num_heads, dropout_rate=attention_dropout_rate,
                               is_training=is_training, scope="attention")
    net = _dropout(net, dropout_rate, is_training, "dropout")
    inputs = keras.layers.Add(name="residual1")([inputs, net])
    net = layer_norm(inputs, scope="ln2")
    net = mlp(net, mlp_dim, dropout_rate=dropout_rate, is_training=is_training, scope="mlp")
    return keras.layers.Add(name="residual2")([inputs, net])
