"""Per-net evaluation preprocessing against tf-slim's TF1 graph, and the registry.

The reference (tests/slim_preprocessing.py) is slim's `preprocess_for_eval` code with
`tf.compat.v1` ops in graph mode, run on scikit-learn's two sample photos and on crops of
them (portrait, odd sizes, smaller than the output), eagerly and inside `tf.data.Dataset.map`.
"""
import functools

import numpy as np
import pytest
import tensorflow as tf

from tests import slim_preprocessing as slim
from tests.slim_preprocessing import photos
from tfmodels.data import preprocessing
from tfmodels.nets import NETS

ATOL = 1e-5


REFERENCES = {"vgg": slim.vgg_eval, "inception": slim.inception_eval,
              "cifarnet": slim.cifarnet_eval, "lenet": slim.lenet_preprocess}


@functools.lru_cache(maxsize=None)
def reference(name, photo, height, width):
    return slim.run(REFERENCES[name], photos()[photo], height, width)


def ours(name, image, height, width, in_map, is_training=False, **kwargs):
    fn = preprocessing.get_preprocessing(name, is_training)
    if not in_map:
        return fn(image, height, width, **kwargs).numpy()
    # Unknown image size inside the map, as after decoding.
    ds = tf.data.Dataset.from_generator(lambda: iter([image]),
                                        output_signature=tf.TensorSpec([None, None, 3], tf.uint8))
    out = next(iter(ds.map(lambda x: fn(x, height, width, **kwargs))))
    return out.numpy()


@pytest.mark.parametrize("in_map", [False, True], ids=["eager", "ds.map"])
@pytest.mark.parametrize("photo", ["china", "flower", "portrait", "odd", "small"])
@pytest.mark.parametrize("name,height,width", [
    ("vgg", 224, 224), ("vgg", 224, 160), ("inception", 224, 224), ("inception", 299, 299),
    ("inception", 160, 224), ("cifarnet", 32, 32), ("lenet", 28, 28)])
def test_eval_matches_slim(name, height, width, photo, in_map):
    want = reference(name, photo, height, width)
    got = ours(name, photos()[photo], height, width, in_map)
    assert got.dtype == np.float32 and got.shape == (height, width, 3) == want.shape
    np.testing.assert_allclose(got, want, rtol=0, atol=ATOL)


def test_vgg_and_lenet_eval_are_bit_exact():
    # Same kernels on the same values: nothing to round differently.
    for photo in photos():
        for name, size in (("vgg", 224), ("lenet", 28)):
            np.testing.assert_array_equal(ours(name, photos()[photo], size, size, False),
                                          reference(name, photo, size, size))


def test_tf2_resize_is_not_slims():
    """The trap the exact resize avoids: TF2's half-pixel bilinear differs by grey levels."""
    image = photos()["china"]
    resized = tf.image.resize(image, [256, 384], method="bilinear")  # smaller side 256
    tf2_eval = (resized[16:240, 80:304] - tf.constant([123.68, 116.78, 103.94])).numpy()
    assert np.abs(tf2_eval - reference("vgg", "china", 224, 224)).max() > 5.0


def numpy_crop_or_pad(image, height, width):
    """Centred crop, then centred zero pad (extra row/column after)."""
    h, w = image.shape[:2]
    top, left = max((h - height) // 2, 0), max((w - width) // 2, 0)
    window = image[top:top + height, left:left + width].astype(np.float64)
    pad_top, pad_left = max((height - h) // 2, 0), max((width - w) // 2, 0)
    out = np.zeros((height, width, image.shape[2]))
    out[pad_top:pad_top + window.shape[0], pad_left:pad_left + window.shape[1]] = window
    return out


@pytest.mark.parametrize("in_map", [False, True], ids=["eager", "ds.map"])
@pytest.mark.parametrize("photo", ["odd", "small"])
@pytest.mark.parametrize("height,width", [(24, 40), (60, 45)])
def test_cifarnet_and_lenet_non_square_against_numpy(photo, height, width, in_map):
    image = photos()[photo]
    window = numpy_crop_or_pad(image, height, width)
    lenet = ours("lenet", image, height, width, in_map)
    np.testing.assert_allclose(lenet, (window - 128) / 128, rtol=0, atol=1e-6)
    cifarnet = ours("cifarnet", image, height, width, in_map)
    standardized = (window - window.mean()) / max(window.std(), 1 / np.sqrt(window.size))
    np.testing.assert_allclose(cifarnet, standardized, rtol=0, atol=ATOL)


def test_lenet_grey_digits_keep_one_channel():
    digit = np.arange(28 * 28, dtype=np.uint8).reshape(28, 28, 1)
    out = preprocessing.get_preprocessing("lenet", True)(digit, 28, 28).numpy()
    np.testing.assert_allclose(out, (digit - 128.0) / 128.0)


def test_get_preprocessing_registry():
    assert sorted(preprocessing.PREPROCESSING_FNS) == ["cifarnet", "inception", "lenet", "vgg"]
    with pytest.raises(ValueError, match=r"unknown preprocessing 'resnet'.*cifarnet, inception, "
                                         r"lenet, vgg"):
        preprocessing.get_preprocessing("resnet", False)
    with pytest.raises(ValueError, match=r"default for net 'vgg_16' is 'vgg'"):
        preprocessing.get_preprocessing("vgg_16", False)
    with pytest.raises(ValueError, match=r"is_training='yes' must be True or False"):
        preprocessing.get_preprocessing("vgg", "yes")


def test_default_preprocessing_covers_every_net():
    for net in NETS:
        assert preprocessing.default_preprocessing(net) in preprocessing.PREPROCESSING_FNS, net
    for net in ("vgg_a", "vgg_16", "vgg_19", "resnet_v1_50", "resnet_v1_101", "resnet_v1_152",
                "resnet_v1_200"):
        assert preprocessing.default_preprocessing(net) == "vgg"
    for net in ("resnet_v2_50", "resnet_v2_200", "mobilenet_v1", "mobilenet_v1_025",
                "mobilenet_v2", "mobilenet_v2_140"):
        assert preprocessing.default_preprocessing(net) == "inception"
    assert preprocessing.default_preprocessing("cifarnet") == "cifarnet"
    assert preprocessing.default_preprocessing("lenet") == "lenet"
    assert preprocessing.default_preprocessing("lenet_pp") == "lenet"
    for net in ("inception_v1", "inception_v2", "inception_v3"):  # slim's factory
        assert preprocessing.default_preprocessing(net) == "inception"
    for net in ("alexnet_v2", "overfeat"):  # not in slim's factory: mean-subtracted RGB
        assert preprocessing.default_preprocessing(net) == "vgg"
    with pytest.raises(ValueError, match=r"no default preprocessing for net 'alexnet'.*vgg_16"):
        preprocessing.default_preprocessing("alexnet")


@pytest.mark.parametrize("name", ["vgg", "inception", "cifarnet", "lenet"])
def test_bad_sizes_and_images(name):
    fn = preprocessing.get_preprocessing(name, True)
    image = photos()["odd"]
    with pytest.raises(ValueError, match=r"height=0 must be an int >= 1"):
        fn(image, 0, 32)
    with pytest.raises(ValueError, match=r"width=32.0 must be an int >= 1"):
        fn(image, 32, 32.0)
    with pytest.raises(ValueError, match=r"image must have shape \[height, width, channels\]"):
        fn(image[..., 0], 32, 32)


@pytest.mark.parametrize("name", ["vgg", "inception", "cifarnet"])
def test_bad_seed(name):
    fn = preprocessing.get_preprocessing(name, True)
    with pytest.raises(ValueError, match=r"seed=\[1, 2, 3\] must be None or an integer tensor "
                                         r"of shape \[2\]"):
        fn(photos()["odd"], 32, 32, seed=[1, 2, 3])
    with pytest.raises(ValueError, match=r"seed="):
        fn(photos()["odd"], 32, 32, seed=tf.constant([1.0, 2.0]))


def test_bad_module_arguments():
    image = photos()["odd"]
    with pytest.raises(ValueError, match=r"subtracts 3 channel means"):
        preprocessing.get_preprocessing("vgg", False)(image[..., :1], 224, 224)
    with pytest.raises(ValueError, match=r"resize_side_min=0 must be an int >= 1"):
        preprocessing.get_preprocessing("vgg", False)(image, 224, 224, resize_side_min=0)
    with pytest.raises(ValueError, match=r"resize_side_min=300 and resize_side_max=256"):
        preprocessing.get_preprocessing("vgg", True)(image, 224, 224, resize_side_min=300,
                                                     resize_side_max=256)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"crop size 300x300 is larger"):
        preprocessing.get_preprocessing("vgg", False)(image, 300, 300)
    with pytest.raises(ValueError, match=r"central_fraction=0.0 must be in \(0, 1\]"):
        preprocessing.get_preprocessing("inception", False)(image, 224, 224,
                                                            central_fraction=0.0)
    with pytest.raises(ValueError, match=r"needs RGB images"):
        preprocessing.get_preprocessing("inception", True)(image[..., :1], 224, 224)
    with pytest.raises(ValueError, match=r"padding=-1 must be an int >= 0"):
        preprocessing.get_preprocessing("cifarnet", True)(image, 32, 32, padding=-1)
