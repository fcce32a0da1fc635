"""Heads over many classes: the per-example data loss from the embedding and a few classes.

`--head=softmax` (the default) is the net's own dense logits, [B, C] per step. The sampled heads
score M << C classes of the class matrix (the net's logits layer, `nets.class_matrix`) and cost
O((B + M) D) per step:

* `sampled_softmax` (Jean et al. 2015): the true class of each example and K negatives drawn
  with replacement from a proposal Q; every logit is corrected by -log(K Q(c)); a sampled
  negative equal to the example's own class (an accidental hit) is removed. Per example:
      loss_i = -log softmax([z_iy - log KQ(y), z_is1 - log KQ(s1), ..., z_isK - log KQ(sK)])_0
* `partial_fc` (An et al. 2021): the positive classes of the global batch plus uniform
  negatives, S = max(ceil(r C), global batch) classes (at most C); the run's data loss
  (`--loss`, label smoothing over the S classes) on logits over those S classes. With r = 1
  it is the full softmax.

The same classes are drawn on every replica (stateless, seeded by the run's seed and the global
step; labels all-gathered across replicas), so each replica reads the same M columns, the
gradient of those columns is all-reduced as a dense [D, M] tensor, and N replicas train exactly
as one device. The step (`step.TrainStep`) calls `select` (draw + read columns), `forward`
(inside its gradient tape) and `apply` (lazy update of the selected columns, then the net).
"""
import tensorflow as tf

from tfmodels.nets import class_matrix as class_matrix_lib
from tfmodels.training import margins, sampling
from tfmodels.training.lazy_update import ColumnOptimizer, read_columns
from tfmodels.options import UsageError

HEADS = ("softmax", "sampled_softmax", "partial_fc")


def build_head(config, model, optimizer, train_variables, num_classes, loss_fn, margin=None):
    """The sampled head a `TrainConfig` asks for, or None for the dense softmax.

    Args:
      config: the run's `TrainConfig` (head, num_sampled, sampler, sample_rate, seed, batch).
      model: the registry model; its logits layer is the class matrix.
      optimizer: the run's optimizer, built on `train_variables`.
      train_variables: what the optimizer updates (must include the class matrix).
      num_classes: C.
      loss_fn: the run's per-example data loss `fn(labels, logits)` (Partial FC applies it to
        its S classes; sampled softmax is a cross-entropy by construction).
      margin: a `margins.Margin` (Partial FC then scores scaled cosines with the target's
        margin, as arcface_torch's PartialFC does), or None.

    Returns:
      A `SampledSoftmaxHead`, a `PartialFCHead`, or None (`softmax`).

    Raises:
      ValueError: the net has no class matrix fed by its embedding, or `trainable_scopes`
        leave the class matrix out.
    """
    if config.head == "softmax":
        return None
    flag = f"--head={config.head}"
    matrix = class_matrix_lib.class_matrix(model, purpose=flag)
    trained = {id(v) for v in train_variables}
    if not all(id(v) in trained for v in matrix.variables):
        scopes = ",".join(config.trainable_scopes)
        raise UsageError(f"{flag} trains the class matrix {matrix.kernel.path.rsplit('/', 1)[0]}"
                         f", which --trainable_scopes={scopes} leave out", "trainable_scopes")
    body_variables = [v for v in train_variables
                      if id(v) not in {id(m) for m in matrix.variables}]
    columns = ColumnOptimizer(optimizer, matrix.variables)
    common = dict(matrix=matrix, columns=columns, optimizer=optimizer,
                  body_variables=body_variables, global_batch_size=config.global_batch_size,
                  seed=config.seed)
    if config.head == "sampled_softmax":
        return SampledSoftmaxHead(num_sampled=config.num_sampled, sampler=config.sampler,
                                  **common)
    return PartialFCHead(num_selected=sampling.partial_fc_size(
        config.sample_rate, num_classes, config.global_batch_size), loss_fn=loss_fn,
        margin=margin, **common)


class _ColumnHead:
    """What the sampled heads share: the class matrix, the net below it, column updates."""

    def __init__(self, matrix, columns, optimizer, body_variables, global_batch_size, seed):
        self.matrix = matrix
        self.body = matrix.embedding_model
        self.columns = columns
        self.optimizer = optimizer
        self.body_variables = body_variables
        self.global_batch_size = int(global_batch_size)
        self.seed = int(seed)
        self.num_classes = matrix.num_classes

    def selected_weights(self, selection):
        """The tensors of a `select` result to differentiate: the selected kernel columns [D, M]
        (and bias entries [M])."""
        return [selection["kernel"]] + ([selection["bias"]] if "bias" in selection else [])

    def _global_labels(self, labels):
        """(labels of the whole global batch, this replica's offset in it)."""
        context = tf.distribute.get_replica_context()
        labels = tf.cast(labels, tf.int32)
        gathered = context.all_gather(labels, axis=0)
        offset = tf.cast(context.replica_id_in_sync_group, tf.int32) * tf.shape(labels)[0]
        return tf.ensure_shape(gathered, [self.global_batch_size]), offset

    def _read(self, selection):
        selection["kernel"] = read_columns(self.matrix.kernel, selection["ids"])
        if self.matrix.bias is not None:
            selection["bias"] = read_columns(self.matrix.bias, selection["ids"])
        return selection

    def _penalties(self, selection):
        """The body's regularization plus the class matrix's on the distinct selected columns:
        a class's weight decay applies on the steps it is selected."""
        source = selection["source"]
        valid = tf.cast(tf.equal(source, tf.range(tf.size(source))), tf.float32)
        penalties = list(self.body.losses)
        layer = self.matrix.layer
        if layer.kernel_regularizer is not None:
            penalties.append(layer.kernel_regularizer(selection["kernel"] * valid[None, :]))
        if "bias" in selection and layer.bias_regularizer is not None:
            penalties.append(layer.bias_regularizer(selection["bias"] * valid))
        return penalties

    def apply(self, selection, grads):
        """Update the selected columns (lazy rule), then the net below the class matrix.

        Args:
          selection: this step's `select` result.
          grads: all-reduced gradients: the body variables', then `selected_weights(selection)`'.
        """
        num_body = len(self.body_variables)
        column_grads = grads[num_body:]
        if self.padded:  # repeated entries take their twin's gradient: they write alike
            column_grads = [tf.gather(g, selection["source"], axis=-1) for g in column_grads]
        self.columns.apply(selection["ids"], column_grads)
        if num_body:
            self.optimizer.apply(grads[:num_body], self.body_variables)
        else:  # Keras skips the iteration count of an empty update
            self.optimizer.iterations.assign_add(1)


class SampledSoftmaxHead(_ColumnHead):
    """Sampled softmax with K negatives from `sampler`, corrected by -log(K Q)."""

    padded = True  # M = global batch + K entries, the distinct classes then repeats

    def __init__(self, num_sampled, sampler, **common):
        super().__init__(**common)
        sampling.check_sampler(sampler)
        self.num_sampled = int(num_sampled)
        self.sampler = sampler

    def _logits(self, embedding, selection, index):
        """embedding @ kernel[:, index] + bias[index]: [B, len(index)]."""
        logits = tf.matmul(embedding, tf.gather(selection["kernel"], index, axis=1))
        if "bias" in selection:
            logits += tf.gather(selection["bias"], index)
        return logits

    def select(self, labels, step):
        """Draw this step's negatives and read the columns of them and of the global batch's
        labels, deduplicated and padded to a fixed M = global batch + K."""
        global_labels, offset = self._global_labels(labels)
        sampled = sampling.sample_classes(self.sampler, self.num_sampled, self.num_classes,
                                          sampling.step_seed(self.seed, step))
        needed = tf.concat([global_labels, sampled], 0)
        # Distinct classes in ascending order: the columns are then read and written in
        # address order.
        distinct = tf.sort(tf.unique(needed)[0])
        index = tf.searchsorted(distinct, needed, out_type=tf.int32)
        size = self.global_batch_size + self.num_sampled
        position = tf.range(size)
        source = tf.where(position < tf.size(distinct), position, 0)
        ids = tf.gather(distinct, source)  # padding repeats the first class
        selection = {"ids": ids, "source": source, "sampled": sampled,
                     "true_index": index[offset:offset + tf.shape(labels)[0]],
                     "sampled_index": index[self.global_batch_size:]}
        return self._read(selection)

    def forward(self, images, labels, selection):
        """(embedding, per-example loss [B], logits [B, 1 + K] and labels for the accuracy
        metric, regularization terms); the metric logits are uncorrected, hits removed."""
        embedding = self.body(images, training=True)
        e = tf.cast(embedding, tf.float32)
        labels = tf.cast(labels, tf.int32)
        true_kernel = tf.gather(selection["kernel"], selection["true_index"], axis=1)  # [D, B]
        true_logits = tf.reduce_sum(e * tf.transpose(true_kernel), axis=1, keepdims=True)
        if "bias" in selection:
            true_logits += tf.gather(selection["bias"], selection["true_index"])[:, None]
        sampled_logits = self._logits(e, selection, selection["sampled_index"])
        log_q = sampling.log_expected_count(
            self.sampler, tf.concat([labels, selection["sampled"]], 0), self.num_sampled,
            self.num_classes)
        hits = tf.equal(labels[:, None], selection["sampled"][None, :])
        removed = tf.fill(tf.shape(sampled_logits), tf.float32.min)
        corrected = tf.concat(
            [true_logits - log_q[:tf.shape(labels)[0], None],
             tf.where(hits, removed, sampled_logits - log_q[None, tf.shape(labels)[0]:])], 1)
        zeros = tf.zeros_like(labels)
        loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=zeros, logits=corrected)
        metric_logits = tf.concat([true_logits, tf.where(hits, removed, sampled_logits)], 1)
        return embedding, loss, metric_logits, zeros, self._penalties(selection)


class PartialFCHead(_ColumnHead):
    """Partial FC: the global batch's classes plus uniform negatives, S in all."""

    padded = False  # S distinct classes

    def __init__(self, num_selected, loss_fn, margin=None, **common):
        super().__init__(**common)
        self.num_selected = int(num_selected)
        self.loss_fn = loss_fn
        self.margin = margin

    def select(self, labels, step):
        """Draw this step's S classes (ascending ids) and read their columns."""
        global_labels, offset = self._global_labels(labels)
        classes, positions = sampling.partial_fc_classes(
            global_labels, self.num_classes, self.num_selected,
            sampling.step_seed(self.seed, step))
        selection = {"ids": classes, "source": tf.range(self.num_selected),
                     "label_index": positions[offset:offset + tf.shape(labels)[0]]}
        return self._read(selection)

    def forward(self, images, labels, selection):
        """(embedding, per-example data loss over the S classes, logits [B, S] and labels for
        the accuracy metric, regularization terms). With a margin the logits are s * cos with
        the target's margin, the metric's the plain cosines, and the bias is not used."""
        del labels  # their positions among the S classes are in `selection`
        embedding = self.body(images, training=True)
        label_index = selection["label_index"]
        if self.margin is not None:
            # Normalising a column does not depend on the others: the S selected columns
            # give the cosines of the full matrix's.
            cos = margins.cosines(embedding, selection["kernel"])
            loss = self.loss_fn(label_index, self.margin.logits(cos, label_index))
            return embedding, loss, cos, label_index, self._penalties(selection)
        logits = tf.matmul(tf.cast(embedding, tf.float32), selection["kernel"])
        if "bias" in selection:
            logits += selection["bias"]
        loss = self.loss_fn(label_index, logits)
        return embedding, loss, logits, label_index, self._penalties(selection)
