"""Slim scopes as Keras layer names: `scope='block2/conv'` and repeated leaf names.

Keras 3 takes a variable's path from the name scopes active when its layer is built plus the
layer's name (`Net/block2/conv/kernel`), forbids '/' in names, and needs every layer name of a
functional model to be unique. tf-slim had neither limit: `conv2d(net, 8, 3,
scope='block2/conv')` opened two variable scopes, and `block1/conv` and `block2/conv` could
both exist. So a builder given `scope`:

1. opens a `keras.name_scope` for each leading component and names its layer after the last;
2. claims that name in the functional model being built; if a layer of another scope already
   has it (`block1/conv` before `block2/conv`), the layer is renamed after it is built (paths
   are fixed then) to the scope below the model's root, `block2_conv` (`_2`, ... if taken);
3. refuses a second layer *with variables* at the very same path, as slim refused to create
   `Net/conv1/weights` twice (weightless layers, e.g. pools, are only renamed).

"The functional model being built" is the innermost `nested_model` scope, else the outermost
`keras.name_scope` (every net opens one: its own scope). Without any name scope nothing is
tracked and Keras's own "used N times" check applies.

The name-scope stack is Keras's (`keras.src.backend.common.global_state`): Keras 3 has no
public accessor for it; tests/test_scopes.py pins the behaviour.
"""
import contextlib
import weakref

import keras
from keras.src.backend.common import global_state

_MODELS = weakref.WeakKeyDictionary()  # root name_scope entry -> {layer name: scope path}
_NESTED_ROOTS = weakref.WeakSet()       # name_scope entries opened by nested_model


def split_scope(scope, argument="scope"):
    """('a/b/c') -> (('a', 'b'), 'c'), with a clear error for empty components."""
    if not isinstance(scope, str):
        raise ValueError(f"{argument}={scope!r} must be a string or None")
    parts = scope.split("/")
    if not all(parts):
        raise ValueError(f"{argument}={scope!r} has an empty component; write e.g. "
                         "'block2/conv' (no leading, trailing or double '/')")
    return tuple(parts[:-1]), parts[-1]


@contextlib.contextmanager
def name_scopes(names):
    """Enter one `keras.name_scope` per name, outermost first."""
    with contextlib.ExitStack() as stack:
        for name in names:
            stack.enter_context(keras.name_scope(name))
        yield


def _stack():
    return global_state.get_global_attribute("name_scope_stack") or []


def _path(entries):
    """The path these stack entries give, as Keras's `current_path()` computes it."""
    parts = []
    for entry in entries:
        if entry.override_parent is not None:
            parts = [p for p in entry.override_parent.split("/") if p]
        parts.append(entry.name)
    return "/".join(parts)


def claim(leaf, has_variables, scope):
    """The layer name to give a layer named `leaf` built in the current name scopes.

    Args:
      leaf: the last component of the builder's scope (the name that sets variable paths).
      has_variables: True for layers with variables, whose path may not repeat.
      scope: the builder's scope argument, for the error message.

    Returns:
      `leaf`, or a unique name for the model being built when another scope already has it.

    Raises:
      ValueError: a layer with variables at a path that another layer already has.
    """
    stack = _stack()
    if not stack:
        return leaf
    index = max([i for i, entry in enumerate(stack) if entry in _NESTED_ROOTS], default=0)
    names = _MODELS.setdefault(stack[index], {})
    root, full = _path(stack[:index + 1]), f"{_path(stack)}/{leaf}"
    holder = names.get(leaf)
    if holder is None:
        names[leaf] = full
        return leaf
    if holder == full and has_variables:
        raise ValueError(
            f"scope={scope!r}: {full} is already a layer of this model (tf-slim would fail "
            f"with 'Variable {full}/weights already exists'). Give each layer its own scope; "
            "to apply one layer twice, call the Keras layer object again")
    base = full[len(root) + 1:].replace("/", "_") if full.startswith(root + "/") else leaf
    name, count = base, 1
    while name in names:
        count += 1
        name = f"{base}_{count}"
    names[name] = full
    return name


def build_named(make_layer, inputs, scope, has_variables=True):
    """Make, apply and name one layer for a builder called with `scope`.

    Args:
      make_layer: function of the layer name returning the (unbuilt) layer.
      inputs: what to call the layer on.
      scope: the builder's scope: None (Keras picks a unique name) or 'a/b/name'.
      has_variables: see `claim`.

    Returns:
      The layer's outputs on `inputs`.
    """
    if scope is None:
        return make_layer(None)(inputs)
    outer, leaf = split_scope(scope)
    with name_scopes(outer):
        name = claim(leaf, has_variables, scope)
        layer = make_layer(leaf)
        outputs = layer(inputs)  # builds it: variable paths end in `.../leaf/<variable>`
    if name != leaf:
        layer.name = name  # unique in the model; the paths stay what the build gave them
    return outputs


@contextlib.contextmanager
def nested_root(name):
    """`keras.name_scope(name)` whose layers form their own model (nested_model): layer names
    inside it are tracked apart from the enclosing model's."""
    with keras.name_scope(name) as entry:
        _NESTED_ROOTS.add(entry)
        yield
