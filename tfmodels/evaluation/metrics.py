"""Classification metrics from collected outputs, in NumPy (float64 accumulation): from full
logits, or from scores streamed over chunks of many classes (`ranked_metrics`)."""
import numpy as np


def classification_metrics(labels, logits, losses=None, top_k=(5,)):
    """Accuracy, top-k accuracy, per-class accuracy, confusion matrix and mean loss.

    Args:
      labels: int [N] true classes.
      logits: float [N, K] scores (any monotone transform of probabilities gives the same).
      losses: optional float [N] per-example losses; adds 'loss' (their mean).
      top_k: the k values for 'top_<k>_accuracy'; a k >= K is skipped (it would be 1).

    Returns:
      dict: 'accuracy', 'top_<k>_accuracy', 'per_class_accuracy' [K] (NaN for a class with no
      examples), 'confusion_matrix' [K, K] (rows: true class, columns: predicted), 'count',
      and 'loss'.
    """
    labels = np.asarray(labels, np.int64)
    logits = np.asarray(logits)
    num_examples, num_classes = logits.shape
    if labels.shape != (num_examples,):
        raise ValueError(f"labels of shape {labels.shape} do not match logits {logits.shape}")
    if num_examples == 0:
        raise ValueError("no examples to evaluate")
    predictions = logits.argmax(axis=1)
    confusion = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(confusion, (labels, predictions), 1)
    per_class_total = confusion.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_class = np.diag(confusion) / per_class_total
    result = {"accuracy": float(np.mean(predictions == labels)),
              "per_class_accuracy": per_class, "confusion_matrix": confusion,
              "count": int(num_examples)}
    for k in top_k:
        if k < num_classes:
            # Rank of the true class: how many classes score strictly higher.
            true_scores = logits[np.arange(num_examples), labels][:, None]
            rank = (logits > true_scores).sum(axis=1)
            result[f"top_{k}_accuracy"] = float(np.mean(rank < k))
    if losses is not None:
        result["loss"] = float(np.mean(np.asarray(losses, np.float64)))
    return result


def ranked_metrics(labels, top_ids, rank, losses=None, top_k=(5,), num_classes=None):
    """`classification_metrics`' scalars from scores streamed over chunks of classes
    (`chunked.ChunkedScores`): no [N, C] logits, no per-class accuracy or [C, C] confusion.

    Args:
      labels: int [N] true classes.
      top_ids: int [N, k] best classes first (ties: smaller id first, as argmax).
      rank: int [N] how many classes score strictly higher than the true one.
      losses: optional float [N]; adds 'loss'.
      top_k: the k values for 'top_<k>_accuracy'; a k >= num_classes is skipped.
      num_classes: C (default: no k is skipped).

    Returns:
      dict: 'accuracy', 'top_<k>_accuracy', 'count' and 'loss'.
    """
    labels = np.asarray(labels, np.int64)
    rank = np.asarray(rank, np.int64)
    if labels.size == 0:
        raise ValueError("no examples to evaluate")
    result = {"accuracy": float(np.mean(np.asarray(top_ids)[:, 0] == labels)),
              "count": int(labels.size)}
    for k in top_k:
        if num_classes is None or k < num_classes:
            result[f"top_{k}_accuracy"] = float(np.mean(rank < k))
    if losses is not None:
        result["loss"] = float(np.mean(np.asarray(losses, np.float64)))
    return result


def output_metrics(outputs, top_k=(5,), num_classes=None):
    """`classification_metrics` of `collect_outputs`' arrays, or `ranked_metrics` when they were
    scored in chunks (they then hold 'rank' instead of 'logits')."""
    if "logits" in outputs:
        return classification_metrics(outputs["label"], outputs["logits"], outputs.get("loss"),
                                      top_k=top_k)
    return ranked_metrics(outputs["label"], outputs["top_ids"], outputs["rank"],
                          outputs.get("loss"), top_k=top_k, num_classes=num_classes)
