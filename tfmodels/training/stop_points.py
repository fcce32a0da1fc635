"""Stopping a training run at a safe point, on every worker at the same step.

A signal sets the run's `stopping.StopRequest` on the worker that got it. Between loops of
steps each worker reads it and, under MultiWorkerMirroredStrategy, all-reduces it with the
others' (one number per loop): a save takes part in collectives, so every worker must save the
same step, which TensorFlow's `PreemptionCheckpointHandler` also ensures, through the
coordination service, for the checkpoints it writes itself. Then the state is saved through the
run's own `CheckpointSaver` (the model_dir's staged saves) and `stopping.Stopped` is raised.
"""
import tensorflow as tf
from absl import logging

from tfmodels import distribute


def any_worker(strategy):
    """fn(bool) -> bool: whether any worker of `strategy` passed True (one all-reduce of a
    number across the workers, so that every worker stops at the same step: a save takes part
    in collectives); within one process, the value itself."""
    if not distribute.in_multi_worker_mode(strategy):
        return lambda requested: requested

    @tf.function
    def any_true(local):
        per_replica = strategy.run(lambda: tf.identity(local))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

    return lambda requested: bool(any_true(tf.constant(float(requested))).numpy() > 0)


class StopPoints:
    """Where a training run may stop: `check(step)` between loops of steps, `check()` after
    the last one. Every worker checks at the same points and all get the same answer.

    Args:
      request: the run's `stopping.StopRequest` (set by a signal to this worker).
      strategy: the run's strategy (its workers agree on stopping).
      saver: the run's `CheckpointSaver`.
      total_steps: the run's length, for the log line.
    """

    def __init__(self, request, strategy, saver, *, total_steps):
        self.request, self._any_worker = request, any_worker(strategy)
        self._saver, self._total_steps = saver, total_steps

    def check(self, step=None):
        """If a stop was requested: save the state at `step` (None: the run is past its last
        step, whose checkpoint exists), log one line saying so, and raise `stopping.Stopped`."""
        stop, saver = self.request, self._saver
        if not self._any_worker(stop.requested):
            return
        if not stop.requested:
            stop.request_by_another_worker()
        total = self._total_steps
        if step is None:
            where = (f"after the last step ({total}), before the evaluation: kept "
                     f"{saver.last_good}; running again with the same model_dir evaluates, "
                     "exports and writes metrics.json")
        else:
            if step != saver.last_step:
                saver.save(step)
            where = (f"at step {step} of {total}: saved {saver.last_good}" if saver.last_good
                     else f"at step {step} of {total}, before the first step: nothing to save")
            where += "; running again with the same model_dir resumes"
        stopped = stop.stopped(where)
        logging.warning("%s", stopped)  # each worker: the step it saved, the same on all
        raise stopped
