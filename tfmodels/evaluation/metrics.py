"""Classification metrics from collected outputs, in NumPy (float64 accumulation)."""
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
