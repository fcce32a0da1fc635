"""The training configuration: the recipe `python train.py` runs, checked before any work.

    config = TrainConfig()                         # SmallCNN on digits: train.py's defaults
    config = TrainConfig(model="lenet", train_steps=500, model_dir="runs/lenet")
    resolved = config.resolve(info, num_replicas)  # + classes, shape, batch split, steps

`TrainConfig` holds what the user chose; its defaults are the CLI's (train.py takes its flag
defaults from `TrainConfig()`). `validate()` checks every value where it enters (no TensorFlow
work). `resolve()` adds what follows from the dataset and the strategy and returns a frozen
`ResolvedConfig`, which is what train.py saves as `<model_dir>/config.json` (`to_json()`); eval.py
and porting read that file back as a `model_dir.ModelRecord`.
"""
import dataclasses
import math
import numbers
import os
from typing import Optional, Tuple, Union

from tfmodels import distribute, losses, nets, schedules
from tfmodels.data import preprocessing as data_preprocessing
from tfmodels.data import steps_per_epoch
from tfmodels.data.pipeline import check_image_size
from tfmodels.data.pipelines import on_device
from tfmodels.nets import custom
from tfmodels.training.heads import HEADS
from tfmodels.training.inputs import resolve_input
from tfmodels.training.optimizers import OPTIMIZERS
from tfmodels.training.sampling import SAMPLERS

MIXED_PRECISION = ("none", "bfloat16", "float16")
WEIGHT_DECAY_TYPES = ("auto", "l2", "decoupled")
# Real-valued options: each must be a finite number that float32 (the dtype of rates, decays
# and loss weights in the graph) holds without overflowing to inf or underflowing to 0.
FLOAT_OPTIONS = ("learning_rate", "lr_decay_factor", "momentum", "label_smoothing",
                 "center_loss_weight", "center_alpha", "weight_decay", "ema_decay",
                 "clip_grad_norm", "epochs")
_FLOAT32_MAX = 3.4028234663852886e38
_FLOAT32_TINY = 1.401298464324817e-45  # the smallest positive (subnormal) float32
# Training length when neither train_steps nor epochs is given: on digits (22 steps of 64 per
# epoch) ~6.5 s of SmallCNN on 2 CPU cores.
DEFAULT_EPOCHS = 30.0


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """A training run. Defaults: SmallCNN on the embedded digits, ≥ 99% test accuracy.

    Length: `train_steps` (global batches) or `epochs` over the training split, at most one of
    them; neither means `DEFAULT_EPOCHS`. `model_dir` None means `runs/<model>-<dataset>`.
    See train.py's flags (same names; `--batch_size` is `global_batch_size`) for each option.
    """
    model_dir: Optional[str] = None
    model: str = "small_cnn"
    dataset: str = "digits"
    data_dir: Optional[str] = None
    global_batch_size: int = 64
    train_steps: Optional[int] = None
    epochs: Optional[float] = None
    # Loss.
    loss: str = "cross_entropy"
    label_smoothing: float = 0.1
    center_loss_weight: float = 0.0
    center_alpha: float = 0.5
    weight_decay: float = 1e-3
    weight_decay_type: str = "auto"
    # Head over the classes (docs/MANY_CLASSES.md): the dense softmax, or a sampled one.
    head: str = "softmax"
    num_sampled: int = 4096
    sampler: str = "log_uniform"
    sample_rate: float = 0.1
    # Optimizer and schedule.
    optimizer: str = "momentum"
    learning_rate: float = 0.1
    momentum: float = 0.9
    nesterov: bool = False
    lr_schedule: str = "cosine"
    lr_boundaries: Tuple[int, ...] = ()
    lr_decay_factor: float = 0.1
    warmup_steps: int = 0
    clip_grad_norm: Optional[float] = None
    ema_decay: float = 0.0
    # Speed and precision.
    steps_per_loop: int = 50
    jit_compile: bool = False
    mixed_precision: str = "none"
    # Distribution.
    strategy: str = "auto"
    num_gpus: Optional[int] = None
    all_reduce: str = "auto"
    virtual_devices: int = 1
    sync_bn: bool = True
    # Data.
    augment: bool = True
    seed: int = 0
    deterministic: bool = False
    # Input size and preprocessing (see `resolve_input`): None: the dataset's own size (the
    # net's default_image_size for datasets of varying image size) and the dataset's
    # normalisation (the net's preprocessing, e.g. 'vgg', for datasets of varying size).
    image_size: Optional[Union[int, Tuple[int, int]]] = None
    preprocessing: Optional[str] = None
    skip_undecodable: bool = False
    # Where training batches are made: 'device' gathers and augments them in the step from a
    # copy of the split on each replica's device; 'host' runs tf.data pipelines; 'auto' picks
    # the device for splits held in memory that fit, on GPU/TPU replicas
    # (`data.pipelines.on_device`).
    input_placement: str = "auto"
    # Checkpoints, logs, exports.
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3
    log_every: int = 100
    export: bool = True
    # Initialisation from another checkpoint (TF1 / tf-slim or TF2), used when model_dir has none.
    init_checkpoint: Optional[str] = None
    init_checkpoint_use_ema: bool = False
    checkpoint_exclude_scopes: Tuple[str, ...] = ()
    init_checkpoint_ignore: Tuple[str, ...] = ()
    init_checkpoint_strip_scope: Tuple[str, ...] = ()
    trainable_scopes: Tuple[str, ...] = ()

    def validate(self):
        """Raise ValueError naming the option, its value and what is allowed; no TF work."""
        for name in FLOAT_OPTIONS:
            _float32(name, getattr(self, name))
        if custom.is_custom(self.model):
            nets.get_net(self.model)  # imports it: errors name model=... and the contract
        else:
            _choice("model", self.model, sorted(nets.NETS) + ["package.module:function"])
        _choice("loss", self.loss, losses.LOSSES)
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        _choice("mixed_precision", self.mixed_precision, MIXED_PRECISION)
        _choice("weight_decay_type", self.weight_decay_type, WEIGHT_DECAY_TYPES)
        check_image_size(self.image_size)
        if self.preprocessing is not None:
            _choice("preprocessing", self.preprocessing,
                    sorted(data_preprocessing.PREPROCESSING_FNS))
        if not isinstance(self.skip_undecodable, bool):
            raise ValueError(f"skip_undecodable={self.skip_undecodable!r} must be True or False")
        _choice("input_placement", self.input_placement, on_device.PLACEMENTS)
        _choice("head", self.head, HEADS)
        _choice("sampler", self.sampler, SAMPLERS)
        distribute.check_options(self.strategy, num_gpus=self.num_gpus,
                                 all_reduce=self.all_reduce,
                                 virtual_devices=self.virtual_devices)
        if self.model_dir is not None and not self.model_dir:
            raise ValueError(f"model_dir={self.model_dir!r} must name a directory (None: "
                             "runs/<model>-<dataset>)")
        for name in ("global_batch_size", "steps_per_loop", "checkpoint_every",
                     "keep_checkpoints", "log_every", "num_sampled"):
            _positive_int(name, getattr(self, name))
        if self.train_steps is not None and self.epochs is not None:
            raise ValueError(f"give at most one of train_steps={self.train_steps} and "
                             f"epochs={self.epochs}")
        if self.train_steps is not None:
            _positive_int("train_steps", self.train_steps)
        if self.epochs is not None and not self.epochs > 0:
            raise ValueError(f"epochs={self.epochs} must be > 0")
        for name, low, high in (("label_smoothing", 0.0, 1.0), ("center_alpha", 0.0, 1.0),
                                ("momentum", 0.0, 1.0), ("ema_decay", 0.0, 0.999999)):
            value = getattr(self, name)
            if not low <= value <= high:
                raise ValueError(f"{name}={value} must be in [{low}, {high}]")
        for name in ("center_loss_weight", "weight_decay"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 0")
        self._validate_head()
        if self.clip_grad_norm is not None and not self.clip_grad_norm > 0:
            raise ValueError(f"clip_grad_norm={self.clip_grad_norm} must be > 0 (or unset)")
        if self.loss == "hinge" and self.label_smoothing:
            raise ValueError(f"label_smoothing={self.label_smoothing} applies to "
                             "loss='cross_entropy' only")
        if not self.init_checkpoint and (self.checkpoint_exclude_scopes
                                         or self.init_checkpoint_use_ema
                                         or self.init_checkpoint_ignore
                                         or self.init_checkpoint_strip_scope):
            raise ValueError("checkpoint_exclude_scopes / init_checkpoint_use_ema / "
                             "init_checkpoint_ignore / init_checkpoint_strip_scope apply to "
                             "init_checkpoint, which is not set")
        # Everything of the schedule but the warmup's bound, which needs the total steps.
        schedules.check_schedule(self.lr_schedule, self.learning_rate, max(self.warmup_steps, 1),
                                 self.warmup_steps, self.lr_boundaries, self.lr_decay_factor)

    def _validate_head(self):
        if not 0.0 < self.sample_rate <= 1.0:
            raise ValueError(f"sample_rate={self.sample_rate} must be in (0, 1]")
        if self.head == "softmax":
            return
        if self.ema_decay:
            raise ValueError(f"ema_decay={self.ema_decay} averages every class of the class "
                             f"matrix at every step, which head={self.head!r} avoids; use "
                             "ema_decay=0 with it")
        if self.head == "sampled_softmax":
            if self.loss != "cross_entropy":
                raise ValueError(f"loss={self.loss!r}: head='sampled_softmax' is a "
                                 "cross-entropy; use loss='cross_entropy' (or "
                                 "head='partial_fc', which takes any loss)")
            if self.label_smoothing:
                raise ValueError(f"label_smoothing={self.label_smoothing} spreads mass over all "
                                 "classes, which head='sampled_softmax' does not score; use "
                                 "label_smoothing=0 (or head='partial_fc')")

    @property
    def decoupled_weight_decay(self):
        if self.weight_decay_type == "auto":
            return self.optimizer == "adamw"
        return self.weight_decay_type == "decoupled"

    def resolve(self, info, num_replicas):
        """This config on a dataset (`DatasetInfo`) and a strategy's replica count.

        Returns:
          A `ResolvedConfig` (its `config` has `model_dir` and the length filled in).

        Raises:
          ValueError: the global batch does not split evenly over the replicas, is larger than
            the training split, the warmup is longer than the run, the net cannot take the
            resolved image size (`resolve_input`), or num_sampled is not below the number of
            classes (sampled softmax).
        """
        image_shape, preprocessing = resolve_input(self.model, info, self.image_size,
                                                   self.preprocessing)
        if self.global_batch_size % num_replicas:
            raise ValueError(
                f"global_batch_size={self.global_batch_size} is not divisible by the "
                f"{num_replicas} replicas; use a multiple of {num_replicas}")
        per_epoch = steps_per_epoch(info, info.train_split, self.global_batch_size)
        epochs = self.epochs
        if self.train_steps is None and epochs is None:
            epochs = DEFAULT_EPOCHS
        total = self.train_steps or max(1, math.ceil(epochs * per_epoch))
        if self.warmup_steps > total:
            raise ValueError(f"warmup_steps={self.warmup_steps} must be in [0, {total}] (the "
                             "total number of steps)")
        if self.head == "sampled_softmax" and self.num_sampled >= info.num_classes:
            raise ValueError(f"num_sampled={self.num_sampled} must be < the {info.num_classes} "
                             f"classes of {info.name!r} for head='sampled_softmax' (use "
                             "head='softmax' to score every class)")
        if self.input_placement == "device":
            on_device.check_placeable(info, info.train_split)
        model_dir = self.model_dir or os.path.join(
            "runs", f"{self.model}-{self.dataset}".replace(":", "_"))
        return ResolvedConfig(
            config=dataclasses.replace(self, model_dir=model_dir, epochs=epochs),
            num_classes=info.num_classes, image_shape=image_shape,
            train_split=info.train_split, eval_split=info.eval_split,
            num_replicas=num_replicas, per_replica_batch_size=self.global_batch_size //
            num_replicas, steps_per_epoch=per_epoch, total_steps=total,
            preprocessing=preprocessing)


@dataclasses.dataclass(frozen=True)
class ResolvedConfig:
    """A `TrainConfig` resolved against its dataset and strategy; written as config.json."""
    config: TrainConfig
    num_classes: int
    image_shape: Tuple[int, int, int]
    train_split: str
    eval_split: str
    num_replicas: int
    per_replica_batch_size: int
    steps_per_epoch: int
    total_steps: int
    preprocessing: Optional[str] = None  # resolved: None is the dataset's normalisation

    @property
    def center_loss(self):
        return self.config.center_loss_weight > 0

    @property
    def loss_scaling(self):
        return self.config.mixed_precision == "float16"

    def to_json(self):
        """The flat dict saved as config.json: every option plus what was resolved."""
        values = dataclasses.asdict(self.config)
        for name in ("lr_boundaries", "checkpoint_exclude_scopes", "init_checkpoint_ignore",
                     "init_checkpoint_strip_scope", "trainable_scopes"):
            values[name] = list(values[name])
        values.update({f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                       if f.name != "config"})
        if isinstance(values["image_size"], tuple):
            values["image_size"] = list(values["image_size"])
        values.update(image_shape=list(self.image_shape), center_loss=self.center_loss,
                      decoupled_weight_decay=self.config.decoupled_weight_decay,
                      ema_decay_enabled=self.config.ema_decay > 0,
                      loss_scaling=self.loss_scaling)
        return values


def _choice(name, value, allowed):
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not one of: {', '.join(allowed)}")


def _float32(name, value):
    """A real option (None allowed where the field is optional) must be finite in float32."""
    if value is None and name in ("clip_grad_norm", "epochs"):
        return
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise ValueError(f"{name}={value!r} must be a number")
    if not math.isfinite(value):
        raise ValueError(f"{name}={value} must be a finite number")
    if abs(value) > _FLOAT32_MAX:
        raise ValueError(f"{name}={value} overflows float32 (|value| <= {_FLOAT32_MAX:.7g})")
    if value and abs(value) < _FLOAT32_TINY / 2:
        raise ValueError(f"{name}={value} is 0 in float32 (the smallest positive float32 is "
                         f"{_FLOAT32_TINY:.7g})")


def _positive_int(name, value):
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name}={value!r} must be a positive int")
