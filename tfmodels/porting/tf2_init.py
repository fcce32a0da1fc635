"""Initialise a TF2 Keras model from a TF1 or TF2 checkpoint, and choose what to train.

    model = nets.build_model("vgg_16", num_classes=5, input_shape=(224, 224, 3))
    porting.load_checkpoint(model, "vgg_16.ckpt", exclude_scopes="vgg_16/fc8")
    train_vars = porting.trainable_variables(model, "vgg_16/fc7,vgg_16/fc8")

These are the library side of train.py's `--init_checkpoint`, `--checkpoint_exclude_scopes`
and `--trainable_scopes` (slim's train_image_classifier flags).
"""
import numpy as np
from absl import logging

from tfmodels.options import UsageError
from tfmodels.porting import rules
from tfmodels.porting.checkpoint_map import PortingError, map_checkpoint


def load_checkpoint(model, checkpoint_path, *, exclude_scopes=(), overrides=None,
                    use_ema=False, strict=True, ignore=(), strip_scope=(), flags=None):
    """Fill `model`'s variables from a checkpoint as `map_checkpoint` plans it.

    The whole plan is checked before the first assignment, so a strict failure leaves the
    model untouched (never a partial load). Values are assigned in cross-replica context:
    under a `MirroredStrategy` scope `variable.assign` writes every replica's copy (see
    tests/test_porting.py's replica scenario).

    Args:
      model: Keras model from `nets.build_model` (possibly built under a strategy scope).
      checkpoint_path, exclude_scopes, overrides, use_ema, ignore, strip_scope, flags: see
        `map_checkpoint`.
      strict: if True (default), any unmatched model variable, shape mismatch, ambiguity,
        unused override or checkpoint variable left unused in a filled layer raises; if
        False, the variables that do match are loaded and the report is logged as a warning.

    Returns:
      The `Mapping` that was applied.

    Raises:
      PortingError: strict and the plan has problems (message: the report).
      ValueError: bad arguments or a missing checkpoint (see `map_checkpoint`).
    """
    mapping = map_checkpoint(model, checkpoint_path, exclude_scopes=exclude_scopes,
                             overrides=overrides, use_ema=use_ema, ignore=ignore,
                             strip_scope=strip_scope, flags=flags)
    if strict and not mapping.ok:
        raise PortingError(mapping.report() + "\nNothing was assigned to the model.", mapping)
    if not mapping.ok:
        logging.warning("loading only the matching variables:\n%s", mapping.report())
    variables = {v.path: v for v in model.weights}
    for match in mapping.matched:
        variable = variables[match.path]
        # One variable at a time: VGG-16's 138M values would double peak memory if read at once.
        variable.assign(np.asarray(match.value(mapping.read), dtype=variable.dtype))
    logging.info("initialised %d of %d variables of %s from %s (%s)%s",
                 len(mapping.matched), mapping.num_model_variables, mapping.model_name,
                 mapping.checkpoint, mapping.source_format,
                 f"; kept initial values under {', '.join(mapping.exclude_scopes)}"
                 if mapping.exclude_scopes else "")
    if mapping.unused:
        logging.warning("%d checkpoint variables fill no model variable: %s",
                        len(mapping.unused), ", ".join(k for k, _ in mapping.unused[:20]))
    return mapping


def trainable_variables(model, trainable_scopes=(), flags=None):
    """The variables the optimizer should update, as slim's `--trainable_scopes`.

    Only the list changes: the rest stay `trainable` for Keras, so their batch norms keep
    batch statistics in training (a Keras `trainable=False` BatchNormalization would switch to
    its moving statistics, which slim's frozen scopes never did).

    Args:
      model: a Keras model.
      trainable_scopes: comma-separated string or list of scopes (leading components of
        variable paths, either spelling: `vgg_16/fc8`); empty means all trainable variables.
      flags: {option: flag} naming the caller's flags in errors (`rules.flag_names`).

    Returns:
      A list of `model.trainable_variables` in model order.

    Raises:
      ValueError: a scope that covers no trainable variable.
    """
    flag = rules.flag_names(flags)["trainable_scopes"]
    scopes = rules.parse_scopes(trainable_scopes, flag)
    variables = list(model.trainable_variables)
    if not scopes:
        return variables
    rules.check_scopes(scopes, [v.path for v in variables], flag, what="trainable variable")
    return [v for v in variables if any(rules.in_scope(v.path, s) for s in scopes)]


def check_fresh_not_frozen(mapping, model, train_variables, trainable_scopes, flags=None):
    """Refuse variables left at their random initialisation (excluded from the checkpoint)
    that the optimizer would not update either (outside `trainable_scopes`). `flags`: see
    `rules.flag_names`.

    Raises:
      UsageError: one line naming the scopes and the variables.
    """
    trained = {id(v) for v in train_variables}
    excluded = set(mapping.excluded)
    stuck = [v.path for v in model.trainable_variables
             if v.path in excluded and id(v) not in trained]
    if stuck:
        shown = ", ".join(stuck[:4]) + (f" and {len(stuck) - 4} more" if len(stuck) > 4 else "")
        flags = rules.flag_names(flags)
        exclude, trainable = flags["exclude_scopes"], flags["trainable_scopes"]
        raise UsageError(
            f"--{exclude}={','.join(mapping.exclude_scopes)} leaves {shown} at random initial "
            f"values and --{trainable}={','.join(trainable_scopes)} freezes them: add their "
            f"scope to --{trainable} or drop it from --{exclude}", exclude)


def describe_trainable(model, train_variables, depth=2):
    """Which variables a fine-tuning run trains and which it keeps, counted by scope.

    Args:
      model: the Keras model.
      train_variables: what the optimizer updates (`trainable_variables(model, scopes)`).
      depth: leading path components that name a scope (`vgg_16/fc8`).

    Returns:
      Text: a header with the totals, then one line per scope, `trained` / `frozen` counts of
      variables and values, e.g. `vgg_16/fc8   trained 2 (4,097,000 values)`.
    """
    trained = {id(v) for v in train_variables}
    rows = {}
    for variable in model.trainable_variables:
        scope = "/".join(variable.path.split("/")[:-1][:depth]) or variable.path
        row = rows.setdefault(scope, [0, 0, 0, 0])
        column = 0 if id(variable) in trained else 2
        row[column] += 1
        row[column + 1] += int(np.prod(variable.shape))
    total = [sum(r[i] for r in rows.values()) for i in range(4)]
    width = max(len(s) for s in rows) if rows else 0
    lines = [f"training {total[0]} variables ({total[1]:,} values), keeping {total[2]} frozen "
             f"({total[3]:,} values):"]
    for scope, (n_trained, v_trained, n_frozen, v_frozen) in rows.items():
        parts = []
        if n_trained:
            parts.append(f"trained {n_trained} ({v_trained:,} values)")
        if n_frozen:
            parts.append(f"frozen {n_frozen} ({v_frozen:,} values)")
        lines.append(f"  {scope:<{width}}  {', '.join(parts)}")
    return "\n".join(lines)
