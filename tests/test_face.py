"""Face-recognition workflow end to end, in process and small: train LeNets++ on digits 0-6 with
ArcFace and a center loss, then verify on pairs of the held-out digits 7-9 (drawn, and from an
LFW-style pairs file over an image folder)."""
import json
import os

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import roc_auc_score

from tfmodels import data, training
from tfmodels import model_dir as model_dir_lib
from tfmodels.evaluation import evaluator, pairs_file, verification
from tfmodels.options import UsageError

HELD_OUT = (7, 8, 9)


@pytest.fixture(scope="module")
def face_run(tmp_path_factory):
    model_dir = str(tmp_path_factory.mktemp("face") / "run")
    metrics = training.train(training.TrainConfig(
        model="lenet_pp", train_classes="0-6", margin="arcface", margin_scale=8.0,
        margin_m2=0.2, label_smoothing=0.0, center_loss_weight=0.01, optimizer="adam",
        learning_rate=1e-3, train_steps=40,
        steps_per_loop=20, model_dir=model_dir, export=False))
    return model_dir, metrics


def test_class_subset_keeps_only_those_classes():
    info = data.get_dataset_info("digits")
    pixels, labels = data.load_arrays(info, "train")
    subset = data.class_subset(info, "train", range(7))
    assert subset.splits["train"] == np.isin(labels, range(7)).sum() < len(labels)
    ds = data.make_dataset("digits", "train", global_batch_size=64, training=True, seed=0,
                           classes=range(7))
    seen = np.concatenate([b["label"].numpy() for b in ds.take(25)])
    assert seen.max() <= 6 and set(seen) == set(range(7))
    with pytest.raises(UsageError, match="--train_classes=0-12: '0-12' is not a range"):
        data.parse_classes("0-12", 10)
    assert data.parse_classes("0,2,5-7", 10) == (0, 2, 5, 6, 7)


def test_train_records_the_classes(face_run):
    model_dir, metrics = face_run
    with open(os.path.join(model_dir, "config.json")) as f:
        saved = json.load(f)
    assert saved["train_classes"] == "0-6" and saved["margin"] == "arcface"
    # 40 steps of 64 over the ~1000 training examples of digits 0-6.
    kept = data.class_subset(data.get_dataset_info("digits"), "train", range(7)).splits["train"]
    assert saved["steps_per_epoch"] == kept // 64
    assert np.isfinite(metrics["train_loss"])


def _restored(model_dir):
    record = model_dir_lib.read_config(model_dir)
    checkpoint, _ = model_dir_lib.checkpoints.newest_usable(model_dir, finite=False)
    return model_dir_lib.restore_model(record, checkpoint.path)[0]


def _cosines(first, second):
    first = first / np.linalg.norm(first, axis=1, keepdims=True)
    second = second / np.linalg.norm(second, axis=1, keepdims=True)
    return np.sum(first * second, axis=1)


def _all_pairs_auc(net, classes, flip):
    """scikit-learn's ROC AUC of the cosine over every pair of the test examples of `classes`,
    embeddings computed here from the raw digits (0..16) on the net's scale."""
    pixels, labels = data.load_arrays(data.get_dataset_info("digits"), "test")
    kept = np.flatnonzero(np.isin(labels, classes))
    images = pixels[kept].astype(np.float32) / 16.0
    embedding = net(images)["embedding"].numpy().astype(np.float64)
    if flip:
        embedding += net(np.ascontiguousarray(images[:, :, ::-1]))["embedding"].numpy()
    first, second = np.triu_indices(len(kept), k=1)
    return roc_auc_score(labels[kept][first] == labels[kept][second],
                         _cosines(embedding[first], embedding[second]))


def test_drawn_pairs_score_as_an_independent_reference(face_run, tmp_path):
    """Pairs of the trained digits, which the net tells apart: a misaligned embedding or label,
    or pairs of other classes, would score near 0.5 where the reference is far above it."""
    model_dir, _ = face_run
    [results] = evaluator.evaluate(evaluator.EvalConfig(
        model_dir=model_dir, verification="pairs", verification_classes="0-6", knn_k=(),
        output=str(tmp_path / "eval.json"), plot_dir="", summary_dir=""))
    reference = _all_pairs_auc(_restored(model_dir), range(7), flip=False)
    assert reference > 0.6
    assert results["verification"]["roc_auc"] == pytest.approx(reference, abs=0.03)


def test_test_accuracy_covers_the_trained_classes(face_run):
    """A run never trained on 7-9 is tested on the test split's examples of 0-6 only."""
    model_dir, metrics = face_run
    pixels, labels = data.load_arrays(data.get_dataset_info("digits"), "test")
    trained = labels <= 6
    logits = _restored(model_dir)(pixels[trained].astype(np.float32) / 16.0)["logits"].numpy()
    assert metrics["test_classes"] == "0-6"
    assert metrics["test_examples"] == int(trained.sum()) < len(labels)
    assert metrics["test_accuracy"] == pytest.approx(
        np.mean(logits.argmax(1) == labels[trained]), abs=1.01 / trained.sum())
    with open(os.path.join(model_dir, "metrics.json")) as f:
        assert json.load(f)["test_classes"] == "0-6"


def test_verification_on_held_out_classes(face_run, tmp_path):
    model_dir, _ = face_run
    [results] = evaluator.evaluate(evaluator.EvalConfig(
        model_dir=model_dir, verification="pairs", flip_fusion=True, knn_k=(),
        output=str(tmp_path / "eval.json"), plot_dir=str(tmp_path / "plots"),
        summary_dir=""))
    report = results["verification"]
    labels = data.load_arrays(data.get_dataset_info("digits"), "test")[1]
    counts = [int(np.sum(labels == c)) for c in HELD_OUT]
    same_available = sum(n * (n - 1) // 2 for n in counts)
    different_available = sum(a * b for k, a in enumerate(counts) for b in counts[k + 1:])
    each = min(3000, same_available, different_available)
    assert report["same_pairs"] == report["different_pairs"] == each
    assert report["accuracy_mean"] == pytest.approx(np.mean(report["fold_accuracies"]))
    assert len(report["fold_accuracies"]) == 10 and 0.0 <= report["roc_auc"] <= 1.0
    assert report["tar_at_far_0.0001"] is None
    assert "needs >= 10000" in report["tar_at_far_0.0001_unmeasured"]
    # The ROC AUC against scikit-learn's over every pair of the held-out test examples, from
    # embeddings computed here (the image's plus its mirror's): the drawn pairs are all the
    # same pairs and a random half of the different ones.
    model = _restored(model_dir)
    assert report["roc_auc"] == pytest.approx(_all_pairs_auc(model, HELD_OUT, flip=True),
                                              abs=0.04)
    # The margin-trained net's classifier: argmax of the cosines to the class vectors.
    pixels = data.make_dataset("digits", "test", global_batch_size=len(labels), training=False)
    batch = next(iter(pixels))
    x = model(batch["image"])["embedding"].numpy().astype(np.float64)
    kernel = [v for v in model.trainable_weights if v.path.endswith("logits/kernel")][0].numpy()
    cos = (x / np.linalg.norm(x, axis=1, keepdims=True)) @ (
        kernel / np.linalg.norm(kernel, axis=0, keepdims=True))
    assert results["cosine_accuracy"] == pytest.approx(np.mean(cos.argmax(1) == labels),
                                                       abs=1 / len(labels))
    assert os.path.isfile(results["plots"]["roc"])
    assert results["plots"]["roc"].endswith("roc_test.png")


def test_pairs_file_over_an_image_folder(face_run, tmp_path):
    model_dir, _ = face_run
    info = data.get_dataset_info("digits")
    pixels, labels = data.load_arrays(info, "test")
    folder = tmp_path / "images"
    names = {}
    for c in HELD_OUT:
        rows = np.flatnonzero(labels == c)[:6]
        names[c] = f"digit_{c}"
        os.makedirs(folder / names[c])
        for n, row in enumerate(rows, 1):
            image = np.round(pixels[row, :, :, 0].astype(np.float64) * 255 / 16).astype(np.uint8)
            Image.fromarray(image).save(folder / names[c] / f"digit_{c}_{n:04d}.png")
    lines = ["10\t2"]
    for c in HELD_OUT:
        lines += [f"{names[c]}\t{i}\t{j}" for i, j in ((1, 2), (3, 4), (5, 6), (1, 6))]
    lines += [f"{names[7]}\t{i}\t{names[8 + i % 2]}\t{i}" for i in range(1, 7)]
    lines += [f"{names[8]}\t{i}\t{names[9]}\t{7 - i}" for i in range(1, 7)]
    pairs_path = tmp_path / "pairs.txt"
    pairs_path.write_text("\n".join(lines) + "\n")

    pairs, same = pairs_file.read_pairs(str(pairs_path))
    assert len(pairs) == 24 and same.sum() == 12
    record = model_dir_lib.read_config(model_dir)
    checkpoint, _ = model_dir_lib.checkpoints.newest_usable(model_dir, finite=False)
    model, _ = model_dir_lib.restore_model(record, checkpoint.path)
    embed = lambda images: model(images, training=False)["embedding"]  # noqa: E731
    first, second = pairs_file.pair_embeddings(embed, pairs, str(folder), record.image_shape,
                                               info)
    # Independently: PIL decode, NumPy normalisation, the model.
    def by_hand(name, number):
        image = np.asarray(Image.open(folder / name / f"{name}_{number:04d}.png"), np.float64)
        normalised = (image / 255.0 - np.asarray(info.mean)) / np.asarray(info.std)
        return model(normalised[None, :, :, None].astype(np.float32))["embedding"].numpy()[0]
    expected = np.stack([by_hand(a, i) for a, i, _, _ in pairs])
    np.testing.assert_allclose(first, expected, rtol=1e-4, atol=1e-4)
    expected = np.stack([by_hand(c, j) for _, _, c, j in pairs])
    np.testing.assert_allclose(second, expected, rtol=1e-4, atol=1e-4)

    [results] = evaluator.evaluate(evaluator.EvalConfig(
        model_dir=model_dir, verification="pairs", pairs_file=str(pairs_path),
        pairs_images=str(folder), knn_k=(), output=str(tmp_path / "eval.json"),
        plot_dir="", summary_dir=""))
    report = results["verification"]
    assert report["pairs"] == 24 and report["same_pairs"] == 12
    scores = verification.cosine_scores(first, second)
    assert report["roc_auc"] == pytest.approx(verification.roc_auc(scores, same), abs=1e-6)


@pytest.mark.parametrize("options, message", [
    (dict(verification="pair"), "--verification=pair is not one of: none, pairs"),
    (dict(flip_fusion=True), "--flip_fusion apply to --verification=pairs"),
    (dict(verification="pairs", pairs_file="x.txt"), "--pairs_file=x.txt without "
                                                     "--pairs_images: give both"),
    (dict(verification="pairs", verification_pairs=5), "--verification_pairs=5 must be an "
                                                       "int >= 20"),
    (dict(verification="pairs", verification_seed=2**32), "--verification_seed=4294967296 "
                                                          "must be an int in [0, 4294967295]"),
    (dict(verification="pairs", verification_classes="7-x"), "--verification_classes=7-x must "
                                                              "be class ids"),
])
def test_bad_verification_options(options, message):
    with pytest.raises(UsageError) as err:
        evaluator.EvalConfig(model_dir="somewhere", **options).validate()
    assert message in str(err.value)


def test_verification_needs_held_out_classes(tmp_path):
    model_dir = str(tmp_path / "all")
    training.train(training.TrainConfig(model="softmax_regression", train_steps=2,
                                        model_dir=model_dir, export=False, steps_per_loop=2))
    with pytest.raises(UsageError, match="trained on every class"):
        evaluator.evaluate(evaluator.EvalConfig(model_dir=model_dir, verification="pairs",
                                                output=str(tmp_path / "e.json")))

