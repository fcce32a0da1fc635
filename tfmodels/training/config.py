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
import os
from typing import Optional, Tuple, Union

from tfmodels import distribute, losses, nets, options, schedules
from tfmodels.data import DATASET_NAMES, steps_per_epoch
from tfmodels.data import preprocessing as data_preprocessing
from tfmodels.data.pipelines.layout import split_batch
from tfmodels.data.pipeline import check_image_size
from tfmodels.data.sources.specs import parse_classes as data_parse_classes
from tfmodels.data.pipelines import on_device
from tfmodels.nets import custom
from tfmodels.porting import rules as porting_rules
from tfmodels.training.heads import HEADS
from tfmodels.options import UsageError, option
from tfmodels.training.inputs import parse_image_size, resolve_input
from tfmodels.training.margins import MARGINS, make_margin
from tfmodels.training.optimizers import OPTIMIZERS
from tfmodels.training.sampling import SAMPLERS

MIXED_PRECISION = ("none", "bfloat16", "float16")
WEIGHT_DECAY_TYPES = ("auto", "l2", "decoupled")
# Training length when neither train_steps nor epochs is given: on digits (22 steps of 64 per
# epoch) ~6.5 s of SmallCNN on 2 CPU cores.
DEFAULT_EPOCHS = 30.0
_PREPROCESSING = sorted(data_preprocessing.PREPROCESSING_FNS)
# The porting library's options (`porting.rules.OPTIONS`) and the fields that give them here:
# --init_checkpoint and its companions.
_PORTING_FIELDS = {"checkpoint": "init_checkpoint", "exclude_scopes": "checkpoint_exclude_scopes",
                   "ignore": "init_checkpoint_ignore", "strip_scope": "init_checkpoint_strip_scope",
                   "overrides": "init_checkpoint_overrides", "use_ema": "init_checkpoint_use_ema",
                   "trainable_scopes": "trainable_scopes"}


@dataclasses.dataclass(frozen=True)
class TrainConfig(distribute.StrategyOptions):
    """A training run. Defaults: SmallCNN on the embedded digits, >= 99% test accuracy.

    Each field is an option (`tfmodels.options`): train.py's flag of the same name (the field's
    `flag` where it differs: `--batch_size` is `global_batch_size`), its help and its range.
    Length: `train_steps` or `epochs`, at most one; neither means `DEFAULT_EPOCHS`.
    """
    # --- model and data ---
    model_dir: Optional[str] = option(
        None, "Checkpoints, config, summaries and exports (default: runs/<model>-<dataset>).")
    model: str = option(
        "small_cnn", f"Network to train: one of {', '.join(sorted(nets.NETS))}, or "
        "package.module:function for a net of your own (importable from the working directory "
        "or PYTHONPATH; see docs/PORTING.md).")
    dataset: str = option("digits", f"One of {', '.join(DATASET_NAMES)}; "
                          "synthetic[:HxWxC:CLASSES] for benchmarks.")
    data_dir: Optional[str] = option(None, "tensorflow-datasets directory (default: "
                                     "~/tensorflow_datasets).")
    global_batch_size: int = option(64, "Global batch size (examples per step), split evenly "
                                    "across replicas.", flag="batch_size", low=1)
    train_steps: Optional[int] = option(None, "Training length in steps (global batches).",
                                        low=1)
    epochs: Optional[float] = option(
        None, "Training length in epochs over the training split (default "
        f"{DEFAULT_EPOCHS:g} when --train_steps is not given).", above=0.0, float32=True)
    augment: bool = option(True, "Training augmentation: pad-and-crop, plus horizontal flips "
                           "where the dataset allows them (CIFAR, Fashion-MNIST); with "
                           "--preprocessing, its random training transform (off: its "
                           "evaluation one).")
    seed: int = option(0, "Seed of weights, shuffling and augmentation.", low=0, high=2**32 - 1)
    deterministic: bool = option(False, "Deterministic ops: a resumed run ends with exactly the "
                                 "weights of an uninterrupted one (slower).")
    # None: the dataset's own size (the net's default_image_size for datasets of varying size).
    image_size: Optional[Union[int, Tuple[int, int]]] = option(
        None, "Input size N or HxW the images are resized / preprocessed to (default: the "
        "dataset's size; for datasets of varying image size the net's default, e.g. 224 for "
        "vgg_16).", parse=parse_image_size, check=check_image_size)
    preprocessing: Optional[str] = option(
        None, "Per-net preprocessing (default: the dataset's normalisation; for datasets of "
        "varying image size the net's own, e.g. vgg for vgg_16 and resnet_v1_50).",
        choices=_PREPROCESSING)
    skip_undecodable: bool = option(False, "Skip (and count in the logs and metrics.json) "
                                    "images that cannot be decoded, instead of stopping with "
                                    "an error naming them.")
    # --- loss ---
    loss: str = option("cross_entropy", "Data loss per example.", choices=losses.LOSSES)
    label_smoothing: float = option(0.1, "Label smoothing of the cross-entropy, in [0, 1].",
                                    low=0.0, high=1.0, float32=True)
    center_loss_weight: float = option(0.0, "lambda of the center loss (Wen et al. 2016); 0 "
                                       "disables it.", low=0.0, float32=True)
    center_alpha: float = option(0.5, "alpha: center learning rate, in [0, 1].", low=0.0,
                                 high=1.0, float32=True)
    weight_decay: float = option(1e-3, "Weight decay of kernels: wd*sum(w^2)/2 in the loss (l2) "
                                 "or w -= lr*wd*w (decoupled).", low=0.0, float32=True)
    weight_decay_type: str = option("auto", "auto: decoupled for adamw, l2 otherwise.",
                                    choices=WEIGHT_DECAY_TYPES)
    # --- head over the classes (docs/MANY_CLASSES.md) ---
    head: str = option("softmax", "softmax: logits over every class; sampled_softmax / "
                       "partial_fc: a few classes of the logits layer per step.", choices=HEADS)
    num_sampled: int = option(4096, "sampled_softmax: negatives drawn per step for the whole "
                              "global batch (the same on every replica).", low=1)
    sampler: str = option("log_uniform", "sampled_softmax: the proposal the negatives are drawn "
                          "from (logits corrected by -log of its expected count).",
                          choices=SAMPLERS)
    sample_rate: float = option(0.1, "partial_fc: fraction of the classes scored per step (the "
                                "global batch's classes plus uniform negatives), in (0, 1].",
                                above=0.0, high=1.0, float32=True)
    # --- face recognition (docs/FACE.md): margin softmax and held-out classes ---
    margin: str = option("none", "none: the net's logits; arcface / cosface / combined: "
                         "s * cos(angle to each class vector), the target's "
                         "s * (cos(m1*theta + m2) - m3), over the normalised embedding and "
                         "logits kernel (works with --head=softmax and --head=partial_fc).",
                         choices=MARGINS)
    margin_scale: Optional[float] = option(None, "s, the scale of the cosines (default 64; 2-D "
                                           "embeddings need a smaller one, e.g. 8).",
                                           above=0.0, float32=True)
    margin_m1: Optional[float] = option(None, "Multiplicative angular margin (combined; "
                                        "default 1).", low=1.0, float32=True)
    margin_m2: Optional[float] = option(None, "Additive angular margin in radians, in [0, pi) "
                                        "(arcface default 0.5; combined 0.3).", low=0.0,
                                        float32=True)
    margin_m3: Optional[float] = option(None, "Additive cosine margin, in [0, 2) (cosface "
                                        "default 0.35; combined 0.2).", low=0.0, float32=True)
    easy_margin: bool = option(False, "Angular margin only where cos > 0 (else InsightFace's "
                               "linear fallback past theta + m2 > pi).")
    train_classes: Optional[str] = option(
        None, "Train only on these classes' examples (ids and ranges, e.g. 0-6); the others "
        "are held out for eval.py --verification=pairs. The logits layer keeps every class. "
        "Datasets held in memory only.")
    # --- optimizer ---
    optimizer: str = option("momentum", "Optimizer.", choices=OPTIMIZERS)
    learning_rate: float = option(0.1, "Peak learning rate (after warmup).", above=0.0,
                                  float32=True)
    momentum: float = option(0.9, "Momentum of --optimizer=momentum.", low=0.0, high=1.0,
                             float32=True)
    nesterov: bool = option(False, "Nesterov momentum.")
    lr_schedule: str = option("cosine", "Learning-rate schedule.", choices=schedules.SCHEDULES)
    lr_boundaries: Tuple[int, ...] = option((), "Steps where a piecewise schedule decays.",
                                            low=1)
    lr_decay_factor: float = option(0.1, "Factor applied at each piecewise boundary.",
                                    above=0.0, high=1.0, float32=True)
    warmup_steps: int = option(0, "Steps of linear learning-rate warmup.", low=0)
    clip_grad_norm: Optional[float] = option(None, "Clip the global norm of the all-reduced "
                                             "gradient.", above=0.0, float32=True)
    ema_decay: float = option(0.0, "Exponential moving average of weights (0: off); evaluation "
                              "and exports then use the averaged weights.", low=0.0,
                              high=0.999999, float32=True)
    # --- speed and precision ---
    steps_per_loop: int = option(50, "Steps per tf.function call.", low=1)
    jit_compile: bool = option(False, "XLA-compile each replica's forward/backward pass.")
    mixed_precision: str = option("none", "Compute dtype; float16 adds dynamic loss scaling. "
                                  "Losses stay float32.", choices=MIXED_PRECISION)
    cluster: str = option("tf_config", "Where the workers of --strategy=multi_worker are "
                          "listed: tf_config (the TF_CONFIG variable) or slurm (the job step of "
                          "srun; GPUs per task from the allocation).", choices=distribute.CLUSTERS)
    sync_bn: bool = option(True, "Batch-norm statistics over the global batch (needed for N "
                           "replicas to match one).")
    input_placement: str = option(
        "auto", "Where training batches are made: device gathers and augments them in the step "
        "from a copy of the split on each replica's device; host runs tf.data pipelines; auto "
        "picks the device for splits held in memory that fit, on GPU/TPU replicas.",
        choices=on_device.PLACEMENTS)
    # --- checkpoints, logs, exports ---
    checkpoint_every: int = option(1000, "Steps between checkpoints.", low=1)
    keep_checkpoints: int = option(3, "Checkpoints kept.", low=1)
    log_every: int = option(100, "Steps between progress lines.", low=1)
    export: bool = option(True, "Export at the end: saved_model/ and model.keras (raw pixels "
                          "in, probabilities out) and net.keras (the bare net).")
    # --- starting from another checkpoint (used only when model_dir has none) ---
    init_checkpoint: Optional[str] = option(
        None, "TF1 / tf-slim or TF2 checkpoint (or directory) to initialise the model from; "
        "see docs/PORTING.md.")
    init_checkpoint_use_ema: bool = option(False, "Take the checkpoint's "
                                           "ExponentialMovingAverage shadows instead of the raw "
                                           "weights.")
    checkpoint_exclude_scopes: Tuple[str, ...] = option(
        (), "Variable scopes not taken from --init_checkpoint, e.g. vgg_16/fc8 to fine-tune to "
        "a new class count.")
    init_checkpoint_ignore: Tuple[str, ...] = option(
        (), "Checkpoint variables of --init_checkpoint to leave out on purpose (scopes or "
        "regexes).")
    init_checkpoint_strip_scope: Tuple[str, ...] = option(
        (), "Outer scope to remove from --init_checkpoint's names (e.g. an Estimator's "
        "model/).")
    init_checkpoint_overrides: Optional[str] = option(
        None, "Renames for --init_checkpoint's variables that do not follow slim naming: a JSON "
        "object {checkpoint key or regex: model variable path or null} or a file holding one "
        "(as python -m tfmodels.porting --overrides).")
    trainable_scopes: Tuple[str, ...] = option((), "Train only variables under these scopes "
                                               "(default: all).")

    @classmethod
    def porting_flags(cls):
        """The porting library's options (`porting.rules.OPTIONS`, its `flags=`) named as
        train.py's flags, so that its errors name `--init_checkpoint=...`,
        `--checkpoint_exclude_scopes=...`."""
        return options.flags_of(cls, _PORTING_FIELDS)

    def validate(self):
        """Raise UsageError naming the option (as its flag), its value and what is allowed;
        no TensorFlow work."""
        options.check(self)
        if custom.is_custom(self.model):
            nets.get_net(self.model)  # imports it: errors name --model=... and the contract
        elif self.model not in nets.NETS:
            raise UsageError(f"--model={self.model} is not one of: "
                             f"{', '.join(sorted(nets.NETS))}, package.module:function", "model")
        distribute.check_options(self.strategy, num_gpus=self.num_gpus,
                                 all_reduce=self.all_reduce,
                                 virtual_devices=self.virtual_devices, cluster=self.cluster,
                                 worker_connect_timeout=self.worker_connect_timeout)
        if self.model_dir is not None and not self.model_dir:
            raise UsageError("--model_dir='' must name a directory (unset: "
                             "runs/<model>-<dataset>)", "model_dir")
        for name in ("model_dir", "data_dir", "init_checkpoint"):
            options.check_path(name, getattr(self, name))
        if self.train_steps is not None and self.epochs is not None:
            raise UsageError(f"give at most one of --train_steps={self.train_steps} and "
                             f"--epochs={self.epochs:g}", "epochs")
        self._validate_head()
        self._validate_margin()
        if self.train_classes is not None:
            # The syntax now; the range once the dataset's classes are known (`resolve`).
            data_parse_classes(self.train_classes, 1 << 30)
        if self.loss == "hinge" and self.label_smoothing:
            raise UsageError(f"--label_smoothing={self.label_smoothing:g} applies to "
                             "--loss=cross_entropy only", "label_smoothing")
        if not self.init_checkpoint and (self.checkpoint_exclude_scopes
                                         or self.init_checkpoint_use_ema
                                         or self.init_checkpoint_ignore
                                         or self.init_checkpoint_strip_scope
                                         or self.init_checkpoint_overrides):
            raise UsageError("--checkpoint_exclude_scopes / --init_checkpoint_use_ema / "
                             "--init_checkpoint_ignore / --init_checkpoint_strip_scope / "
                             "--init_checkpoint_overrides apply to --init_checkpoint, which is "
                             "not set", "init_checkpoint")
        if self.init_checkpoint_overrides is not None:
            porting_rules.load_overrides(self.init_checkpoint_overrides,
                                         self.porting_flags()["overrides"])
        # Everything of the schedule but the warmup's bound, which needs the total steps.
        schedules.check_schedule(self.lr_schedule, self.learning_rate, max(self.warmup_steps, 1),
                                 self.warmup_steps, self.lr_boundaries, self.lr_decay_factor)

    def _validate_head(self):
        if self.head == "softmax":
            return
        if self.ema_decay:
            raise UsageError(f"--ema_decay={self.ema_decay:g} averages every class of the class "
                             f"matrix at every step, which --head={self.head} avoids; use "
                             "--ema_decay=0 with it", "ema_decay")
        if self.head == "sampled_softmax":
            if self.loss != "cross_entropy":
                raise UsageError(f"--loss={self.loss}: --head=sampled_softmax is a "
                                 "cross-entropy; use --loss=cross_entropy (or "
                                 "--head=partial_fc, which takes any loss)", "loss")
            if self.label_smoothing:
                raise UsageError(f"--label_smoothing={self.label_smoothing:g} spreads mass over "
                                 "all classes, which --head=sampled_softmax does not score; use "
                                 "--label_smoothing=0 (or --head=partial_fc)", "label_smoothing")

    def _validate_margin(self):
        self.margin_softmax()  # names the option out of range
        if self.margin == "none":
            return
        if self.head == "sampled_softmax":
            raise UsageError(f"--margin={self.margin} needs every logit a scaled cosine, which "
                             "--head=sampled_softmax (corrected by -log KQ) is not; use "
                             "--head=softmax or --head=partial_fc", "margin")
        if self.loss != "cross_entropy":
            raise UsageError(f"--loss={self.loss}: --margin={self.margin} is a margin softmax "
                             "(a cross-entropy); use --loss=cross_entropy", "loss")

    def margin_softmax(self):
        """The run's `margins.Margin`, or None (margin='none'); ValueError for bad values."""
        return make_margin(self.margin, self.margin_scale, self.margin_m1, self.margin_m2,
                           self.margin_m3, self.easy_margin)

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
          UsageError: the global batch does not split evenly over the replicas, is larger than
            the training split or than the memory, the run is longer than int64 steps, the
            warmup is longer than the run, the net cannot take the resolved image size
            (`resolve_input`), or num_sampled is not below the number of classes (sampled
            softmax).
        """
        image_shape, preprocessing = resolve_input(self.model, info, self.image_size,
                                                   self.preprocessing)
        if self.train_classes is not None:
            data_parse_classes(self.train_classes, info.num_classes)
        per_replica = split_batch(self.global_batch_size, num_replicas)
        check_batch_memory(self.global_batch_size, image_shape)
        per_epoch = steps_per_epoch(info, info.train_split, self.global_batch_size)
        epochs = self.epochs
        if self.train_steps is None and epochs is None:
            epochs = DEFAULT_EPOCHS
        total = self.train_steps or max(1, math.ceil(epochs * per_epoch))
        if total > options.INT64_MAX:
            raise UsageError(f"--epochs={epochs:g} is {total:.3g} steps of {per_epoch} per "
                             f"epoch, more than a step counter holds (2**63 - 1)", "epochs")
        if self.warmup_steps > total:
            raise UsageError(f"--warmup_steps={self.warmup_steps} must be in [0, {total}] (the "
                             "total number of steps)", "warmup_steps")
        if self.head == "sampled_softmax" and self.num_sampled >= info.num_classes:
            raise UsageError(f"--num_sampled={self.num_sampled} must be < the "
                             f"{info.num_classes} classes of {info.name!r} for "
                             "--head=sampled_softmax (use --head=softmax to score every class)",
                             "num_sampled")
        if self.input_placement == "device":
            if self.train_classes is not None:
                raise UsageError("--input_placement=device: a subset of the classes "
                                 f"(--train_classes={self.train_classes}) is read on the host; "
                                 "use auto or host", "input_placement")
            on_device.check_placeable(info, info.train_split)
        model_dir = self.model_dir or os.path.join(
            "runs", f"{self.model}-{self.dataset}".replace(":", "_"))
        return ResolvedConfig(
            config=dataclasses.replace(self, model_dir=model_dir, epochs=epochs),
            num_classes=info.num_classes, image_shape=image_shape,
            train_split=info.train_split, eval_split=info.eval_split,
            num_replicas=num_replicas, per_replica_batch_size=per_replica,
            steps_per_epoch=per_epoch, total_steps=total, preprocessing=preprocessing)


def check_batch_memory(global_batch_size, image_shape, flag="image_size"):
    """Refuse (UsageError naming `--flag`) a global batch whose float32 images alone exceed the
    machine's memory: training needs several times that, so this is a floor, not a budget."""
    needed = global_batch_size * math.prod(image_shape) * 4
    try:
        memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # no such query on this system
        return
    if needed > memory:
        height, width, channels = image_shape
        raise UsageError(
            f"--{flag}: a batch of {global_batch_size} images of {height}x{width}x{channels} "
            f"float32 values takes {needed / 2**30:.3g} GiB, more than this machine's "
            f"{memory / 2**30:.3g} GiB of memory; use a smaller --image_size or --batch_size",
            flag)


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
    def train_classes(self):
        """The class ids trained on (a tuple), or None for every class."""
        if self.config.train_classes is None:
            return None
        return data_parse_classes(self.config.train_classes, self.num_classes)

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
