"""Scores over all C classes, a chunk of the class matrix at a time: top-k, rank, loss.

Evaluating 1M classes densely holds [B, C] logits per batch and [N, C] over a split (and the
classification metrics a [C, C] confusion matrix). Here each batch streams over the columns of
the class matrix (`nets.class_matrix`) `chunk_size` classes at a time, keeping per example only

    top_k classes and scores   (running top-k of [current top-k, this chunk])
    rank = #{c : z_c > z_y}    (top-k accuracy is rank < k, as `classification_metrics` counts)
    m, s: log-sum-exp state    (lse = m + log s, rescaled at each chunk)
    sum_c z_c                  (label smoothing)  /  the hinge sum below

so peak memory is O(B chunk) and the [N, C] logits never exist. The loss is the run's:

    cross-entropy: lse - (1 - eps) z_y - eps mean_c z_c
    hinge:         sum_{c != y} max(0, z_c - z_y + 1)

`needs_chunks(num_classes)` says when evaluation switches to this path (above
`MAX_DENSE_CLASSES`, where the dense confusion matrix alone would pass 30 MB).
"""
import dataclasses

import tensorflow as tf

from tfmodels.options import check_int

MAX_DENSE_CLASSES = 2048
DEFAULT_CHUNK_SIZE = 4096


def needs_chunks(num_classes):
    """Whether evaluation over `num_classes` streams over chunks of the class matrix."""
    return num_classes > MAX_DENSE_CLASSES


@dataclasses.dataclass(frozen=True)
class ChunkedScores:
    """Per-example scores over every class, computed chunk by chunk.

    Attributes:
      top_k: how many best classes to keep per example (>= 1; clipped to C).
      chunk_size: classes per chunk (memory O(batch * chunk_size)).
      loss: 'cross_entropy', 'hinge' or None (no loss).
      label_smoothing: of the cross-entropy.
    """
    top_k: int = 5
    chunk_size: int = DEFAULT_CHUNK_SIZE
    loss: str = "cross_entropy"
    label_smoothing: float = 0.0

    def __post_init__(self):
        for name in ("top_k", "chunk_size"):
            check_int(name, getattr(self, name), low=1)
        if self.loss not in ("cross_entropy", "hinge", None):
            raise ValueError(f"loss={self.loss!r} must be 'cross_entropy', 'hinge' or None")
        if not 0.0 <= self.label_smoothing <= 1.0:
            raise ValueError(f"label_smoothing={self.label_smoothing} must be in [0, 1]")

    def __call__(self, embedding, kernel, bias, labels):
        """Scores of a batch.

        Args:
          embedding: float [B, D].
          kernel: the class matrix [D, C] (variable or tensor); bias [C] or None.
          labels: int [B].

        Returns:
          dict: 'top_ids' int32 [B, k], 'top_scores' float32 [B, k] (best first; equal
          scores by smaller class id), 'rank' int32 [B], and 'loss' float32 [B] unless
          `loss` is None.
        """
        e = tf.cast(embedding, tf.float32)
        labels = tf.cast(labels, tf.int32)
        kernel = tf.convert_to_tensor(kernel)
        num_classes = kernel.shape[1]
        k = min(self.top_k, num_classes)
        batch = tf.shape(e)[0]
        true = tf.reduce_sum(e * tf.transpose(tf.gather(kernel, labels, axis=1)), axis=1)
        if bias is not None:
            bias = tf.convert_to_tensor(bias)
            true += tf.gather(bias, labels)

        def body(start, top_scores, top_ids, rank, high, total, summed, hinge):
            size = tf.minimum(self.chunk_size, num_classes - start)
            z = tf.matmul(e, kernel[:, start:start + size])
            if bias is not None:
                z += bias[start:start + size]
            ids = tf.broadcast_to(start + tf.range(size), tf.shape(z))
            # Earlier (smaller) ids first, so top_k's stable order keeps the smaller id on ties.
            scores, picked = tf.math.top_k(tf.concat([top_scores, z], 1), k=k)
            top_ids = tf.gather(tf.concat([top_ids, ids], 1), picked, batch_dims=1)
            # The true class itself is left out of both counts: its chunk score may differ
            # from `true` by a rounding error.
            other = tf.not_equal(ids, labels[:, None])
            rank += tf.reduce_sum(tf.cast((z > true[:, None]) & other, tf.int32), axis=1)
            new_high = tf.maximum(high, tf.reduce_max(z, axis=1))
            total = (total * tf.exp(high - new_high)
                     + tf.reduce_sum(tf.exp(z - new_high[:, None]), axis=1))
            summed += tf.reduce_sum(z, axis=1)
            hinge += tf.reduce_sum(tf.where(other, tf.nn.relu(z - true[:, None] + 1.0), 0.0),
                                   axis=1)
            return start + size, scores, top_ids, rank, new_high, total, summed, hinge

        zeros = tf.zeros([batch])
        state = (tf.constant(0), tf.fill([batch, k], -float("inf")),
                 tf.fill([batch, k], tf.constant(-1, tf.int32)), tf.zeros([batch], tf.int32),
                 tf.fill([batch], -float("inf")), zeros, zeros, zeros)
        _, top_scores, top_ids, rank, high, total, summed, hinge = tf.while_loop(
            lambda start, *_: start < num_classes, body, state,
            shape_invariants=(tf.TensorShape([]), tf.TensorShape([None, k]),
                              tf.TensorShape([None, k]), tf.TensorShape([None]),
                              tf.TensorShape([None]), tf.TensorShape([None]),
                              tf.TensorShape([None]), tf.TensorShape([None])))
        return self._result(top_ids, top_scores, rank, high + tf.math.log(total), true, summed,
                            hinge, num_classes)

    def from_logits(self, logits, labels):
        """The same scores from a batch's full logits [B, C] (nets whose logits layer is not
        a class matrix: O(B C) per batch, never [N, C])."""
        z = tf.cast(logits, tf.float32)
        labels = tf.cast(labels, tf.int32)
        num_classes = z.shape[1]
        top_scores, top_ids = tf.math.top_k(z, k=min(self.top_k, num_classes))
        true = tf.gather(z, labels, axis=1, batch_dims=1)
        other = tf.not_equal(tf.range(num_classes)[None, :], labels[:, None])
        rank = tf.reduce_sum(tf.cast((z > true[:, None]) & other, tf.int32), axis=1)
        hinge = tf.reduce_sum(tf.where(other, tf.nn.relu(z - true[:, None] + 1.0), 0.0),
                              axis=1)
        return self._result(top_ids, top_scores, rank, tf.reduce_logsumexp(z, axis=1), true,
                            tf.reduce_sum(z, axis=1), hinge, num_classes)

    def _result(self, top_ids, top_scores, rank, lse, true, summed, hinge, num_classes):
        result = {"top_ids": top_ids, "top_scores": top_scores, "rank": rank}
        if self.loss == "cross_entropy":
            eps = self.label_smoothing
            result["loss"] = lse - (1.0 - eps) * true - eps * summed / num_classes
        elif self.loss == "hinge":
            result["loss"] = hinge
        return result
