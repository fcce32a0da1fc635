"""Dataset registry: names, shapes, classes, split sizes, the digits split and the offline error."""
import re

import numpy as np
import pytest

from tfmodels import data
from tests import fake_tfds

FAKE_SIZES = {"mnist": {"train": 130, "test": 57}, "cifar10": {"train": 90, "test": 41},
              "cifar100": {"train": 20, "test": 10}}


@pytest.fixture
def fake_tfds_dir(tmp_path):
    """mnist / cifar10 / cifar100 'prepared' in tmp_path with small splits (no network)."""
    with fake_tfds.fake_prepared(FAKE_SIZES, tmp_path):
        yield str(tmp_path)


@pytest.fixture
def no_download(monkeypatch):
    """Any tfds download attempt fails the test at once (offline it would retry ~205 s)."""
    import tensorflow_datasets as tfds

    def refuse(*args, **kwargs):
        raise AssertionError("tfds tried to download")
    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", refuse)


def test_digits_split_is_fixed_stratified_and_complete():
    from sklearn.datasets import load_digits

    info = data.get_dataset_info("digits")
    assert (info.image_shape, info.num_classes) == ((8, 8, 1), 10)
    assert info.splits == {"train": 1438, "test": 359}
    assert (info.train_split, info.eval_split) == ("train", "test")
    train, test = data.load_arrays(info, "train"), data.load_arrays(info, "test")
    digits = load_digits()
    per_class = np.bincount(digits.target)
    np.testing.assert_array_equal(np.bincount(test[1]), np.round(0.2 * per_class))
    # Together the splits are exactly sklearn's 1,797 examples (as a multiset of rows).
    rows = lambda x, y: sorted(map(bytes, np.concatenate(
        [x.reshape(len(x), -1), y[:, None].astype(np.uint8)], axis=1)))
    both = (np.concatenate([train[0], test[0]]), np.concatenate([train[1], test[1]]))
    assert rows(*both) == rows(digits.images.astype(np.uint8), digits.target)
    assert train[0].dtype == np.uint8 and train[0].max() == 16 and train[0].min() == 0
    assert test[1].dtype == np.int32


def test_names_and_unknown_name():
    names = data.list_datasets()
    assert {"digits", "mnist", "fashion_mnist", "cifar10", "cifar100", "tfds:NAME",
            "synthetic"} <= set(names)
    assert tuple(names) == data.DATASET_NAMES
    with pytest.raises(ValueError, match=r"--dataset=imagenette.*digits.*cifar100.*synthetic"):
        data.get_dataset_info("imagenette")
    with pytest.raises(ValueError, match="must be a string"):
        data.get_dataset_info(None)


@pytest.mark.parametrize("name,shape,classes,splits", [
    ("synthetic", (28, 28, 1), 10, {"train": 60000, "test": 10000}),
    ("synthetic:32x32x3:100", (32, 32, 3), 100, {"train": 60000, "test": 10000}),
    ("synthetic:224x224x3:1000:1281167:50000", (224, 224, 3), 1000,
     {"train": 1281167, "test": 50000}),
])
def test_synthetic_specs(name, shape, classes, splits):
    info = data.get_dataset_info(name)
    assert (info.image_shape, info.num_classes, info.splits) == (shape, classes, splits)


@pytest.mark.parametrize("name", ["synthetic:32x32:10", "synthetic:32x32x3:ten",
                                  "synthetic:0x32x3:10", "synthetic:1x1x1:1:1:1:1"])
def test_bad_synthetic_specs(name):
    with pytest.raises(ValueError, match=f"--dataset={re.escape(name)}"):
        data.get_dataset_info(name)


def test_split_not_in_dataset():
    info = data.get_dataset_info("digits")
    with pytest.raises(ValueError, match=r"--split=validation.*'digits'.*\['test', 'train'\]"):
        data.load_arrays(info, "validation")


def test_missing_tfds_dataset_fails_fast_with_instructions(tmp_path, no_download):
    with pytest.raises(data.DatasetUnavailableError) as raised:
        data.get_dataset_info("cifar10", data_dir=str(tmp_path))
    message = str(raised.value)
    assert "'cifar10'" in message and str(tmp_path) in message
    assert "download_and_prepare" in message and "--data_dir" in message
    assert raised.value.__context__ is None          # no chained tfds traceback
    # Nothing half-made left behind.
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="no dataset named 'no_such_dataset'"):
        data.get_dataset_info("tfds:no_such_dataset", data_dir=str(tmp_path))


def test_the_prepare_command_runs_as_printed(tmp_path, no_download, monkeypatch):
    """The message's `python -c '...'` is split as a shell splits it and its code run, with
    tfds's download replaced by a recorder: it prepares the dataset asked for, in the dir."""
    import shlex

    import tensorflow_datasets as tfds

    with pytest.raises(data.DatasetUnavailableError) as raised:
        data.get_dataset_info("cifar10", data_dir=str(tmp_path / "my dir"))
    message = str(raised.value)
    command = shlex.split(message[message.index("python -c "):message.index(" (or tfds build")])
    assert command[:2] == ["python", "-c"] and len(command) == 3
    prepared = []
    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare",
                        lambda self, *a, **k: prepared.append((self.name, self.data_dir)))
    exec(compile(command[2], "<printed command>", "exec"), {})
    assert len(prepared) == 1 and prepared[0][0] == "cifar10"
    assert prepared[0][1].startswith(str(tmp_path / "my dir" / "cifar10"))


@pytest.mark.parametrize("name,tfds_name,shape,classes", [
    ("mnist", "mnist", (28, 28, 1), 10), ("cifar10", "cifar10", (32, 32, 3), 10),
    ("tfds:cifar100", "cifar100", (32, 32, 3), 100)])
def test_tfds_info_and_arrays(fake_tfds_dir, name, tfds_name, shape, classes):
    info = data.get_dataset_info(name, data_dir=fake_tfds_dir)
    assert (info.image_shape, info.num_classes) == (shape, classes)
    assert info.splits == FAKE_SIZES[tfds_name]
    for split, size in info.splits.items():
        pixels, labels = data.load_arrays(info, split)
        want_pixels, want_labels = fake_tfds.fake_examples(tfds_name, split, size, shape, classes)
        np.testing.assert_array_equal(pixels, want_pixels)
        np.testing.assert_array_equal(labels, want_labels)
        assert pixels.dtype == np.uint8 and labels.dtype == np.int32


def test_per_dataset_normalisation(fake_tfds_dir):
    cifar = data.get_dataset_info("cifar10", data_dir=fake_tfds_dir)
    np.testing.assert_allclose(cifar.mean, (0.4914, 0.4822, 0.4465))
    assert (cifar.crop_padding, cifar.flip) == (4, True)
    mnist = data.get_dataset_info("mnist", data_dir=fake_tfds_dir)
    assert (mnist.mean, mnist.std, mnist.pixel_max, mnist.flip) == ((0.0,), (1.0,), 255.0, False)
    generic = data.get_dataset_info("tfds:cifar10", data_dir=fake_tfds_dir)
    assert generic.mean == (0.0, 0.0, 0.0)          # unknown datasets: plain [0, 1] scaling
