"""Train an image classifier on one or many devices.

    python train.py                                   # SmallCNN on the embedded digits
    python train.py --model=lenet_pp --dataset=mnist --center_loss_weight=0.01 --num_gpus=4
    python train.py --flagfile=configs/resnet20_cifar10.flags --model_dir=runs/r20

One global batch is split across the replicas; the numbers match one device. Checkpoints,
`config.json`, TensorBoard summaries, `metrics.json` and the exports go to --model_dir; running
again with the same --model_dir resumes from its newest readable checkpoint (one process writes
a model_dir at a time).
"""
import common_flags  # first: it imports TensorFlow, quietly (see there)
from absl import app, flags  # noqa: E402
from tfmodels import data, losses, nets, schedules, training  # noqa: E402
from tfmodels.data import preprocessing as data_preprocessing  # noqa: E402
from tfmodels.training import config as config_lib  # noqa: E402
from tfmodels.training import heads, inputs, optimizers, sampling  # noqa: E402

# Every default is TrainConfig()'s: the embedded-digits recipe (SmallCNN, augmentation, label
# smoothing, weight decay, cosine rate). Presets in configs/ set their own.
D = training.TrainConfig()
# --- model and data ---
flags.DEFINE_string("model", D.model, f"Network to train: one of {', '.join(sorted(nets.NETS))}, "
                    "or package.module:function for a net of your own (importable from the "
                    "working directory or PYTHONPATH; see docs/PORTING.md).")
flags.DEFINE_string("dataset", D.dataset, f"One of {', '.join(data.DATASET_NAMES)}; "
                    "synthetic[:HxWxC:CLASSES] for benchmarks.")
flags.DEFINE_string("data_dir", D.data_dir, "tensorflow-datasets directory (default: "
                    "~/tensorflow_datasets).")
flags.DEFINE_string("model_dir", D.model_dir, "Checkpoints, config, summaries and exports "
                    "(default: runs/<model>-<dataset>).")
flags.DEFINE_integer("batch_size", D.global_batch_size, "Global batch size (examples per "
                     "step), split evenly across replicas.", lower_bound=1)
flags.DEFINE_integer("train_steps", D.train_steps, "Training length in steps (global batches).")
flags.DEFINE_float("epochs", D.epochs, "Training length in epochs over the training split "
                   f"(default {config_lib.DEFAULT_EPOCHS:g} when --train_steps is not given).")
flags.DEFINE_bool("augment", D.augment, "Training augmentation: pad-and-crop, plus horizontal "
                  "flips where the dataset allows them (CIFAR, Fashion-MNIST); with "
                  "--preprocessing, its random training transform (off: its evaluation one).")
flags.DEFINE_integer("seed", D.seed, "Seed of weights, shuffling and augmentation.")
flags.DEFINE_bool("deterministic", D.deterministic, "Deterministic ops: a resumed run ends with "
                  "exactly the weights of an uninterrupted one (slower).")
flags.DEFINE_string("image_size", None if D.image_size is None else str(D.image_size),
                    "Input size N or HxW the images are resized / preprocessed to (default: the "
                    "dataset's size; for datasets of varying image size the net's default, e.g. "
                    "224 for vgg_16).")
flags.DEFINE_string("preprocessing", D.preprocessing, "Per-net preprocessing: one of "
                    f"{', '.join(sorted(data_preprocessing.PREPROCESSING_FNS))} (default: the "
                    "dataset's normalisation; for datasets of varying image size the net's own, "
                    "e.g. vgg for vgg_16 and resnet_v1_50).")
flags.DEFINE_bool("skip_undecodable", D.skip_undecodable, "Skip (and count in the logs and "
                  "metrics.json) images that cannot be decoded, instead of stopping with an "
                  "error naming them.")
# --- input placement (TrainConfig.input_placement) ---
flags.DEFINE_enum("input_placement", D.input_placement, ["auto", "device", "host"],
                  "Where training batches are made: device (a copy of the split on every "
                  "replica's device, rows gathered and augmented in the step), host (tf.data "
                  "pipelines), auto (the device for splits held in memory under 512 MiB per "
                  "replica on GPUs, with the dataset's normalisation; else the host).")
# --- loss ---
flags.DEFINE_enum("loss", D.loss, losses.LOSSES, "Data loss per example.")
flags.DEFINE_float("label_smoothing", D.label_smoothing, "Label smoothing of the "
                   "cross-entropy, in [0, 1].")
flags.DEFINE_float("center_loss_weight", D.center_loss_weight, "lambda of the center loss "
                   "(Wen et al. 2016); 0 disables it.")
flags.DEFINE_float("center_alpha", D.center_alpha, "alpha: center learning rate, in [0, 1].")
flags.DEFINE_float("weight_decay", D.weight_decay, "Weight decay of kernels: wd*sum(w^2)/2 in "
                   "the loss (l2) or w -= lr*wd*w (decoupled).")
flags.DEFINE_enum("weight_decay_type", D.weight_decay_type, config_lib.WEIGHT_DECAY_TYPES,
                  "auto: decoupled for adamw, l2 otherwise.")
# --- head over the classes (docs/MANY_CLASSES.md) ---
flags.DEFINE_enum("head", D.head, heads.HEADS, "softmax: logits over every class; "
                  "sampled_softmax / partial_fc: a few classes of the logits layer per step.")
flags.DEFINE_integer("num_sampled", D.num_sampled, "sampled_softmax: negatives drawn per step "
                     "for the whole global batch (the same on every replica).", lower_bound=1)
flags.DEFINE_enum("sampler", D.sampler, sampling.SAMPLERS, "sampled_softmax: the proposal the "
                  "negatives are drawn from (logits corrected by -log of its expected count).")
flags.DEFINE_float("sample_rate", D.sample_rate, "partial_fc: fraction of the classes scored "
                   "per step (the global batch's classes plus uniform negatives), in (0, 1].")
# --- optimizer ---
flags.DEFINE_enum("optimizer", D.optimizer, optimizers.OPTIMIZERS, "Optimizer.")
flags.DEFINE_float("learning_rate", D.learning_rate, "Peak learning rate (after warmup).")
flags.DEFINE_float("momentum", D.momentum, "Momentum of --optimizer=momentum.")
flags.DEFINE_bool("nesterov", D.nesterov, "Nesterov momentum.")
flags.DEFINE_enum("lr_schedule", D.lr_schedule, schedules.SCHEDULES, "Learning-rate schedule.")
flags.DEFINE_list("lr_boundaries", list(D.lr_boundaries), "Steps where a piecewise schedule "
                  "decays.")
flags.DEFINE_float("lr_decay_factor", D.lr_decay_factor, "Factor applied at each piecewise "
                   "boundary.")
flags.DEFINE_integer("warmup_steps", D.warmup_steps, "Steps of linear learning-rate warmup.",
                     lower_bound=0)
flags.DEFINE_float("clip_grad_norm", D.clip_grad_norm, "Clip the global norm of the "
                   "all-reduced gradient.")
flags.DEFINE_float("ema_decay", D.ema_decay, "Exponential moving average of weights (0: off); "
                   "evaluation and exports then use the averaged weights.")
# --- speed and precision ---
flags.DEFINE_integer("steps_per_loop", D.steps_per_loop, "Steps per tf.function call.",
                     lower_bound=1)
flags.DEFINE_bool("jit_compile", D.jit_compile, "XLA-compile each replica's forward/backward "
                  "pass.")
flags.DEFINE_enum("mixed_precision", D.mixed_precision, config_lib.MIXED_PRECISION,
                  "Compute dtype; float16 adds dynamic loss scaling. Losses stay float32.")
# --- distribution (and common_flags.define_strategy_flags) ---
flags.DEFINE_bool("sync_bn", D.sync_bn, "Batch-norm statistics over the global batch (needed "
                  "for N replicas to match one).")
# --- checkpoints, logs, exports ---
flags.DEFINE_integer("checkpoint_every", D.checkpoint_every, "Steps between checkpoints.",
                     lower_bound=1)
flags.DEFINE_integer("keep_checkpoints", D.keep_checkpoints, "Checkpoints kept.", lower_bound=1)
flags.DEFINE_integer("log_every", D.log_every, "Steps between progress lines.", lower_bound=1)
flags.DEFINE_bool("export", D.export, "Export a SavedModel and a .keras file at the end.")
# --- starting from another checkpoint (used only when --model_dir has none) ---
flags.DEFINE_string("init_checkpoint", D.init_checkpoint, "TF1 / tf-slim or TF2 checkpoint (or "
                    "directory) to initialise the model from; see docs/PORTING.md.")
flags.DEFINE_bool("init_checkpoint_use_ema", D.init_checkpoint_use_ema, "Take the checkpoint's "
                  "ExponentialMovingAverage shadows instead of the raw weights.")
flags.DEFINE_list("checkpoint_exclude_scopes", list(D.checkpoint_exclude_scopes), "Variable "
                  "scopes not taken from --init_checkpoint, e.g. vgg_16/fc8 to fine-tune to a "
                  "new class count.")
flags.DEFINE_list("init_checkpoint_ignore", list(D.init_checkpoint_ignore), "Checkpoint "
                  "variables of --init_checkpoint to leave out on purpose (scopes or regexes).")
flags.DEFINE_list("init_checkpoint_strip_scope", list(D.init_checkpoint_strip_scope), "Outer "
                  "scope to remove from --init_checkpoint's names (e.g. an Estimator's model/).")
flags.DEFINE_list("trainable_scopes", list(D.trainable_scopes), "Train only variables under "
                  "these scopes (default: all).")
common_flags.define_strategy_flags(D)
FLAGS = flags.FLAGS


def config_from_flags():
    """The `TrainConfig` the parsed flags describe."""
    try:
        boundaries = tuple(int(b) for b in FLAGS.lr_boundaries)
    except ValueError:
        raise training.ConfigError(f"--lr_boundaries={','.join(FLAGS.lr_boundaries)} must be "
                                   "a comma-separated list of steps") from None
    try:
        image_size = inputs.parse_image_size(FLAGS.image_size)
    except ValueError as err:
        raise training.ConfigError(str(err)) from None
    return training.TrainConfig(
        model_dir=FLAGS.model_dir, model=FLAGS.model, dataset=FLAGS.dataset,
        data_dir=FLAGS.data_dir, **common_flags.renamed_options(),
        train_steps=FLAGS.train_steps, epochs=FLAGS.epochs, loss=FLAGS.loss,
        label_smoothing=FLAGS.label_smoothing, center_loss_weight=FLAGS.center_loss_weight,
        center_alpha=FLAGS.center_alpha, weight_decay=FLAGS.weight_decay,
        weight_decay_type=FLAGS.weight_decay_type, head=FLAGS.head,
        num_sampled=FLAGS.num_sampled, sampler=FLAGS.sampler, sample_rate=FLAGS.sample_rate,
        optimizer=FLAGS.optimizer,
        learning_rate=FLAGS.learning_rate, momentum=FLAGS.momentum, nesterov=FLAGS.nesterov,
        lr_schedule=FLAGS.lr_schedule, lr_boundaries=boundaries,
        lr_decay_factor=FLAGS.lr_decay_factor, warmup_steps=FLAGS.warmup_steps,
        clip_grad_norm=FLAGS.clip_grad_norm, ema_decay=FLAGS.ema_decay,
        steps_per_loop=FLAGS.steps_per_loop, jit_compile=FLAGS.jit_compile,
        mixed_precision=FLAGS.mixed_precision, sync_bn=FLAGS.sync_bn, augment=FLAGS.augment,
        seed=FLAGS.seed, deterministic=FLAGS.deterministic, image_size=image_size,
        preprocessing=FLAGS.preprocessing or None, skip_undecodable=FLAGS.skip_undecodable,
        input_placement=FLAGS.input_placement,
        checkpoint_every=FLAGS.checkpoint_every, keep_checkpoints=FLAGS.keep_checkpoints,
        log_every=FLAGS.log_every, export=FLAGS.export, init_checkpoint=FLAGS.init_checkpoint,
        init_checkpoint_use_ema=FLAGS.init_checkpoint_use_ema,
        checkpoint_exclude_scopes=tuple(FLAGS.checkpoint_exclude_scopes),
        init_checkpoint_ignore=tuple(FLAGS.init_checkpoint_ignore),
        init_checkpoint_strip_scope=tuple(FLAGS.init_checkpoint_strip_scope),
        trainable_scopes=tuple(FLAGS.trainable_scopes), **common_flags.strategy_options())


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    common_flags.import_from_working_directory()
    metrics = common_flags.run_and_release(
        lambda: training.train(config_from_flags()),
        usage_errors=(training.ConfigError, data.DatasetUnavailableError),
        failures=(training.NonFiniteLossError,))
    common_flags.print_result(metrics)


if __name__ == "__main__":
    common_flags.run(main, D)
