"""Which rows of which global batch each pipeline element holds.

A global step `s` covers positions `[s*G, (s+1)*G)` of an epoch's order, and replica `j` (of N)
takes rows `[j*B, (j+1)*B)` with `B = G / N`. Input pipeline `p` (one per worker, or one per
replica) serves its replicas `j = p*R .. p*R+R-1` (`R = N / P`), one per-replica batch per
element, in that order. So the batches the replicas see at a step, concatenated in replica
order, are exactly the global batch one device would see, and random draws made for the global
batch (augmentation, dropout) give each example the same values however the batch is split.
"""
import collections

import tensorflow as tf

from tfmodels.data import preprocessing
from tfmodels.options import UsageError

Layout = collections.namedtuple("Layout", "per_replica replicas first_replica")
Layout.__doc__ = """(per-replica batch B, replicas fed by this pipeline R, global index of its
first replica)."""


def split_batch(global_batch_size, num_replicas, flag="batch_size"):
    """The per-replica batch of a global batch split evenly over `num_replicas`: the one check
    that it divides (UsageError naming `--flag` otherwise)."""
    if global_batch_size % num_replicas:
        raise UsageError(f"--{flag}={global_batch_size} is not divisible by the {num_replicas} "
                         f"replicas; use a multiple of {num_replicas}", flag)
    return global_batch_size // num_replicas


def replica_layout(global_batch_size, input_context):
    """The `Layout` of the pipeline that `input_context` describes (None: one pipeline)."""
    if input_context is None:
        return Layout(global_batch_size, 1, 0)
    num_replicas = input_context.num_replicas_in_sync
    replicas_per_pipeline = num_replicas // input_context.num_input_pipelines
    return Layout(input_context.get_per_replica_batch_size(global_batch_size),
                  replicas_per_pipeline, input_context.input_pipeline_id * replicas_per_pipeline)


def positions(u, layout):
    """(global step, global replica, the B positions within the step) of pipeline element u."""
    step = u // layout.replicas
    replica = layout.first_replica + u % layout.replicas
    return step, replica, replica * layout.per_replica + tf.range(layout.per_replica,
                                                                   dtype=tf.int64)


def augmentation_rows(spec, step, replica, per_replica):
    """This replica's rows of the global batch's crop offsets and flips at `step`."""
    info = spec.info
    return preprocessing.replica_draws(spec.seed, step, spec.global_batch_size, replica,
                                       per_replica, padding=info.crop_padding, flip=info.flip)


def ordered_options():
    """tf.data options of every pipeline: elements in order, position-only checkpoints.

    Elements always come in order, training included: each element is one replica's rows of one
    global step, and that layout is what makes N replicas match one device and the iterator
    position mean "steps drawn". Out-of-order delivery was seen under load with 2 workers (a
    chief one batch ahead); the maps are equal-cost, so order costs nothing.
    """
    options = tf.data.Options()
    options.deterministic = True
    # Checkpoints keep positions only and recompute buffered elements on restore.
    options.experimental_symbolic_checkpoint = True
    # No autotune model thread: destroying an iterator waits for that thread, which sleeps out
    # its optimisation period (growing to a minute) instead of waking; with one pipeline per
    # replica a 64-replica run sat at 0% CPU for good after its evaluation. Parallel maps then
    # use min(16, cores) calls and AUTOTUNE prefetch buffers still grow on demand.
    options.autotune.enabled = False
    return options
