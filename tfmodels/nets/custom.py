"""Nets outside the registry, named `package.module:function`.

    spec = nets.get_net("mypkg.mynet:mynet")   # imports mypkg.mynet, takes mynet
    model = nets.build_model("mypkg.mynet:mynet", num_classes=5, input_shape=(32, 32, 3))

The function follows the net contract of the registry (`tfmodels.nets`):
`fn(images, num_classes, is_training=None, scope='Name') -> (logits, end_points)`, written with
`tfmodels.slim.scopes` builders, with `end_points['embedding']` (the features before the
classifier).
Beside it, in the same module:

- `<function>_arg_scope(weight_decay=...)` is the arg scope it is built under, when present
  (else none); without a `weight_decay` parameter it is called without arguments;
- `function.default_image_size` / `min_image_size` / `max_image_size` (function attributes,
  as slim's nets carry `vgg_16.default_image_size = 224`) give the image sizes; without
  `default_image_size` the image size must be given explicitly.

Only `importlib` is used: the module must be importable from `sys.path` (the working directory
when run with `python -m`, or PYTHONPATH). A TF1 module that calls
`tf.compat.v1.disable_v2_behavior()` (or `disable_eager_execution()`) when imported is refused
before the call takes effect: TF1 graph mode cannot be switched off again in a process. Such
code is the legacy reference, which `python -m tfmodels.porting --verify_with` runs in a
separate process.
"""
import contextlib
import importlib
import inspect
import re
import sys

import tf_slim

from tfmodels.options import UsageError, check_int

_PATTERN = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*")
CONTRACT = ("fn(images, num_classes, is_training=None, scope='Name') -> (logits, end_points) "
            "written with tfmodels.slim.scopes builders")


def is_custom(name):
    """True if `name` has the `module:function` form (registry names never hold ':')."""
    return isinstance(name, str) and ":" in name


def check_name(name, argument, registered=False):
    """Raise a clear ValueError unless `name` reads `package.module:function` (nothing is
    imported: a legacy module must not be imported into this process).

    Args:
      name: the value to check.
      argument: the argument or flag named in the message.
      registered: say that a registered net name is also accepted.
    """
    if not isinstance(name, str) or not _PATTERN.fullmatch(name):
        also = "a registered net name or " if registered else ""
        raise UsageError(f"--{argument}={name} must be {also}'package.module:function' "
                         "(e.g. 'mypkg.mynet:mynet')")


def import_function(name, argument="model"):
    """(module, function) named by `package.module:function`, with clear errors.

    Args:
      name: the `package.module:function` string.
      argument: the argument or flag named in error messages.

    Returns:
      (the imported module, the attribute `function` of it).

    Raises:
      ValueError: malformed name, module not importable, no such attribute, not callable, or
        the module switched TensorFlow to TF1 graph mode when imported.
    """
    check_name(name, argument, registered=argument == "model")
    module_name, function_name = name.split(":")
    try:
        with _refuse_graph_mode():
            module = importlib.import_module(module_name)
    except _GraphModeSwitch as switch:
        raise UsageError(
            f"--{argument}={name}: importing {module_name} calls tf.compat.v1.{switch} "
            f"(TF1 code). The model must be a TF2 builder ({CONTRACT}); run TF1 code as the "
            "reference with --verify_with / porting.verify, which uses a separate "
            "process") from None
    except ModuleNotFoundError as err:
        if err.name and module_name.startswith(err.name):
            raise UsageError(
                f"--{argument}={name}: no module named {err.name!r} on sys.path; run from the "
                "directory holding it or add that directory to PYTHONPATH") from None
        raise UsageError(f"--{argument}={name}: importing {module_name} failed: {err}") from err
    except Exception as err:  # the module's own code failed: say which model value did it
        raise UsageError(f"--{argument}={name}: importing {module_name} failed: "
                         f"{type(err).__name__}: {err}") from err
    if not hasattr(module, function_name):
        public = sorted(n for n, v in vars(module).items()
                        if callable(v) and not n.startswith("_")
                        and getattr(v, "__module__", None) == module.__name__)
        raise UsageError(f"--{argument}={name}: module {module_name} has no attribute "
                         f"{function_name!r}; its functions: {', '.join(public) or 'none'}")
    function = getattr(module, function_name)
    if not callable(function):
        raise UsageError(f"--{argument}={name}: {module_name}.{function_name} is a "
                         f"{type(function).__name__}, not a function")
    return module, function


class _GraphModeSwitch(Exception):
    """Raised instead of switching this process to TF1 graph mode."""


@contextlib.contextmanager
def _refuse_graph_mode():
    """While importing a net's module, make `tf.compat.v1.disable_v2_behavior` and
    `disable_eager_execution` raise `_GraphModeSwitch` (every module alias of
    `tf.compat.v1` holds its own reference to them)."""
    saved = []

    def refuse_for(attribute):
        def refuse(*args, **kwargs):
            raise _GraphModeSwitch(f"{attribute}()")
        return refuse

    for module in list(sys.modules.values()):
        if getattr(module, "__name__", "").endswith("compat.v1"):
            for attribute in ("disable_v2_behavior", "disable_eager_execution"):
                if hasattr(module, attribute):
                    saved.append((module, attribute, getattr(module, attribute)))
                    setattr(module, attribute, refuse_for(attribute))
    try:
        yield
    finally:
        for module, attribute, value in saved:
            setattr(module, attribute, value)


def load_net(name):
    """What the registry holds for a net, read from `package.module:function`.

    Returns:
      dict with fn, arg_scope (a function of weight_decay), default_image_size (int or None),
      min_image_size, max_image_size and description, for `nets.NetSpec`.

    Raises:
      ValueError: see `import_function`; or the function does not follow the net contract, or
        an image size attribute is not a positive int.
    """
    module, fn = import_function(name)
    function_name = name.split(":")[1]
    try:
        parameters = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        parameters = None
    problems = _contract_problems(parameters)
    if problems:
        raise UsageError(f"--model={name} does not follow the net contract {CONTRACT}: "
                         f"{'; '.join(problems)}")
    sizes = {}
    for attribute, default in (("default_image_size", None), ("min_image_size", 1),
                               ("max_image_size", None)):
        value = getattr(fn, attribute, default)
        if value is not None:
            check_int(f"--model={name}: {function_name}.{attribute}", value, low=1)
        sizes[attribute] = value
    arg_scope_fn = getattr(module, f"{function_name}_arg_scope", None)
    if arg_scope_fn is not None and not callable(arg_scope_fn):
        raise UsageError(f"--model={name}: {function_name}_arg_scope is a "
                         f"{type(arg_scope_fn).__name__}, not a function")
    doc = (inspect.getdoc(fn) or "").strip().splitlines()
    return dict(fn=fn, arg_scope=_arg_scope(name, function_name, arg_scope_fn),
                description=doc[0] if doc else name, **sizes)


def _contract_problems(parameters):
    if parameters is None:
        return ["its signature cannot be read"]
    problems = []
    positional = [p for p in parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if not positional:
        problems.append("it takes no images argument")
    for required in ("num_classes", "is_training", "scope"):
        if required not in parameters:
            problems.append(f"no {required!r} parameter")
    scope = parameters.get("scope")
    if scope is not None and not (isinstance(scope.default, str) and scope.default):
        problems.append(f"'scope' needs a default name (the model name), got {scope.default!r}")
    return problems


def _arg_scope(name, function_name, arg_scope_fn):
    """A function of weight_decay returning the scope dict to build the net under."""
    if arg_scope_fn is None:
        takes_weight_decay = False
    else:
        try:
            parameters = inspect.signature(arg_scope_fn).parameters
        except (TypeError, ValueError):
            parameters = {}
        takes_weight_decay = "weight_decay" in parameters or any(
            p.kind is p.VAR_KEYWORD for p in parameters.values())

    def arg_scope(weight_decay=0.0):
        if takes_weight_decay:
            return arg_scope_fn(weight_decay=weight_decay)
        if weight_decay:
            where = (f"{function_name}_arg_scope takes no weight_decay argument"
                     if arg_scope_fn is not None else f"it has no {function_name}_arg_scope")
            raise UsageError(f"--weight_decay={weight_decay} but --model={name}: {where}; "
                             "add weight decay in the net's own arg scope or use 0")
        # No arg scope of its own: keep whatever scope the caller is in.
        return arg_scope_fn() if arg_scope_fn is not None else tf_slim.current_arg_scope()

    return arg_scope


def call_net(name, fn, images, num_classes, is_training, net_kwargs):
    """`fn(images, ...)` with the contract's outputs checked: (logits, end_points) with
    end_points['embedding'].

    Raises:
      ValueError: the outputs do not follow the contract, or `fn` is TF1 code (it fails on a
        Keras tensor); the message says what to write.
    """
    try:
        result = fn(images, num_classes=num_classes, is_training=is_training, **net_kwargs)
    except (TypeError, ValueError, AttributeError) as err:
        if "KerasTensor" not in str(err):
            raise
        raise UsageError(
            f"--model={name} failed on a Keras input ({type(err).__name__}: "
            f"{str(err).splitlines()[0]}). Is it TF1 / "
            f"tf-slim code? The model must be a TF2 builder ({CONTRACT}); the TF1 function is "
            "the reference for --verify_with / porting.verify (docs/PORTING.md)") from err
    if not (isinstance(result, (tuple, list)) and len(result) == 2
            and isinstance(result[1], dict)):
        raise UsageError(f"--model={name} returned {type(result).__name__}; the net contract "
                         "is to return (logits, end_points) with end_points a dict")
    logits, end_points = result
    if "embedding" not in end_points:
        raise UsageError(
            f"--model={name}: end_points has no 'embedding' (the features the classifier "
            "reads, used by center loss and evaluation); set end_points['embedding'] = net "
            f"before the logits layer. It has: {', '.join(sorted(end_points)) or 'nothing'}")
    return logits, end_points
