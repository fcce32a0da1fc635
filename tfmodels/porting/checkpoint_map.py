"""Plan how a checkpoint fills a Keras model: `map_checkpoint(model, path) -> Mapping`.

Planning reads only names and shapes (and, for a TF2 checkpoint, restores its source model);
nothing is assigned to `model`. Two kinds of checkpoint are accepted, told apart by the object
graph TF2 writes into every `tf.train.Checkpoint`:

- TF1 name-based (`tf.compat.v1.train.Saver`, slim, Estimator): keys are variable names,
  mapped by `rules` (replica prefixes, `weights` -> `kernel`, ..., skipping optimizer slots).
- TF2 object-based, written by train.py or the porting CLI: keys are object paths
  (`model/layer_with_weights-0/...`) that say nothing about layer names, so the source model is
  rebuilt from the `config.json` beside the checkpoint and restored, and its variables are
  matched to the target's by `variable.path` (same exclude / override / strict rules).

A model variable is filled from one checkpoint variable of the same shape. Precedence when
several could fill it: an override, then (with `use_ema`) an EMA shadow, then the raw value;
among copies of one variable in several towers the unprefixed or lowest-numbered one. With
`use_ema` an override naming a raw variable `X` takes `X/ExponentialMovingAverage`.

Checkpoint variables that fill nothing are listed; one that sits in a layer whose other
variables were filled (`conv1/BatchNorm/gamma` beside a filled `conv1/BatchNorm/beta`) fails
the port: the builder lacks a setting (`batch_norm(scale=True)`) and the model would compute
something else. `ignore` names the ones to leave out on purpose.
"""
import collections
import dataclasses
import difflib
import os

import tensorflow as tf
from absl import logging

from tfmodels import model_dir as model_dir_lib
from tfmodels.porting import by_order, checkpoint_choice
from tfmodels.porting import report as report_lib
from tfmodels.porting import rules
from tfmodels.options import UsageError

_OBJECT_GRAPH = "_CHECKPOINTABLE_OBJECT_GRAPH"


class PortingError(UsageError):
    """A strict port found problems; `.mapping` holds the plan, the message its report.
    Raised before any variable is assigned."""

    def __init__(self, message, mapping=None, option=None):
        super().__init__(message, option)
        self.mapping = mapping


@dataclasses.dataclass
class Entry:
    """One checkpoint variable that may fill a model variable."""
    key: str            # as stored (TF1) or the source model's variable path (TF2)
    shape: tuple
    candidates: tuple   # model paths it may fill, most likely first
    rank: tuple         # replica rank: () unprefixed, (0,) tower_0, ...
    ema: bool = False   # a tf.train.ExponentialMovingAverage shadow (preferred: use_ema)
    override: bool = False

    @property
    def priority(self):
        return (not self.override, not self.ema, self.rank)


@dataclasses.dataclass
class Match:
    path: str           # model variable path
    key: str            # checkpoint variable it is filled from
    shape: tuple
    rule: str           # how the name was mapped
    sum_input_channels: bool = False  # kernel [h, w, C, n] summed to [h, w, 1, n]

    def value(self, read):
        """The checkpoint value as the model variable takes it (`read`: `Mapping.read`)."""
        value = read(self.key)
        return value.sum(axis=2, keepdims=True) if self.sum_input_channels else value


@dataclasses.dataclass
class Mapping:
    """The plan: which checkpoint variable fills each model variable, and what does not fit.

    `ok` is True when every model variable outside the excluded scopes has exactly one
    checkpoint variable of its shape, every override was used, and no checkpoint variable was
    left unused inside a layer whose other variables were filled (`unused_in_layers`, with
    the builder setting to change). Other checkpoint variables that fill nothing (`unused`,
    e.g. an auxiliary head) are reported but do not fail. `read(key)` returns a checkpoint
    value as a NumPy array.
    """
    checkpoint: str
    source_format: str                    # 'tf1' or 'tf2'
    model_name: str
    num_model_variables: int
    num_checkpoint_variables: int
    exclude_scopes: tuple
    use_ema: bool
    matched: list = dataclasses.field(default_factory=list)       # [Match]
    excluded: list = dataclasses.field(default_factory=list)      # [model path]
    unmatched: list = dataclasses.field(default_factory=list)     # [(path, shape, hint)]
    mismatched: list = dataclasses.field(default_factory=list)    # [(path, shape, key, shape)]
    ambiguous: list = dataclasses.field(default_factory=list)     # [(path, [keys])]
    unused: list = dataclasses.field(default_factory=list)        # [(key, shape)]
    skipped: dict = dataclasses.field(default_factory=dict)       # {reason: [key]}
    unused_overrides: list = dataclasses.field(default_factory=list)
    unused_in_layers: list = dataclasses.field(default_factory=list)  # [(key, shape, setting)]
    strip_scope: tuple = ()
    ignore: tuple = ()
    verification: object = None  # a porting.verify.Verification once verified
    choice: str = None  # which checkpoint of a directory was taken and why
    by_order: str = None  # how layers were paired by structure and order, if they were
    # {option: flag} of the front end (`rules.flag_names`), named by the report's hints.
    flags: dict = dataclasses.field(default_factory=rules.flag_names)
    read: object = dataclasses.field(default=None, repr=False)

    @property
    def ok(self):
        return not (self.unmatched or self.mismatched or self.ambiguous
                    or self.unused_overrides or self.unused_in_layers)

    def report(self):
        """Counts, the problems by name, and a hint how to fix them (see report.py)."""
        return report_lib.report(self)

    def table(self):
        """One line per model variable: its source, or why it has none (the dry run)."""
        return report_lib.table(self)


def resolve_checkpoint(checkpoint_path, flag="checkpoint"):
    """(checkpoint prefix, 'tf1' | 'tf2') of a prefix or a directory (`choose_checkpoint`);
    errors name `--flag`."""
    path, source_format, _ = choose_checkpoint(checkpoint_path, flag)
    return path, source_format


def choose_checkpoint(checkpoint_path, flag="checkpoint"):
    """(checkpoint prefix, 'tf1' | 'tf2', note) of a prefix or a directory.

    A directory stands for its newest readable checkpoint, found from its files
    (`checkpoint_choice.choose_in_directory`: highest step, unreadable ones passed over; the
    `checkpoint` state file is only compared with it, never followed). The note says which
    was taken and why (None for a prefix); it is logged.

    Raises:
      UsageError: nothing there, or the checkpoint cannot be read (names the path and why).
    """
    if not checkpoint_path or not isinstance(checkpoint_path, (str, os.PathLike)):
        raise UsageError(f"--{flag}={checkpoint_path} must be a checkpoint prefix or a "
                         "directory holding checkpoints", flag)
    path = os.fspath(checkpoint_path)
    note = None
    if os.path.isdir(path):
        latest, note = checkpoint_choice.choose_in_directory(path)
        if latest is None:
            raise UsageError(f"--{flag}={path}: {note}; pass a directory holding checkpoints "
                             "or a prefix such as DIR/model.ckpt-1000", flag)
        logging.info("--%s=%s: %s", flag, path, note)
        path = latest
    if not (tf.io.gfile.exists(path + ".index") or tf.io.gfile.exists(path)):
        raise UsageError(f"--{flag}={path} does not exist (no {path}.index)", flag)
    try:
        keys = tf.train.load_checkpoint(path).get_variable_to_shape_map()
    except Exception as err:  # noqa: BLE001 -- TensorFlow's message does not name the file
        reason = str(err).strip().splitlines()[0][:300] if str(err).strip() else ""
        raise UsageError(f"--{flag}={path} cannot be read as a TensorFlow checkpoint: "
                         f"{type(err).__name__}: {reason}", flag) from None
    return path, ("tf2" if _OBJECT_GRAPH in keys else "tf1"), note


def map_checkpoint(model, checkpoint_path, *, exclude_scopes=(), overrides=None,
                   use_ema=False, ignore=(), strip_scope=(), flags=None):
    """Plan filling `model` from a TF1 or TF2 checkpoint; assigns nothing.

    Args:
      model: a Keras model built with `nets.build_model` (variable paths mirror slim names).
      checkpoint_path: checkpoint prefix, or a directory (its latest checkpoint).
      exclude_scopes: scopes (comma-separated string or list) of model variables to leave
        as initialised, e.g. 'vgg_16/fc8' to fine-tune to a new class count; checkpoint
        variables under them are ignored too. Each must match a model variable.
      overrides: {checkpoint key or regex: model path or None}, a JSON object string, or a
        JSON file (see `rules.Overrides`). With use_ema, an override naming a raw variable
        takes its shadow.
      use_ema: fill trainable variables from `<var>/ExponentialMovingAverage` shadows (each
        must exist) and others from shadows where present (TF's `variables_to_restore()`);
        for a TF2 checkpoint, its weight averages (train.py --ema_decay).
      ignore: checkpoint variables to leave out on purpose, as scopes or regexes of keys
        (comma-separated string or list, see `rules.Ignore`); each must match one.
      strip_scope: outer scope(s) to remove from the start of checkpoint keys (after
        replica prefixes), e.g. 'model' for an Estimator's `model/LeNet/conv1/weights`.
      flags: {option: flag} naming the front end's flag of each argument in errors
        (`rules.flag_names`; default: the porting CLI's, which are the arguments' names,
        `--checkpoint` for checkpoint_path).

    Returns:
      A `Mapping`; check `.ok` and `.report()`.

    Raises:
      ValueError: bad arguments, a missing checkpoint, or a TF2 checkpoint without its config.
      PortingError: use_ema with a TF2 checkpoint trained without weight averages.
    """
    flags = rules.flag_names(flags)
    path, source_format, choice = choose_checkpoint(checkpoint_path, flags["checkpoint"])
    scopes = rules.parse_scopes(exclude_scopes, flags["exclude_scopes"])
    outer = rules.parse_scopes(strip_scope, flags["strip_scope"])
    ignored = rules.Ignore(ignore, flags["ignore"])
    variables = {}
    for variable in model.weights:
        if variable.path in variables:
            raise UsageError(f"model {model.name!r} has two variables with path "
                             f"{variable.path!r}; build it with nets.build_model")
        variables[variable.path] = variable
    rules.check_scopes(scopes, list(variables), flags["exclude_scopes"])
    overrides = rules.load_overrides(overrides, flags["overrides"])
    order_note = None

    skipped = collections.defaultdict(list)
    if source_format == "tf1":
        reader = tf.train.load_checkpoint(path)
        shapes = reader.get_variable_to_shape_map()
        if not overrides:  # names without a net scope: pair layers by structure and order
            overrides, order_note = by_order.match_by_order(
                [(p, tuple(v.shape)) for p, v in variables.items()],
                _plain_names(shapes, outer))
            overrides = overrides or {}
    overrides = rules.Overrides(overrides, flags["overrides"])
    if source_format == "tf1":
        entries = _tf1_entries(shapes, overrides, use_ema, skipped, ignored, outer)

        def read(key):
            try:
                return reader.get_tensor(key)
            # A damaged data file: a checksum error (OpError) or, cut short, TensorFlow's
            # "Read less bytes than requested" (IndexError).
            except (tf.errors.OpError, IndexError) as err:
                raise _damaged(flags["checkpoint"], path, err, key) from None
    else:
        try:
            source = {v.path: v for v in _restore_tf2_source(path, use_ema, flags).weights}
        except tf.errors.OpError as err:
            raise _damaged(flags["checkpoint"], path, err) from None
        shapes = {key: v.shape for key, v in source.items()}
        entries = _tf2_entries(source, overrides, use_ema, skipped, ignored, outer)
        read = lambda key: source[key].numpy()  # noqa: E731
    ignored.check_used([k for k in shapes if k != _OBJECT_GRAPH])
    mapping = Mapping(path, source_format, model.name, len(variables),
                      len([k for k in shapes if k != _OBJECT_GRAPH]), scopes, bool(use_ema),
                      strip_scope=outer, ignore=tuple(p for p, _ in ignored.patterns),
                      read=read, choice=choice, by_order=order_note, flags=flags)
    _assign_entries(mapping, variables, entries, skipped,
                    ema_required=bool(use_ema) and source_format == "tf1")
    mapping.unused_overrides = overrides.unused()
    mapping.skipped = {reason: sorted(keys) for reason, keys in skipped.items()}
    return mapping


def _plain_names(shapes, outer):
    """Checkpoint names without replica prefixes and outer scopes, leaving out EMA shadows
    and bookkeeping (optimizer slots, global_step)."""
    names = set()
    for key in shapes:
        scoped = rules.strip_scope(rules.strip_replica_prefix(key)[0], outer)
        if rules.ema_base(scoped) is None and rules.skip_reason(scoped) is None:
            names.add(scoped)
    return sorted(names)


def _damaged(flag, path, err, key=None):
    reason = (str(err).strip().splitlines() or [""])[0][:200]
    what = f"variable {key!r}" if key else "the checkpoint"
    return UsageError(f"--{flag}={path}: {what} cannot be read ({type(err).__name__}: "
                      f"{reason}): the file is damaged or truncated", flag)


def _tf1_entries(shapes, overrides, use_ema, skipped, ignored, outer):
    entries = []
    for key in sorted(shapes):
        shape = tuple(shapes[key])
        stripped, rank = rules.strip_replica_prefix(key)
        scoped = rules.strip_scope(stripped, outer)
        if ignored(key, stripped, scoped):
            skipped["ignored"].append(key)
            continue
        base = rules.ema_base(scoped)
        overridden, target = overrides.apply(key, stripped, scoped)
        shadow_of_override = False
        if not overridden and base is not None:
            # An override names the raw variable; its shadow follows it (use_ema).
            overridden, target = overrides.apply(*(rules.ema_base(name) for name in
                                                   (key, stripped, scoped)))
            shadow_of_override = overridden
        if overridden:
            if target is None:
                skipped["override: skip"].append(key)
            elif shadow_of_override and not use_ema:
                skipped["EMA shadow"].append(key)
            else:
                entries.append(Entry(key, shape, (target,), rank, override=True,
                                     ema=base is not None and bool(use_ema)))
            continue
        reason = rules.skip_reason(base if base is not None else scoped)
        if reason is None and base is not None and not use_ema:
            reason = "EMA shadow"
        if reason is not None:
            skipped[reason].append(key)
            continue
        entries.append(Entry(key, shape, rules.keras_candidates(base or scoped), rank,
                             ema=base is not None))
    return entries


def _tf2_entries(source, overrides, use_ema, skipped, ignored, outer):
    entries = []
    for key, variable in sorted(source.items()):
        scoped = rules.strip_scope(key, outer)
        if ignored(key, scoped):
            skipped["ignored"].append(key)
            continue
        overridden, target = overrides.apply(key, scoped)
        if overridden and target is None:
            skipped["override: skip"].append(key)
            continue
        # restore_model(use_average=True) swapped the averages into the trainable variables.
        entries.append(Entry(key, tuple(variable.shape), (target if overridden else scoped,), (),
                             ema=bool(use_ema) and variable.trainable, override=overridden))
    return entries


def _restore_tf2_source(path, use_ema, flags):
    directory = os.path.dirname(path)
    try:
        record = model_dir_lib.ModelDir(directory).read_record()
    except ValueError as err:
        raise UsageError(f"--{flags['checkpoint']}={path} is a TF2 (object-based) checkpoint: "
                         f"its model is rebuilt from {model_dir_lib.CONFIG_FILE} beside it, but "
                         f"{err}", flags["checkpoint"]) from None
    if use_ema and not record.has_weight_average:
        raise PortingError(f"--{flags['use_ema']}: --{flags['checkpoint']}={path} holds no "
                           "weight averages (trained without train.py's --ema_decay); take it "
                           f"without --{flags['use_ema']}", option=flags["use_ema"])
    model, _ = model_dir_lib.restore_model(record, path, use_average=bool(use_ema))
    return model


def _assign_entries(mapping, variables, entries, skipped, ema_required):
    """Give each model variable its best entry; sort every other entry into a category."""
    candidates = collections.defaultdict(list)
    leftovers = []
    for entry in entries:
        target = next((c for c in entry.candidates if c in variables), None)
        if target is None:
            if any(rules.in_scope(entry.candidates[0], s) for s in mapping.exclude_scopes):
                skipped["excluded scope"].append(entry.key)
            else:
                leftovers.append(entry)
        else:
            candidates[target].append(entry)

    for path, variable in variables.items():
        shape = tuple(variable.shape)
        found = sorted(candidates.get(path, []), key=lambda e: e.priority)
        if any(rules.in_scope(path, s) for s in mapping.exclude_scopes):
            mapping.excluded.append(path)
            skipped["excluded scope"].extend(e.key for e in found)
            continue
        if ema_required and variable.trainable and not any(e.ema for e in found):
            mapping.unmatched.append((path, shape, "no ExponentialMovingAverage shadow"))
            leftovers.extend(found)
            continue
        if not found:
            mapping.unmatched.append((path, shape, None))
            continue
        best = [e for e in found if e.priority == found[0].priority]
        if len(best) > 1:
            mapping.ambiguous.append((path, [e.key for e in best]))
            continue
        chosen = best[0]
        for other in found[1:]:
            reason = ("other replica copy" if (other.override, other.ema) == (
                chosen.override, chosen.ema) else "superseded by override"
                if chosen.override and not other.override else "raw value (EMA shadow used)")
            skipped[reason].append(other.key)
        if _one_channel_kernel(shape, chosen.shape):
            # A grey image tiled to C channels convolved with W equals the grey image
            # convolved with W summed over its input channels: pretrained conv1 is kept.
            mapping.matched.append(Match(
                path, chosen.key, shape, f"{_rule(chosen, path)}, summed over "
                f"{chosen.shape[2]} input channels (1-channel input)", True))
        elif chosen.shape != shape:
            mapping.mismatched.append((path, shape, chosen.key, chosen.shape))
        else:
            mapping.matched.append(Match(path, chosen.key, shape, _rule(chosen, path)))

    mapping.unused = [(e.key, e.shape) for e in leftovers]
    # A leftover in a layer whose other variables were filled: the builder lacks a setting.
    filled = {m.path.rpartition("/")[0] for m in mapping.matched}
    mapping.unused_in_layers = [
        (e.key, e.shape, rules.builder_setting(rules.slim_name(e.candidates[0])))
        for e in leftovers if e.candidates[0].rpartition("/")[0] in filled]
    mapping.unmatched = [(path, shape, hint or _closest(path, shape, mapping.unused))
                         for path, shape, hint in mapping.unmatched]


def _one_channel_kernel(shape, source_shape):
    """A conv kernel [h, w, 1, n] of the model against [h, w, C > 1, n] in the checkpoint."""
    return (len(shape) == 4 and len(source_shape) == 4 and shape[2] == 1
            and source_shape[2] > 1 and tuple(shape[:2]) == tuple(source_shape[:2])
            and shape[3] == source_shape[3])


def _rule(entry, path):
    parts = ["override"] if entry.override else []
    if entry.rank:
        parts.append("replica prefix stripped")
    if entry.ema:
        parts.append("EMA shadow")
    if not entry.override and entry.key.rpartition("/")[2] != path.rpartition("/")[2]:
        parts.append(f"{entry.key.rpartition('/')[2]}->{path.rpartition('/')[2]}")
    return ", ".join(parts) or "same name"


def _closest(path, shape, unused):
    """A hint for an override: the unused checkpoint variable of the same shape, or the one
    of that shape whose name is closest."""
    keys = [key for key, key_shape in unused if key_shape == shape]
    close = keys if len(keys) == 1 else difflib.get_close_matches(
        rules.slim_name(path), keys, n=1, cutoff=0.4)
    return f"unused checkpoint variable of that shape: {close[0]}" if close else None
