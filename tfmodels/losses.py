"""Per-example classification losses and the registry of data losses.

    loss_fn = per_example_loss_fn("cross_entropy", label_smoothing=0.1)
    per_example = loss_fn(labels, logits)            # float32 [batch]

Every loss returns one value per example (shape `[batch]`, float32 even for float16/bfloat16
logits); averaging is the trainer's job, because under a distribution strategy the mean must be
taken over the *global* batch (`tf.nn.compute_average_loss`), not the replica's slice.
"""
import tensorflow as tf

from tfmodels.layers.softmax import log_softmax

# The data losses a run can train with (`--loss`); `per_example_loss_fn` builds them.
LOSSES = ("cross_entropy", "hinge")


def _check_smoothing(label_smoothing):
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing={label_smoothing} must be in [0, 1]")


def sparse_softmax_cross_entropy(labels, logits, label_smoothing=0.0):
    """Cross-entropy of integer `labels` [N] against `logits` [N, K], per example.

    loss_i = -sum_k q_ik log p_ik, p = softmax(logits), q = (1 - eps) onehot(y) + eps / K.
    With eps = 0 this is -log p_{i, y_i} (TensorFlow's fused kernel).
    """
    _check_smoothing(label_smoothing)
    logits = _as_float32(logits)
    labels = tf.cast(labels, tf.int32)
    if label_smoothing == 0.0:
        return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    num_classes = tf.shape(logits)[-1]
    return softmax_cross_entropy(
        tf.one_hot(labels, num_classes, dtype=logits.dtype), logits, label_smoothing)


def softmax_cross_entropy(onehot_labels, logits, label_smoothing=0.0):
    """Cross-entropy of a label distribution `onehot_labels` [N, K] against `logits`, per example.

    loss_i = -sum_k q_ik log_softmax(logits)_ik with q = (1 - eps) onehot + eps / K.
    Kept over `keras.losses.categorical_crossentropy(from_logits=True, label_smoothing=eps)`:
    equal losses, but gradients up to 6e-7 apart (256 x 1000 logits), which would change every
    run with the default smoothing 0.1.
    """
    _check_smoothing(label_smoothing)
    logits = _as_float32(logits)
    targets = tf.cast(onehot_labels, logits.dtype)
    if label_smoothing:
        num_classes = tf.cast(tf.shape(logits)[-1], logits.dtype)
        targets = targets * (1.0 - label_smoothing) + label_smoothing / num_classes
    return -tf.reduce_sum(targets * log_softmax(logits, axis=-1), axis=-1)


def multiclass_hinge(labels, logits, delta=1.0):
    """Multiclass SVM (Weston-Watkins / CS231n) hinge loss per example.

    loss_i = sum_{j != y_i} max(0, s_ij - s_iy_i + delta). Its (sub)gradient is the CS231n one:
    d/ds_ij = 1[margin_ij > 0] for j != y_i and d/ds_iy_i = -sum_j 1[margin_ij > 0].
    """
    if delta < 0:
        raise ValueError(f"delta={delta} must be >= 0")
    scores = _as_float32(logits)
    labels = tf.cast(labels, tf.int32)
    correct = tf.gather(scores, labels, axis=-1, batch_dims=1)[:, None]
    margins = tf.nn.relu(scores - correct + delta)  # relu: gradient 1[margin > 0]
    not_true = 1.0 - tf.one_hot(labels, tf.shape(scores)[-1], dtype=scores.dtype)
    return tf.reduce_sum(margins * not_true, axis=-1)


def per_example_loss_fn(name, label_smoothing=0.0):
    """The data loss named `name` (one of `LOSSES`) as `fn(labels, logits) -> [batch]`.

    Raises:
      ValueError: unknown name, or label smoothing with a loss that has no targets to smooth.
    """
    if name == "cross_entropy":
        _check_smoothing(label_smoothing)
        return lambda labels, logits: sparse_softmax_cross_entropy(
            labels, logits, label_smoothing=label_smoothing)
    if name == "hinge":
        if label_smoothing:
            raise ValueError(f"label_smoothing={label_smoothing} applies to cross_entropy only, "
                             "not to loss='hinge'")
        return multiclass_hinge
    raise ValueError(f"loss={name!r} is not one of {', '.join(LOSSES)}")


def _as_float32(logits):
    """Losses are computed in (at least) float32 even when the model runs in float16/bfloat16."""
    logits = tf.convert_to_tensor(logits)
    if logits.dtype in (tf.float16, tf.bfloat16):
        logits = tf.cast(logits, tf.float32)
    return logits
