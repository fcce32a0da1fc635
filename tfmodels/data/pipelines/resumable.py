"""Checkpointable iterators over distributed datasets.

TF 2.21's `tf.distribute` iterators cannot be checkpointed: `tf.train.Checkpoint(iterator=
iter(strategy.distribute_datasets_from_function(fn)))` raises "expecting iterator to be a
trackable object" (tensorflow/tensorflow#56372; the MultiDeviceIterator that prefetches to each
device has no saveable state). Our training streams are pure functions of (seed, global step), so
an iterator's whole state is the number of steps drawn: `ResumableIterator` counts them in an
int64 variable, saves that one number, and on restore rebuilds the distributed dataset to start at
the restored step. The checkpoint entry is a single int64 (~270 bytes of checkpoint files
measured). Because the stream is laid out per global batch, a restore into a strategy with a
different number of replicas also continues the same stream (in-memory and synthetic data).
"""
import tensorflow as tf


class DistributedData:
    """What `distribute_dataset` returns: `iter()` it for a checkpointable iterator.

    Attributes:
      steps: steps per epoch (training) or evaluation steps (evaluation), the same on every
        worker.
    """

    def __init__(self, build, *, steps, start_step=0, skip_counter=None):
        """`build(start_step)` returns a tf.distribute dataset starting at that global step;
        `skip_counter` is the int64 variable its pipelines count undecodable examples in."""
        self._build = build
        self._start_step = start_step
        self._dataset = None
        self._skip_counter = skip_counter
        self.steps = steps

    @property
    def skipped_examples(self):
        """Undecodable examples its pipelines skipped so far (0 for data that is not decoded)."""
        return 0 if self._skip_counter is None else int(self._skip_counter.numpy())

    @property
    def distributed_dataset(self):
        """The plain tf.distribute dataset (e.g. for `for batch in ...` inside tf.function)."""
        if self._dataset is None:
            self._dataset = self._build(self._start_step)
        return self._dataset

    def __iter__(self):
        return ResumableIterator(self._build, start_step=self._start_step)


class PositionIterator(tf.__internal__.tracking.Trackable):
    """A checkpointable iterator whose whole state is its position: the global steps drawn, one
    int64 variable saved under the key `position` (so a run may resume across iterator kinds).

    Subclasses make the batches (`_draw`) and may react to a restored position (`_restore`).
    """

    def __init__(self, start_step=0):
        # Counts global steps drawn, also inside tf.function loops (a Python int would not).
        self._position = tf.Variable(start_step, dtype=tf.int64, trainable=False,
                                     name="input_position")

    @property
    def position(self):
        """Global steps drawn so far (including the start step)."""
        return int(self._position.numpy())

    def __iter__(self):
        return self

    def __next__(self):
        return self.get_next()

    def get_next(self):
        """The next step's per-replica batches."""
        batch = self._draw()
        self._position.assign_add(1)
        return batch

    def _draw(self):
        raise NotImplementedError

    def _restore(self, position):
        """Moves to the restored `position` (an int64 tensor); returns the op that does."""
        return self._position.assign(position)

    def _serialize_to_tensors(self):
        return {"position": tf.identity(self._position)}

    def _restore_from_tensors(self, restored_tensors):
        return self._restore(restored_tensors["position"])


class ResumableIterator(PositionIterator):
    """A distributed iterator whose position can be saved with `tf.train.Checkpoint`.

    Use it like the tf.distribute iterator it wraps: `next(it)` eagerly or inside a
    `tf.function` (pass the iterator in or close over it). Restore it before the first
    `tf.function` that draws from it is traced: restoring rebuilds the wrapped iterator, which
    a traced function would not see (this raises RuntimeError instead of silently replaying).
    """

    def __init__(self, build, start_step=0):
        super().__init__(start_step)
        self._build = build
        self._iterator = iter(build(start_step))
        self._used_in_function = False

    def _draw(self):
        """The next per-replica batch (raises StopIteration / OutOfRangeError at the end)."""
        self._used_in_function |= tf.inside_function()
        return next(self._iterator)

    def _restore(self, position):
        position = int(position.numpy())
        if position != self.position:
            if self._used_in_function:
                raise RuntimeError(
                    "restore the input iterator before the first tf.function that draws from it "
                    f"(restoring step {position} into an iterator at step {self.position} that a "
                    "traced function already captured)")
            self._iterator = iter(self._build(position))
            self._position.assign(position)
        return tf.no_op()
