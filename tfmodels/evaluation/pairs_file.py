"""Verification pairs from a file in LFW's `pairs.txt` format, over a folder of images (or
tfds's `lfw`: `pairs_tfds`).

    10	300                         # optional header: folds, pairs of each kind per fold
    Abel_Pacheco	1	4              # same identity: name, image number, image number
    Abdel_Madi_Shabneh	1	Dean_Barker	1   # different: name, number, name, number

Image n of `name` is `<folder>/<name>/<name>_<nnnn>.<ext>` (4 digits, as LFW names its files;
jpg, jpeg or png). The pairs keep the file's order, so LFW's 10 sets are the protocol's folds.
Images are decoded, resized (bilinear) to the model's input size and normalised as the run's
data was: `preprocess_batch` with the dataset's pixel scale, mean and std, or the run's per-net
preprocessing (`vgg`, `inception`, ...). Faces should already be aligned and cropped as the
training images were (e.g. 112x112 crops from the five landmarks for MS1M-style models).
"""
import os

import numpy as np
import tensorflow as tf

from tfmodels.data import preprocessing as data_preprocessing
from tfmodels.options import UsageError

_EXTENSIONS = ("jpg", "jpeg", "png")


def read_pairs(path):
    """[(name1, n1, name2, n2)] and same [P] bool from a pairs file.

    Raises:
      UsageError: the file does not read, a line is neither kind (names the file and line), or
        it holds no pairs.
    """
    pairs = []
    try:
        with open(path) as f:
            lines = list(f)
    except (OSError, UnicodeDecodeError) as err:
        raise UsageError(f"--pairs_file={path} cannot be read as text: {err}",
                         "pairs_file") from None
    for number, line in enumerate(lines, 1):
        fields = line.split()
        if not fields or (number == 1 and all(x.isdigit() for x in fields)):
            continue
        try:
            if len(fields) == 3:
                pairs.append((fields[0], int(fields[1]), fields[0], int(fields[2])))
            elif len(fields) == 4:
                pairs.append((fields[0], int(fields[1]), fields[2], int(fields[3])))
            else:
                raise ValueError
        except ValueError:  # int() of a non-number, or the wrong number of fields
            raise UsageError(f"--pairs_file={path} line {number}: {line.strip()!r} is neither "
                             "'name n1 n2' nor 'name1 n1 name2 n2'", "pairs_file") from None
    if not pairs:
        raise UsageError(f"--pairs_file={path} holds no pairs", "pairs_file")
    same = np.array([a == c for a, _, c, _ in pairs])
    return pairs, same


def image_path(folder, name, number):
    """The file of image `number` of `name` in `folder`; FileNotFoundError naming it."""
    stem = os.path.join(folder, name, f"{name}_{number:04d}")
    for ext in _EXTENSIONS:
        if os.path.isfile(f"{stem}.{ext}"):
            return f"{stem}.{ext}"
    raise FileNotFoundError(f"--pairs_images={folder} has no image {number} of {name!r} "
                            f"({stem}.{'|'.join(_EXTENSIONS)})")


def to_input(image, image_shape, info, preprocessing=None):
    """One decoded uint8 image [h, w, c] as network input float32 [H, W, C] (`image_shape`):
    an RGB image becomes grey for a one-channel net (and a grey one RGB for a three)."""
    height, width, channels = image_shape
    image = tf.convert_to_tensor(image)
    if image.shape[-1] == 3 and channels == 1:
        image = tf.image.rgb_to_grayscale(image)
    elif image.shape[-1] == 1 and channels == 3:
        image = tf.image.grayscale_to_rgb(image)
    if preprocessing:
        fn = data_preprocessing.get_preprocessing(preprocessing, is_training=False)
        return fn(image, height, width)
    resized = data_preprocessing.resize_batch(tf.cast(image[None], tf.float32), (height, width))
    # Scaled as the dataset's raw pixels (digits: 0..16) before its normalisation.
    scaled = resized * (info.pixel_max / 255.0)
    return data_preprocessing.normalize(scaled, pixel_max=info.pixel_max, mean=info.mean,
                                        std=info.std)[0]


def load_images(paths, image_shape, info, preprocessing=None):
    """The images at `paths` as network input float32 [N, H, W, C] (`image_shape`)."""
    return tf.stack([to_input(tf.io.decode_image(tf.io.read_file(path), channels=image_shape[2],
                                                 expand_animations=False),
                              image_shape, info, preprocessing) for path in paths])


def pair_embeddings(embed, pairs, folder, image_shape, info, preprocessing=None,
                    batch_size=256, load=None):
    """(first [P, D], second [P, D]) embeddings of the pairs' images, each image once.

    `embed(images) -> embeddings` runs the model (with flip fusion when asked). The images are
    `folder`'s files, or `load(keys) -> {(name, number): uint8 image}` when given (a tfds
    dataset, `pairs_tfds`)."""
    keys = sorted({(a, i) for a, i, _, _ in pairs} | {(c, j) for _, _, c, j in pairs})
    stored = load(keys) if load is not None else None
    chunks = []
    for start in range(0, len(keys), batch_size):
        chunk = keys[start:start + batch_size]
        if stored is None:
            images = load_images([image_path(folder, *key) for key in chunk], image_shape,
                                 info, preprocessing)
        else:
            images = tf.stack([to_input(stored[key], image_shape, info, preprocessing)
                               for key in chunk])
        chunks.append(np.asarray(embed(images), np.float64))
    embeddings = np.concatenate(chunks)
    row = {key: k for k, key in enumerate(keys)}
    first = embeddings[[row[(a, i)] for a, i, _, _ in pairs]]
    second = embeddings[[row[(c, j)] for _, _, c, j in pairs]]
    return first, second
