"""Vision Transformers (Dosovitskiy et al. 2021) for small images: vit_tiny and vit_small.

The image is cut into p x p patches by a p x p convolution of stride p (`embedding`), the
patches become tokens, a learned class token is prepended (`cls/token`) and learned positions
added (`posembed/embedding`); then `depth` pre-LN encoder blocks (`block_0` ...
`block_{depth-1}`, see `tfmodels.nets.transformer`), a final layer norm (`encoder_norm`), and
the classifier (`logits`) on the class token. The class token after the final norm is the
embedding.

The patch size follows the image size unless given: 2 up to 16 pixels (8x8 digits: 4x4 = 16
patches), 4 up to 64 (32x32 CIFAR: 64 patches; 28x28 MNIST: 49), 16 above (224x224: 196).

Sizes are for small images and CPU budgets; they are not DeiT's ViT-Ti/S (192 wide, 12 blocks:
on the 8x8 digits one epoch of DeiT-Ti took 20 s on 2 CPU cores, vit_tiny's 1.5 s):

| net       | width d | heads | MLP m | blocks L | parameters, 8x8x1 / 32x32x3, 10 classes |
|-----------|---------|-------|-------|----------|-----------------------------------------|
| vit_tiny  | 64      | 4     | 256   | 4        | 202,186 / 208,074                       |
| vit_small | 192     | 3     | 768   | 6        | 2,675,914 / 2,693,578                   |

Parameters: p²·C·d + d (patch embedding) + d (class token) + (T + 1)·d (positions) + L·(4·d² +
4·d (attention) + 2·d·m + m + d (MLP) + 4·d (two layer norms)) + 2·d (final norm) + d·K + K.
"""
import keras

from tfmodels.slim import scopes
from tfmodels.layers.tokens import ClassToken, PositionEmbedding
from tfmodels.slim.regularizers import l2_regularizer
from tfmodels.nets import transformer
from tfmodels.options import check_int

# (largest image side, patch size): the first row whose side is >= the image's side applies.
PATCH_SIZES = ((16, 2), (64, 4), (None, 16))


def default_patch_size(image_size):
    """The patch size for an image whose smaller side is `image_size` (see PATCH_SIZES)."""
    for largest, patch in PATCH_SIZES:
        if largest is None or image_size <= largest:
            return patch
    raise AssertionError("PATCH_SIZES ends with a catch-all row")


def vit(images, num_classes, is_training=None, width=64, depth=4, num_heads=4, mlp_dim=256,
        patch_size=None, dropout_rate=0.0, attention_dropout_rate=0.0, scope="vit"):
    """A ViT classifier; vit_tiny / vit_small fix the sizes.

    Args:
      images: Keras tensor [N, H, W, C]; H and W multiples of the patch size.
      num_classes: number of classes K.
      is_training: None follows the model call's `training`; True/False pins every dropout.
      width: token width d (divisible by num_heads).
      depth: number of encoder blocks.
      num_heads: attention heads per block.
      mlp_dim: hidden width of each block's MLP.
      patch_size: side of the square patches; None picks it from the image size.
      dropout_rate: dropout after the position embedding, the attention and in the MLPs.
      attention_dropout_rate: dropout on the attention probabilities.
      scope: name scope of the variables and the model's name.

    Returns:
      logits [N, K] and end_points: 'patches' [N, H/p, W/p, d], 'tokens' [N, 1 + T, d],
      'block_i' [N, 1 + T, d], 'encoder_norm', 'embedding' (the normalized class token
      [N, d]), 'logits'.

    Raises:
      ValueError: the patch size does not divide the image, or width % num_heads != 0.
    """
    if patch_size is not None:
        check_int(f"{scope}: patch_size", patch_size, low=1)
    height, image_width = images.shape[1], images.shape[2]
    patch = patch_size or default_patch_size(min(height, image_width))
    if height % patch or image_width % patch:
        raise ValueError(
            f"{scope}: patch_size={patch} does not divide the image size {height}x{image_width}"
            f"; use an image whose sides are multiples of {patch} or pass patch_size (one of "
            f"the common divisors of {height} and {image_width})")
    if width % num_heads:
        raise ValueError(f"{scope}: width={width} is not divisible by num_heads={num_heads}")
    end_points = {}
    with keras.name_scope(scope):
        net = end_points["patches"] = scopes.conv2d(
            images, width, [patch, patch], stride=patch, padding="VALID", activation_fn=None,
            scope="embedding")
        net = keras.layers.Reshape((-1, width), name="flatten_patches")(net)
        net = ClassToken(name="cls")(net)
        net = end_points["tokens"] = PositionEmbedding(name="posembed")(net)
        net = scopes.dropout(net, 1.0 - dropout_rate, is_training=is_training,
                             scope="dropout")
        for i in range(depth):
            net = end_points[f"block_{i}"] = transformer.encoder_block(
                net, num_heads, mlp_dim, dropout_rate=dropout_rate,
                attention_dropout_rate=attention_dropout_rate, is_training=is_training,
                scope=f"block_{i}")
        net = end_points["encoder_norm"] = transformer.layer_norm(net, scope="encoder_norm")
        net = end_points["embedding"] = net[:, 0]  # the class token
        logits = end_points["logits"] = scopes.fully_connected(
            net, num_classes, activation_fn=None, scope="logits")
    return logits, end_points


def vit_tiny(images, num_classes=10, is_training=None, patch_size=None, dropout_rate=0.0,
             attention_dropout_rate=0.0, scope="vit_tiny"):
    """The small-image ViT-Tiny: width 64, 4 heads, MLP 256, 4 blocks. See `vit`."""
    return vit(images, num_classes, is_training, width=64, depth=4, num_heads=4, mlp_dim=256,
               patch_size=patch_size, dropout_rate=dropout_rate,
               attention_dropout_rate=attention_dropout_rate, scope=scope)


vit_tiny.default_image_size = 32


def vit_small(images, num_classes=10, is_training=None, patch_size=None, dropout_rate=0.0,
              attention_dropout_rate=0.0, scope="vit_small"):
    """The small-image ViT-Small: width 192, 3 heads, MLP 768, 6 blocks. See `vit`."""
    return vit(images, num_classes, is_training, width=192, depth=6, num_heads=3,
               mlp_dim=768, patch_size=patch_size, dropout_rate=dropout_rate,
               attention_dropout_rate=attention_dropout_rate, scope=scope)


vit_small.default_image_size = 32


def min_image_size(patch_size=None, **unused):
    """The smallest side: one patch."""
    return patch_size or PATCH_SIZES[0][1]


def vit_arg_scope(weight_decay=0.0):
    """L2 weight decay (wd * sum(w**2) / 2) on every kernel: patch embedding, attention, MLP,
    classifier; none on biases, layer norms, the class token and the positions."""
    regularizer = l2_regularizer(weight_decay)
    with scopes.arg_scope([scopes.conv2d, scopes.fully_connected],
                          weights_regularizer=regularizer), \
            scopes.arg_scope([transformer.multi_head_attention],
                             weights_regularizer=regularizer) as scope:
        return scope
