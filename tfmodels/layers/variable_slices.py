"""Read and write some rows or columns of a large variable in place, in O(selected) work.

A class matrix or a center table holds one row (or column) per class: 1M classes x 128 floats
is 512 MB. A step that touches a few thousand classes must not read, copy or rewrite all of it.

The writes run as XLA programs (`jit_compile`), which update the variable's buffer in place.
TensorFlow's own `ResourceScatter*` kernels would also be in place, but they switch the variable
to copy-on-read: every later dense read (a checkpoint, an evaluation batch, `tf.gather` through
a Keras variable) then copies the whole variable (measured at 1M x 128: 0.95 s per read), and
their per-element cost on strided columns was ~400 ns against XLA's ~70.

Inside a replica of a `MirroredStrategy`, `variable_handle` is the replica's own copy: callers
write the same values on every replica (computed from all-reduced numbers), so the copies stay
equal without a cross-replica update.
"""
import keras
import tensorflow as tf


def variable_handle(variable):
    """The resource handle of a Keras or TF variable (the local copy inside a replica)."""
    if isinstance(variable, keras.Variable):
        variable = variable.value
    return variable.handle


def read(handle, shape, dtype=tf.float32):
    """The value behind a resource handle (no copy on CPU), of static `shape`.

    jit functions taking handles must also take the variable's shape: a resource handle's
    trace type does not include it, so variables of different shapes would share a trace.
    """
    return tf.ensure_shape(tf.raw_ops.ReadVariableOp(resource=handle, dtype=dtype), shape)


def assign(handle, value):
    tf.raw_ops.AssignVariableOp(resource=handle, value=value)


def scatter_into(full, ids, values, axis, add=False):
    """`full` with the slices `ids` along `axis` (0 or the last axis) replaced by (or, with
    `add`, increased by) `values`; a tensor function for use inside an XLA program.

    Args:
      full: tensor of rank 1 or 2.
      ids: int32 [M].
      values: `full`'s shape with `axis` of size M.
      axis: 0 or -1.
      add: add instead of replace (repeated ids then sum).
    """
    scatter = tf.tensor_scatter_nd_add if add else tf.tensor_scatter_nd_update
    if full.shape.rank == 1 or axis == 0:
        return scatter(full, ids[:, None], values)
    rows = tf.range(tf.shape(full)[0], dtype=ids.dtype)
    index = tf.stack(tf.meshgrid(rows, ids, indexing="ij"), axis=-1)  # [D, M, 2]
    return scatter(full, index, values)


@tf.function(jit_compile=True)
def _gather(handle, shape, ids, axis):
    return tf.gather(read(handle, shape), ids, axis=axis)


@tf.function(jit_compile=True)
def _scatter_add(handle, shape, ids, values, axis):
    assign(handle, scatter_into(read(handle, shape), ids, values, axis, add=True))


def gather(variable, ids, axis=-1):
    """Slices `ids` of a float32 variable along `axis` (0 or -1), as a plain tensor.

    Args:
      variable: a Keras or TF variable of rank 1 or 2.
      ids: int [M] (repeats allowed).
      axis: 0 (rows) or -1 (columns; the only axis of a vector).
    """
    return _gather(variable_handle(variable), tuple(variable.shape), tf.cast(ids, tf.int32),
                   axis)


def scatter_add(variable, ids, values, axis=0):
    """variable[ids] += values along `axis`, in place (repeated ids add up)."""
    _scatter_add(variable_handle(variable), tuple(variable.shape), tf.cast(ids, tf.int32),
                 values, axis)
