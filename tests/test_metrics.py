"""Classification metrics and embedding statistics against loop-by-loop NumPy references."""
import itertools

import numpy as np
import pytest

from tfmodels.evaluation import embedding_stats
from tfmodels.evaluation.metrics import classification_metrics


def test_classification_metrics_match_loops(rng):
    num_examples, num_classes = 257, 7
    labels = rng.integers(0, num_classes - 1, num_examples)  # class 6 never appears
    logits = rng.normal(size=(num_examples, num_classes)) + 2.0 * np.eye(num_classes)[labels]
    losses = rng.random(num_examples)
    result = classification_metrics(labels, logits, losses, top_k=(1, 3, 7))

    predictions = [int(np.argmax(row)) for row in logits]
    confusion = np.zeros((num_classes, num_classes), int)
    for y, p in zip(labels, predictions):
        confusion[y, p] += 1
    np.testing.assert_array_equal(result["confusion_matrix"], confusion)
    assert result["confusion_matrix"].sum() == result["count"] == num_examples
    assert result["accuracy"] == pytest.approx(np.mean(np.array(predictions) == labels), abs=1e-12)
    for k in (1, 3):
        in_top_k = [y in np.argsort(-row, kind="stable")[:k] for row, y in zip(logits, labels)]
        assert result[f"top_{k}_accuracy"] == pytest.approx(np.mean(in_top_k), abs=1e-12)
    assert "top_7_accuracy" not in result  # k >= classes is always 1
    for c in range(num_classes - 1):
        mine = labels == c
        assert result["per_class_accuracy"][c] == pytest.approx(
            np.mean(np.array(predictions)[mine] == c), abs=1e-12)
    assert np.isnan(result["per_class_accuracy"][num_classes - 1])
    assert result["loss"] == pytest.approx(losses.mean(), rel=1e-12)


def _stats_by_loops(embeddings, labels, centers):
    intra = [np.linalg.norm(x - centers[y]) for x, y in zip(embeddings, labels)
             if np.isfinite(centers[y]).all()]
    present = [c for c in centers if np.isfinite(c).all()]
    inter = [np.linalg.norm(a - b) for a, b in itertools.combinations(present, 2)]
    return dict(intra_mean=np.mean(intra), intra_std=np.std(intra), intra_count=len(intra),
                inter_min=min(inter), inter_mean=np.mean(inter),
                intra_inter_ratio=np.mean(intra) / np.mean(inter))


def test_embedding_stats_match_loops(rng):
    num_classes, dim = 5, 3
    labels = rng.integers(0, num_classes, 300)
    centers = rng.normal(0, 4, (num_classes, dim))
    embeddings = centers[labels] + rng.normal(size=(300, dim))
    stats = embedding_stats.embedding_stats(embeddings, labels, centers)
    for name, value in _stats_by_loops(embeddings, labels, centers).items():
        assert stats[name] == pytest.approx(value, rel=1e-10), name
    for c in range(num_classes):
        mine = labels == c
        assert stats["per_class_intra_mean"][c] == pytest.approx(
            np.mean(np.linalg.norm(embeddings[mine] - centers[c], axis=1)), rel=1e-10)
    # Scale-free ratio, scale-equivariant distances.
    scaled = embedding_stats.embedding_stats(3.0 * embeddings, labels, 3.0 * centers)
    assert scaled["intra_inter_ratio"] == pytest.approx(stats["intra_inter_ratio"], rel=1e-10)
    assert scaled["inter_min"] == pytest.approx(3.0 * stats["inter_min"], rel=1e-10)


def test_class_means_and_missing_classes(rng):
    labels = np.array([0, 0, 2, 2, 2, 3])
    embeddings = rng.normal(size=(6, 2))
    means = embedding_stats.class_means(embeddings, labels, num_classes=4)
    for c in (0, 2, 3):
        np.testing.assert_allclose(means[c], embeddings[labels == c].mean(axis=0), rtol=1e-12)
    assert np.isnan(means[1]).all()
    # Examples of a class without a center are left out; so is that class's center pair.
    queries = rng.normal(size=(8, 2))
    query_labels = np.array([0, 1, 1, 2, 3, 3, 0, 2])
    stats = embedding_stats.embedding_stats(queries, query_labels, means)
    for name, value in _stats_by_loops(queries, query_labels, means).items():
        assert stats[name] == pytest.approx(value, rel=1e-10), name
    assert stats["intra_count"] == 6 and np.isnan(stats["per_class_intra_mean"][1])


def test_embedding_stats_undefined_and_bad_input():
    one_center = embedding_stats.embedding_stats(np.zeros((2, 2)), [0, 0], np.ones((1, 2)))
    assert one_center["intra_mean"] == pytest.approx(np.sqrt(2.0))
    assert np.isnan(one_center["inter_min"]) and np.isnan(one_center["intra_inter_ratio"])
    with pytest.raises(ValueError, match=r"labels must be in \[0, 2\), got \[0, 5\]"):
        embedding_stats.embedding_stats(np.zeros((2, 2)), [0, 5], np.ones((2, 2)))
    with pytest.raises(ValueError, match=r"embeddings \(2, 3\) and centers \(2, 2\)"):
        embedding_stats.embedding_stats(np.zeros((2, 3)), [0, 1], np.ones((2, 2)))
