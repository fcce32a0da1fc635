"""Many classes end to end: the learnable `patterns` dataset, sampled heads reaching the full
softmax's accuracy at 10k classes, k-NN retrieval for unseen classes, and the center loss's
O(B D) update."""
import numpy as np
import pytest
import tensorflow as tf

from tfmodels import data, training
from tfmodels.data.sources import patterns
from tfmodels.evaluation.evaluator import EvalConfig, evaluate
from tfmodels.layers import CenterLoss


# --- the dataset ---------------------------------------------------------------------------

def test_the_label_is_a_function_of_the_pixels():
    name = "patterns:4x4x2:3000:6000:300"
    info = data.get_dataset_info(name)
    assert info.splits == {"train": 6000, "test": 300, "novel": 1000}
    assert info.num_classes == 3000 and info.image_shape == (4, 4, 2)
    for split in ("train", "test"):
        pixels, labels = data.load_arrays(info, split)
        np.testing.assert_array_equal(patterns.decode(pixels, 3000), labels)
        np.testing.assert_array_equal(labels, np.arange(len(labels)) % 3000)  # balanced
        assert np.all((pixels <= 115) | (pixels >= 140))  # |s m| >= 0.1 survives uint8
    novel, novel_labels = data.load_arrays(info, "novel")
    np.testing.assert_array_equal(patterns.decode(novel, 3000), novel_labels + 3000)
    np.testing.assert_array_equal(np.bincount(novel_labels), np.full(100, 10))
    train, _ = data.load_arrays(info, "train")
    test, _ = data.load_arrays(info, "test")
    assert not np.array_equal(train[:300], test)  # same classes, other magnitudes
    np.testing.assert_array_equal(np.sign(train[:300].astype(int) - 127.5),
                                  np.sign(test.astype(int) - 127.5))


def test_patterns_through_the_pipeline():
    info = data.get_dataset_info("patterns:4x4x1:50:200:30")
    batch = next(iter(data.make_dataset(info, "train", global_batch_size=20, training=True,
                                        augment=True, seed=0)))
    pixels, labels = data.load_arrays(info, "train")
    images = batch["image"].numpy()
    assert images.shape == (20, 4, 4, 1) and np.abs(images).max() <= 1.0 + 1e-6
    assert np.abs(images).min() >= 0.09  # no augmentation: every sign and magnitude kept
    for image, label in zip(images, batch["label"].numpy()):
        members = pixels[labels == label]
        assert np.any(np.all(np.abs((members / 255.0 - 0.5) / 0.5 - image) < 1e-6,
                             axis=(1, 2, 3)))


@pytest.mark.parametrize("name, match", [
    ("patterns:8x8", "must look like"), ("patterns:8x8x1:1", "classes >= 2"),
    ("patterns:2x2x1:1000000", "4 pixels cannot hold the 20 bits")])
def test_bad_names(name, match):
    with pytest.raises(ValueError, match=match):
        data.get_dataset_info(name)


# --- heads compared at 10k classes -----------------------------------------------------------

MANY = "patterns:8x8x1:10000:100000:5000"
# Same net, data, steps and learning rate; plain SGD-with-momentum recipe without label
# smoothing or weight decay, which sampled softmax does not define over all classes.
RECIPE = dict(model="softmax_regression", dataset=MANY, global_batch_size=256, train_steps=400,
              learning_rate=5.0, label_smoothing=0.0, weight_decay=0.0, export=False,
              steps_per_loop=100, checkpoint_every=400)
HEADS = {"softmax": {}, "sampled_softmax": dict(num_sampled=1024, sampler="uniform"),
         "partial_fc": dict(sample_rate=0.1)}


def test_sampled_heads_reach_the_full_softmax_accuracy(tmp_path):
    """At 10k classes with the same step budget, both sampled heads come within 1 point of
    the full softmax's test accuracy (evaluated over all 10k classes, in chunks)."""
    accuracy = {}
    for head, options in HEADS.items():
        metrics = training.train(training.TrainConfig(model_dir=str(tmp_path / head),
                                                      head=head, **RECIPE, **options))
        accuracy[head] = metrics["test_accuracy"]
        assert metrics["test_examples"] == 5000
    assert accuracy["softmax"] > 0.95, accuracy  # a problem the full head learns
    for head in ("sampled_softmax", "partial_fc"):
        assert accuracy[head] >= accuracy["softmax"] - 0.01, accuracy


def test_unseen_classes_are_retrieved_by_knn(tmp_path):
    """Train with a sampled head, then k-NN over the embeddings of 100 classes never seen in
    training (leave-one-out within the `novel` split): what a recommender serves with."""
    model_dir = str(tmp_path / "run")
    training.train(training.TrainConfig(
        model_dir=model_dir, model="two_layer_net", dataset="patterns:8x8x1:3000:30000:3000",
        head="sampled_softmax", num_sampled=256, label_smoothing=0.0, weight_decay=0.0,
        global_batch_size=128, train_steps=300, learning_rate=0.5, export=False,
        steps_per_loop=100, checkpoint_every=300))
    [results] = evaluate(EvalConfig(model_dir=model_dir, split="novel", gallery_split="novel",
                                    knn_k=(1,), plot_dir=""))
    assert results["count"] == 1000 and results["gallery_count"] == 1000
    assert "confusion_matrix" not in results  # 3000 classes: scored in chunks
    assert results["knn_1_accuracy"] > 0.9, results  # chance: 0.01


# --- center loss over many classes -------------------------------------------------------------

def test_center_update_touches_only_the_batch_rows(rng):
    """1M classes: the update reads and writes B rows (no [C, D] tensor in the traced step
    outside the in-place XLA write), and matches the paper's rule on those rows."""
    classes, dim, batch = 1_000_000, 4, 32
    layer = CenterLoss(classes, dim, alpha=0.5)
    start = rng.standard_normal((classes, dim)).astype(np.float32)
    layer.centers.assign(start)
    labels = rng.integers(0, classes, batch).astype(np.int32)
    labels[:5] = labels[5]  # a crowded class
    features = rng.standard_normal((batch, dim)).astype(np.float32)
    step = tf.function(lambda x, y: layer(x, y, training=True))
    graph = step.get_concrete_function(tf.constant(features), tf.constant(labels)).graph

    def sized(g, xla=False):
        found = [(xla, op.type) for op in g.get_operations() for t in op.outputs
                 if t.shape.rank and classes in t.shape.as_list()]
        for function in g._functions.values():
            compiled = xla or function.definition.attr["_XlaMustCompile"].b
            found += sized(function.graph, compiled)
        return found

    assert all(xla and kind in ("ReadVariableOp", "EnsureShape", "TensorScatterAdd")
               for xla, kind in sized(graph)), sized(graph)
    step(tf.constant(features), tf.constant(labels))
    after = layer.centers.numpy()
    touched = np.unique(labels)
    for j in touched:
        members = features[labels == j]
        delta = (start[j] - members).sum(0) / (1.0 + len(members))
        np.testing.assert_allclose(after[j], start[j] - 0.5 * delta, rtol=1e-5, atol=1e-6)
    untouched = np.ones(classes, bool)
    untouched[touched] = False
    np.testing.assert_array_equal(after[untouched], start[untouched])


# --- the scripts, and changing heads on a model_dir -------------------------------------------

@pytest.mark.subprocess
def test_train_and_eval_scripts_with_sampled_heads(tmp_path):
    """train.py with --head=partial_fc, resumed with --head=sampled_softmax (same class matrix,
    same checkpoint), then eval.py: all classes scored in chunks (3000 > 2048)."""
    import json

    from tests import scripts

    model_dir = str(tmp_path / "run")
    common = [f"--model_dir={model_dir}", "--model=two_layer_net",
              "--dataset=patterns:8x8x1:3000:6000:1000", "--batch_size=64",
              "--label_smoothing=0", "--learning_rate=0.5", "--steps_per_loop=10",
              "--checkpoint_every=10"]
    first = scripts.run("train.py", *common, "--head=partial_fc", "--sample_rate=0.2",
                        "--train_steps=20", "--noexport")
    assert first.returncode == 0, first.stderr[-3000:]
    with open(f"{model_dir}/config.json") as f:
        config = json.load(f)
    assert (config["head"], config["sample_rate"], config["num_classes"]) == (
        "partial_fc", 0.2, 3000)
    second = scripts.run("train.py", *common, "--head=sampled_softmax", "--num_sampled=500",
                         "--sampler=uniform", "--train_steps=30")
    assert second.returncode == 0, second.stderr[-3000:]
    assert "resuming from step 20" in second.stderr
    metrics = json.loads(second.stdout[second.stdout.index("{"):])
    assert metrics["steps"] == 30 and metrics["test_examples"] == 1000
    # 3000 classes, chance 0.033%: these 30 steps reach 2.2% / 2.5% (seeds 0 / 1); a head that
    # learned nothing stays near chance.
    assert metrics["test_accuracy"] > 0.01
    assert metrics["top_5_accuracy"] >= metrics["test_accuracy"]
    evaluated = scripts.run("eval.py", f"--model_dir={model_dir}", "--knn_k=1", "--plot_dir=")
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    with open(f"{model_dir}/eval_test.json") as f:
        results = json.load(f)
    assert results["step"] == 30 and results["count"] == 1000
    assert results["accuracy"] == pytest.approx(metrics["test_accuracy"], abs=1e-9)
    assert "confusion_matrix" not in results and results["knn_1_accuracy"] > 0.5
