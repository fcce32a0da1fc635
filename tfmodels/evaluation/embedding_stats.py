"""How compact each class is around its center and how far apart the centers are.

With embeddings x_i, labels y_i and class centers c_j (the center loss's learned centers, or the
class means of the training embeddings when the run had no center loss):

    intra-class distance   d_i = ‖x_i − c_{y_i}‖₂                       (each evaluated example)
    intra_mean = (1/N) Σ_i d_i,   intra_std = sqrt((1/N) Σ_i (d_i − intra_mean)²)
    per_class_intra_mean_j = mean of d_i over y_i = j                   (NaN: no example)
    inter-class distance   D_jl = ‖c_j − c_l‖₂  for every pair j < l of classes with a center
    inter_min = min D_jl,   inter_mean = mean D_jl
    intra_inter_ratio = intra_mean / inter_mean

A smaller ratio means tighter, better separated classes (it is scale-free: multiplying every
embedding and center by s leaves it unchanged). Center loss lowers intra_mean; softmax alone
separates the classes radially with large intra-class spread (Wen et al. 2016, Fig. 3).
Classes without a center (no training example, for class means) are left out of both.
"""
import numpy as np


def class_means(embeddings, labels, num_classes):
    """Mean embedding of each class: float64 [num_classes, D], NaN rows for absent classes.

    mean_j = (1/n_j) Σ_{y_i = j} x_i.
    """
    embeddings = np.asarray(embeddings, np.float64)
    labels = _check_labels(labels, len(embeddings), num_classes)
    sums = np.zeros((num_classes, embeddings.shape[1]), np.float64)
    np.add.at(sums, labels, embeddings)
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums / counts[:, None]


def embedding_stats(embeddings, labels, centers):
    """Intra-class and inter-class distance statistics (formulas in the module docstring).

    Args:
      embeddings: float [N, D], the evaluated examples.
      labels: int [N] in [0, K).
      centers: float [K, D]; a NaN row marks a class without a center.

    Returns:
      dict: 'intra_mean', 'intra_std', 'intra_count' (examples whose class has a center),
      'per_class_intra_mean' [K], 'inter_min', 'inter_mean', 'intra_inter_ratio' (NaN when
      undefined: no example with a center, or fewer than two centers).
    """
    embeddings = np.asarray(embeddings, np.float64)
    centers = np.asarray(centers, np.float64)
    if embeddings.ndim != 2 or centers.ndim != 2 or embeddings.shape[1] != centers.shape[1]:
        raise ValueError(f"embeddings {embeddings.shape} and centers {centers.shape} must be "
                         "[N, D] and [K, D] with the same D")
    num_classes = len(centers)
    labels = _check_labels(labels, len(embeddings), num_classes)
    has_center = np.isfinite(centers).all(axis=1)

    kept = has_center[labels]
    intra = np.linalg.norm(embeddings[kept] - centers[labels[kept]], axis=1)
    per_class_sum = np.bincount(labels[kept], weights=intra, minlength=num_classes)
    per_class_count = np.bincount(labels[kept], minlength=num_classes)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_class = per_class_sum / per_class_count

    present = centers[has_center]
    first, second = np.triu_indices(len(present), k=1)
    inter = np.linalg.norm(present[first] - present[second], axis=1)

    intra_mean = float(intra.mean()) if intra.size else float("nan")
    inter_mean = float(inter.mean()) if inter.size else float("nan")
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = float(np.float64(intra_mean) / inter_mean)
    return {
        "intra_mean": intra_mean,
        "intra_std": float(intra.std()) if intra.size else float("nan"),
        "intra_count": int(intra.size),
        "per_class_intra_mean": per_class,
        "inter_min": float(inter.min()) if inter.size else float("nan"),
        "inter_mean": inter_mean,
        "intra_inter_ratio": ratio,
    }


def _check_labels(labels, num_examples, num_classes):
    labels = np.asarray(labels, np.int64)
    if labels.shape != (num_examples,):
        raise ValueError(f"labels of shape {labels.shape} do not match {num_examples} "
                         "embeddings")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"labels must be in [0, {num_classes}), got "
                         f"[{labels.min()}, {labels.max()}]")
    return labels
