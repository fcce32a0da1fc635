"""Batch preprocessing against NumPy references, eagerly and inside `tf.data.Dataset.map`."""
import numpy as np
import pytest
import tensorflow as tf

from tfmodels.data import preprocessing


def numpy_crop_and_flip(images, offsets, flips, padding):
    """Reference: np.pad, slice the window, mirror the columns."""
    padded = np.pad(images, [(0, 0), (padding, padding), (padding, padding), (0, 0)])
    height, width = images.shape[1:3]
    out = np.stack([padded[b, dy:dy + height, dx:dx + width] for b, (dy, dx) in enumerate(offsets)])
    out[flips] = out[flips][:, :, ::-1]
    return out


def run(fn, *args, in_map):
    """Calls fn eagerly, or inside ds.map (graph mode) on a one-element dataset."""
    if not in_map:
        return tf.nest.map_structure(lambda t: t.numpy(), fn(*args))
    ds = tf.data.Dataset.from_tensors(args).map(fn)
    return tf.nest.map_structure(lambda t: t.numpy(), next(iter(ds)))


@pytest.mark.parametrize("in_map", [False, True], ids=["eager", "ds.map"])
@pytest.mark.parametrize("padding,shape", [(4, (6, 32, 32, 3)), (1, (5, 8, 8, 1)),
                                           (2, (4, 7, 5, 2))])
def test_crop_and_flip_matches_numpy(rng, in_map, padding, shape):
    images = rng.integers(0, 256, shape, dtype=np.uint8)
    offsets = rng.integers(0, 2 * padding + 1, (shape[0], 2)).astype(np.int32)
    offsets[0] = 0                      # the window's corners are covered
    offsets[1] = 2 * padding
    flips = np.arange(shape[0]) % 2 == 1
    got = run(lambda x, o, f: preprocessing.crop_and_flip(x, o, f, padding=padding),
              images, offsets, flips, in_map=in_map)
    assert got.dtype == np.uint8 and got.shape == shape
    np.testing.assert_array_equal(got, numpy_crop_and_flip(images, offsets, flips, padding))


def test_centred_crop_without_flip_is_identity(rng):
    images = rng.integers(0, 256, (3, 8, 8, 1), dtype=np.uint8)
    out = preprocessing.crop_and_flip(images, np.full((3, 2), 2, np.int32), np.zeros(3, bool),
                                      padding=2)
    np.testing.assert_array_equal(out.numpy(), images)


@pytest.mark.parametrize("in_map", [False, True], ids=["eager", "ds.map"])
def test_normalize_matches_numpy(rng, in_map):
    pixels = rng.integers(0, 256, (4, 5, 5, 3), dtype=np.uint8)
    mean, std = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
    got = run(lambda x: preprocessing.normalize(x, pixel_max=255, mean=mean, std=std), pixels,
              in_map=in_map)
    want = (pixels / 255.0 - np.array(mean)) / np.array(std)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    digits = run(lambda x: preprocessing.normalize(x, pixel_max=16, mean=(0.0,), std=(1.0,)),
                 np.array([[0, 8, 16]], np.uint8), in_map=in_map)
    np.testing.assert_allclose(digits, [[0.0, 0.5, 1.0]], atol=1e-7)


@pytest.mark.parametrize("in_map", [False, True], ids=["eager", "ds.map"])
def test_augmentation_draws_are_reproducible_and_in_range(in_map):
    draw = lambda step: preprocessing.augmentation_draws(7, step, 512, padding=4, flip=True)
    (offsets, flips), (again, again_flips) = (run(draw, tf.constant(3, tf.int64), in_map=in_map)
                                              for _ in range(2))
    other, _ = run(draw, tf.constant(4, tf.int64), in_map=in_map)
    np.testing.assert_array_equal(offsets, again)
    np.testing.assert_array_equal(flips, again_flips)
    assert offsets.shape == (512, 2) and flips.shape == (512,) and flips.dtype == bool
    assert offsets.min() == 0 and offsets.max() == 8          # all of [0, 2p] is reachable
    assert len(np.unique(offsets)) == 9
    assert 0.4 < flips.mean() < 0.6                            # fair coin, 512 draws
    assert (offsets != other).any()                            # a new step, new draws
    _, no_flips = preprocessing.augmentation_draws(7, 3, 64, padding=4, flip=False)
    assert not no_flips.numpy().any()


def test_preprocess_batch_augments_only_with_draws(rng):
    from tfmodels.data import DatasetInfo

    info = DatasetInfo(name="x", image_shape=(6, 6, 1), num_classes=2, splits={},
                       crop_padding=2, mean=(0.5,), std=(0.25,))
    pixels = rng.integers(0, 256, (3, 6, 6, 1), dtype=np.uint8)
    plain = preprocessing.preprocess_batch(pixels, info).numpy()
    np.testing.assert_allclose(plain, (pixels / 255.0 - 0.5) / 0.25, rtol=1e-6, atol=1e-6)
    offsets = np.array([[0, 4], [2, 2], [4, 0]], np.int32)
    flips = np.array([True, False, True])
    augmented = preprocessing.preprocess_batch(pixels, info, offsets=offsets, flips=flips).numpy()
    want = (numpy_crop_and_flip(pixels, offsets, flips, 2) / 255.0 - 0.5) / 0.25
    np.testing.assert_allclose(augmented, want, rtol=1e-6, atol=1e-6)
