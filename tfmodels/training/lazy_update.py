"""Read and update only some classes of the class matrix: lazy SGD / momentum / Adam / AdamW.

The class matrix is a logits layer's kernel [D, C] and bias [C] (`nets.class_matrix`): class c is
*column* c of the kernel. A sampled head reads the M columns it scores and gets a dense gradient
for them only ([D, M], the gradient of the sparse matrix restricted to its nonzero columns); this
module applies the optimizer's rule to those columns and their slots and leaves every other
column (and its slots) untouched:

    sgd:       w_S <- w_S - lr g_S
    momentum:  m_S <- mu m_S - lr g_S;   w_S <- w_S + m_S      (nesterov: + mu m_S - lr g_S)
    adam(w):   m_S <- m_S + (g_S - m_S)(1 - b1);  v_S <- v_S + (g_S^2 - v_S)(1 - b2)
               w_S <- w_S - lr sqrt(1 - b2^t) / (1 - b1^t) m_S / (sqrt(v_S) + eps)

with Keras's own operations in Keras's order (TF1's `SparseApplyMomentum`, TF Addons'
`LazyAdam`). Decoupled weight decay (`adamw`, or `--weight_decay_type=decoupled`) shrinks the
selected columns only, `w_S <- w_S - lr wd w_S` before the rule: a class decays on the steps it
is scored, not on the others. When every column is selected, each rule is Keras's dense update.

Columns are read and written in place by XLA programs (`layers.variable_slices`): the matrix
is never copied, and TensorFlow's scatter kernels, which would make every later dense read of it
a full copy, are not used.
"""
import keras
import tensorflow as tf

from tfmodels.layers.variable_slices import assign, gather, read, scatter_into, variable_handle


def read_columns(variable, ids):
    """Columns `ids` of a [D, C] kernel ([D, M]) or entries of a [C] bias ([M]), float32.

    Called inside a replica it reads the replica's copy; the result is a plain tensor (watch it
    on a tape to differentiate with respect to the selected columns).
    """
    return gather(variable, ids, axis=-1)


class ColumnOptimizer:
    """Applies a built tfmodels optimizer's rule to selected columns of some variables.

    Args:
      optimizer: a built optimizer from `optimizers.create_optimizer` (SGD, momentum, Adam or
        AdamW), whose variables include `variables`.
      variables: the class matrix's variables (kernel [D, C], bias [C]); classes on the last
        axis.

    Raises:
      ValueError: an optimizer whose rule this class does not know (e.g. Adam's amsgrad).
    """

    def __init__(self, optimizer, variables):
        self.optimizer = optimizer
        self.variables = list(variables)
        if isinstance(optimizer, keras.optimizers.SGD):
            self.rule = "momentum" if optimizer.momentum else "sgd"
        elif isinstance(optimizer, keras.optimizers.Adam) and not optimizer.amsgrad:
            self.rule = "adam"
        else:
            raise ValueError(f"no lazy column update for optimizer {type(optimizer).__name__} "
                             "(supported: SGD with or without momentum, Adam, AdamW)")
        self._slots = []
        self._decays = []
        for variable in self.variables:
            index = optimizer._get_variable_index(variable)
            if self.rule == "momentum":
                slots = [optimizer.momentums[index]]
            elif self.rule == "adam":
                slots = [optimizer._momentums[index], optimizer._velocities[index]]
            else:
                slots = []
            self._slots.append(slots)
            self._decays.append(optimizer.weight_decay is not None
                                and optimizer._use_weight_decay(variable))
        self._update = tf.function(self._update_columns, jit_compile=True)

    def apply(self, ids, grads):
        """One step on columns `ids` (int [M]) with `grads` (one per variable: [D, M], [M]).

        Each of the M entries must name a different class, or repeat an entry in full (same
        id, same gradient): repeated entries then write identical values.
        Uses the optimizer's current learning rate and iteration (call before its `apply`,
        which advances `iterations`).
        """
        ids = tf.cast(ids, tf.int32)
        learning_rate = tf.cast(self.optimizer.learning_rate, tf.float32)
        step = tf.cast(self.optimizer.iterations + 1, tf.float32)
        for variable, grad, slots, decays in zip(self.variables, grads, self._slots,
                                                 self._decays):
            self._update(variable_handle(variable), [variable_handle(s) for s in slots],
                         tuple(variable.shape), ids, tf.cast(grad, tf.float32), learning_rate,
                         step, decays)

    def _update_columns(self, handle, slot_handles, shape, ids, grad, lr, step, decays):
        opt = self.optimizer
        full = read(handle, shape)
        w = tf.gather(full, ids, axis=-1)
        if decays:
            w = w - w * tf.cast(opt.weight_decay, tf.float32) * lr
        slots = [read(h, shape) for h in slot_handles]
        columns = [tf.gather(s, ids, axis=-1) for s in slots]
        if self.rule == "sgd":
            new_w, new_slots = w - grad * lr, []
        elif self.rule == "momentum":
            mu = tf.cast(opt.momentum, tf.float32)
            m = columns[0] * mu - grad * lr
            new_w = w + (m * mu - grad * lr if opt.nesterov else m)
            new_slots = [m]
        else:
            b1, b2 = tf.cast(opt.beta_1, tf.float32), tf.cast(opt.beta_2, tf.float32)
            alpha = lr * tf.sqrt(1 - tf.pow(b2, step)) / (1 - tf.pow(b1, step))
            m = columns[0] + (grad - columns[0]) * (1 - opt.beta_1)
            v = columns[1] + (tf.square(grad) - columns[1]) * (1 - opt.beta_2)
            new_w = w - (m * alpha) / (tf.sqrt(v) + opt.epsilon)
            new_slots = [m, v]
        for slot_handle, slot, new in zip(slot_handles, slots, new_slots):
            assign(slot_handle, scatter_into(slot, ids, new, axis=-1))
        assign(handle, scatter_into(full, ids, new_w, axis=-1))
