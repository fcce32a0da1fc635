"""Which classes a sampled head scores at a step: proposals, their -log Q, Partial FC's set.

Every draw is stateless, a function of (seed, global step) only, so every replica of a step
draws the same classes and N replicas train exactly as one device.

Sampled softmax (Jean et al. 2015) draws K negatives with replacement from a proposal Q over
the C classes and scores each class c by `logit_c - log(K Q(c))`, the log of its expected count
among the K draws (TensorFlow's `sampled_softmax_loss` with `unique=False`):

    uniform:      Q(c) = 1 / C
    log_uniform:  Q(c) = (log(c + 2) - log(c + 1)) / log(C + 1)     (Zipfian: small ids first)

The log-uniform draw is TensorFlow's `LogUniformSampler`: c = floor(exp(u log(C + 1))) - 1 with
u ~ U[0, 1), which suits classes numbered by decreasing frequency (vocabularies, videos).

Partial FC (An et al. 2021, InsightFace) scores the positive classes of the *global* batch plus
negatives drawn uniformly without replacement from the other classes, S classes in all.
"""
import math

import tensorflow as tf

from tfmodels.options import UsageError

SAMPLERS = ("log_uniform", "uniform")
# Mixed into the run's seed so that head draws do not coincide with other streams.
_SEED_SALT = 0x5A3D


def step_seed(seed, step):
    """The stateless seed [2] of a global step's draws (int64 `step`, the trainer's counter)."""
    return tf.stack([tf.constant(int(seed) ^ _SEED_SALT, tf.int64), tf.cast(step, tf.int64)])


def check_sampler(sampler):
    if sampler not in SAMPLERS:
        raise UsageError(f"--sampler={sampler} is not one of: {', '.join(SAMPLERS)}")


def sample_classes(sampler, num_sampled, num_classes, seed):
    """`num_sampled` classes drawn with replacement from the proposal.

    Args:
      sampler: 'log_uniform' or 'uniform'.
      num_sampled: K.
      num_classes: C.
      seed: stateless seed, int tensor [2].

    Returns:
      int32 [K] in [0, C).
    """
    check_sampler(sampler)
    if sampler == "uniform":
        return tf.random.stateless_uniform([num_sampled], seed, minval=0, maxval=num_classes,
                                           dtype=tf.int32)
    # float64: at C = 1e6 the top of the range needs more than float32's 24 bits.
    u = tf.random.stateless_uniform([num_sampled], seed, dtype=tf.float64)
    ids = tf.floor(tf.exp(u * math.log(num_classes + 1.0))) - 1.0
    return tf.cast(tf.clip_by_value(ids, 0.0, num_classes - 1.0), tf.int32)


def log_expected_count(sampler, classes, num_sampled, num_classes):
    """log(K Q(c)) for each class in `classes` (any int shape), float32: the logit correction.

    Args:
      sampler, num_sampled, num_classes: as `sample_classes`.
      classes: int tensor of class ids.
    """
    check_sampler(sampler)
    if sampler == "uniform":
        value = math.log(num_sampled / num_classes)
        return tf.fill(tf.shape(classes), tf.constant(value, tf.float32))
    c = tf.cast(classes, tf.float64)
    q = (tf.math.log(c + 2.0) - tf.math.log(c + 1.0)) / math.log(num_classes + 1.0)
    return tf.cast(tf.math.log(num_sampled * q), tf.float32)


def partial_fc_size(sample_rate, num_classes, global_batch_size):
    """S, the classes Partial FC scores per step: ceil(r C), at least the global batch (so all
    positives fit), at most C. Static, so the step keeps fixed shapes."""
    wanted = math.ceil(sample_rate * num_classes - 1e-9)
    return int(min(num_classes, max(wanted, global_batch_size)))


def partial_fc_classes(global_labels, num_classes, num_selected, seed):
    """The positives of the global batch, then uniform negatives without replacement.

    Args:
      global_labels: int [G], the labels of the whole global batch (every replica's rows, in
        replica order; the same tensor on every replica).
      num_classes: C.
      num_selected: S = `partial_fc_size(...)` >= the number of distinct labels.
      seed: stateless seed [2].

    Returns:
      (classes int32 [S]: the distinct labels and S - P negatives, in ascending order (the
      class matrix is then read and written in address order); positions int32 [G]: the
      index in `classes` of each label).
    """
    positives, _ = tf.unique(tf.cast(global_labels, tf.int32))
    with tf.name_scope("partial_fc_draw"):  # the only O(C) work of the step: C scalars
        # Uniform scores, positives pushed below every negative: the S - P highest-scoring
        # classes are a uniform draw without replacement from the C - P >= S - P negatives.
        scores = tf.random.stateless_uniform([num_classes], seed)
        scores = tf.tensor_scatter_nd_update(scores, positives[:, None],
                                             -tf.ones_like(positives, tf.float32))
        ranked = tf.math.top_k(scores, k=num_selected, sorted=True).indices
    negatives = ranked[:num_selected - tf.size(positives)]
    classes = tf.sort(tf.ensure_shape(tf.concat([positives, negatives], 0), [num_selected]))
    return classes, tf.searchsorted(classes, tf.cast(global_labels, tf.int32),
                                    out_type=tf.int32)
