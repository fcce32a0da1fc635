"""Port a TF1 / tf-slim (or tfmodels TF2) checkpoint into a tfmodels net.

    python -m tfmodels.porting --checkpoint=legacy/model.ckpt-5000 --model=lenet \
        --num_classes=10 --image_size=28 --channels=1 --output=runs/lenet-ported
    python -m tfmodels.porting ... --dry_run          # print the mapping table, write nothing
    python -m tfmodels.porting --checkpoint=vgg_16.ckpt --model=vgg_16 --num_classes=5 \
        --exclude_scopes=vgg_16/fc8 --output=runs/vgg5  # new class count: fc8 stays random

Writes into --output a TF2 checkpoint (ckpt-1), model.keras and config.json, which eval.py
reads and train.py accepts as --init_checkpoint. Exit status 1 with the report when the
checkpoint does not fill the model (unmatched names, shape mismatches); nothing is written then.
"""
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

from tfmodels import nets, porting  # noqa: E402

flags.DEFINE_string("checkpoint", None, "TF1 (Saver) or TF2 checkpoint prefix, or a directory "
                    "(its latest checkpoint).")
flags.DEFINE_enum("model", None, sorted(nets.NETS), "Registered net to port into.")
flags.DEFINE_integer("num_classes", None, "Classes of the ported model's logits.",
                     lower_bound=1)
flags.DEFINE_integer("image_size", None, "Input height = width in pixels (default: the "
                     "net's default size).", lower_bound=1)
flags.DEFINE_integer("channels", 3, "Input channels (1 for MNIST-style nets).", lower_bound=1)
flags.DEFINE_string("output", None, "New directory for the TF2 checkpoint, model.keras and "
                    "config.json; refused if it already holds a checkpoint.")
flags.DEFINE_list("exclude_scopes", [], "Model scopes to leave freshly initialised (and "
                  "their checkpoint variables to ignore), e.g. vgg_16/fc8.")
flags.DEFINE_string("overrides", None, "Renames for nets that do not follow slim naming: a "
                    "JSON object {checkpoint key or regex: model variable path or null} or a "
                    "file holding one.")
flags.DEFINE_bool("use_ema", False, "Take <var>/ExponentialMovingAverage shadows instead of "
                  "the raw weights (required for every trainable variable).")
flags.DEFINE_bool("dry_run", False, "Print the mapping table and report; write nothing.")
flags.DEFINE_string("dataset", None, "Dataset name recorded in config.json (for eval.py).")
flags.DEFINE_integer("seed", 0, "Seed of the initialisation of excluded variables.")
flags.mark_flags_as_required(["checkpoint", "model", "num_classes"])
FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    if not FLAGS.dry_run and not FLAGS.output:
        raise app.UsageError("--output is required (or pass --dry_run)")
    size = FLAGS.image_size or nets.get_net(FLAGS.model).default_image_size
    try:
        mapping = porting.port_checkpoint(
            FLAGS.checkpoint, FLAGS.model, FLAGS.num_classes, (size, size, FLAGS.channels),
            FLAGS.output, exclude_scopes=FLAGS.exclude_scopes,
            overrides=porting.load_overrides(FLAGS.overrides), use_ema=FLAGS.use_ema,
            dataset=FLAGS.dataset, seed=FLAGS.seed, dry_run=FLAGS.dry_run)
    except ValueError as err:  # PortingError (with its report) or a bad flag value
        print(f"error: {err}", file=sys.stderr)
        return 1
    if FLAGS.dry_run:
        print(mapping.table())
        print(mapping.report())
        return 0 if mapping.ok else 1
    print(mapping.report())
    print(f"wrote {FLAGS.output}: {os.path.basename(porting.resolve_checkpoint(FLAGS.output)[0])}"
          ", model.keras, config.json")
    return 0


if __name__ == "__main__":
    app.run(main)
