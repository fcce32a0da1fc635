"""Train an image classifier on one or many devices.

    python train.py                                   # SmallCNN on the embedded digits
    python train.py --model=lenet_pp --dataset=mnist --center_loss_weight=0.01 --num_gpus=4
    python train.py --flagfile=configs/resnet20_cifar10.flags --model_dir=runs/r20

One global batch is split across the replicas; the numbers match one device. Checkpoints,
`config.json`, TensorBoard summaries, `metrics.json` and the exports go to --model_dir; running
again with the same --model_dir resumes from its latest checkpoint.
"""
import dataclasses
import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

import common_flags  # noqa: E402
from tfmodels import data, nets, training  # noqa: E402
from tfmodels.training import config as config_lib  # noqa: E402
from tfmodels.training import optimizers, schedules, step  # noqa: E402

# Defaults are the embedded-digits recipe that `python train.py` alone runs (SmallCNN,
# augmentation, label smoothing, weight decay, cosine rate); presets in configs/ set their own.
# --- model and data ---
flags.DEFINE_enum("model", "small_cnn", sorted(nets.NETS), "Network to train.")
flags.DEFINE_string("dataset", "digits", f"One of {', '.join(data.DATASET_NAMES)}; "
                    "synthetic[:HxWxC:CLASSES] for benchmarks.")
flags.DEFINE_string("data_dir", None, "tensorflow-datasets directory (default: ~/tensorflow_datasets).")
flags.DEFINE_string("model_dir", None, "Checkpoints, config, summaries and exports "
                    "(default: runs/<model>-<dataset>).")
flags.DEFINE_integer("batch_size", 64, "Global batch size (examples per step), split evenly "
                     "across replicas.", lower_bound=1)
flags.DEFINE_integer("train_steps", None, "Training length in steps (global batches).")
flags.DEFINE_float("epochs", None, "Training length in epochs over the training split "
                   "(default 30 when --train_steps is not given).")
flags.DEFINE_bool("augment", True, "Pad-and-crop augmentation, plus horizontal flips where the "
                  "dataset allows them (CIFAR, Fashion-MNIST).")
flags.DEFINE_integer("seed", 0, "Seed of weights, shuffling and augmentation.")
flags.DEFINE_bool("deterministic", False, "Deterministic ops: a resumed run ends with exactly "
                  "the weights of an uninterrupted one (slower).")
# --- loss ---
flags.DEFINE_enum("loss", "cross_entropy", step.LOSSES, "Data loss per example.")
flags.DEFINE_float("label_smoothing", 0.1, "Label smoothing of the cross-entropy, in [0, 1].")
flags.DEFINE_float("center_loss_weight", 0.0, "lambda of the center loss (Wen et al. 2016); "
                   "0 disables it.")
flags.DEFINE_float("center_alpha", 0.5, "alpha: center learning rate, in [0, 1].")
flags.DEFINE_float("weight_decay", 1e-3, "Weight decay of kernels: wd*sum(w^2)/2 in the loss "
                   "(l2) or w -= lr*wd*w (decoupled).")
flags.DEFINE_enum("weight_decay_type", "auto", config_lib.WEIGHT_DECAY_TYPES,
                  "auto: decoupled for adamw, l2 otherwise.")
# --- optimizer ---
flags.DEFINE_enum("optimizer", "momentum", optimizers.OPTIMIZERS, "Optimizer.")
flags.DEFINE_float("learning_rate", 0.1, "Peak learning rate (after warmup).")
flags.DEFINE_float("momentum", 0.9, "Momentum of --optimizer=momentum.")
flags.DEFINE_bool("nesterov", False, "Nesterov momentum.")
flags.DEFINE_enum("lr_schedule", "cosine", schedules.SCHEDULES, "Learning-rate schedule.")
flags.DEFINE_list("lr_boundaries", [], "Steps where a piecewise schedule decays.")
flags.DEFINE_float("lr_decay_factor", 0.1, "Factor applied at each piecewise boundary.")
flags.DEFINE_integer("warmup_steps", 0, "Steps of linear learning-rate warmup.", lower_bound=0)
flags.DEFINE_float("clip_grad_norm", None, "Clip the global norm of the all-reduced gradient.")
flags.DEFINE_float("ema_decay", 0.0, "Exponential moving average of weights (0: off); "
                   "evaluation and exports then use the averaged weights.")
# --- speed and precision ---
flags.DEFINE_integer("steps_per_loop", 50, "Steps per tf.function call.", lower_bound=1)
flags.DEFINE_bool("jit_compile", False, "XLA-compile each replica's forward/backward pass.")
flags.DEFINE_enum("mixed_precision", "none", config_lib.MIXED_PRECISION,
                  "Compute dtype; float16 adds dynamic loss scaling. Losses stay float32.")
# --- distribution (and common_flags.define_strategy_flags) ---
flags.DEFINE_bool("sync_bn", True, "Batch-norm statistics over the global batch (needed for "
                  "N replicas to match one).")
# --- checkpoints, logs, exports ---
flags.DEFINE_integer("checkpoint_every", 1000, "Steps between checkpoints.", lower_bound=1)
flags.DEFINE_integer("keep_checkpoints", 3, "Checkpoints kept.", lower_bound=1)
flags.DEFINE_integer("log_every", 100, "Steps between progress lines.", lower_bound=1)
flags.DEFINE_bool("export", True, "Export a SavedModel and a .keras file at the end.")
# --- starting from another checkpoint (used only when --model_dir has none) ---
flags.DEFINE_string("init_checkpoint", None, "TF1 / tf-slim or TF2 checkpoint (or directory) "
                    "to initialise the model from; see docs/PORTING.md.")
flags.DEFINE_bool("init_checkpoint_use_ema", False, "Take the checkpoint's "
                  "ExponentialMovingAverage shadows instead of the raw weights.")
flags.DEFINE_list("checkpoint_exclude_scopes", [], "Variable scopes not taken from "
                  "--init_checkpoint, e.g. vgg_16/fc8 to fine-tune to a new class count.")
flags.DEFINE_list("trainable_scopes", [], "Train only variables under these scopes (default: "
                  "all).")
common_flags.define_strategy_flags()
FLAGS = flags.FLAGS

_RENAMED = {"global_batch_size": "batch_size"}
DEFAULT_EPOCHS = 30.0  # on digits (22 steps of 64 per epoch) ~6.5 s of small_cnn on 2 CPU cores


def config_from_flags():
    values = {}
    for field in dataclasses.fields(config_lib.TrainConfig):
        name = _RENAMED.get(field.name, field.name)
        if name in FLAGS:
            values[field.name] = FLAGS[name].value
    values["lr_boundaries"] = tuple(int(b) for b in FLAGS.lr_boundaries)
    for name in ("checkpoint_exclude_scopes", "trainable_scopes"):
        values[name] = tuple(FLAGS[name].value)
    if FLAGS.train_steps is None and FLAGS.epochs is None:
        values["epochs"] = DEFAULT_EPOCHS
    values["model_dir"] = FLAGS.model_dir or os.path.join(
        "runs", f"{FLAGS.model}-{FLAGS.dataset.replace(':', '_')}")
    return config_lib.TrainConfig(**values)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    try:
        metrics = training.train(config_from_flags())
    except (training.ConfigError, data.DatasetUnavailableError) as err:
        raise app.UsageError(str(err)) from None
    print(json.dumps(metrics, indent=2))


if __name__ == "__main__":
    app.run(main)
