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

A sampled head (`--head=sampled_softmax|partial_fc`, tfmodels.training.heads) replaces the
dense logits: before the tape it draws this step's classes and reads their columns of the
class matrix (`selection`), inside the tape it gives the per-example data loss from the
embedding, and its update touches only those columns; everything else above is unchanged.
"""
import keras
import tensorflow as tf


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

    Args:
      strategy: the strategy `parts` were created under (`parts.build_training`).
      parts: the run's `TrainingParts` (optimizer built).
      iterator: per-replica batches {'image', 'label'} (`data.distribute_dataset`).
      config: the run's `TrainConfig` (global batch, center-loss weight, clipping, XLA).
    """

    def __init__(self, strategy, parts, iterator, config):
        self.strategy = strategy
        self.parts = parts
        self.iterator = iterator
        self.global_batch_size = config.global_batch_size
        self.center_loss_weight = float(config.center_loss_weight)
        self.clip_grad_norm = config.clip_grad_norm
        self.head = parts.head  # None: the net's dense logits
        with strategy.scope():
            self.metrics = TrainMetrics()
        # XLA compiles each replica's forward/backward; the all-reduce and the update stay
        # outside (compiling the whole distributed step fails across CPU devices).
        self._forward_backward = (tf.function(self._gradients, jit_compile=True)
                                  if config.jit_compile else self._gradients)
        self.loop = tf.function(self._loop)

    def _gradients(self, images, labels, selection=None):
        sources = self.parts.train_variables
        with tf.GradientTape() as tape:
            if self.head is None:
                outputs = self.parts.model(images, training=True)
                embedding = outputs["embedding"]
                logits = tf.cast(outputs["logits"], tf.float32)
                data_loss = self.parts.loss_fn(labels, logits)
                metric_labels, penalties = labels, self.parts.model.losses
            else:  # logits over this step's classes only (`selection`)
                sources = self.head.body_variables + self.head.selected_weights(selection)
                tape.watch(self.head.selected_weights(selection))
                embedding, data_loss, logits, metric_labels, penalties = self.head.forward(
                    images, labels, selection)
            per_example = data_loss
            center = tf.zeros_like(data_loss)
            if self.parts.center_loss is not None:
                # The centers move after the gradients (see _replica_step).
                center = self.parts.center_loss(embedding, labels, training=False)
                per_example = per_example + self.center_loss_weight * center
            objective = tf.nn.compute_average_loss(
                per_example, global_batch_size=self.global_batch_size)
            regularization = tf.constant(0.0)
            if penalties:
                regularization = tf.add_n([tf.cast(l, tf.float32) for l in penalties])
                objective += tf.nn.scale_regularization_loss(regularization)
            scaled = objective * self.parts.loss_scale.scale if self.parts.loss_scale else objective
        grads = tape.gradient(scaled, sources)
        return (grads, embedding, logits, metric_labels, data_loss, center,
                per_example + regularization)

    def _replica_step(self, batch):
        labels = batch["label"]
        # A sampled head draws this step's classes (the same on every replica) and reads them.
        selection = (None if self.head is None
                     else self.head.select(labels, self.parts.step_counter))
        grads, embedding, logits, metric_labels, data_loss, center, total = \
            self._forward_backward(batch["image"], labels, selection)
        if self.parts.center_loss is not None:
            # Outside the (possibly XLA-compiled) forward pass: the update sums per-class
            # statistics over replicas. Same c_j^t and x_i^t as the loss used.
            self.parts.center_loss.update_centers(embedding, labels)
        context = tf.distribute.get_replica_context()
        grads = context.all_reduce(tf.distribute.ReduceOp.SUM, grads)
        if self.parts.loss_scale is not None:
            grads = [g / self.parts.loss_scale.scale for g in grads]
        if self.clip_grad_norm:
            grads, _ = tf.clip_by_global_norm(grads, self.clip_grad_norm)
        if self.parts.loss_scale is None:
            self._apply(grads, selection)
        else:
            finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in grads])
            # A cond whose branch calls merge_call (optimizer.apply does) must run in a
            # cross-replica context; every replica holds the same `finite` (summed gradients).
            context.merge_call(self._apply_if_finite, args=(grads, selection, finite))

        self.metrics.loss.update_state(total)
        self.metrics.data_loss.update_state(data_loss)
        self.metrics.center_loss.update_state(center)
        self.metrics.accuracy.update_state(metric_labels, logits)

    def _apply(self, grads, selection=None):
        if self.head is None:
            self.parts.optimizer.apply(grads)
        else:  # the selected columns of the class matrix, then the net below it
            self.head.apply(selection, grads)
        if self.parts.weight_average is not None:
            self.parts.weight_average.update(self.parts.optimizer.iterations)

    def _apply_if_finite(self, strategy, grads, selection, finite):
        finite = strategy.experimental_local_results(finite)[0]

        def apply():
            strategy.extended.call_for_each_replica(self._apply, args=(grads, selection))
            self.parts.loss_scale.after_finite_step()

        tf.cond(finite, apply, self.parts.loss_scale.after_skipped_step)

    def _loop(self, num_steps):
        for _ in tf.range(num_steps):
            self.strategy.run(self._replica_step, args=(next(self.iterator),))
            self.parts.step_counter.assign_add(1)
