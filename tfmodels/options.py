"""Options declared once: a config field carries its flag name, help and allowed values.

How to declare an option (TrainConfig, EvalConfig, the porting CLI's PortOptions): one
dataclass field whose default is `option(...)`:

    learning_rate: float = option(0.1, "Peak learning rate (after warmup).", above=0.0)
    global_batch_size: int = option(64, "Global batch (examples per step), split evenly "
                                    "across the replicas.", flag="batch_size", low=1)
    optimizer: str = option("momentum", "Optimizer.", choices=OPTIMIZERS)
    image_size: Optional[Union[int, Tuple[int, int]]] = option(
        None, "Input size N or HxW.", parse=parse_image_size, check=check_image_size)

That is all: the scripts define the absl flag from it (`define_flags`: the type from the
annotation, the default, the help with the allowed values appended), build the config from the
parsed flags (`from_flags`), and `check(config)` (called by the config's `validate()`) refuses a
value outside what the field declares with one `UsageError` line naming `--flag=value`. Checks
between options (one option's value restricting another) stay in `validate()`, written as
`UsageError(f"--flag={value} ...", option="flag")`.

The names, in one place: a field's flag is its name unless `flag=` says otherwise (today only
`global_batch_size` <-> `--batch_size`); `config.json` keys are the field names
(`ResolvedConfig.to_json`). `flag_name(cls, field)` gives the flag of a field, `flags_of` those
of several fields, for a library that names its caller's flags in errors (porting's `flags=`).

Field types and their flags: bool (`--x` / `--nox`), int, float, str, their Optional (default
None), tuples of int or str (comma-separated lists); any other type needs `parse=` (text ->
value) and `check=` (value -> checked value). An Optional str with `choices` takes '' as None.
"""
import dataclasses
import math
import numbers
import os
import typing

from absl import flags

# Flags defined here belong to the script that asks for them (its --help lists them).
flags.disclaim_key_flags()

INT64_MAX = 2**63 - 1
_FLOAT32_MAX = 3.4028234663852886e38
_FLOAT32_TINY = 1.401298464324817e-45  # the smallest positive (subnormal) float32


class UsageError(ValueError):
    """Bad input, found before any work: one line naming the option, its value and what is
    allowed. `option` is the flag it is about (None: about several, or none)."""

    def __init__(self, message, option=None):
        super().__init__(message)
        self.option = option


def option(default, help, *, flag=None, choices=None, low=None, high=None, above=None,
           float32=False, parse=None, check=None):
    """A dataclass field declaring an option (see the module docstring).

    Args:
      default: the default value (a tuple for list options).
      help: the flag's help text; allowed values are appended from `choices`.
      flag: the flag's name when it differs from the field's.
      choices: the allowed values of a str option.
      low, high: inclusive bounds of a number (ints are always <= 2**63 - 1); `above`: an
        exclusive lower bound.
      float32: a float the graph holds in float32 (no overflow to inf, no underflow to 0).
      parse: text -> value, for types other than the basic ones.
      check: value -> value (raising UsageError), for types other than the basic ones.
    """
    meta = dict(help=help, flag=flag, choices=None if choices is None else tuple(choices),
                low=low, high=high, above=above, float32=float32, parse=parse, check=check)
    return dataclasses.field(default=default, metadata={"option": meta})


def _declared(cls):
    """[(field, its metadata, its type)] of the options of a config class."""
    hints = typing.get_type_hints(cls)
    return [(f, f.metadata["option"], hints[f.name]) for f in dataclasses.fields(cls)
            if "option" in f.metadata]


def flag_name(cls, field):
    """The flag of `cls`'s field `field` (`global_batch_size` -> `batch_size`)."""
    meta = next(f.metadata["option"] for f in dataclasses.fields(cls) if f.name == field)
    return meta["flag"] or field


def flags_of(cls, fields):
    """{key: the flag of `cls`'s field} for `fields` = {key: field name}: a library's options
    named as one front end's flags (porting's `exclude_scopes` is train.py's
    `--checkpoint_exclude_scopes`), so that the library's errors name the flag typed."""
    return {key: flag_name(cls, field) for key, field in fields.items()}


def _base(kind):
    """(type without Optional, optional?)."""
    args = typing.get_args(kind)
    if typing.get_origin(kind) is typing.Union and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return (rest[0] if len(rest) == 1 else typing.Union[tuple(rest)]), True
    return kind, False


def _element(kind):
    """The element type of Tuple[X, ...], else None."""
    if typing.get_origin(kind) is tuple:
        args = typing.get_args(kind)
        if len(args) == 2 and args[1] is Ellipsis:
            return args[0]
    return None


def is_int(value, low=None, high=INT64_MAX):
    """Whether `value` is an int (not a bool; NumPy ints count) in [low, high]."""
    return (isinstance(value, numbers.Integral) and not isinstance(value, bool)
            and (low is None or value >= low) and (high is None or value <= high))


def check_int(name, value, low=None, high=INT64_MAX):
    """`value` if it is an int (not a bool) in [low, high], else UsageError naming `name`
    (e.g. '--seed' or 'k'). The one check of "an int" in the package."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise UsageError(f"{name}={value!r} must be an int{_range(low, high)}", _flag(name))
    if high is not None and value > high:
        if high != INT64_MAX:
            raise UsageError(f"{name}={value} must be an int{_range(low, high)}", _flag(name))
        raise UsageError(f"{name}={value} must be an int <= 2**63 - 1, the int64 maximum",
                         _flag(name))
    if low is not None and value < low:
        raise UsageError(f"{name}={value} must be an int{_range(low, high)}", _flag(name))
    return int(value)


def check_path(flag, path):
    """Refuse (UsageError naming `--flag`) a path the file system cannot hold: a name longer
    than its NAME_MAX or a path longer than its PATH_MAX (None passes)."""
    if path is None:
        return
    if not isinstance(path, str) or "\0" in path:
        raise UsageError(f"--{flag}={path!r} must be a path (a string without NUL)", flag)
    encoded = os.fsencode(path)
    name_max, path_max = _limit("PC_NAME_MAX", 255), _limit("PC_PATH_MAX", 4096)
    longest = max(encoded.split(b"/"), key=len)
    if len(encoded) >= path_max or len(longest) > name_max:
        raise UsageError(
            f"--{flag}={path[:40]}... is {len(encoded)} bytes long, with a name of "
            f"{len(longest)}; this system takes at most {name_max} bytes per name and "
            f"{path_max - 1} per path", flag)


def _limit(name, default):
    try:
        return os.pathconf("/", name) or default
    except (ValueError, OSError):  # no such limit on this system
        return default


def _range(low, high, above=None):
    if above is not None:
        return f" > {above:g}" + (f" and <= {high:g}" if high is not None else "")
    if low is not None and high is not None:
        return f" >= {low}" if high == INT64_MAX else f" in [{low}, {high}]"
    return f" >= {low}" if low is not None else (f" <= {high}" if high is not None else "")


def _flag(name):
    return name[2:] if name.startswith("--") else None


def _check_float(name, value, meta):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise UsageError(f"{name}={value!r} must be a number", _flag(name))
    if not math.isfinite(value):
        raise UsageError(f"{name}={value} must be a finite number", _flag(name))
    if meta["float32"] and abs(value) > _FLOAT32_MAX:
        raise UsageError(f"{name}={value} overflows float32 (|value| <= {_FLOAT32_MAX:.7g})",
                         _flag(name))
    if meta["float32"] and value and abs(value) < _FLOAT32_TINY / 2:
        raise UsageError(f"{name}={value} is 0 in float32 (the smallest positive float32 is "
                         f"{_FLOAT32_TINY:.7g})", _flag(name))
    low, high, above = meta["low"], meta["high"], meta["above"]
    if ((low is not None and value < low) or (high is not None and value > high)
            or (above is not None and not value > above)):
        raise UsageError(f"{name}={value:g} must be{_range(low, high, above)}", _flag(name))
    return float(value)


def _check_value(name, value, kind, meta):
    """`value` of a field of type `kind` (not None), checked against its declaration."""
    if meta["check"] is not None:
        return meta["check"](value)
    if kind is bool:
        if not isinstance(value, bool):
            raise UsageError(f"{name}={value!r} must be True or False", _flag(name))
    elif kind is int:
        check_int(name, value, meta["low"], INT64_MAX if meta["high"] is None else meta["high"])
    elif kind is float:
        _check_float(name, value, meta)
    elif kind is str:
        if not isinstance(value, str):
            raise UsageError(f"{name}={value!r} must be a string", _flag(name))
        if meta["choices"] is not None and value not in meta["choices"]:
            raise UsageError(f"{name}={value} is not one of: {', '.join(meta['choices'])}",
                             _flag(name))
    elif _element(kind) is not None:
        if not isinstance(value, tuple):
            raise UsageError(f"{name}={value!r} must be a tuple", _flag(name))
        for item in value:
            _check_value(name, item, _element(kind), meta)
    else:
        raise TypeError(f"option {name} of type {kind} needs check=")
    return value


def check(config):
    """Raise UsageError for the first field of `config` outside its declaration."""
    for field, meta, kind in _declared(type(config)):
        value = getattr(config, field.name)
        base, optional = _base(kind)
        if value is None and optional:
            continue
        _check_value(f"--{meta['flag'] or field.name}", value, base, meta)


def _help(meta):
    text = meta["help"]
    bounds = _range(meta["low"], meta["high"], meta["above"]).strip()
    if bounds:
        text += f" ({bounds})"
    if meta["choices"] is not None:
        text += f" One of: {', '.join(meta['choices'])}."
    return text


def define_flags(cls, flag_values=flags.FLAGS, skip=()):
    """Define one absl flag per option of `cls` (except the fields in `skip`), defaults from
    the fields."""
    for field, meta, kind in _declared(cls):
        if field.name in skip:
            continue
        name, base, default = meta["flag"] or field.name, _base(kind)[0], field.default
        kwargs = dict(name=name, help=_help(meta), flag_values=flag_values)
        if meta["parse"] is not None:
            shown = None if default is None else str(default)
            flags.DEFINE_string(default=shown, **kwargs)
        elif base is bool:
            flags.DEFINE_bool(default=default, **kwargs)
        elif base is int:
            flags.DEFINE_integer(default=default, **kwargs)
        elif base is float:
            flags.DEFINE_float(default=default, **kwargs)
        elif base is str:
            flags.DEFINE_string(default=default, **kwargs)
        elif _element(base) is not None:
            flags.DEFINE_list(default=[str(v) for v in default], **kwargs)
        else:
            raise TypeError(f"option {field.name} of type {kind} needs parse= and check=")


def _from_text(name, raw, kind, meta, optional):
    if meta["parse"] is not None:
        return meta["parse"](raw)
    if kind is str and optional and meta["choices"] is not None and raw == "":
        return None
    element = _element(kind)
    if element is int:
        try:
            return tuple(int(v) for v in raw)
        except ValueError:
            raise UsageError(f"--{name}={','.join(raw)} must be a comma-separated list of ints",
                             name) from None
    if element is not None:
        return tuple(raw)
    return raw


def from_flags(cls, flag_values=flags.FLAGS, **fixed):
    """A `cls` from the parsed flags (and the fields in `fixed`), checked (`check`)."""
    values = dict(fixed)
    for field, meta, kind in _declared(cls):
        if field.name in values:
            continue
        name = meta["flag"] or field.name
        base, optional = _base(kind)
        values[field.name] = _from_text(name, flag_values[name].value, base, meta, optional)
    config = cls(**values)
    check(config)
    return config
