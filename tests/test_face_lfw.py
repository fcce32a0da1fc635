"""Verification pairs read from tfds's `lfw` (`--pairs_images=tfds:lfw`): tfds's own `lfw`
builder prepared over a small folder laid out as LFW's (persons of held-out digits, each image a
digit enlarged to 250x250), so the numbers pairs.txt gives are checked against the files."""
import os
from unittest import mock

import numpy as np
import pytest
from PIL import Image
import tensorflow as tf
from sklearn.metrics import roc_auc_score

from tfmodels import data, training
from tfmodels import model_dir as model_dir_lib
from tfmodels.evaluation import evaluator, open_set, pairs_file, pairs_tfds
from tfmodels.options import UsageError

tfds = pytest.importorskip("tensorflow_datasets")

PERSONS = {7: "Seven_Sevens", 8: "Eight_Eights", 9: "Nine_Nines"}
IMAGES = 6  # per person


def _enlarged(digit):
    """An 8x8 digit (0..16) as a grey 250x250x3 uint8 image of 8x8 constant blocks."""
    grey = np.round(digit.astype(np.float64) * 255 / 16).astype(np.uint8)
    blocks = (np.arange(250) * 8) // 250
    return np.repeat(grey[blocks][:, blocks][:, :, None], 3, axis=2)


@pytest.fixture(scope="module")
def lfw(tmp_path_factory):
    """(tfds data_dir, extracted folder of <name>/<name>_<nnnn>.jpg) of a prepared `lfw`."""
    root = tmp_path_factory.mktemp("lfw")
    pixels, labels = data.load_arrays(data.get_dataset_info("digits"), "test")
    folder = root / "extracted" / "lfw"
    for digit, name in PERSONS.items():
        os.makedirs(folder / name)
        for n, row in enumerate(np.flatnonzero(labels == digit)[:IMAGES], 1):
            Image.fromarray(_enlarged(pixels[row, :, :, 0])).save(
                folder / name / f"{name}_{n:04d}.jpg", quality=100)
    with mock.patch.object(tfds.download.DownloadManager, "download_and_extract",
                           return_value=str(root / "extracted")):
        tfds.builder("lfw", data_dir=str(root / "tfds")).download_and_prepare()
    return str(root / "tfds"), folder


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("face") / "run")
    training.train(training.TrainConfig(
        model="lenet_pp", train_classes="0-6", margin="arcface", margin_scale=8.0,
        margin_m2=0.2, label_smoothing=0.0, optimizer="adam", learning_rate=1e-3,
        train_steps=20, steps_per_loop=20, model_dir=path, export=False))
    return path


def _file_image(folder, name, number):
    """The file decoded by TF's JPEG decoder (PIL's rounds differently, up to 16 levels)."""
    encoded = (folder / name / f"{name}_{number:04d}.jpg").read_bytes()
    return tf.io.decode_jpeg(encoded).numpy()


def test_images_are_numbered_as_the_files(lfw):
    data_dir, folder = lfw
    keys = [(name, n) for name in PERSONS.values() for n in range(1, IMAGES + 1)]
    images = pairs_tfds.read_images("lfw", data_dir, keys)
    assert sorted(images) == sorted(keys)
    for key in keys:  # tfds stores the JPEG bytes: the pixels of the file
        np.testing.assert_array_equal(images[key], _file_image(folder, *key))
    # tfds's stored order is not the files' (else this would test nothing).
    stored = tfds.as_numpy(tfds.builder("lfw", data_dir=data_dir).as_dataset(
        split="train", shuffle_files=False, batch_size=-1))
    name = PERSONS[7]
    in_store = stored["image"][stored["label"] == name.encode()]
    in_files = np.stack([_file_image(folder, name, n) for n in range(1, IMAGES + 1)])
    assert in_store.shape == in_files.shape and not np.array_equal(in_store, in_files)


def _pairs_file(path, extra=()):
    names = list(PERSONS.values())
    lines = ["10\t2"]
    for name in names:
        lines += [f"{name}\t{i}\t{j}" for i, j in ((1, 2), (3, 4), (5, 6), (1, 6))]
    lines += [f"{names[0]}\t{i}\t{names[1 + i % 2]}\t{i}" for i in range(1, 7)]
    lines += [f"{names[1]}\t{i}\t{names[2]}\t{7 - i}" for i in range(1, 7)]
    path.write_text("\n".join(lines + list(extra)) + "\n")
    return [line.split() for line in lines[1:]]


def _by_hand(model, folder, name, number, flip):
    """The embedding from the JPEG file: TF decode, TF's grey weights, bilinear at 8x8 with
    half-pixel centres in NumPy, the digits' normalisation, the model."""
    rgb = _file_image(folder, name, number).astype(np.float64)
    grey = rgb @ np.array([0.2989, 0.5870, 0.1140])
    centres = (np.arange(8) + 0.5) * 250 / 8 - 0.5
    low = np.floor(centres).astype(int)
    weight = centres - low
    rows = grey[low] * (1 - weight)[:, None] + grey[low + 1] * weight[:, None]
    small = rows[:, low] * (1 - weight) + rows[:, low + 1] * weight
    info = data.get_dataset_info("digits")
    image = ((small / 255.0 - info.mean[0]) / info.std[0])[None, :, :, None].astype(np.float32)
    embedding = model(image)["embedding"].numpy()[0].astype(np.float64)
    if flip:
        embedding += model(np.ascontiguousarray(image[:, :, ::-1]))["embedding"].numpy()[0]
    return embedding


@pytest.mark.parametrize("flip", [False, True])
def test_pairs_over_tfds_lfw_score_as_an_independent_reference(lfw, model_dir, tmp_path, flip):
    data_dir, folder = lfw
    pairs = _pairs_file(tmp_path / "pairs.txt")
    [results] = evaluator.evaluate(evaluator.EvalConfig(
        model_dir=model_dir, verification="pairs", pairs_file=str(tmp_path / "pairs.txt"),
        pairs_images="tfds:lfw", data_dir=data_dir, flip_fusion=flip, knn_k=(),
        output=str(tmp_path / "eval.json"), plot_dir="", summary_dir=""))
    report = results["verification"]
    assert report["pairs"] == 24 and report["same_pairs"] == 12

    record = model_dir_lib.read_config(model_dir)
    checkpoint, _ = model_dir_lib.checkpoints.newest_usable(model_dir, finite=False)
    model, _ = model_dir_lib.restore_model(record, checkpoint.path)
    cosines, same, expected = [], [], []
    for fields in pairs:
        a, i, c, j = fields if len(fields) == 4 else (fields[0], fields[1], fields[0], fields[2])
        first = _by_hand(model, folder, a, int(i), flip)
        second = _by_hand(model, folder, c, int(j), flip)
        cosines.append(first @ second / np.linalg.norm(first) / np.linalg.norm(second))
        same.append(a == c)
        expected.append((first, second))
    assert report["roc_auc"] == pytest.approx(roc_auc_score(same, cosines), abs=1e-6)
    # Each image by its number: a misnumbered one would not match its file's embedding.
    embed_model = open_set.FlipFused(model) if flip else model
    read, _ = pairs_file.read_pairs(str(tmp_path / "pairs.txt"))
    first, second = pairs_file.pair_embeddings(
        lambda images: embed_model(images)["embedding"], read, None, record.image_shape,
        data.get_dataset_info("digits"),
        load=lambda keys: pairs_tfds.read_images("lfw", data_dir, keys))
    np.testing.assert_allclose(first, [e[0] for e in expected], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(second, [e[1] for e in expected], rtol=1e-4, atol=1e-4)


def test_a_missing_image_is_named_before_any_work(lfw, model_dir, tmp_path):
    data_dir, _ = lfw
    _pairs_file(tmp_path / "pairs.txt", extra=[f"{PERSONS[7]}\t2\t{IMAGES + 1}"])
    with mock.patch.object(model_dir_lib, "restore_model") as restore, \
            pytest.raises(UsageError) as err:
        evaluator.evaluate(evaluator.EvalConfig(
            model_dir=model_dir, verification="pairs", pairs_file=str(tmp_path / "pairs.txt"),
            pairs_images="tfds:lfw", data_dir=data_dir, knn_k=(),
            output=str(tmp_path / "eval.json"), plot_dir="", summary_dir=""))
    assert str(err.value) == (f"--pairs_images=tfds:lfw has no image {IMAGES + 1} of "
                              f"'{PERSONS[7]}' (it has {IMAGES} of that person, numbered "
                              "from 1)")
    restore.assert_not_called()


def test_pairs_images_is_a_folder_or_a_tfds_name(tmp_path):
    pairs = tmp_path / "pairs.txt"
    _pairs_file(pairs)
    evaluator.EvalConfig(model_dir="somewhere", verification="pairs", pairs_file=str(pairs),
                         pairs_images="tfds:lfw").validate()
    with pytest.raises(UsageError) as err:
        evaluator.EvalConfig(model_dir="somewhere", verification="pairs", pairs_file=str(pairs),
                             pairs_images=str(tmp_path / "none")).validate()
    assert str(err.value) == (f"--pairs_images={tmp_path / 'none'} is not an existing folder "
                              "(or tfds:NAME, e.g. tfds:lfw)")
