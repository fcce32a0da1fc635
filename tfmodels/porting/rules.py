"""Name rules between TF1 checkpoint keys and Keras 3 variable paths (pure string functions).

A TF1 / tf-slim checkpoint key becomes a `tfmodels` variable path by (docs/NAMING.md):

1. stripping replica prefixes at its start (`tower_0/`, `clone_1/`, nested too): multi-tower
   TF1 code puts variables made with `tf.Variable` or Keras-in-TF1 layers under the tower's
   name scope, while the variables themselves are (or should be) shared;
2. renaming the last component: `weights` -> `kernel`, `biases` -> `bias`,
   `depthwise_weights` -> `kernel` (slim's depthwise conv, Keras `DepthwiseConv2D`) or
   `depthwise_kernel` (Keras `SeparableConv2D`), `pointwise_weights` -> `pointwise_kernel`;
   everything else (`BatchNorm/beta`, `gamma`, `moving_mean`, `moving_variance`, ...) is kept.

Keys that are not model variables are classified and skipped: optimizer slots
(`<var>/Momentum`, `<var>/Adam_1`, ...), bookkeeping (`global_step`, `beta1_power`, the
`moving_mean/biased` and `local_step` of zero-debiased moving averages) and
`tf.train.ExponentialMovingAverage` shadows (`<var>/ExponentialMovingAverage`, used instead of
the raw values with `use_ema=True`).
"""
import json
import os
import re

from tfmodels.options import UsageError

EMA_SUFFIX = "ExponentialMovingAverage"  # tf.train.ExponentialMovingAverage's default name
# Slot names TF1 optimizers give per variable: `<var>/<OptimizerName>[_k]` (Adam's second
# moment is `Adam_1`, RMSProp's momentum `RMSProp_1`); BERT's AdamWeightDecay uses adam_m/v.
_SLOT = re.compile(r"(Momentum|Adam|AdamW|LazyAdam|Nadam|RMSProp|Adagrad|AdagradDA|"
                   r"ProximalAdagrad|Adadelta|Ftrl|LARS|LAMB|Lamb)(_\d+)?|adam_[mv]|"
                   r"gradient_accumulator|gradient_squared_accumulator")
# Whole-key or last-component bookkeeping: step counters, Adam's beta powers, the extra
# variables of zero-debiased moving averages, TF1 loss scaling and TF2's save counter.
_BOOKKEEPING = frozenset({"global_step", "beta1_power", "beta2_power", "local_step", "biased",
                          "sync_rep_local_step", "current_loss_scale", "good_steps",
                          "save_counter", "_CHECKPOINTABLE_OBJECT_GRAPH"})
_REPLICA = re.compile(r"(tower|clone)_(\d+)/")
_LEAF_RENAMES = {
    "weights": ("kernel",),
    "biases": ("bias",),
    "depthwise_weights": ("kernel", "depthwise_kernel"),
    "pointwise_weights": ("pointwise_kernel",),
}
_LEAF_TO_SLIM = {"kernel": "weights", "bias": "biases", "depthwise_kernel": "depthwise_weights",
                 "pointwise_kernel": "pointwise_weights"}


def strip_replica_prefix(key):
    """(key without leading `tower_N/` / `clone_N/` components, replica rank).

    The rank orders copies of one variable: () for an unprefixed key, then (0,), (1,), ...:
    the unprefixed or lowest-numbered copy is the one to port (TF also saves replica 0).
    """
    rank = []
    while True:
        match = _REPLICA.match(key)
        if not match:
            return key, tuple(rank)
        rank.append(int(match.group(2)))
        key = key[match.end():]


def strip_scope(key, scopes):
    """`key` without the first of `scopes` it starts with (`model/LeNet/x` -> `LeNet/x` for
    scope `model`): an Estimator's or a training script's outer variable scope."""
    for scope in scopes:
        if key.startswith(scope + "/"):
            return key[len(scope) + 1:]
    return key


def skip_reason(key):
    """Why a checkpoint key is not a model variable ('optimizer slot' / 'bookkeeping'), or
    None. EMA shadows are handled separately (see `ema_base`)."""
    leaf = key.rpartition("/")[2]
    if key in _BOOKKEEPING or leaf in _BOOKKEEPING:
        return "bookkeeping"
    if "/" in key and _SLOT.fullmatch(leaf):
        return "optimizer slot"
    return None


def ema_base(key, suffix=EMA_SUFFIX):
    """The averaged variable's key if `key` is an EMA shadow `<var>/<suffix>`, else None."""
    scope, _, leaf = key.rpartition("/")
    return scope if scope and leaf == suffix else None


def keras_candidates(key):
    """Keras variable paths a (replica-stripped) slim key may map to, most likely first."""
    scope, _, leaf = key.rpartition("/")
    leaves = _LEAF_RENAMES.get(leaf, (leaf,))
    return tuple(f"{scope}/{new}" if scope else new for new in leaves)


def slim_name(path):
    """The slim spelling of a Keras path (`.../kernel` -> `.../weights`), for scope matching
    and hints; depthwise kernels cannot be told apart by name and keep `weights`."""
    scope, _, leaf = path.rpartition("/")
    leaf = _LEAF_TO_SLIM.get(leaf, leaf)
    return f"{scope}/{leaf}" if scope else leaf


# ---------------------------------------------------------------- flags

# The options of a port, by the keyword that takes them here (`map_checkpoint`'s arguments,
# `trainable_variables`' scopes). The porting CLI's flags have these names; another front end
# (train.py: `--init_checkpoint`, `--checkpoint_exclude_scopes`, ...) passes
# `flags={option: its flag}`, so that an error names the flag its user typed.
OPTIONS = ("checkpoint", "exclude_scopes", "ignore", "strip_scope", "overrides", "use_ema",
           "trainable_scopes")


def flag_names(flags=None):
    """{option: flag name without '--'} for every one of `OPTIONS`: `flags`' names, the
    option's own name for the rest."""
    flags = dict(flags or {})
    unknown = sorted(set(flags) - set(OPTIONS))
    if unknown:  # a front end's mistake, not its user's: a plain ValueError
        raise ValueError(f"flags={flags!r}: {', '.join(unknown)} is not one of the porting "
                         f"options {', '.join(OPTIONS)}")
    return {option: flags.get(option) or option for option in OPTIONS}


# ---------------------------------------------------------------- scopes


def parse_scopes(scopes, argument):
    """A comma-separated string or an iterable of scopes -> tuple without trailing '/'."""
    if scopes is None:
        return ()
    if isinstance(scopes, str):
        scopes = scopes.split(",")
    try:
        items = [s.strip().rstrip("/") for s in scopes]
    except (TypeError, AttributeError):
        raise UsageError(f"--{argument}={scopes!r} must be a comma-separated string or a list "
                         "of scope strings", argument) from None
    return tuple(s for s in items if s)


def in_scope(path, scope):
    """True if `scope` is `path` or a leading run of its components ('a/b' covers 'a/b/c',
    not 'a/bc'), on the Keras path or its slim spelling.

    slim's train_image_classifier uses a plain `startswith`; whole components avoid
    `vgg_16/fc8` silently also excluding a `vgg_16/fc8b`.
    """
    return any(name == scope or name.startswith(scope + "/") for name in (path, slim_name(path)))


def check_scopes(scopes, paths, argument, what="variable"):
    """Raise UsageError naming `--argument` if a scope covers none of `paths` (a typo would
    otherwise silently exclude or train nothing); `what` names the paths in the message."""
    for scope in scopes:
        if not any(in_scope(path, scope) for path in paths):
            tops = sorted({"/".join(p.split("/")[:2]) for p in paths})
            raise UsageError(
                f"--{argument}={scope}: the scope matches no {what} of the model; scopes are "
                f"leading path components, e.g. {', '.join(tops[:12])}"
                f"{' ...' if len(tops) > 12 else ''}", argument)


# ---------------------------------------------------------------- overrides


class Overrides:
    """User renames for nets that do not follow slim naming.

    `mapping` is {pattern: target} in priority order. A pattern is an exact checkpoint key or
    a regular expression that must match the whole key (tried on the raw key, then on the key
    without replica prefixes); the target is the model variable path, may use the regex's
    groups (`\\1`, `\\g<name>`), and is taken as is (no further renaming). A target of None or
    "" skips that checkpoint variable.
    """

    def __init__(self, mapping=None, flag="overrides"):
        """`flag`: the flag errors name (without '--')."""
        self.rules = []
        for pattern, target in (mapping or {}).items():
            if not isinstance(pattern, str) or not (target is None or isinstance(target, str)):
                raise UsageError(f"--{flag}: {pattern!r}: {target!r} must map a string pattern "
                                 "to a model variable path (a string) or null to skip", flag)
            try:
                regex = re.compile(pattern)
            except re.error as err:
                raise UsageError(f"--{flag}: pattern {pattern!r} is not a valid regular "
                                 f"expression ({err})", flag) from None
            self.rules.append((pattern, regex, target or None))
        self.used = set()

    def apply(self, key, *stripped):
        """(matched, target or None) for a checkpoint key, tried as is and then in its
        `stripped` spellings (replica prefixes, strip_scope removed); records which patterns
        were used."""
        for pattern, regex, target in self.rules:
            for name in (key, *stripped):
                match = regex.fullmatch(name)
                # An exact key holding regex characters (e.g. '+') may not match itself.
                if match is None and name != pattern:
                    continue
                self.used.add(pattern)
                if target is None:
                    return True, None
                return True, (match.expand(target) if match is not None else target)
        return False, None

    def unused(self):
        return [pattern for pattern, _, _ in self.rules if pattern not in self.used]


class Ignore:
    """Checkpoint variables to leave out on purpose (`ignore=`, `--ignore`).

    Each pattern is a scope (the key itself or a leading run of its components: `aux` covers
    `aux/w` and `aux/w/Momentum`, not `auxiliary/w`) or a regular expression matching the whole
    key, tried on the raw key and its stripped spellings.
    """

    def __init__(self, patterns=(), flag="ignore"):
        """`flag`: the flag errors name (without '--')."""
        self.flag = flag
        self.patterns = []
        for pattern in parse_scopes(patterns, flag):
            try:
                regex = re.compile(pattern)
            except re.error:  # not a regex: a scope only
                regex = None
            self.patterns.append((pattern, regex))
        self.used = set()

    def __call__(self, key, *stripped):
        """True if `key` is ignored; records which patterns were used."""
        for pattern, regex in self.patterns:
            for name in (key, *stripped):
                if (name == pattern or name.startswith(pattern + "/")
                        or (regex is not None and regex.fullmatch(name))):
                    self.used.add(pattern)
                    return True
        return False

    def check_used(self, keys):
        """Raise UsageError for a pattern that matched no checkpoint variable (a typo would
        otherwise ignore nothing)."""
        unused = [pattern for pattern, _ in self.patterns if pattern not in self.used]
        if unused:
            raise UsageError(f"--{self.flag}={','.join(unused)} matches no checkpoint variable; "
                             "patterns are scopes or regexes of keys such as "
                             f"{', '.join(sorted(keys)[:6])}", self.flag)


# slim settings that create a variable a checkpoint may hold although the builder does not.
_SETTINGS = {
    "gamma": "batch_norm(scale=True): slim's batch_norm makes no gamma unless scale=True "
             "(e.g. arg_scope([batch_norm], scale=True) or normalizer_params={'scale': True})",
    "beta": "batch_norm(center=True)",
    "biases": "a bias: biases_initializer not None and no normalizer_fn (a normalizer "
              "replaces the bias, as in slim)",
    "moving_mean": "a batch_norm (normalizer_fn=batch_norm)",
    "moving_variance": "a batch_norm (normalizer_fn=batch_norm)",
    "alpha": "activation_fn=prelu",
}


def builder_setting(key):
    """What to change in the builder so that it creates the variable `key` names."""
    scope, _, leaf = key.rpartition("/")
    setting = _SETTINGS.get(leaf)
    if setting is None:
        return (f"the builder of {scope} makes no {leaf!r}: build that layer as the legacy "
                "code did")
    return f"the builder needs {setting}"


def load_overrides(spec, flag="overrides"):
    """Overrides from a dict, a JSON object string, or a path to a JSON file holding one;
    errors name `--flag`."""
    if spec is None or isinstance(spec, dict):
        return dict(spec or {})
    if not isinstance(spec, str):
        raise UsageError(f"--{flag}={spec} must be a dict, a JSON object or a JSON file path",
                         flag)
    text = spec
    if not spec.lstrip().startswith("{"):
        if not os.path.isfile(spec):
            raise UsageError(f"--{flag}={spec} is neither a JSON object nor an existing file",
                             flag)
        with open(spec) as f:
            text = f.read()
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise UsageError(f"--{flag}={spec}: not valid JSON ({err})", flag) from None
    if not isinstance(value, dict):
        raise UsageError(f"--{flag}={spec} must hold a JSON object {{pattern: target}}, "
                         f"got {type(value).__name__}", flag)
    return value
