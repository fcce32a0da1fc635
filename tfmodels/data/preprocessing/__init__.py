"""Batch preprocessing: scale/normalise pixels and CIFAR-style augmentation from stateless seeds.

Everything works on whole batches (one gather per batch instead of per-image ops) and every
random number is a pure function of `(seed, global step)`: the augmentation of a batch is the
same whether it is drawn once, after a checkpoint restore, or split over any number of replicas
(each replica slices its rows out of the draws made for the whole global batch).

Normalisation, per dataset (`DatasetInfo.pixel_max/mean/std`):
`image = (pixels / pixel_max - mean) / std`, i.e. [0, 1] for digits (pixel_max 16), MNIST and
Fashion-MNIST (255), and per-channel standardisation with the usual training-set statistics for
CIFAR-10/100.

Augmentation (training only, `augment=True`): zero-pad each image by `padding` pixels on every
side, crop an H×W window at a uniformly random offset in [0, 2·padding]², then flip left-right
with probability 1/2 when the dataset allows flips. It runs on the raw uint8 pixels, so padding is
black (0) before normalisation, as torchvision's `RandomCrop(padding=4)` on CIFAR.

Per-net preprocessing of single images of any size, with tf-slim's call shape
(`preprocessing_factory.get_preprocessing`): `get_preprocessing('vgg', is_training)` returns
`fn(image, height, width, **kwargs)`; `default_preprocessing(net_name)` names a net's default.
"""
import functools

import numpy as np
import tensorflow as tf

from tfmodels.data.preprocessing import cifarnet as cifarnet_preprocessing
from tfmodels.data.preprocessing import inception as inception_preprocessing
from tfmodels.data.preprocessing import lenet as lenet_preprocessing
from tfmodels.data.preprocessing import vgg as vgg_preprocessing

# Salts keep the random streams for shuffling and augmentation independent for one user seed.
SHUFFLE_SALT = 0x5EED
AUGMENT_SALT = 0xA11
SYNTHETIC_SALT = 0x5F7


def derive_seed(seed, salt, counter):
    """A stateless-RNG seed (int64 [2]) for stream `salt` at position `counter`.

    Args:
      seed: the user's integer seed (Python int or int64 scalar tensor).
      salt: an integer naming the random stream (e.g. `AUGMENT_SALT`).
      counter: int64 scalar (an epoch or a global step).

    Returns:
      int64 tensor [2] for `tf.random.stateless_*` and `index_shuffle`.
    """
    base = tf.stack([tf.cast(seed, tf.int64), tf.cast(salt, tf.int64)])
    return tf.random.experimental.stateless_fold_in(base, tf.cast(counter, tf.int64))


def normalize(pixels, *, pixel_max, mean, std):
    """Scales raw pixels to float32 and standardises per channel.

    Args:
      pixels: [..., C] integer or float tensor of raw pixel values in [0, pixel_max].
      pixel_max: the raw value that maps to 1.0 (255, or 16 for digits).
      mean, std: per-channel sequences (length C or 1) applied after scaling to [0, 1].

    Returns:
      float32 tensor `(pixels / pixel_max - mean) / std`, same shape as `pixels`, computed as
      one multiply-add `pixels * scale + bias` (equal up to float rounding).
    """
    mean, std = np.asarray(mean, np.float64), np.asarray(std, np.float64)
    scale = tf.constant(1.0 / (float(pixel_max) * std), tf.float32)
    bias = tf.constant(-mean / std, tf.float32)
    return tf.cast(pixels, tf.float32) * scale + bias


def augmentation_draws(seed, step, global_batch_size, *, padding, flip):
    """Random crop offsets and flips for every example of one global batch.

    Args:
      seed: the user's integer seed.
      step: global step (int64 scalar); each step gets fresh, reproducible draws.
      global_batch_size: rows to draw (replicas slice their own rows out of them).
      padding: crop offsets are uniform in [0, 2 * padding] per axis.
      flip: when False no example is flipped.

    Returns:
      (offsets int32 [global_batch_size, 2] as (row, col), flips bool [global_batch_size]).
    """
    step_seed = derive_seed(seed, AUGMENT_SALT, step)
    offsets = tf.random.stateless_uniform([global_batch_size, 2], seed=step_seed, minval=0,
                                          maxval=2 * padding + 1, dtype=tf.int32)
    if not flip:
        return offsets, tf.zeros([global_batch_size], tf.bool)
    flip_seed = tf.random.experimental.stateless_fold_in(step_seed, 1)
    coins = tf.random.stateless_uniform([global_batch_size], seed=flip_seed, minval=0, maxval=2,
                                        dtype=tf.int32)
    return offsets, tf.equal(coins, 1)


def replica_draws(seed, step, global_batch_size, replica, per_replica_batch_size, *, padding,
                  flip):
    """Rows `[replica * B, (replica + 1) * B)` of `augmentation_draws` for one global step.

    Returns:
      (offsets int32 [B, 2], flips bool [B]) for replica `replica` (global index) with
      `B = per_replica_batch_size`.
    """
    offsets, flips = augmentation_draws(seed, step, global_batch_size, padding=padding, flip=flip)
    start = replica * per_replica_batch_size
    rows = slice(start, start + per_replica_batch_size)
    return offsets[rows], flips[rows]


def crop_and_flip(images, offsets, flips, *, padding):
    """Zero-pads by `padding`, crops H×W at `offsets`, then flips left-right where `flips`.

    Implemented as two batched gathers (rows, then columns with the flip folded into the column
    indices), so a whole batch costs two ops whatever the batch size.

    Args:
      images: [B, H, W, C] tensor of any dtype.
      offsets: int32 [B, 2], (row, col) of the crop window in the padded image, each in
        [0, 2 * padding].
      flips: bool [B]; True mirrors that cropped image left-right.
      padding: non-negative int.

    Returns:
      Tensor with the shape and dtype of `images`:
      `out[b, y, x] = padded[b, offsets[b,0] + y, offsets[b,1] + (W-1-x if flips[b] else x)]`.
    """
    images = tf.convert_to_tensor(images)
    height, width = images.shape[1], images.shape[2]
    padded = tf.pad(images, [[0, 0], [padding, padding], [padding, padding], [0, 0]])
    offsets = tf.cast(offsets, tf.int32)
    rows = offsets[:, :1] + tf.range(height)[None, :]
    forward = tf.range(width)[None, :]
    cols = offsets[:, 1:] + tf.where(flips[:, None], width - 1 - forward, forward)
    out = tf.gather(padded, rows, axis=1, batch_dims=1)      # [B, H, W + 2p, C]
    return tf.gather(out, cols, axis=2, batch_dims=1)        # [B, H, W, C]


def resize_batch(pixels, size):
    """Bilinear resize of a batch [B, H, W, C] to `size` (h, w): float32 [B, h, w, C].

    TF2's `tf.image.resize` (half-pixel centres, no antialiasing): the resize `--image_size`
    applies to a fixed-size dataset normalised by its own statistics (digits 8x8 -> 28x28).
    """
    return tf.image.resize(tf.cast(pixels, tf.float32), size, method="bilinear")


def preprocess_batch(pixels, info, *, offsets=None, flips=None, size=None):
    """Raw pixels of one batch -> float32 network input, augmented when draws are given.

    Runs as one XLA-compiled function: fusing cast, crop/flip gathers and the multiply-add is
    ~4x faster on CPU than the separate ops (bench/input_pipeline.py), and works eagerly and
    inside `tf.data` maps.

    Args:
      pixels: [B, H, W, C] raw pixels (uint8, or 0..16 for digits).
      info: a `DatasetInfo` (pixel_max, mean, std, crop_padding).
      offsets, flips: from `augmentation_draws` (rows for this batch), or None for no
        augmentation (evaluation).
      size: (h, w) to resize the batch to first (`resize_batch`), or None to keep H x W.

    Returns:
      float32 [B, H, W, C] (or [B, h, w, C]).
    """
    augment = offsets is not None
    fn = _compiled(float(info.pixel_max), tuple(info.mean), tuple(info.std),
                   int(info.crop_padding), augment, tuple(size) if size else None)
    return fn(pixels, offsets, flips) if augment else fn(pixels)


@functools.lru_cache(maxsize=None)
def _compiled(pixel_max, mean, std, padding, augment, size=None):
    """One jit-compiled preprocessing function per dataset normalisation, augmentation and
    output size."""
    def resized(pixels):
        return pixels if size is None else resize_batch(pixels, size)

    def with_augmentation(pixels, offsets, flips):
        cropped = crop_and_flip(resized(pixels), offsets, flips, padding=padding)
        return normalize(cropped, pixel_max=pixel_max, mean=mean, std=std)

    def without(pixels):
        return normalize(resized(pixels), pixel_max=pixel_max, mean=mean, std=std)

    return tf.function(with_augmentation if augment else without, jit_compile=True,
                       autograph=False)


# Per-net preprocessing (tf-slim's preprocessing_factory): name -> preprocess_image function.
PREPROCESSING_FNS = {
    "cifarnet": cifarnet_preprocessing.preprocess_image,
    "inception": inception_preprocessing.preprocess_image,
    "lenet": lenet_preprocessing.preprocess_image,
    "vgg": vgg_preprocessing.preprocess_image,
}

# A net's default preprocessing. slim's own nets as slim's factory mapped them (ResNet v1 was
# trained with VGG's preprocessing); the nets slim did not have take the preprocessing of the
# images they were designed for: 32x32 CIFAR nets CifarNet's, 28x28 / 8x8 grey-digit nets
# LeNet's (the one without augmentation).
NET_PREPROCESSING = {
    "cifarnet": "cifarnet", "resnet20": "cifarnet", "resnet56": "cifarnet",
    "two_layer_net": "cifarnet",
    "lenet": "lenet", "lenet_pp": "lenet", "softmax_regression": "lenet",
    "ufldl_cnn": "lenet", "small_cnn": "lenet",
    "vgg_a": "vgg", "vgg_16": "vgg", "vgg_19": "vgg",
    "resnet_v1_50": "vgg", "resnet_v1_101": "vgg", "resnet_v1_152": "vgg",
    "resnet_v1_200": "vgg",
    # slim's factory maps resnet_v2 to 'vgg', but its released resnet_v2 checkpoints were
    # trained with Inception preprocessing at 299 (slim's README): that is what they need.
    "resnet_v2_50": "inception", "resnet_v2_101": "inception", "resnet_v2_152": "inception",
    "resnet_v2_200": "inception",
    "mobilenet_v1_075": "inception", "mobilenet_v1_050": "inception",
    "mobilenet_v1_025": "inception", "mobilenet_v2": "inception", "mobilenet_v2_140": "inception",
    # Vision Transformers take inputs scaled to [-1, 1] with Inception-style crops (as the
    # ViT and DeiT recipes).
    "vit_tiny": "inception", "vit_small": "inception",
    "inception_v1": "inception", "inception_v2": "inception", "inception_v3": "inception",
    # slim's factory has no entry for AlexNet / OverFeat (its training script then needs
    # --preprocessing_name): VGG's, the mean-subtracted RGB these nets were trained on.
    "alexnet_v2": "vgg", "overfeat": "vgg",
    # slim's nets without a tfmodels port yet, kept so ported checkpoints find theirs.
    "inception_v4": "inception", "inception_resnet_v2": "inception",
    "mobilenet_v1": "inception",
}


def get_preprocessing(name, is_training=False):
    """A per-image preprocessing function, as slim's `preprocessing_factory.get_preprocessing`.

        fn = get_preprocessing("vgg", is_training=True)
        image = fn(uint8_image, 224, 224, seed=seed)   # float32 [224, 224, 3]

    Args:
      name: one of `PREPROCESSING_FNS` ('cifarnet', 'inception', 'lenet', 'vgg'); a net's
        default is `default_preprocessing(net_name)`.
      is_training: True for the training (random) transform, False for evaluation.

    Returns:
      `fn(image, height, width, **kwargs) -> float32 [height, width, C]` for one image
      [H, W, C] of any size; kwargs go to the module's `preprocess_image` (e.g. `seed`, an
      int64 [2] stateless seed that makes training output a pure function of the image and
      the seed).

    Raises:
      ValueError: unknown name (the message lists the valid ones) or non-bool is_training.
    """
    if not isinstance(name, str) or name not in PREPROCESSING_FNS:
        hint = (f" (the default for net {name!r} is {NET_PREPROCESSING[name]!r})"
                if isinstance(name, str) and name in NET_PREPROCESSING else "")
        raise ValueError(f"unknown preprocessing {name!r}{hint}; valid names: "
                         f"{', '.join(sorted(PREPROCESSING_FNS))}")
    if not isinstance(is_training, bool):
        raise ValueError(f"is_training={is_training!r} must be True or False")
    preprocess_image = PREPROCESSING_FNS[name]

    def preprocessing_fn(image, height, width, **kwargs):
        return preprocess_image(image, height, width, is_training=is_training, **kwargs)

    return preprocessing_fn


def default_preprocessing(net_name):
    """The preprocessing name a net uses by default (slim's factory map; see NET_PREPROCESSING).

    Raises:
      ValueError: a net without a default; the message lists the known nets.
    """
    if not isinstance(net_name, str) or net_name not in NET_PREPROCESSING:
        raise ValueError(f"no default preprocessing for net {net_name!r}; known nets: "
                         f"{', '.join(sorted(NET_PREPROCESSING))}")
    return NET_PREPROCESSING[net_name]
