"""Make tf-slim 1.1.0's graph-mode layers and training loop run on TensorFlow 2.16+.

tf-slim is used here only as a *reference* (to build a legacy graph, read its variable names,
or run a TF1 model being ported) and through `tf_slim.arg_scope` / `add_arg_scope`, which need
no fix. Three things broke when Keras moved out of TensorFlow and eager became the default
(measured on TF 2.21 / tf-slim 1.1.0):

1. `slim.batch_norm` goes through `tensorflow.python.layers.normalization`, which lazily imports
   `tf_keras.legacy_tf_layers.normalization`; tf-keras ships that package as
   `tf_keras.src.legacy_tf_layers` only -> "No module named 'tf_keras.legacy_tf_layers'".
   We alias the package and its submodules in `sys.modules`.
2. The `updates_collections=None` and `zero_debias_moving_mean=True` paths test
   `isinstance(x, ops.Tensor)`; TF 2.21's `tensorflow.python.framework.ops` no longer has
   `Tensor` -> AttributeError. We set `ops.Tensor = tf.Tensor` when it is missing.
3. `slim.learning.train` runs `tf.compat.v1.train.Supervisor`, whose background threads
   (step counter, periodic checkpoints, summaries) are `coordinator.LooperThread`s. Graph
   defaults are thread-local and TF2 threads start eager, so they call `.numpy()` on the graph's
   global step ("global_step:0 ... is out of scope") and `Saver.save` takes its eager path
   ("Can only save/restore ResourceVariables when executing eagerly"). We run each such thread
   inside the graph that was the default where it was created, as TF1 did implicitly.

    from tfmodels.slim import compat
    compat.enable_tf_slim()
    import tf_slim as slim   # slim.batch_norm, tf_slim.nets.resnet_v1 now build in a tf.Graph
"""
import importlib
import sys

_ALIAS = "tf_keras.legacy_tf_layers"
_SOURCE = "tf_keras.src.legacy_tf_layers"
# Every submodule of the legacy package, so any `tf_keras.legacy_tf_layers.<x>` import resolves.
_SUBMODULES = ("base", "convolutional", "core", "normalization", "pooling",
               "variable_scope_shim", "migration_utils")


def enable_tf_slim():
    """Applies the three fixes; safe to call any number of times (a no-op after the first).

    Returns:
      None.

    Raises:
      ImportError: if tf-keras (the TF2-era Keras 2, which still holds the legacy TF1 layers
        slim's batch_norm needs) is not installed.
    """
    try:
        package = importlib.import_module(_SOURCE)
    except ImportError as error:
        raise ImportError(
            "tf-slim's batch_norm needs the legacy TF1 layers shipped with tf-keras: "
            "`pip install tf-keras` (or `pip install tfmodels[legacy]`)") from error
    sys.modules.setdefault(_ALIAS, package)
    for name in _SUBMODULES:
        try:
            module = importlib.import_module(f"{_SOURCE}.{name}")
        except ImportError:  # an older/newer tf-keras without this submodule: nothing to alias
            continue
        sys.modules.setdefault(f"{_ALIAS}.{name}", module)

    import tensorflow as tf
    from tensorflow.python.framework import ops

    if not hasattr(ops, "Tensor"):
        ops.Tensor = tf.Tensor

    from tensorflow.python.training import coordinator

    if not getattr(coordinator.LooperThread, "_tfmodels_in_graph", False):
        _run_looper_threads_in_their_graph(coordinator.LooperThread)


def _run_looper_threads_in_their_graph(looper):
    """Patch `looper` (coordinator.LooperThread) to remember the creating thread's graph."""
    import tensorflow as tf

    init, run = looper.__init__, looper.run

    def __init__(self, *args, **kwargs):
        init(self, *args, **kwargs)
        # Created in graph mode (a Supervisor under `graph.as_default()`): remember the graph.
        self._tfmodels_graph = (None if tf.executing_eagerly()
                                else tf.compat.v1.get_default_graph())

    def run_in_graph(self):
        graph = getattr(self, "_tfmodels_graph", None)
        if graph is None:
            return run(self)
        with graph.as_default():  # also enters graph mode on this thread
            return run(self)

    looper.__init__, looper.run = __init__, run_in_graph
    looper._tfmodels_in_graph = True
