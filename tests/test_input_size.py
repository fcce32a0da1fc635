"""The input size and preprocessing a run resolves (`--image_size`, `--preprocessing`), and
fixed-size datasets resized or preprocessed per net in memory, against NumPy references."""
import numpy as np
import pytest
import tensorflow as tf

from tfmodels import data
from tests import fake_tfds
from tfmodels.data import preprocessing
from tfmodels.data.pipelines import transforms
from tfmodels.training import TrainConfig
from tfmodels.training.inputs import parse_image_size, resolve_input

DIGITS = data.get_dataset_info("digits")
VARIABLE = data.DatasetInfo(name="tfds:imagenette", image_shape=(None, None, 3), num_classes=10,
                            splits={"train": 100, "test": 20})
GREY = data.DatasetInfo(name="tfds:grey", image_shape=(None, None, 1), num_classes=10,
                        splits={"train": 100, "test": 20})


@pytest.mark.parametrize("model, info, image_size, chosen, want", [
    ("small_cnn", DIGITS, None, None, ((8, 8, 1), None)),          # never resized unless asked
    ("lenet", DIGITS, 28, None, ((28, 28, 1), None)),
    ("lenet", DIGITS, (28, 20), "lenet", ((28, 20, 1), "lenet")),
    ("vgg_16", VARIABLE, None, None, ((224, 224, 3), "vgg")),      # slim's defaults
    ("resnet_v1_50", VARIABLE, None, None, ((224, 224, 3), "vgg")),
    ("resnet_v1_50", VARIABLE, 160, "inception", ((160, 160, 3), "inception")),
    ("cifarnet", VARIABLE, None, None, ((32, 32, 3), "cifarnet")),
    ("lenet", GREY, None, None, ((28, 28, 1), "lenet")),
])
def test_resolve_input(model, info, image_size, chosen, want):
    assert resolve_input(model, info, image_size, chosen) == want
    resolved = TrainConfig(model=model, image_size=image_size, preprocessing=chosen,
                           train_steps=1, global_batch_size=2).resolve(info, 1)
    assert (resolved.image_shape, resolved.preprocessing) == want
    saved = resolved.to_json()
    assert saved["image_shape"] == list(want[0]) and saved["preprocessing"] == want[1]


@pytest.mark.parametrize("model, info, image_size, chosen, message", [
    ("vgg_16", DIGITS, None, None,
     "--model=vgg_16 cannot take the 8x8 images of dataset 'digits': vgg_16 takes height and "
     "width in [224, 255]; pass --image_size=224 to resize the images to 224x224"),
    ("vgg_16", VARIABLE, 300, None,
     "--model=vgg_16 cannot take --image_size=300x300: vgg_16 takes height and width in "
     "[224, 255]; pass --image_size=224"),
    ("cifarnet", DIGITS, (2, 8), None,
     "--model=cifarnet cannot take --image_size=2x8: cifarnet takes height and width >= 4; "
     "pass --image_size=32"),
    ("vgg_16", GREY, None, None, "--preprocessing=vgg works on RGB images; dataset 'tfds:grey' "
                                 "has 1 channel"),
    ("lenet", DIGITS, None, "vgg", "--preprocessing=vgg works on RGB images"),
])
def test_refusals_name_what_to_pass(model, info, image_size, chosen, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("[", r"\[")):
        resolve_input(model, info, image_size, chosen)


def test_a_net_of_ones_own_needs_its_preprocessing_named(tmp_path, monkeypatch):
    (tmp_path / "mynet.py").write_text(
        "from tfmodels.slim import scopes\n"
        "def net(images, num_classes, is_training=None, scope='Mine'):\n"
        "    x = scopes.flatten(images)\n"
        "    return scopes.fully_connected(x, num_classes, activation_fn=None), {'embedding': x}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ValueError, match="gives no default_image_size; pass --image_size=HxW"):
        resolve_input("mynet:net", VARIABLE)
    with pytest.raises(ValueError, match="--model=mynet:net has no default one; pass "
                                         "--preprocessing=cifarnet|inception|lenet|vgg"):
        resolve_input("mynet:net", VARIABLE, 32)
    assert resolve_input("mynet:net", VARIABLE, 32, "inception") == ((32, 32, 3), "inception")
    assert resolve_input("mynet:net", DIGITS) == ((8, 8, 1), None)


@pytest.mark.parametrize("text, want", [(None, None), ("", None), ("224", 224),
                                        ("240x320", (240, 320)), ("28X28", (28, 28))])
def test_parse_image_size(text, want):
    assert parse_image_size(text) == want


@pytest.mark.parametrize("text", ["0", "12x", "x5", "2x3x4", "big", "-3", "1.5"])
def test_parse_image_size_refuses(text):
    with pytest.raises(ValueError, match=f"--image_size='{text}' must be N .square. or HxW"):
        parse_image_size(text)


@pytest.mark.parametrize("kwargs, match", [
    (dict(image_size=0), "image_size=0 must be None, a positive int or"),
    (dict(image_size=(3, 4, 5)), r"image_size=\(3, 4, 5\) must be"),
    (dict(preprocessing="resnet"), "--preprocessing=resnet is not one of: cifarnet, inception"),
    (dict(skip_undecodable=1), "skip_undecodable=1 must be True or False"),
])
def test_validate(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**kwargs).validate()


def bilinear_half_pixel(images, size):
    """NumPy reference of TF2's bilinear resize (half-pixel centres), [B, H, W, C] float64."""
    out = images.astype(np.float64)
    for axis, new in ((1, size[0]), (2, size[1])):
        old = out.shape[axis]
        source = np.clip((np.arange(new) + 0.5) * old / new - 0.5, 0, old - 1)
        low = np.floor(source).astype(int)
        high = np.minimum(low + 1, old - 1)
        frac = (source - low).reshape([-1 if a == axis else 1 for a in range(4)])
        out = np.take(out, low, axis) * (1 - frac) + np.take(out, high, axis) * frac
    return out


def numpy_batches(ds):
    return [{k: v.numpy() for k, v in b.items()} for b in ds]


def test_digits_resized_for_lenet_evaluate_exactly_once():
    pixels, labels = data.load_arrays(DIGITS, "test")
    got = numpy_batches(data.make_dataset("digits", "test", global_batch_size=100,
                                          training=False, image_size=28))
    merged = {k: np.concatenate([b[k] for b in got]) for k in got[0]}
    real = merged["mask"] == 1
    assert merged["image"].shape == (400, 28, 28, 1) and real.sum() == 359
    np.testing.assert_array_equal(merged["label"][real], labels)
    np.testing.assert_allclose(merged["image"][real], bilinear_half_pixel(pixels, (28, 28)) / 16,
                               rtol=0, atol=1e-5)


def test_digits_at_their_own_size_are_the_default_pipeline():
    kwargs = dict(global_batch_size=64, training=True, augment=True, seed=3)
    plain = numpy_batches(data.make_dataset("digits", "train", **kwargs).take(3))
    same = numpy_batches(data.make_dataset("digits", "train", image_size=8, **kwargs).take(3))
    for a, b in zip(plain, same):
        np.testing.assert_array_equal(a["image"], b["image"])


def test_resized_training_augments_the_resized_images():
    kwargs = dict(global_batch_size=32, training=True, seed=3, image_size=(16, 12))
    plain = numpy_batches(data.make_dataset("digits", "train", **kwargs).take(2))
    augmented = numpy_batches(data.make_dataset("digits", "train", augment=True,
                                                **kwargs).take(2))
    for step, (p, a) in enumerate(zip(plain, augmented)):
        np.testing.assert_array_equal(p["label"], a["label"])  # same examples, same order
        assert a["image"].shape == (32, 16, 12, 1)
        offsets, flips = preprocessing.augmentation_draws(3, step, 32, padding=1, flip=False)
        padded = np.pad(p["image"], [(0, 0), (1, 1), (1, 1), (0, 0)])
        want = np.stack([padded[i, dy:dy + 16, dx:dx + 12]
                         for i, (dy, dx) in enumerate(offsets.numpy())])
        np.testing.assert_allclose(a["image"], want, atol=1e-6)


@pytest.fixture
def cifar_dir(tmp_path):
    with fake_tfds.fake_prepared({"cifar10": {"train": 40, "test": 11}}, tmp_path):
        yield str(tmp_path)


def test_per_net_preprocessing_of_a_fixed_size_dataset(cifar_dir):
    pixels, labels = fake_tfds.fake_examples("cifar10", "test", 11, (32, 32, 3), 10)
    got = numpy_batches(data.make_dataset("cifar10", "test", global_batch_size=4,
                                          training=False, data_dir=cifar_dir,
                                          preprocessing="cifarnet"))
    merged = {k: np.concatenate([b[k] for b in got]) for k in got[0]}
    real = merged["mask"] == 1
    np.testing.assert_array_equal(merged["label"][real], labels)
    np.testing.assert_allclose(merged["image"][real], standardized(pixels), atol=2e-5)


def standardized(pixels):
    """slim's per_image_standardization in NumPy: (x - mean) / max(std, 1 / sqrt(N))."""
    x = pixels.astype(np.float64).reshape(len(pixels), -1)
    std = np.maximum(x.std(1, keepdims=True), 1 / np.sqrt(x.shape[1]))
    return ((x - x.mean(1, keepdims=True)) / std).reshape(pixels.shape)


def test_per_net_training_is_a_function_of_seed_step_and_row(cifar_dir):
    kwargs = dict(global_batch_size=6, training=True, seed=2, data_dir=cifar_dir,
                  preprocessing="cifarnet")
    plain = numpy_batches(data.make_dataset("cifar10", "train", **kwargs).take(2))
    augmented = numpy_batches(data.make_dataset("cifar10", "train", augment=True,
                                                **kwargs).take(2))
    pixels, _ = fake_tfds.fake_examples("cifar10", "train", 40, (32, 32, 3), 10)
    references = standardized(pixels)
    train_fn = preprocessing.get_preprocessing("cifarnet", is_training=True)
    for step, (p, a) in enumerate(zip(plain, augmented)):
        for row in range(6):
            # Without augmentation training uses the evaluation transform: find the example.
            errors = np.abs(references - p["image"][row]).max(axis=(1, 2, 3))
            index = int(np.argmin(errors))
            assert errors[index] < 2e-5
            want = train_fn(pixels[index], 32, 32, seed=transforms.example_seed(2, step, row))
            np.testing.assert_allclose(a["image"][row], want.numpy(), atol=1e-5)
    # Two replicas fed by two pipelines make up the one-device global batch.
    halves = [numpy_batches(data.make_dataset(
        "cifar10", "train", augment=True,
        input_context=tf.distribute.InputContext(2, p, 2), **kwargs).take(2)) for p in range(2)]
    for step, batch in enumerate(augmented):
        np.testing.assert_array_equal(
            np.concatenate([halves[0][step]["image"], halves[1][step]["image"]]), batch["image"])

