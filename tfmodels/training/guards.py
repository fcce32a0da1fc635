"""What keeps inf/NaN out of checkpoints: the error, and an all-finite test of the run's state.

`FiniteCheck(variables)()` is one compiled reduction over every floating variable a checkpoint
holds (model weights and statistics, optimizer slots, centers, averages): one host sync per
call, which the trainer makes once per save, not per step. Only after a failure does
`offenders()` name the variables, one by one.
"""
import keras
import tensorflow as tf


class NonFiniteLossError(RuntimeError):
    """The training loss or the weights became inf or NaN; no checkpoint holding them was
    written, and the last good checkpoint is kept."""


def _tensor(variable):
    return variable.value if isinstance(variable, keras.Variable) else variable


def _name(variable):
    return getattr(variable, "path", None) or variable.name


class FiniteCheck:
    """`check()` -> True when every floating variable in `variables` is finite.

    Args:
      variables: tf / Keras variables (others, e.g. int counters, are ignored); duplicates are
        checked once.
    """

    def __init__(self, variables):
        seen, self.variables = set(), []
        for variable in variables:
            if id(variable) not in seen and _is_floating(variable):
                seen.add(id(variable))
                self.variables.append(variable)
        self._all_finite = tf.function(self._reduce, autograph=False)

    def _reduce(self):
        flags = [tf.reduce_all(tf.math.is_finite(_tensor(v))) for v in self.variables]
        return tf.reduce_all(tf.stack(flags)) if flags else tf.constant(True)

    def __call__(self):
        return bool(self._all_finite())

    def offenders(self):
        """Names of the variables holding inf or NaN (eager, one read each)."""
        return [_name(v) for v in self.variables
                if not bool(tf.reduce_all(tf.math.is_finite(_tensor(v))))]


def _is_floating(variable):
    return tf.as_dtype(variable.dtype).is_floating  # Keras names dtypes, TF has DType objects


def state_variables(parts):
    """The floating variables a run's checkpoint holds, from its `TrainingParts`."""
    found = list(parts.model.weights) + list(parts.optimizer.variables)
    if parts.center_loss is not None:
        found += list(parts.center_loss.weights)
    if parts.weight_average is not None:
        found += list(parts.weight_average.shadows)
    return found
