"""Run a legacy TF1 / tf-slim model function on a batch, restored from its own checkpoint.

The reference side of `porting.verify` (`python -m tfmodels.porting --verify_with=...`),
meant to run in a process of its own: it switches TensorFlow to TF1 graph mode
(`tf.compat.v1.disable_v2_behavior()`), which cannot be undone in a process and which legacy
modules often do themselves when imported.

    python -m tfmodels.porting.legacy_graph request.json

`request.json`: {"function": "module:function", "checkpoint": prefix, "images": in.npy,
"output": out.npy, "num_classes": K, "use_ema": bool}. The function follows slim's contract
`fn(images, num_classes, is_training=False, ...) -> logits or (logits, end_points)` and is built
under its arg scope: the request's "arg_scope" (`module:function`, or "none"), else the one
slim's conventions pair with it in its module (`find_arg_scope`: `resnet_v1_50` ->
`resnet_v1_50_arg_scope`, `resnet_v1_arg_scope`, `resnet_arg_scope`, then the module's name
the same way, then the module's only `*_arg_scope`). Variables are restored with a
`tf.compat.v1.train.Saver`; with use_ema through
`ExponentialMovingAverage.variables_to_restore()` as TF1 evaluation scripts do (trainable
variables and every variable with a shadow in the checkpoint take the shadow). Checkpoint keys
may carry a prefix (`tower_0/`, `clone_0/`, an Estimator's outer scope): the one prefix under
which every variable exists is used (the unprefixed or lowest-numbered tower first).

Writes the logits [N, K] to `output` and prints one JSON line {"prefix", "restored",
"arg_scope" (module:function used, or null), "arg_scope_tried" (names looked for)}; on error
prints `error: ...` to stderr and exits with status 2.
"""
import importlib
import inspect
import json
import re
import sys

import numpy as np
import tensorflow as tf
import tf_slim

from tfmodels.slim import compat

_EMA = "ExponentialMovingAverage"
_REPLICA = re.compile(r"(tower|clone)_(\d+)$")


class LegacyError(Exception):
    """A problem with the legacy function or checkpoint, reported as one line."""


def choose_prefix(names, keys):
    """The prefix P with P + name in `keys` for every name, or None.

    Candidates come from the keys ending in the first name; among valid ones the unprefixed,
    then the one whose replica numbers (`tower_N`, `clone_N`) are lowest, then the shortest.
    """
    keys = set(keys)
    first = names[0]
    candidates = {key[:len(key) - len(first)] for key in keys
                  if key == first or key.endswith("/" + first)}
    valid = [p for p in candidates if all(p + name in keys for name in names)]

    def order(prefix):
        ranks = [int(m.group(2)) for part in prefix.split("/")
                 for m in [_REPLICA.fullmatch(part)] if m]
        return (prefix != "", ranks, len(prefix), prefix)

    return min(valid, key=order) if valid else None


def _stems(name):
    """`resnet_v1_50` -> ['resnet_v1_50', 'resnet_v1', 'resnet']."""
    parts = name.split("_")
    return ["_".join(parts[:i]) for i in range(len(parts), 0, -1) if parts[i - 1]]


def find_arg_scope(module, function_name):
    """The arg scope slim's conventions pair with `module.function_name`.

    Looked for, first found wins: `<stem>_arg_scope` for the stems of the function's name
    (`resnet_v1_50_arg_scope`, `resnet_v1_arg_scope`, `resnet_arg_scope`: tf-slim names them
    per net or per family), then the same for the module's last name component, then the only
    `*_arg_scope` function the module holds.

    Returns:
      (attribute name or None, [names looked for]).
    """
    tried = []
    for stem in _stems(function_name) + _stems(module.__name__.rpartition(".")[2]):
        name = f"{stem}_arg_scope"
        if name in tried:
            continue
        tried.append(name)
        if callable(getattr(module, name, None)):
            return name, tried
    others = [name for name in dir(module) if name.endswith("_arg_scope")
              and name != "add_arg_scope" and callable(getattr(module, name))]
    tried.append("the module's only *_arg_scope")
    return (others[0] if len(others) == 1 else None), tried


def _arg_scope(request, module, function_name):
    """(arg scope function or None, its 'module:function' or None, names tried)."""
    spec = request.get("arg_scope")
    if spec == "none":
        return None, None, ["none (as asked)"]
    if spec:
        scope_module, scope_name = spec.split(":")
        try:
            found = getattr(importlib.import_module(scope_module), scope_name, None)
        except Exception as err:
            raise LegacyError(f"--verify_arg_scope={spec}: importing {scope_module} failed: "
                              f"{type(err).__name__}: {err}") from err
        if not callable(found):
            raise LegacyError(f"--verify_arg_scope={spec}: {scope_module} has no function "
                              f"{scope_name!r}")
        return found, spec, [spec]
    name, tried = find_arg_scope(module, function_name)
    if name is None:
        return None, None, tried
    return getattr(module, name), f"{module.__name__}:{name}", tried


def _no_scope_note(tried):
    if tried == ["none (as asked)"]:
        return "; it was built without an arg scope (as asked)"
    return (f"; it was built without an arg scope: none found (looked for "
            f"{', '.join(tried)}); pass verify_arg_scope=module:function if it has one")


def _scope_kwargs(arg_scope):
    """is_training=False for arg scopes that take it (MobileNet's set BatchNorm's mode)."""
    try:
        parameters = inspect.signature(arg_scope).parameters
    except (TypeError, ValueError):
        return {}
    return {"is_training": False} if "is_training" in parameters else {}


def run(request):
    """Build, restore and run the legacy function; returns (logits, info dict)."""
    # Before the legacy module is imported: its module-level code may build TF1 graphs.
    tf.compat.v1.disable_v2_behavior()
    try:
        compat.enable_tf_slim()
    except ImportError:  # no tf-keras: only slim.batch_norm needs it
        pass
    module_name, function_name = request["function"].split(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as err:
        raise LegacyError(f"--verify_with={request['function']}: importing {module_name} "
                          f"failed: {type(err).__name__}: {err}") from err
    fn = getattr(module, function_name, None)
    if not callable(fn):
        raise LegacyError(f"--verify_with={request['function']}: {module_name} has no "
                          f"function {function_name!r}")
    arg_scope, arg_scope_name, tried = _arg_scope(request, module, function_name)
    images = np.load(request["images"])

    graph = tf.Graph()
    with graph.as_default():
        placeholder = tf.compat.v1.placeholder(tf.float32, (None, *images.shape[1:]))
        kwargs = {"num_classes": request["num_classes"]}
        parameters = inspect.signature(fn).parameters
        if "is_training" in parameters or any(p.kind is p.VAR_KEYWORD
                                              for p in parameters.values()):
            kwargs["is_training"] = False
        scope = arg_scope(**_scope_kwargs(arg_scope)) if arg_scope is not None else {}
        with tf_slim.arg_scope(scope):
            result = fn(placeholder, **kwargs)
        logits = result[0] if isinstance(result, (tuple, list)) else result
        if logits.shape.rank == 4:  # slim's conv classifiers: [N, 1, 1, K]
            logits = tf.squeeze(logits, [1, 2])
        variables = tf.compat.v1.global_variables()
        if not variables:
            raise LegacyError(f"--verify_with={request['function']} created no variables")
        keys = [key for key, _ in tf.train.list_variables(request["checkpoint"])]
        if request["use_ema"]:
            shadows = {key[:-len(_EMA) - 1] for key in keys if key.endswith("/" + _EMA)}
            with_shadow = [v for v in variables
                           if any(s == v.op.name or s.endswith("/" + v.op.name)
                                  for s in shadows)]
            ema = tf.compat.v1.train.ExponentialMovingAverage(0.0)
            names = ema.variables_to_restore(
                tf.compat.v1.trainable_variables() + with_shadow)
        else:
            names = {v.op.name: v for v in variables}
        prefix = choose_prefix(sorted(names), keys)
        if prefix is None:
            missing = sorted(n for n in names if not any(k == n or k.endswith("/" + n)
                                                         for k in keys))
            raise LegacyError(
                f"checkpoint {request['checkpoint']} does not hold the variables "
                f"{request['function']} creates under one common prefix; missing: "
                f"{', '.join(missing[:8]) or '(the names exist, but under different prefixes)'}"
                f"; the checkpoint holds e.g. {', '.join(sorted(keys)[:8])}"
                f"{'' if arg_scope_name else _no_scope_note(tried)}")
        saver = tf.compat.v1.train.Saver({prefix + name: v for name, v in names.items()})
        with tf.compat.v1.Session(graph=graph) as session:
            saver.restore(session, request["checkpoint"])
            output = session.run(logits, {placeholder: images})
    return output, {"prefix": prefix, "restored": len(names), "arg_scope": arg_scope_name,
                    "arg_scope_tried": tried}


def main(argv):
    if len(argv) != 2:
        print("usage: python -m tfmodels.porting.legacy_graph request.json", file=sys.stderr)
        return 2
    with open(argv[1]) as f:
        request = json.load(f)
    try:
        output, info = run(request)
    except LegacyError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    np.save(request["output"], np.asarray(output))
    print(json.dumps(info))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
