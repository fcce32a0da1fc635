"""k-NN against a brute-force reference (a Python loop over queries with np.linalg.norm)."""
import collections

import numpy as np
import pytest

from tfmodels.evaluation import knn


def brute_force_knn(queries, gallery, gallery_labels, ks, exclude_self=False):
    """One query at a time: Euclidean distances, stable sort (ties by gallery index), majority
    vote; tied votes go to the smallest summed distance, then the smallest class.

    Returns:
      ({k: predictions [Q]}, neighbour indices [Q, max(ks)]).
    """
    predictions, neighbors = {k: [] for k in ks}, []
    for i, query in enumerate(queries):
        distances = np.linalg.norm(gallery - query, axis=1)
        if exclude_self:
            distances[i] = np.inf
        order = np.argsort(distances, kind="stable")
        for k in ks:
            nearest = order[:k]
            votes = collections.Counter(gallery_labels[nearest].tolist())
            summed = collections.defaultdict(float)
            for j in nearest:
                summed[gallery_labels[j]] += distances[j]
            best = max(votes.values())
            predictions[k].append(min((summed[c], c) for c, v in votes.items() if v == best)[1])
        neighbors.append(order[:max(ks)])
    return {k: np.array(p) for k, p in predictions.items()}, np.array(neighbors)


def _clusters(rng, num_queries, num_gallery, dim, num_classes):
    """Overlapping Gaussian classes, so k-NN makes mistakes and votes are contested."""
    means = rng.normal(0.0, 2.0 / np.sqrt(dim), (num_classes, dim)) * np.sqrt(2.0)
    gallery_labels = rng.integers(0, num_classes, num_gallery)
    query_labels = rng.integers(0, num_classes, num_queries)
    gallery = means[gallery_labels] + rng.normal(size=(num_gallery, dim))
    queries = means[query_labels] + rng.normal(size=(num_queries, dim))
    return queries, query_labels, gallery, gallery_labels


@pytest.mark.parametrize("dim,chunk_size", [(2, None), (2, 7), (16, 1), (16, 64), (64, 1000)])
def test_knn_matches_brute_force(rng, dim, chunk_size):
    queries, query_labels, gallery, gallery_labels = _clusters(rng, 150, 400, dim, 6)
    ks = (1, 4, 5, 10)
    predictions = knn.knn_predict(queries, gallery, gallery_labels, ks, num_classes=6,
                                  chunk_size=chunk_size)
    indices, distances = knn.nearest_neighbors(queries, gallery, 10, chunk_size=chunk_size)
    expected, expected_neighbors = brute_force_knn(queries, gallery, gallery_labels, ks)
    np.testing.assert_array_equal(indices, expected_neighbors)
    for k in ks:
        np.testing.assert_array_equal(predictions[k], expected[k])
    reference = np.linalg.norm(queries[:, None] - gallery[indices], axis=-1)
    np.testing.assert_allclose(distances, reference, rtol=1e-9, atol=1e-9)
    accuracy = knn.knn_accuracy(queries, query_labels, gallery, gallery_labels, ks=ks,
                                chunk_size=chunk_size)
    for k in ks:
        assert accuracy[k] == pytest.approx(np.mean(predictions[k] == query_labels), abs=1e-12)
    assert 0.2 < accuracy[1] < 0.95  # the classes overlap: the test exercises real mistakes


def test_leave_one_out_matches_brute_force(rng):
    _, _, gallery, labels = _clusters(rng, 1, 120, 3, 4)
    predictions = knn.knn_predict(gallery, gallery, labels, (1, 3), chunk_size=17,
                                  exclude_self=True)
    expected, _ = brute_force_knn(gallery, gallery, labels, (1, 3), exclude_self=True)
    for k in (1, 3):
        np.testing.assert_array_equal(predictions[k], expected[k])


def test_tie_breaks():
    """Integer coordinates: every distance is exact, so the ties are real ties."""
    query = np.zeros((1, 2))
    # k=2, one vote each: the smaller summed distance wins (class 2 at distance 1).
    gallery = np.array([[0.0, -2.0], [1.0, 0.0], [5.0, 5.0]])
    assert knn.knn_predict(query, gallery, np.array([1, 2, 0]), (2,))[2][0] == 2
    # Equal votes and equal sums: the smaller class index.
    gallery = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 3.0]])
    assert knn.knn_predict(query, gallery, np.array([2, 1, 0]), (2,))[2][0] == 1
    # More votes beat a nearer single neighbour.
    gallery = np.array([[1.0, 0.0], [0.0, 2.0], [0.0, -2.0]])
    assert knn.knn_predict(query, gallery, np.array([0, 3, 3]), (3,))[3][0] == 3
    # Equal distances at the k-th place: the smaller gallery index is the neighbour, whatever
    # the chunking.
    gallery = np.array([[0.0, 1.0], [1.0, 0.0], [-1.0, 0.0], [0.0, -1.0]])
    for chunk_size in (1, None):
        indices, distances = knn.nearest_neighbors(np.zeros((3, 2)), gallery, 2,
                                                   chunk_size=chunk_size)
        np.testing.assert_array_equal(indices, [[0, 1]] * 3)
        np.testing.assert_array_equal(distances, np.ones((3, 2)))
    for labels in ([0, 1, 2, 3], [3, 1, 2, 0], [1, 1, 0, 0]):
        labels = np.array(labels)
        expected, _ = brute_force_knn(query, gallery, labels, (3,))
        assert knn.knn_predict(query, gallery, labels, (3,))[3][0] == expected[3][0]


def test_default_chunk_keeps_memory_bounded(monkeypatch, rng):
    """With a small element budget the distances are computed in several chunks, same result."""
    queries, _, gallery, labels = _clusters(rng, 50, 64, 4, 3)
    whole = knn.knn_predict(queries, gallery, labels, (3,))
    monkeypatch.setattr(knn, "DEFAULT_MAX_ELEMENTS", 64 * 3)  # 3 queries per chunk
    seen = []
    original = knn._smallest_k
    monkeypatch.setattr(knn, "_smallest_k", lambda sq, k: seen.append(sq.shape) or
                        original(sq, k))
    chunked = knn.knn_predict(queries, gallery, labels, (3,))
    np.testing.assert_array_equal(chunked[3], whole[3])
    assert max(rows for rows, _ in seen) == 3 and len(seen) == 17


@pytest.mark.parametrize("kwargs,match", [
    (dict(ks=(0,)), r"knn k=0 must be an int in \[1, 5\]"),
    (dict(ks=(6,)), r"knn k=6 must be an int in \[1, 5\]"),
    (dict(ks=()), "ks=\\(\\) is empty"),
    (dict(ks=(1,), chunk_size=0), "chunk_size=0 must be an int >= 1"),
    (dict(ks=(1,), num_classes=2), "gallery label 2 is not < num_classes=2"),
])
def test_bad_arguments(kwargs, match):
    gallery, labels = np.eye(5, 3), np.array([0, 1, 2, 0, 1])
    with pytest.raises(ValueError, match=match):
        knn.knn_predict(np.ones((2, 3)), gallery, labels, **kwargs)


def test_bad_shapes():
    with pytest.raises(ValueError, match=r"queries \(2, 4\) and gallery \(5, 3\)"):
        knn.nearest_neighbors(np.ones((2, 4)), np.ones((5, 3)), 1)
    with pytest.raises(ValueError, match="must be finite"):
        knn.nearest_neighbors(np.full((2, 3), np.nan), np.ones((5, 3)), 1)
    with pytest.raises(ValueError, match="exclude_self=True needs the queries to be the gallery"):
        knn.nearest_neighbors(np.ones((2, 3)), np.ones((5, 3)), 1, exclude_self=True)
