"""Match a checkpoint whose names carry no net scope to a net by structure and order.

`tf.compat.v1.layers` code (and Keras-1-era `tf.layers`) names variables after the layer type
and a per-type counter, with no scope of the net: `conv2d/kernel`, `conv2d_1/kernel`,
`batch_normalization/gamma`, `dense_1/bias`. Such names say which layer came first among
layers of one type, nothing more. So the k-th `conv2d` layer (counter order: `conv2d`,
`conv2d_1`, `conv2d_2`, ...) fills the net's k-th convolution (in the order the net creates its
layers, `model.weights`), the k-th `dense` its k-th fully connected layer, the k-th
`batch_normalization` its k-th batch norm; variables keep their leaf names (`kernel`, `bias`,
`gamma`, `beta`, `moving_mean`, `moving_variance`). Shapes are then checked by the plan as for
any other name.

    overrides, note = match_by_order(model_variables, checkpoint_names)
"""
import collections
import re

_LAYER = re.compile(r"^(conv2d|dense|batch_normalization)(?:_(\d+))?$")
_KIND = {"conv2d": "convolution", "dense": "fully connected", "batch_normalization":
         "batch norm"}
_BATCH_NORM = {"gamma", "beta", "moving_mean", "moving_variance"}


def checkpoint_layers(names):
    """{type: [layer name in counter order]} when every name is `<type>[_N]/<leaf>`, else None.

    Args:
      names: checkpoint variable names without replica prefixes, outer scopes, EMA shadows
        and bookkeeping (optimizer slots, global_step).
    """
    layers = collections.defaultdict(dict)
    for name in names:
        layer, _, _ = name.rpartition("/")
        match = _LAYER.match(layer)
        if match is None:
            return None
        layers[match.group(1)][layer] = int(match.group(2) or 0)
    return {kind: sorted(found, key=found.get) for kind, found in layers.items()} or None


def model_layers(variables):
    """{type: [layer path in creation order]} of a model's layers with variables.

    Args:
      variables: (path, shape) pairs in `model.weights` order.
    """
    kinds = {}
    for path, shape in variables:
        layer, _, leaf = path.rpartition("/")
        if leaf == "kernel" and len(shape) == 4:
            kinds.setdefault(layer, "conv2d")
        elif leaf == "kernel" and len(shape) == 2:
            kinds.setdefault(layer, "dense")
        elif leaf in _BATCH_NORM:
            kinds.setdefault(layer, "batch_normalization")
    layers = collections.defaultdict(list)
    for layer, kind in kinds.items():
        layers[kind].append(layer)
    return dict(layers)


def match_by_order(variables, names):
    """Overrides pairing the checkpoint's layers with the net's, and a note saying how.

    Args:
      variables: (path, shape) of the model's variables in `model.weights` order.
      names: the checkpoint's variable names (see `checkpoint_layers`).

    Returns:
      ({checkpoint name: model path} or None, note or None): None, None when the names are
      not tf.layers style; None and a note when the layer counts differ.
    """
    ours, theirs = model_layers(variables), checkpoint_layers(names)
    if theirs is None:
        return None, None
    counts = {kind: (len(theirs.get(kind, [])), len(ours.get(kind, [])))
              for kind in sorted(set(ours) | set(theirs))}
    if any(a != b for a, b in counts.values()):
        return None, ("not matched by structure and order: the checkpoint's names carry no "
                      "net scope (tf.compat.v1.layers style) but its layers do not pair "
                      "with the net's by type: " + ", ".join(
                          f"{a} {kind} vs {b} {_KIND[kind]}" for kind, (a, b) in counts.items())
                      + " (checkpoint vs net)")
    pairs = {layer: path for kind in theirs for layer, path in zip(theirs[kind], ours[kind])}
    overrides = {}
    for name in names:
        layer, _, leaf = name.rpartition("/")
        overrides[name] = f"{pairs[layer]}/{leaf}"
    first = {}
    for index, (path, _) in enumerate(variables):
        first.setdefault(path.rpartition("/")[0], index)
    order = sorted(pairs.items(), key=lambda item: first[item[1]])
    note = ("matched by structure and order (the checkpoint's names carry no net scope: "
            "tf.compat.v1.layers style; the k-th layer of a type fills the net's k-th): "
            + ", ".join(f"{layer} -> {path}" for layer, path in order))
    return overrides, note
