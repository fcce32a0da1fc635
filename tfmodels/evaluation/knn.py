"""k-nearest-neighbour classification of embeddings against a gallery, in bounded memory.

Distances use CS231n's no-loop form, one matrix product per chunk of queries:

    d²(q, g) = ‖q‖² + ‖g‖² − 2 q·g          (clipped at 0: rounding can make it slightly < 0)

in float64, so the expansion's cancellation stays far below the gaps between real neighbours.
Queries are processed `chunk_size` at a time, so memory is O(chunk_size · gallery size), never
O(queries · gallery).

Neighbours are the k gallery items with the smallest distance; at equal distance the smaller
gallery index comes first (so the result does not depend on the chunking or on NumPy's
partition algorithm). The vote: each neighbour votes for its label; the class with the most
votes wins; **tie-break**: among tied classes the one whose voting neighbours have the smallest
summed Euclidean distance, and at exactly equal sums the smallest class index.
"""
import numpy as np

from tfmodels.options import check_int

# Elements of one chunk's distance matrix (float64): 2**22 x 8 bytes = 32 MiB.
DEFAULT_MAX_ELEMENTS = 1 << 22


def nearest_neighbors(queries, gallery, k, *, chunk_size=None, exclude_self=False):
    """The `k` nearest gallery items of every query.

    Args:
      queries: float [Q, D].
      gallery: float [G, D].
      k: int in [1, G] (in [1, G − 1] with `exclude_self`).
      chunk_size: queries per distance matrix; default keeps it at DEFAULT_MAX_ELEMENTS.
      exclude_self: queries are the gallery itself (Q == G, same order): item i is not its
        own neighbour (leave-one-out).

    Returns:
      (indices int64 [Q, k], distances float64 [Q, k]): Euclidean distances, ascending, equal
      distances by ascending gallery index.
    """
    queries, gallery = _check_arrays(queries, gallery)
    num_queries, num_gallery = len(queries), len(gallery)
    _check_k(k, num_gallery - int(bool(exclude_self)), "k")
    if exclude_self and num_queries != num_gallery:
        raise ValueError(f"exclude_self=True needs the queries to be the gallery; got "
                         f"{num_queries} queries and {num_gallery} gallery items")
    chunk_size = _chunk_size(chunk_size, num_gallery)
    indices = np.empty((num_queries, k), np.int64)
    distances = np.empty((num_queries, k), np.float64)
    gallery_sq = np.einsum("ij,ij->i", gallery, gallery)
    for start in range(0, num_queries, chunk_size):
        chunk = queries[start:start + chunk_size]
        rows = np.arange(len(chunk))
        sq = (np.einsum("ij,ij->i", chunk, chunk)[:, None] + gallery_sq[None, :]
              - 2.0 * chunk @ gallery.T)
        np.maximum(sq, 0.0, out=sq)
        if exclude_self:
            sq[rows, start + rows] = np.inf
        idx = _smallest_k(sq, k)
        d = np.take_along_axis(sq, idx, axis=1)
        # idx is ascending within each row, so a stable sort by distance orders equal
        # distances by gallery index.
        order = np.argsort(d, axis=1, kind="stable")
        indices[start:start + len(chunk)] = np.take_along_axis(idx, order, axis=1)
        distances[start:start + len(chunk)] = np.sqrt(np.take_along_axis(d, order, axis=1))
    return indices, distances


def knn_predict(queries, gallery, gallery_labels, ks=(1,), *, num_classes=None,
                chunk_size=None, exclude_self=False):
    """Majority-vote k-NN predictions for each k in `ks` (one neighbour search for all).

    Args:
      queries: float [Q, D].
      gallery: float [G, D].
      gallery_labels: int [G] in [0, num_classes).
      ks: the k values.
      num_classes: number of classes (default: max label + 1).
      chunk_size, exclude_self: as `nearest_neighbors`.

    Returns:
      {k: int64 [Q] predicted classes}; ties broken as the module docstring says.
    """
    ks = tuple(ks)
    if not ks:
        raise ValueError("ks=() is empty: give at least one k")
    queries, gallery = _check_arrays(queries, gallery)
    gallery_labels = np.asarray(gallery_labels, np.int64)
    if gallery_labels.shape != (len(gallery),):
        raise ValueError(f"gallery_labels of shape {gallery_labels.shape} do not match the "
                         f"gallery of shape {gallery.shape}")
    if gallery_labels.size and gallery_labels.min() < 0:
        raise ValueError(f"gallery_labels must be >= 0, got {gallery_labels.min()}")
    if num_classes is None:
        num_classes = int(gallery_labels.max()) + 1
    elif gallery_labels.size and gallery_labels.max() >= num_classes:
        raise ValueError(f"gallery label {gallery_labels.max()} is not < "
                         f"num_classes={num_classes}")
    for k in ks:
        _check_k(k, len(gallery) - int(bool(exclude_self)), "knn k")
    indices, distances = nearest_neighbors(queries, gallery, max(ks), chunk_size=chunk_size,
                                           exclude_self=exclude_self)
    neighbor_labels = gallery_labels[indices]
    chunk_size = _chunk_size(chunk_size, num_classes)  # bounds the [chunk, classes] votes too
    predictions = {k: np.empty(len(queries), np.int64) for k in ks}
    for start in range(0, len(queries), chunk_size):
        stop = min(start + chunk_size, len(queries))
        for k in ks:
            predictions[k][start:stop] = _vote(neighbor_labels[start:stop, :k],
                                               distances[start:stop, :k], num_classes)
    return predictions


def knn_accuracy(queries, query_labels, gallery, gallery_labels, ks=(1, 5), **kwargs):
    """Accuracy of `knn_predict` for each k: {k: mean(prediction == query label)}.

    Args:
      queries, gallery, gallery_labels, ks, **kwargs: as `knn_predict`.
      query_labels: int [Q] true classes of the queries.
    """
    query_labels = np.asarray(query_labels, np.int64)
    if query_labels.shape != (len(queries),):
        raise ValueError(f"query_labels of shape {query_labels.shape} do not match "
                         f"{len(queries)} queries")
    predictions = knn_predict(queries, gallery, gallery_labels, ks, **kwargs)
    return {k: float(np.mean(p == query_labels)) for k, p in predictions.items()}


def _smallest_k(sq, k):
    """Column indices of the k smallest entries of each row, ascending; at the k-th value's
    ties the smallest indices (argpartition alone would pick arbitrary ones)."""
    kth = np.partition(sq, k - 1, axis=1)[:, k - 1:k]
    less = sq < kth
    equal = sq == kth
    still_needed = k - less.sum(axis=1, keepdims=True)
    take = less | (equal & (np.cumsum(equal, axis=1) <= still_needed))
    return np.nonzero(take)[1].reshape(len(sq), k)  # row-major: ascending within each row


def _vote(labels, distances, num_classes):
    """Most votes; then smallest summed distance; then smallest class (argmin takes the first)."""
    rows = np.repeat(np.arange(len(labels)), labels.shape[1])
    votes = np.zeros((len(labels), num_classes), np.int64)
    summed = np.zeros((len(labels), num_classes), np.float64)
    np.add.at(votes, (rows, labels.ravel()), 1)
    np.add.at(summed, (rows, labels.ravel()), distances.ravel())
    tied = votes == votes.max(axis=1, keepdims=True)
    return np.argmin(np.where(tied, summed, np.inf), axis=1)


def _check_arrays(queries, gallery):
    queries = np.asarray(queries, np.float64)
    gallery = np.asarray(gallery, np.float64)
    if queries.ndim != 2 or gallery.ndim != 2 or queries.shape[1] != gallery.shape[1]:
        raise ValueError(f"queries {queries.shape} and gallery {gallery.shape} must be [Q, D] "
                         "and [G, D] with the same D")
    if not (np.isfinite(queries).all() and np.isfinite(gallery).all()):
        raise ValueError("queries and gallery must be finite (the embeddings hold inf or NaN)")
    return queries, gallery


def _check_k(k, limit, name):
    """k in [1, limit]: at most the gallery size, minus one when a query is excluded as its
    own neighbour."""
    check_int(name, k, low=1, high=limit)


def _chunk_size(chunk_size, width):
    if chunk_size is None:
        return max(1, DEFAULT_MAX_ELEMENTS // max(width, 1))
    return check_int("chunk_size", chunk_size, low=1)
