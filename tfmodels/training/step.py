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
A margin (`--margin`, tfmodels.training.margins) replaces the logits by scaled cosines between
the normalised embedding and the logits layer's kernel columns, the target's with a margin.
"""
import numpy as np
import tensorflow as tf

from tfmodels.training import margins


class TrainMetrics:
    """The training metrics of one loop, accumulated in-graph with one variable update a step.

    Per step, each replica adds to its own copy of `totals` (ON_READ, SUM: no communication per
    step), example by example, its per-example loss (data loss + weighted center loss), the
    data loss and center loss when a center loss is on, and whether the top-1 prediction is
    correct. Reading `totals` outside the replica function adds the copies, and the examples
    are summed once per loop. The regularization (a function of the weights only) is
    evaluated once, at the end of the loop; with a sampled head it depends on the step's
    classes, so it is accumulated per step instead (`stepwise_regularization`).

    `results` gives means over the loop's examples (steps x global batch), the same for any
    number of replicas:
      loss = mean per-example loss + regularization,  data_loss, center_loss (when on),
      accuracy (top-1),  regularization (when the net has regularization losses).
    Keras metric objects cost a handful of ops per metric per step, the regularization a few
    ops per weight per step; here a step costs the accuracy's compare and one update.

    Args:
      per_replica_batch_size: examples per step on each replica.
      center_loss: a center loss is trained (report its mean).
      regularization: the net has regularization losses (report them, add them to `loss`).
      stepwise_regularization: the regularization changes within a loop (a sampled head's
        selected columns): `update` takes it each step, after the per-example values.
    """

    def __init__(self, per_replica_batch_size, center_loss=False, regularization=False,
                 stepwise_regularization=False):
        self.center_loss = center_loss
        self.regularization = regularization
        self.stepwise = regularization and stepwise_regularization
        self.accumulated = (("example_loss", "data_loss", "center_loss", "correct")
                            if center_loss else ("example_loss", "correct"))
        if self.stepwise:
            # Every example of a step carries the step's value: its mean over the examples of
            # the loop is the mean over the steps.
            self.accumulated += ("regularization",)
        self.totals = tf.Variable(
            tf.zeros([len(self.accumulated), per_replica_batch_size]), trainable=False,
            synchronization=tf.VariableSynchronization.ON_READ,
            aggregation=tf.VariableAggregation.SUM, name="train_metric_totals")

    def reset(self):
        self.totals.assign(tf.zeros_like(self.totals))

    def update(self, values, regularization=None):
        """In a replica: add `values` (per-example [B] vectors, one per `accumulated` name, the
        regularization excepted) and, when stepwise, this step's `regularization` (a scalar)."""
        if self.stepwise:
            values = list(values) + [tf.fill(tf.shape(values[0]), regularization)]
        self.totals.assign_add(tf.stack(values))

    def read(self, regularization=None):
        """Outside the replica function: the sums over replicas and examples, in `accumulated`
        order, then `regularization` (a scalar) if on and not stepwise."""
        sums = tf.reduce_sum(tf.convert_to_tensor(self.totals), axis=1)
        if self.regularization and not self.stepwise:
            sums = tf.concat([sums, tf.reshape(regularization, [1])], axis=0)
        return sums

    def results(self, sums, num_examples):
        """{name: float} from what `read` returned after a loop over `num_examples` examples."""
        sums = np.asarray(sums, np.float64)
        means = dict(zip(self.accumulated, sums / num_examples))
        if self.stepwise:
            regularization = float(means["regularization"])
        else:
            regularization = float(sums[-1]) if self.regularization else 0.0
        results = {"loss": float(means["example_loss"]) + regularization,
                   "data_loss": float(means.get("data_loss", means["example_loss"]))}
        if self.center_loss:
            results["center_loss"] = float(means["center_loss"])
        results["accuracy"] = float(means["correct"])
        if self.regularization:
            results["regularization"] = regularization
        return results


class TrainStep:
    """`loop(num_steps)`: `num_steps` replicated steps on batches from `iterator`, in one
    tf.function call (num_steps is a tensor: one trace for any count). It returns the loop's
    metric sums (summed over replicas); `metrics.results(sums, num_steps * global batch)` turns
    them into means.

    Only what the config turns on is computed each step: no center-loss terms without a center
    loss, no regularization sum without regularization losses, no all-reduce with one replica.

    Args:
      strategy: the strategy `parts` were created under (`parts.build_training`).
      parts: the run's `TrainingParts` (optimizer built).
      iterator: per-replica batches {'image', 'label'} (`data.distribute_dataset`).
      resolved: the run's `ResolvedConfig` (per-replica batch; its config: global batch,
        center-loss weight, clipping, XLA).
    """

    def __init__(self, strategy, parts, iterator, resolved):
        config = resolved.config
        self.strategy = strategy
        self.parts = parts
        self.iterator = iterator
        self.global_batch_size = config.global_batch_size
        self.center_loss_weight = float(config.center_loss_weight)
        self.clip_grad_norm = config.clip_grad_norm
        self.head = parts.head  # None: the net's dense logits
        with strategy.scope():
            self.metrics = TrainMetrics(
                resolved.per_replica_batch_size,
                center_loss=parts.center_loss is not None,
                regularization=bool(parts.model.losses),
                stepwise_regularization=self.head is not None)
        # XLA compiles each replica's forward/backward; the all-reduce and the update stay
        # outside (compiling the whole distributed step fails across CPU devices).
        self._forward_backward = (tf.function(self._gradients, jit_compile=True)
                                  if config.jit_compile else self._gradients)
        # No autograph: the step's Python branches on Python values only, and autograph would
        # transcribe the source of everything the step calls, Keras's losses and layers
        # included (3 of the 4 s of tracing the default run's loop, bench/README.md).
        self.loop = tf.function(self._loop, autograph=False)

    def _gradients(self, images, labels, selection=None):
        """Gradients of this replica's share of the objective, its per-example metric values
        and its regularization (a scalar, 0 without)."""
        center_loss = self.parts.center_loss
        sources = self.parts.train_variables
        with tf.GradientTape() as tape:
            if self.head is None:
                outputs = self.parts.model(images, training=True)
                embedding = outputs["embedding"]
                if self.parts.margin is None:
                    logits = tf.cast(outputs["logits"], tf.float32)
                    data_loss = self.parts.loss_fn(labels, logits)
                else:  # scaled cosines with the target's margin; accuracy from the cosines
                    logits = margins.cosines(embedding, self.parts.class_kernel)
                    data_loss = self.parts.loss_fn(
                        labels, self.parts.margin.logits(logits, labels))
                metric_labels = labels
                penalties = self.parts.model.losses if self.metrics.regularization else []
            else:  # logits over this step's classes only (`selection`)
                sources = self.head.body_variables + self.head.selected_weights(selection)
                tape.watch(self.head.selected_weights(selection))
                embedding, data_loss, logits, metric_labels, penalties = self.head.forward(
                    images, labels, selection)
            per_example = data_loss
            if center_loss is not None:
                # The centers move after the gradients (see _replica_step).
                center = center_loss(embedding, labels, training=False)
                per_example = data_loss + self.center_loss_weight * center
            # = tf.nn.compute_average_loss(per_example, global_batch_size), without its
            # run-time assertion (an op per step) on a Python int.
            objective = tf.reduce_sum(per_example) / self.global_batch_size
            regularization = tf.constant(0.0)
            if penalties:
                # Keras builds the regularizers' ops on every access of `losses`: read once.
                regularization = tf.add_n([tf.cast(l, tf.float32) for l in penalties])
                # = tf.nn.scale_regularization_loss(regularization)
                objective += regularization / self.strategy.num_replicas_in_sync
            scaled = objective * self.parts.loss_scale.scale if self.parts.loss_scale else objective
        grads = tape.gradient(scaled, sources)
        if self.parts.margin is not None:
            # A margin leaves the logits layer's bias out of the loss: its gradient is zero.
            grads = [tf.zeros(v.shape, v.dtype) if g is None else g
                     for g, v in zip(grads, sources)]

        values = [per_example]  # TrainMetrics.accumulated, in order
        if center_loss is not None:
            values += [data_loss, center]
        predictions = tf.argmax(logits, axis=-1, output_type=metric_labels.dtype)
        values.append(tf.cast(tf.equal(predictions, metric_labels), tf.float32))
        return grads, embedding, values, regularization

    def _regularization(self):
        # Keras builds the regularizers' ops on every access of `losses`.
        return tf.add_n([tf.cast(l, tf.float32) for l in self.parts.model.losses])

    def _replica_step(self, batch, step):
        labels = batch["label"]
        # A sampled head draws this step's classes (the same on every replica) and reads them.
        selection = None if self.head is None else self.head.select(labels, step)
        grads, embedding, values, regularization = self._forward_backward(
            batch["image"], labels, selection)
        if self.parts.center_loss is not None:
            # Outside the (possibly XLA-compiled) forward pass: the update sums per-class
            # statistics over replicas. Same c_j^t and x_i^t as the loss used.
            self.parts.center_loss.update_centers(embedding, labels)
        context = tf.distribute.get_replica_context()
        if self.strategy.num_replicas_in_sync > 1:  # one replica: the sum is the gradient
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
        self.metrics.update(values, regularization)

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
        self.metrics.reset()
        first = self.parts.step_counter.read_value()
        num_steps = tf.cast(num_steps, tf.int64)

        def body(i):
            # The step's index (a sampled head's seed) without touching the counter per step.
            step = first + tf.cast(i, first.dtype)
            self.strategy.run(self._replica_step, args=(next(self.iterator), step))
            return (i + 1,)

        tf.while_loop(lambda i: i < num_steps, body, (tf.constant(0, tf.int64),))
        # Once per loop, not per step.
        self.parts.step_counter.assign_add(tf.cast(num_steps, first.dtype))
        return self.metrics.read(self._regularization() if self.metrics.regularization
                                 and not self.metrics.stepwise else None)
