"""The replicated training step.

Per replica, on its slice of the global batch:

    per_example = loss(labels, logits) + center_loss_weight * center_loss(embedding, labels)
    objective   = sum(per_example) / global_batch + regularization / num_replicas
    grads       = all_reduce_sum(d objective / d w)        # == the single-device gradient
    grads       = clip_by_global_norm(grads)                # after the all-reduce
    optimizer.apply(grads)                                  # skipped if float16 grads overflow

Dividing by the *global* batch and scaling regularization by 1/replicas makes the sum over
replicas equal the one-device objective. The center loss moves its centers with per-class
counts all-reduced over the global batch (tfmodels.layers.CenterLoss).
"""
import keras
import tensorflow as tf

from tfmodels import losses as losses_lib

LOSSES = ("cross_entropy", "hinge")


def per_example_loss_fn(name, label_smoothing=0.0):
    """The data loss, one value per example, for a `--loss` name."""
    if name == "cross_entropy":
        return lambda labels, logits: losses_lib.sparse_softmax_cross_entropy(
            labels, logits, label_smoothing=label_smoothing)
    if name == "hinge":
        if label_smoothing:
            raise ValueError(f"label_smoothing={label_smoothing} applies to cross_entropy only, "
                             "not to loss='hinge'")
        return losses_lib.multiclass_hinge
    raise ValueError(f"loss={name!r} is not one of {', '.join(LOSSES)}")


class TrainMetrics:
    """Training metrics, aggregated across replicas by Keras (read `result()` outside)."""

    def __init__(self):
        self.loss = keras.metrics.Mean(name="loss")
        self.data_loss = keras.metrics.Mean(name="data_loss")
        self.center_loss = keras.metrics.Mean(name="center_loss")
        self.accuracy = keras.metrics.SparseCategoricalAccuracy(name="accuracy")

    @property
    def all(self):
        return [self.loss, self.data_loss, self.center_loss, self.accuracy]

    def reset(self):
        for metric in self.all:
            metric.reset_state()

    def results(self):
        return {m.name: float(m.result()) for m in self.all}


class TrainStep:
    """`loop(num_steps)`: `num_steps` replicated steps on batches from `iterator`, in one
    tf.function call (num_steps is a tensor: one trace for any count).

    All objects must have been created inside `strategy.scope()`; the optimizer must be built.
    """

    def __init__(self, strategy, *, model, variables, optimizer, loss_fn, global_batch_size,
                 step_counter, iterator, center_loss=None, center_loss_weight=0.0, clip_grad_norm=None,
                 loss_scale=None, weight_average=None, jit_compile=False):
        self.strategy = strategy
        self.model = model
        self.optimizer = optimizer
        self.loss_fn = loss_fn
        self.global_batch_size = global_batch_size
        self.step_counter = step_counter
        self.iterator = iterator
        self.center_loss = center_loss
        self.center_loss_weight = float(center_loss_weight)
        self.clip_grad_norm = clip_grad_norm
        self.loss_scale = loss_scale
        self.weight_average = weight_average
        self.variables = variables  # what the optimizer trains (trainable_scopes)
        with strategy.scope():
            self.metrics = TrainMetrics()
        # XLA compiles each replica's forward/backward; the all-reduce and the update stay
        # outside (compiling the whole distributed step fails across CPU devices).
        self._forward_backward = (tf.function(self._gradients, jit_compile=True)
                                  if jit_compile else self._gradients)
        self.loop = tf.function(self._loop)

    def _gradients(self, images, labels):
        with tf.GradientTape() as tape:
            outputs = self.model(images, training=True)
            logits = tf.cast(outputs["logits"], tf.float32)
            data_loss = self.loss_fn(labels, logits)
            per_example = data_loss
            center = tf.zeros_like(data_loss)
            if self.center_loss is not None:
                # The centers move after the gradients (see _replica_step).
                center = self.center_loss(outputs["embedding"], labels, training=False)
                per_example = per_example + self.center_loss_weight * center
            objective = tf.nn.compute_average_loss(
                per_example, global_batch_size=self.global_batch_size)
            regularization = tf.constant(0.0)
            if self.model.losses:
                regularization = tf.add_n([tf.cast(l, tf.float32) for l in self.model.losses])
                objective += tf.nn.scale_regularization_loss(regularization)
            scaled = objective * self.loss_scale.scale if self.loss_scale else objective
        grads = tape.gradient(scaled, self.variables)
        return grads, outputs["embedding"], logits, data_loss, center, per_example + regularization

    def _replica_step(self, batch):
        labels = batch["label"]
        grads, embedding, logits, data_loss, center, total = self._forward_backward(
            batch["image"], labels)
        if self.center_loss is not None:
            # Outside the (possibly XLA-compiled) forward pass: the update sums per-class
            # statistics over replicas. Same c_j^t and x_i^t as the loss used.
            self.center_loss.update_centers(embedding, labels)
        context = tf.distribute.get_replica_context()
        grads = context.all_reduce(tf.distribute.ReduceOp.SUM, grads)
        if self.loss_scale is not None:
            grads = [g / self.loss_scale.scale for g in grads]
        if self.clip_grad_norm:
            grads, _ = tf.clip_by_global_norm(grads, self.clip_grad_norm)
        if self.loss_scale is None:
            self._apply(grads)
        else:
            finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in grads])
            # A cond whose branch calls merge_call (optimizer.apply does) must run in a
            # cross-replica context; every replica holds the same `finite` (summed gradients).
            context.merge_call(self._apply_if_finite, args=(grads, finite))

        self.metrics.loss.update_state(total)
        self.metrics.data_loss.update_state(data_loss)
        self.metrics.center_loss.update_state(center)
        self.metrics.accuracy.update_state(labels, logits)

    def _apply(self, grads):
        self.optimizer.apply(grads)
        if self.weight_average is not None:
            self.weight_average.update(self.optimizer.iterations)

    def _apply_if_finite(self, strategy, grads, finite):
        finite = strategy.experimental_local_results(finite)[0]

        def apply():
            strategy.extended.call_for_each_replica(self._apply, args=(grads,))
            self.loss_scale.after_finite_step()

        tf.cond(finite, apply, self.loss_scale.after_skipped_step)

    def _loop(self, num_steps):
        for _ in tf.range(num_steps):
            self.strategy.run(self._replica_step, args=(next(self.iterator),))
            self.step_counter.assign_add(1)
