"""Center loss (Wen et al., "A Discriminative Feature Learning Approach for Deep Face
Recognition", ECCV 2016), exact under tf.distribute.

The layer holds one center per class, C (num_classes x feature_dim, zero-initialised, not
trainable), and returns the per-example loss

    L_i = 1/2 ||x_i - c_{y_i}||^2,        dL_i/dx_i = x_i - c_{y_i}   (centers get no gradient)

When called with `training=True` it also moves the centers by the paper's rule (Algorithm 1):

    delta_c_j = sum_{i: y_i = j} (c_j - x_i) / (1 + n_j),    c_j <- c_j - alpha * delta_c_j

where n_j counts class j in the *global* batch. Under a distribution strategy every replica
all-reduces its per-class sums and counts first, so N replicas on a split global batch move the
centers exactly as one device on the whole batch (the `unique_with_counts` + `scatter_sub`
recipe with local counts drifts). The update costs O(B D) whatever the number of classes: the
sums run over the global batch's distinct classes (labels all-gathered, so every replica has the
same list), and only those rows of the centers are rewritten, in place
(`variable_slices.scatter_add`). The joint objective is L_softmax + lambda * L_center: lambda
is the caller's weight on the returned loss, alpha the center learning rate given here.

Custom training loop (inside `strategy.run` or eagerly):

    center_loss = CenterLoss(num_classes=10, feature_dim=2, alpha=0.5)   # in strategy.scope()
    per_example = ce + lam * center_loss(features, labels, training=True)

Keras model: the same call in a subclassed model's `call`/`train_step`, or as a layer of a
functional model with `[features, labels]` inputs; the update runs whenever the layer is called
with `training=True` (e.g. during `model.fit`), never as a separate op someone must remember.
"""
import keras
import tensorflow as tf

from tfmodels.layers import variable_slices
from tfmodels.options import check_int


@keras.saving.register_keras_serializable(package="tfmodels")
class CenterLoss(keras.layers.Layer):
    """Per-example center loss with the paper's center update.

    Args:
      num_classes: number of classes (rows of `centers`).
      feature_dim: size of the feature vectors (columns of `centers`).
      alpha: center learning rate in [0, 1]; 0 freezes the centers.

    Call args:
      features: float [N, feature_dim] (or [feature_dim] per row of a batch).
      labels: int [N] in [0, num_classes).
      training: when True, apply the center update after computing the loss.

    Returns:
      float32 [N]: 1/2 ||x_i - c_{y_i}||^2.
    """

    def __init__(self, num_classes, feature_dim, alpha=0.5, **kwargs):
        kwargs["autocast"] = False  # centers and distances stay float32 under mixed precision
        super().__init__(**kwargs)
        for arg, value in (("num_classes", num_classes), ("feature_dim", feature_dim)):
            check_int(f"CenterLoss {arg}", value, low=1)
        if not isinstance(alpha, (int, float)) or not 0.0 <= alpha <= 1.0:
            raise ValueError(f"CenterLoss alpha={alpha!r} must be a number in [0, 1]")
        self.num_classes = num_classes
        self.feature_dim = feature_dim
        self.alpha = float(alpha)
        # Created here, not in build(): the trainer builds it under strategy.scope() and
        # checkpoints it before the first call.
        self.centers = self.add_weight(
            name="centers", shape=(num_classes, feature_dim), initializer="zeros",
            dtype="float32", trainable=False, autocast=False,
            # Mirrored (synchronised on write); every replica computes the same all-reduced
            # update, so it is applied once, from the first replica, to all copies.
            aggregation="only_first_replica")

    def build(self, features_shape, labels_shape=None):
        if features_shape[-1] is not None and features_shape[-1] != self.feature_dim:
            raise ValueError(
                f"CenterLoss(feature_dim={self.feature_dim}) got features of shape "
                f"{tuple(features_shape)}: the last dimension must be {self.feature_dim}")
        super().build(features_shape)

    def call(self, features, labels, training=None):
        features = tf.cast(features, tf.float32)
        labels = self._checked_labels(labels)
        # The centers before this step's update; B rows read, never the whole table.
        centers = variable_slices.gather(self.centers, labels, axis=0)
        diff = features - centers
        loss = 0.5 * tf.reduce_sum(tf.square(diff), axis=-1)
        if training and self.alpha > 0.0:
            with tf.control_dependencies([loss]):
                self._apply_update(tf.stop_gradient(diff), labels)
        return loss

    def update_centers(self, features, labels):
        """Only the center update of a training call (the loss computed without it first).

        For callers that must separate the two, e.g. a forward pass compiled with XLA, which
        cannot hold the cross-replica sum the update needs: `layer(x, y, training=False)`
        inside, `layer.update_centers(x, y)` after; the result equals `training=True`.
        """
        if self.alpha == 0.0:
            return
        features = tf.stop_gradient(tf.cast(features, tf.float32))
        labels = self._checked_labels(labels)
        centers = variable_slices.gather(self.centers, labels, axis=0)
        self._apply_update(features - centers, labels)

    def _apply_update(self, diff, labels):
        classes, update = self._center_update(diff, labels)
        if tf.distribute.in_cross_replica_context():  # the batch is whole; update every copy
            for centers in tf.distribute.get_strategy().experimental_local_results(
                    self.centers.value):
                variable_slices.scatter_add(centers, classes, -update, axis=0)
        else:
            variable_slices.scatter_add(self.centers, classes, -update, axis=0)

    def _checked_labels(self, labels):
        labels = tf.cast(labels, tf.int32)
        # A GPU gather with an out-of-range index silently returns zeros: check explicitly.
        checks = [
            tf.debugging.assert_non_negative(
                labels, message=f"CenterLoss labels must be in [0, {self.num_classes})"),
            tf.debugging.assert_less(
                labels, self.num_classes,
                message=f"CenterLoss labels must be in [0, {self.num_classes})"),
        ]
        with tf.control_dependencies(checks):
            return tf.identity(labels)

    def _center_update(self, diff, labels):
        """(classes [G], alpha * sum_{y_i=j}(c_j - x_i) / (1 + n_j) [G, D] for each), with sums
        and n_j over the global batch of G examples: its distinct classes first, then padding
        (the first class again, with a zero update)."""
        # In a replica context (strategy.run, model.fit) the labels of every replica are
        # gathered, so each replica lists the same classes in the same order and the per-class
        # sums can be all-reduced row by row. In a cross-replica context the batch is whole.
        replica_context = tf.distribute.get_replica_context()
        distributed = replica_context is not None and replica_context.num_replicas_in_sync > 1
        global_labels, offset = labels, 0
        if distributed:
            global_labels = replica_context.all_gather(labels, axis=0)
            offset = replica_context.replica_id_in_sync_group * tf.shape(labels)[0]
        classes, index = tf.unique(global_labels)
        size = tf.size(global_labels)
        mine = index[offset:offset + tf.shape(labels)[0]]
        sums = tf.math.unsorted_segment_sum(-diff, mine, size)
        counts = tf.math.unsorted_segment_sum(tf.ones_like(labels, tf.float32), mine, size)
        if distributed:
            sums, counts = replica_context.all_reduce(tf.distribute.ReduceOp.SUM, [sums, counts])
        padded = tf.gather(classes, tf.where(tf.range(size) < tf.size(classes),
                                             tf.range(size), 0))
        return padded, self.alpha * sums / (1.0 + counts)[:, None]

    def compute_output_spec(self, features, labels, training=None):
        return keras.KerasTensor(features.shape[:-1], dtype="float32")

    def get_config(self):
        config = super().get_config()
        config.update(num_classes=self.num_classes, feature_dim=self.feature_dim,
                      alpha=self.alpha)
        return config
