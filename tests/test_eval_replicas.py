"""Evaluation counts every example exactly once with 1 and 3 replicas and an uneven last batch.

The digits test split has 359 examples; with a global batch of 48 the last step holds 23 real
examples, so with 3 replicas (16 each) the first replica's slice is full, the second's partly
padding and the third's all padding. The training split (the k-NN gallery, 1438 examples) ends
with 46. Each run is compared with a single pass of the same model over the whole split and
with NumPy metrics of its own outputs.
"""
import numpy as np
import pytest
from sklearn.metrics import confusion_matrix

from tests import replicas
from tests.test_knn import brute_force_knn

GLOBAL_BATCH, NUM_CLASSES = 48, 10


@replicas.scenario(1, 3)
def evaluate_digits(strategy):
    import keras

    from tfmodels import data, nets
    from tfmodels.evaluation.evaluator import evaluate_model
    from tfmodels.losses import per_example_loss_fn

    keras.utils.set_random_seed(3)
    with strategy.scope():
        model = nets.build_model("two_layer_net", NUM_CLASSES, (8, 8, 1))
    evaluation = evaluate_model(
        strategy, model, dataset="digits", split="test", global_batch_size=GLOBAL_BATCH,
        loss_fn=per_example_loss_fn("cross_entropy"), top_k=(3,), knn_k=(1, 5),
        gallery_split="train")
    result = {f"eval_{k}": v for k, v in evaluation.outputs.items()}
    result.update({f"gallery_{k}": v for k, v in evaluation.gallery.items()})
    result["centers"] = evaluation.centers
    for name, value in evaluation.results.items():
        if name == "embedding_stats":
            result.update({f"stats_{k}": v for k, v in value.items() if k != "center_source"})
        elif not isinstance(value, str):
            result[name] = np.asarray(value)
    # The reference: one pass over each whole split, no strategy, no padding.
    for split in ("test", "train"):
        whole = next(iter(data.make_dataset("digits", split, global_batch_size=4096,
                                            training=False)))
        outputs = model(whole["image"], training=False)
        real = whole["mask"].numpy() > 0
        result[f"reference_{split}_logits"] = outputs["logits"].numpy()[real]
        result[f"reference_{split}_embedding"] = outputs["embedding"].numpy()[real]
    return result


@pytest.fixture(scope="module")
def runs(replica_runner):
    return {n: replica_runner.run(evaluate_digits, n) for n in (1, 3)}


@pytest.mark.parametrize("num_replicas", [1, 3])
def test_every_example_once_in_order(runs, num_replicas):
    from tfmodels import data

    run = runs[num_replicas]
    info = data.get_dataset_info("digits")
    for split, prefix in (("test", "eval"), ("train", "gallery")):
        _, labels = data.load_arrays(info, split)
        np.testing.assert_array_equal(run[f"{prefix}_label"], labels)
        np.testing.assert_allclose(run[f"{prefix}_logits"], run[f"reference_{split}_logits"],
                                   rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(run[f"{prefix}_embedding"],
                                   run[f"reference_{split}_embedding"], rtol=1e-5, atol=1e-5)
    assert int(run["count"]) == 359 == run["confusion_matrix"].sum()
    assert int(run["gallery_count"]) == 1438


@pytest.mark.parametrize("num_replicas", [1, 3])
def test_metrics_equal_numpy_of_the_outputs(runs, num_replicas):
    run = runs[num_replicas]
    labels, logits = run["eval_label"], run["eval_logits"].astype(np.float64)
    predictions = logits.argmax(axis=1)
    np.testing.assert_array_equal(
        run["confusion_matrix"], confusion_matrix(labels, predictions, labels=range(NUM_CLASSES)))
    assert float(run["accuracy"]) == pytest.approx(np.mean(predictions == labels), abs=1e-12)
    top3 = np.argsort(-logits, axis=1)[:, :3]
    assert float(run["top_3_accuracy"]) == pytest.approx(
        np.mean([y in row for y, row in zip(labels, top3)]), abs=1e-12)
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    assert float(run["loss"]) == pytest.approx(-log_probs[np.arange(359), labels].mean(),
                                               rel=1e-5)
    expected, _ = brute_force_knn(run["eval_embedding"], run["gallery_embedding"],
                                  run["gallery_label"], (1, 5))
    for k in (1, 5):
        assert float(run[f"knn_{k}_accuracy"]) == pytest.approx(np.mean(expected[k] == labels),
                                                                abs=1e-12)
    # No center loss: the centers are the gallery's class means.
    for c in range(NUM_CLASSES):
        np.testing.assert_allclose(
            run["centers"][c], run["gallery_embedding"][run["gallery_label"] == c].mean(axis=0),
            rtol=1e-6, atol=1e-6)
    distances = np.linalg.norm(run["eval_embedding"] - run["centers"][labels], axis=1)
    assert float(run["stats_intra_mean"]) == pytest.approx(distances.mean(), rel=1e-5)


def test_three_replicas_equal_one(runs):
    one, three = runs[1], runs[3]
    assert sorted(one) == sorted(three)
    for name in one:
        np.testing.assert_allclose(three[name], one[name], rtol=1e-5, atol=1e-6, err_msg=name)
