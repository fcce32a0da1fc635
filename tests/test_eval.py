"""evaluate() and eval.py on a real model_dir: NumPy references, outputs, ported dirs, errors.

One model_dir per session: CS231n's two-layer net (100-D embedding) with center loss and EMA,
trained 30 steps on the bundled digits, checkpoints at steps 15 and 30; ported checkpoints use
LeNet. References run the restored model over the whole split
without a strategy and compute every metric in NumPy/scikit-learn.
"""
import json
import os
import shutil

import numpy as np
import pytest
from sklearn.metrics import confusion_matrix

from tests import scripts
from tests.test_knn import brute_force_knn
from tests.test_plots import _png_size

NUM_TEST, NUM_TRAIN, NUM_CLASSES = 359, 1438, 10


@pytest.fixture(scope="session")
def trained_dir(tmp_path_factory):
    from tfmodels.training import TrainConfig, train

    model_dir = str(tmp_path_factory.mktemp("eval") / "two_layer_net")
    # Plain cross-entropy (the references below compute it without label smoothing).
    train(TrainConfig(model_dir=model_dir, model="two_layer_net", train_steps=30,
                      learning_rate=0.05, label_smoothing=0.0, weight_decay=0.0, augment=False,
                      checkpoint_every=15, steps_per_loop=15, log_every=15,
                      center_loss_weight=0.01, ema_decay=0.9, export=False))
    return model_dir


def _run_model(model, split):
    """Outputs of `model` over a whole digits split, one eager pass per batch of 64."""
    from tfmodels import data

    chunks = {"logits": [], "embedding": [], "label": []}
    for batch in data.make_dataset("digits", split, global_batch_size=64, training=False):
        outputs = model(batch["image"], training=False)
        real = batch["mask"].numpy() > 0
        chunks["logits"].append(outputs["logits"].numpy()[real])
        chunks["embedding"].append(outputs["embedding"].numpy()[real])
        chunks["label"].append(batch["label"].numpy()[real])
    return {k: np.concatenate(v) for k, v in chunks.items()}


def _reference(model_dir, checkpoint, use_average=True):
    from tfmodels import model_dir as model_dir_lib

    record = model_dir_lib.read_config(model_dir)
    model, _ = model_dir_lib.restore_model(record, os.path.join(model_dir, checkpoint),
                                           use_average=use_average)
    return _run_model(model, "test"), _run_model(model, "train")


def _check_metrics(results, test, train=None, centers=None):
    labels, logits = test["label"], test["logits"].astype(np.float64)
    predictions = logits.argmax(axis=1)
    assert results["count"] == NUM_TEST == np.asarray(results["confusion_matrix"]).sum()
    np.testing.assert_array_equal(results["confusion_matrix"],
                                  confusion_matrix(labels, predictions, labels=range(10)))
    assert results["accuracy"] == pytest.approx(np.mean(predictions == labels), abs=1e-12)
    top5 = np.argsort(-logits, axis=1)[:, :5]
    assert results["top_5_accuracy"] == pytest.approx(
        np.mean([y in row for y, row in zip(labels, top5)]), abs=1e-12)
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    assert results["loss"] == pytest.approx(-log_probs[np.arange(NUM_TEST), labels].mean(),
                                            rel=1e-5)
    per_class = [np.mean(predictions[labels == c] == c) for c in range(NUM_CLASSES)]
    np.testing.assert_allclose(results["per_class_accuracy"], per_class, atol=1e-12)
    if train is not None:
        expected, _ = brute_force_knn(test["embedding"], train["embedding"], train["label"],
                                      (1, 5))
        for k in (1, 5):
            assert results[f"knn_{k}_accuracy"] == pytest.approx(np.mean(expected[k] == labels),
                                                                 abs=1e-12)
    if centers is not None:
        distances = np.linalg.norm(test["embedding"] - centers[labels], axis=1)
        stats = results["embedding_stats"]
        assert stats["intra_mean"] == pytest.approx(distances.mean(), rel=1e-5)
        assert stats["intra_std"] == pytest.approx(distances.std(), rel=1e-4)


def _scalars(event_dir):
    import tensorflow as tf

    found = {}
    for name in sorted(os.listdir(event_dir)):
        for event in tf.compat.v1.train.summary_iterator(os.path.join(event_dir, name)):
            for value in event.summary.value:
                found[(value.tag, event.step)] = float(tf.make_ndarray(value.tensor))
    return found


@pytest.fixture(scope="module")
def latest(trained_dir, tmp_path_factory):
    """The default evaluation (latest checkpoint, test split) with 1 replica, and its JSON."""
    from tfmodels.evaluation.evaluator import EvalConfig, evaluate

    folder = tmp_path_factory.mktemp("latest")
    output = str(folder / "out.json")
    [results] = evaluate(EvalConfig(model_dir=trained_dir, output=output,
                                    plot_dir=str(folder / "plots")))
    return results, output


def test_latest_checkpoint_matches_numpy(trained_dir, latest):
    import tensorflow as tf

    results, output = latest
    assert results["step"] == 30 and results["weights"] == "ema"
    assert results["checkpoint"] == os.path.join(trained_dir, "ckpt-30")
    test, train = _reference(trained_dir, "ckpt-30")
    centers = tf.train.load_checkpoint(os.path.join(trained_dir, "ckpt-30")).get_tensor(
        "center_loss/centers/.ATTRIBUTES/VARIABLE_VALUE")
    _check_metrics(results, test, train, centers)
    assert results["embedding_stats"]["center_source"] == "learned"
    assert 0.5 < results["accuracy"] < 1.0  # a model that learned something, not a constant

    with open(output) as f:
        saved = json.load(f)
    assert saved["step"] == 30 and saved["split"] == "test" and saved["dataset"] == "digits"
    assert saved["accuracy"] == results["accuracy"] and saved["loss"] == results["loss"]
    assert len(saved["per_class_accuracy"]) == NUM_CLASSES
    assert np.sum(saved["confusion_matrix"]) == NUM_TEST
    assert set(saved["embedding_stats"]) >= {"intra_mean", "intra_std", "inter_min",
                                             "inter_mean", "intra_inter_ratio", "center_source"}
    assert saved["gallery_split"] == "train" and saved["gallery_count"] == NUM_TRAIN
    for name in ("embedding", "confusion_matrix"):
        assert _png_size(saved["plots"][name]) == (600, 600)
    scalars = _scalars(os.path.join(trained_dir, "eval"))
    for tag in ("accuracy", "loss", "top_5_accuracy", "knn_1_accuracy", "knn_5_accuracy",
                "embedding/intra_mean", "embedding/intra_inter_ratio"):
        name = tag.split("/")[-1]
        expected = (results["embedding_stats"][name] if tag.startswith("embedding")
                    else results[tag])
        assert scalars[(tag, 30)] == pytest.approx(expected, rel=1e-6)


def test_checkpoint_raw_weights_and_leave_one_out(trained_dir, tmp_path):
    from tfmodels.evaluation.evaluator import EvalConfig, evaluate

    [results] = evaluate(EvalConfig(model_dir=trained_dir, checkpoint="ckpt-15",
                                    use_average=False, knn_k=(), plot_dir="",
                                    output=str(tmp_path / "raw.json")))
    assert results["step"] == 15 and results["weights"] == "raw" and results["plots"] == {}
    assert not any(k.startswith("knn_") for k in results) and "gallery_split" not in results
    test, _ = _reference(trained_dir, "ckpt-15", use_average=False)
    _check_metrics(results, test)
    averaged, _ = _reference(trained_dir, "ckpt-15", use_average=True)
    assert np.abs(averaged["logits"] - test["logits"]).max() > 1e-3  # EMA really differs

    [train_split] = evaluate(EvalConfig(model_dir=trained_dir, split="train", knn_k=(1,),
                                        plot_dir="", output=str(tmp_path / "train.json")))
    _, train = _reference(trained_dir, "ckpt-30")
    expected, _ = brute_force_knn(train["embedding"], train["embedding"], train["label"], (1,),
                                  exclude_self=True)
    assert train_split["count"] == NUM_TRAIN
    assert train_split["knn_1_accuracy"] == pytest.approx(
        np.mean(expected[1] == train["label"]), abs=1e-12)
    assert ("accuracy", 30) in _scalars(os.path.join(trained_dir, "eval_train"))


def _ported_dir(path, config, diverged=False):
    """What the porting CLI writes: tf.train.Checkpoint(model=model) and a minimal config."""
    import keras
    import tensorflow as tf

    from tfmodels import nets
    from tfmodels import model_dir as model_dir_lib

    keras.utils.set_random_seed(5)
    model = nets.build_model("lenet", NUM_CLASSES, (8, 8, 1))
    if diverged:
        for weight in model.weights:
            weight.assign(tf.fill(weight.shape, float("nan")))
    tf.train.CheckpointManager(tf.train.Checkpoint(model=model), str(path), max_to_keep=1).save()
    model_dir_lib.write_json_atomic(os.path.join(path, "config.json"), config)
    return model


def test_ported_checkpoint(tmp_path):
    from tfmodels.evaluation.evaluator import EvalConfig, evaluate
    from tfmodels.options import UsageError

    model = _ported_dir(tmp_path, {"model": "lenet", "num_classes": 10, "image_shape": [8, 8, 1]})
    with pytest.raises(UsageError, match="no dataset.*pass --dataset"):
        evaluate(EvalConfig(model_dir=str(tmp_path)))
    [results] = evaluate(EvalConfig(model_dir=str(tmp_path), dataset="digits",
                                    global_batch_size=100, plot_dir=""))
    assert results["step"] == 1 and results["weights"] == "raw"
    assert results["embedding_stats"]["center_source"] == "train_class_means"
    test, train = _run_model(model, "test"), _run_model(model, "train")
    means = np.stack([train["embedding"][train["label"] == c].mean(axis=0)
                      for c in range(NUM_CLASSES)])
    _check_metrics(results, test, train, means)
    assert os.path.exists(tmp_path / "eval_test.json")


def test_diverged_checkpoint_is_refused(tmp_path):
    """Weights holding NaN (a diverged run) are refused before any evaluation: what a NaN net
    outputs differs between CPUs (max(NaN, 0) is 0 on some), so no number it gave would mean
    anything."""
    from tfmodels.evaluation.evaluator import EvalConfig, evaluate
    from tfmodels.options import UsageError

    _ported_dir(tmp_path, {"model": "lenet", "num_classes": 10, "image_shape": [8, 8, 1],
                           "dataset": "digits"}, diverged=True)
    with pytest.raises(UsageError, match=r"ckpt-1' holds inf/NaN values in model/.* and "
                                              r"\d+ more: the weights of a diverged run are not "
                                              "evaluated"):
        evaluate(EvalConfig(model_dir=str(tmp_path), plot_dir=str(tmp_path / "plots")))
    assert not os.path.exists(tmp_path / "eval_test.json")
    assert not os.path.exists(tmp_path / "plots") and not os.path.exists(tmp_path / "eval")


def test_non_finite_embeddings_report_what_can_be_computed(tmp_path):
    """Finite weights can still give non-finite embeddings (overflow): the classification
    metrics and the confusion matrix are reported; k-NN, embedding statistics and the
    embedding plot, which need finite embeddings, are left out; the JSON stays strict."""
    import types

    import keras
    import tensorflow as tf

    from tfmodels.evaluation import evaluator
    from tfmodels.losses import per_example_loss_fn

    images = keras.Input((8, 8, 1))
    features = keras.layers.Flatten()(images)
    # x * inf is +-inf, or NaN for x == 0: non-finite on every IEEE machine.
    embedding = keras.layers.Lambda(lambda x: x * float("inf"))(features)
    logits = keras.layers.Dense(NUM_CLASSES)(features)
    model = keras.Model(images, {"logits": logits, "embedding": embedding})
    evaluation = evaluator.evaluate_model(
        tf.distribute.get_strategy(), model, dataset="digits", split="test",
        global_batch_size=100, gallery_split="train",
        loss_fn=per_example_loss_fn("cross_entropy", 0.0))
    results = evaluation.results
    test = _run_model(model, "test")
    assert not np.isfinite(test["embedding"]).all()
    _check_metrics(results, test)
    assert "embedding_stats" not in results and "knn_1_accuracy" not in results
    plan = types.SimpleNamespace(record=types.SimpleNamespace(model="dense"), dataset="digits",
                                 split="test", plot_dir=str(tmp_path))
    assert list(evaluator._write_plots(plan, evaluation, step=0)) == ["confusion_matrix"]
    assert evaluator._jsonable({"loss": np.float32("nan"), "a": [np.inf, 1.0]}) == \
        {"loss": None, "a": [None, 1.0]}


def _copy_with_config(source, target, **changes):
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("eval*", "plots"))
    with open(os.path.join(target, "config.json")) as f:
        config = json.load(f)
    config.update(changes)
    with open(os.path.join(target, "config.json"), "w") as f:
        json.dump(config, f)
    return str(target)


@pytest.mark.parametrize("case,match", [
    ("missing", "--model_dir=.*/missing does not exist"),
    ("empty", "has no config.json"),
    ("no_checkpoint", "has no checkpoint yet"),
    ("other_model", "does not hold a lenet with 10 classes"),
    ("other_dataset", "--dataset=synthetic:8x8x1:5 has 5 classes.*pass the dataset it was"),
    ("split", r"--split=validation is not a split of dataset 'digits'; valid splits: "
              r"\['test', 'train'\]"),
    ("checkpoint", r"--checkpoint=ckpt-7 does not exist.*available: \['ckpt-15', 'ckpt-30'\]"),
    ("knn_k", "--knn_k=2000 is larger than the 1438 examples of the gallery split 'train'"),
    ("batch", "--batch_size=0 must be an int >= 1"),
])
def test_bad_input_is_a_clear_error(trained_dir, tmp_path, case, match):
    from tfmodels.evaluation.evaluator import EvalConfig, evaluate
    from tfmodels.options import UsageError

    model_dir, options = trained_dir, {}
    if case in ("missing", "empty"):
        model_dir = str(tmp_path / case)
        if case == "empty":
            os.makedirs(model_dir)
    elif case == "no_checkpoint":
        model_dir = str(tmp_path / "fresh")
        os.makedirs(model_dir)
        shutil.copy(os.path.join(trained_dir, "config.json"), model_dir)
    elif case == "other_model":
        model_dir = _copy_with_config(trained_dir, tmp_path / "other", model="lenet")
    else:
        options = {"other_dataset": dict(dataset="synthetic:8x8x1:5"),
                   "split": dict(split="validation"), "checkpoint": dict(checkpoint="ckpt-7"),
                   "knn_k": dict(knn_k=(1, 2000)), "batch": dict(global_batch_size=0)}[case]
    output = str(tmp_path / "never.json")
    with pytest.raises(UsageError, match=match):
        evaluate(EvalConfig(model_dir=model_dir, output=output, plot_dir=str(tmp_path / "p"),
                            **options))
    assert not os.path.exists(output) and not os.path.exists(tmp_path / "p")
    if model_dir != trained_dir and os.path.isdir(model_dir):
        assert not any(name.startswith("eval") for name in os.listdir(model_dir))


@pytest.mark.subprocess
def test_eval_py_on_three_replicas(trained_dir, latest, tmp_path):
    """The script end to end, on 3 logical devices: the same numbers as one replica."""
    output = str(tmp_path / "cli.json")
    proc = scripts.run("eval.py", f"--model_dir={trained_dir}", f"--output={output}",
                    f"--plot_dir={tmp_path / 'plots'}", "--virtual_devices=3",
                    "--strategy=mirrored", "--knn_k=5,1", "--top_k=5")
    assert proc.returncode == 0, proc.stderr[-3000:]
    printed = json.loads(proc.stdout)
    with open(output) as f:
        saved = json.load(f)
    assert saved["num_replicas"] == 3 and saved["global_batch_size"] == 66
    assert printed[0]["step"] == saved["step"] == 30
    one, _ = latest
    assert saved["count"] == one["count"] == NUM_TEST
    np.testing.assert_array_equal(saved["confusion_matrix"], one["confusion_matrix"])
    for name in ("accuracy", "top_5_accuracy", "knn_1_accuracy", "knn_5_accuracy"):
        assert saved[name] == pytest.approx(one[name], abs=1e-12), name
    assert saved["loss"] == pytest.approx(one["loss"], rel=1e-5)
    assert saved["embedding_stats"]["intra_mean"] == pytest.approx(
        one["embedding_stats"]["intra_mean"], rel=1e-5)
    assert sorted(os.listdir(tmp_path / "plots")) == ["confusion_test.png",
                                                      "embedding_test.png"]


@pytest.mark.subprocess
def test_eval_py_bad_input_is_one_message(tmp_path):
    proc = scripts.run("eval.py", f"--model_dir={tmp_path / 'nowhere'}")
    assert proc.returncode == 2
    assert "does not exist" in proc.stderr and "Traceback" not in proc.stderr
    assert "--knn_k" not in proc.stderr  # no flag help
