"""Port a TF1 / tf-slim (or tfmodels TF2) checkpoint into a tfmodels net.

    python -m tfmodels.porting --checkpoint=legacy/model.ckpt-5000 --model=lenet \
        --num_classes=10 --image_size=28 --channels=1 --output=runs/lenet-ported
    python -m tfmodels.porting ... --dry_run          # print the mapping table, write nothing
    python -m tfmodels.porting --checkpoint=vgg_16.ckpt --model=vgg_16 --num_classes=5 \
        --exclude_scopes=vgg_16/fc8 --output=runs/vgg5  # new class count: fc8 stays random
    python -m tfmodels.porting --checkpoint=legacy_convnet --model=convnet:convnet \
        --num_classes=10 --verify_with=legacy_convnet:convnet --output=runs/convnet
        # a net of your own (module:function), checked against the TF1 code's logits

Writes into --output a TF2 checkpoint (ckpt-1), model.keras and config.json, which eval.py
reads and train.py accepts as --init_checkpoint. Exit status 1 with the report when the
checkpoint does not fill the model (unmatched names, shape mismatches, variables left unused in
filled layers) or the logits differ from --verify_with's; nothing is written then.
"""
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

from tfmodels import nets, porting  # noqa: E402

flags.DEFINE_string("checkpoint", None, "TF1 (Saver) or TF2 checkpoint prefix, or a directory "
                    "(its latest checkpoint).")
flags.DEFINE_string("model", None, "Net to port into: a registered name "
                    f"({', '.join(sorted(nets.NETS))}) or package.module:function for a net "
                    "of your own (the net contract; <function>_arg_scope beside it is used).")
flags.DEFINE_integer("num_classes", None, "Classes of the ported model's logits.",
                     lower_bound=1)
flags.DEFINE_integer("image_size", None, "Input height = width in pixels (default: the "
                     "net's default_image_size).", lower_bound=1)
flags.DEFINE_integer("channels", 3, "Input channels (1 for MNIST-style nets).", lower_bound=1)
flags.DEFINE_string("output", None, "New directory for the TF2 checkpoint, model.keras and "
                    "config.json; refused if it already holds a checkpoint.")
flags.DEFINE_list("exclude_scopes", [], "Model scopes to leave freshly initialised (and "
                  "their checkpoint variables to ignore), e.g. vgg_16/fc8.")
flags.DEFINE_list("ignore", [], "Checkpoint variables to leave out on purpose: scopes or "
                  "regexes of checkpoint keys (e.g. InceptionV3/AuxLogits). A variable left "
                  "unused in a layer whose others were filled fails the port unless ignored.")
flags.DEFINE_list("strip_scope", [], "Outer scope to remove from the start of checkpoint "
                  "keys, e.g. model for an Estimator's model/LeNet/conv1/weights.")
flags.DEFINE_string("overrides", None, "Renames for nets that do not follow slim naming: a "
                    "JSON object {checkpoint key or regex: model variable path or null} or a "
                    "file holding one. With --use_ema an override of a raw variable takes its "
                    "ExponentialMovingAverage shadow.")
flags.DEFINE_bool("use_ema", False, "Take <var>/ExponentialMovingAverage shadows instead of "
                  "the raw weights (required for every trainable variable).")
flags.DEFINE_string("verify_with", None, "package.module:function of the legacy TF1 model "
                    "function (slim contract): it is run in a separate process under its arg "
                    "scope (--verify_arg_scope), restored from --checkpoint, and its logits "
                    "compared with the ported model's on one batch before anything is "
                    "written.")
flags.DEFINE_float("verify_tol", 1e-4, "Largest max |logit difference| / max |legacy logit| "
                   "that passes --verify_with.", lower_bound=0.0)
flags.DEFINE_string("verify_images", "random", "Batch for --verify_with: random (8 seeded "
                    "N(0, 1) images), a .npy file [N, H, W, C] of preprocessed images, or "
                    "image files (comma-separated paths or globs), resized to the input and "
                    "normalised as --dataset's pipeline does ([0, 1] without --dataset).")
flags.DEFINE_integer("verify_timeout", 600, "Seconds the --verify_with process may take.",
                     lower_bound=1)
# --- legacy arg scope for --verify_with ---
flags.DEFINE_string("verify_arg_scope", None, "package.module:function of the arg scope to "
                    "build --verify_with's function under, or none. Default: found in its "
                    "module by slim's names (<net>_arg_scope, <family>_arg_scope such as "
                    "resnet_arg_scope, <module>_arg_scope); the summary says which.")
# --- end legacy arg scope ---
flags.DEFINE_bool("dry_run", False, "Print the mapping table and report; write nothing (with "
                  "--verify_with, also verify in memory).")
flags.DEFINE_string("dataset", None, "Dataset name recorded in config.json (for eval.py).")
flags.DEFINE_integer("seed", 0, "Seed of the initialisation of excluded variables and of "
                     "the random --verify_with batch.")
flags.mark_flags_as_required(["checkpoint", "model", "num_classes"])
FLAGS = flags.FLAGS


def _image_size(spec):
    size = FLAGS.image_size or spec.default_image_size
    if size is None:
        raise ValueError(f"--image_size is required: model={FLAGS.model!r} has no "
                         "default_image_size (set it as a function attribute, "
                         f"{FLAGS.model.split(':')[-1]}.default_image_size = 224, or pass "
                         "--image_size)")
    return size


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    if not FLAGS.dry_run and not FLAGS.output:
        raise app.UsageError("--output is required (or pass --dry_run)")
    try:
        size = _image_size(nets.get_net(FLAGS.model))
        mapping = porting.port_checkpoint(
            FLAGS.checkpoint, FLAGS.model, FLAGS.num_classes, (size, size, FLAGS.channels),
            FLAGS.output, exclude_scopes=FLAGS.exclude_scopes,
            overrides=porting.load_overrides(FLAGS.overrides), use_ema=FLAGS.use_ema,
            ignore=FLAGS.ignore, strip_scope=FLAGS.strip_scope, dataset=FLAGS.dataset,
            seed=FLAGS.seed, dry_run=FLAGS.dry_run, verify_with=FLAGS.verify_with,
            verify_tol=FLAGS.verify_tol, verify_images=FLAGS.verify_images,
            verify_timeout=FLAGS.verify_timeout, verify_arg_scope=FLAGS.verify_arg_scope)
    except ValueError as err:  # PortingError / VerificationError (their report), a bad value
        print(f"error: {err}", file=sys.stderr)
        return 1
    if FLAGS.dry_run:
        print(mapping.table())
    print(mapping.report())
    if mapping.verification is not None:
        print(mapping.verification.summary())
        print(mapping.verification.arg_scope_note())
    if FLAGS.dry_run:
        return 0 if mapping.ok else 1
    print(f"wrote {FLAGS.output}: {os.path.basename(porting.resolve_checkpoint(FLAGS.output)[0])}"
          ", model.keras, config.json")
    return 0


if __name__ == "__main__":
    app.run(main)
