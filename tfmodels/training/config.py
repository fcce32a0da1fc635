"""The training configuration: plain values, validated before any work, saved as JSON.

`TrainConfig` holds what the user chose (the dataset name is checked by
`tfmodels.data.get_dataset_info`, which also reads its shape and classes); `resolve()` adds what follows from the dataset and the
strategy (classes, image shape, replicas, per-replica batch, total steps) and returns the dict
that train.py saves as `<model_dir>/config.json`, which eval.py reads back.
"""
import dataclasses
import math
from typing import Optional, Tuple

from tfmodels.training import schedules
from tfmodels.training.optimizers import OPTIMIZERS
from tfmodels.training.step import LOSSES
from tfmodels.training.strategy import ALL_REDUCE, STRATEGIES

MIXED_PRECISION = ("none", "bfloat16", "float16")
WEIGHT_DECAY_TYPES = ("auto", "l2", "decoupled")


@dataclasses.dataclass
class TrainConfig:
    model_dir: str
    model: str = "lenet"
    dataset: str = "digits"
    data_dir: Optional[str] = None
    global_batch_size: int = 64
    train_steps: Optional[int] = None
    epochs: Optional[float] = None
    # Loss.
    loss: str = "cross_entropy"
    label_smoothing: float = 0.0
    center_loss_weight: float = 0.0
    center_alpha: float = 0.5
    weight_decay: float = 0.0
    weight_decay_type: str = "auto"
    # Optimizer and schedule.
    optimizer: str = "momentum"
    learning_rate: float = 0.05
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
    augment: bool = False
    seed: int = 0
    deterministic: bool = False
    # Checkpoints, logs, exports.
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3
    log_every: int = 100
    export: bool = True
    # Initialisation from another checkpoint (TF1 / tf-slim or TF2), used when model_dir has none.
    init_checkpoint: Optional[str] = None
    init_checkpoint_use_ema: bool = False
    checkpoint_exclude_scopes: Tuple[str, ...] = ()
    trainable_scopes: Tuple[str, ...] = ()

    def validate(self):
        """Raise ValueError naming the option, its value and what is allowed; no TF work."""
        _choice("model", self.model, _net_names())
        _choice("loss", self.loss, LOSSES)
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        _choice("lr_schedule", self.lr_schedule, schedules.SCHEDULES)
        _choice("mixed_precision", self.mixed_precision, MIXED_PRECISION)
        _choice("weight_decay_type", self.weight_decay_type, WEIGHT_DECAY_TYPES)
        _choice("strategy", self.strategy, STRATEGIES)
        _choice("all_reduce", self.all_reduce, ALL_REDUCE)
        if not self.model_dir:
            raise ValueError("model_dir is required (where checkpoints and exports go)")
        for name in ("global_batch_size", "steps_per_loop", "checkpoint_every",
                     "keep_checkpoints", "log_every", "virtual_devices"):
            _positive_int(name, getattr(self, name))
        if (self.train_steps is None) == (self.epochs is None):
            raise ValueError(f"give exactly one of train_steps={self.train_steps} and "
                             f"epochs={self.epochs}")
        if self.train_steps is not None:
            _positive_int("train_steps", self.train_steps)
        if self.epochs is not None and not self.epochs > 0:
            raise ValueError(f"epochs={self.epochs} must be > 0")
        if self.num_gpus is not None and self.num_gpus < 0:
            raise ValueError(f"num_gpus={self.num_gpus} must be >= 0")
        for name, low, high in (("label_smoothing", 0.0, 1.0), ("center_alpha", 0.0, 1.0),
                                ("momentum", 0.0, 1.0), ("ema_decay", 0.0, 0.999999)):
            value = getattr(self, name)
            if not low <= value <= high:
                raise ValueError(f"{name}={value} must be in [{low}, {high}]")
        for name in ("center_loss_weight", "weight_decay"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 0")
        if self.clip_grad_norm is not None and not self.clip_grad_norm > 0:
            raise ValueError(f"clip_grad_norm={self.clip_grad_norm} must be > 0 (or unset)")
        if self.loss == "hinge" and self.label_smoothing:
            raise ValueError(f"label_smoothing={self.label_smoothing} applies to "
                             "loss='cross_entropy' only")
        if self.strategy == "one_device" and self.virtual_devices > 1:
            raise ValueError(f"virtual_devices={self.virtual_devices} with strategy='one_device' "
                             "would use one of them; use strategy='mirrored' or 'auto'")
        if not self.init_checkpoint and (self.checkpoint_exclude_scopes
                                         or self.init_checkpoint_use_ema):
            raise ValueError("checkpoint_exclude_scopes / init_checkpoint_use_ema apply to "
                             "init_checkpoint, which is not set")
        # The schedule's own checks (total steps are known after resolve()).
        schedules.check_schedule(self.lr_schedule, self.learning_rate, max(self.warmup_steps, 1),
                                 self.warmup_steps, self.lr_boundaries, self.lr_decay_factor)

    @property
    def decoupled_weight_decay(self):
        if self.weight_decay_type == "auto":
            return self.optimizer == "adamw"
        return self.weight_decay_type == "decoupled"

    def resolve(self, info, num_replicas):
        """The full config: this one plus what the dataset and the strategy determine."""
        if self.global_batch_size % num_replicas:
            raise ValueError(
                f"global_batch_size={self.global_batch_size} is not divisible by the "
                f"{num_replicas} replicas; use a multiple of {num_replicas}")
        steps_per_epoch = info.splits[info.train_split] // self.global_batch_size
        if steps_per_epoch < 1:
            raise ValueError(
                f"global_batch_size={self.global_batch_size} is larger than the "
                f"{info.splits[info.train_split]} training examples of {info.name}")
        total = self.train_steps or max(1, math.ceil(self.epochs * steps_per_epoch))
        schedules.check_schedule(self.lr_schedule, self.learning_rate, total, self.warmup_steps,
                                 self.lr_boundaries, self.lr_decay_factor)
        resolved = dataclasses.asdict(self)
        resolved.update(
            lr_boundaries=list(self.lr_boundaries),
            checkpoint_exclude_scopes=list(self.checkpoint_exclude_scopes),
            trainable_scopes=list(self.trainable_scopes),
            num_classes=info.num_classes, image_shape=list(info.image_shape),
            train_split=info.train_split, eval_split=info.eval_split,
            num_replicas=num_replicas,
            per_replica_batch_size=self.global_batch_size // num_replicas,
            steps_per_epoch=steps_per_epoch, total_steps=total,
            center_loss=self.center_loss_weight > 0,
            decoupled_weight_decay=self.decoupled_weight_decay,
            ema_decay_enabled=self.ema_decay > 0,
            loss_scaling=self.mixed_precision == "float16")
        return resolved


def _choice(name, value, allowed):
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not one of: {', '.join(allowed)}")


def _positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}={value!r} must be a positive int")


def _net_names():
    from tfmodels import nets

    return sorted(nets.NETS)
