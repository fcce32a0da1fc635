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
import dataclasses
import logging
import os
import sys
import traceback
from typing import Optional, Tuple

from absl import app, flags

# Run as `python -m tfmodels.porting`, the package has imported TensorFlow with its start-up
# lines held (`tfmodels.startup`); they are shown or dropped once --verbosity is parsed.
from tfmodels import console, model_dir, nets, options, porting, startup
from tfmodels.options import UsageError, option


@dataclasses.dataclass(frozen=True)
class PortOptions:
    """The porting CLI's options (`tfmodels.options`: each is its flag)."""
    checkpoint: Optional[str] = option(None, "TF1 (Saver) or TF2 checkpoint prefix, or a "
                                       "directory (its latest checkpoint). Required.")
    model: Optional[str] = option(None, "Net to port into: a registered name "
                                  f"({', '.join(sorted(nets.NETS))}) or package.module:function "
                                  "for a net of your own (the net contract; <function>_arg_scope "
                                  "beside it is used). Required.")
    num_classes: Optional[int] = option(None, "Classes of the ported model's logits. Required.",
                                        low=1)
    image_size: Optional[int] = option(None, "Input height = width in pixels (default: the "
                                       "net's default_image_size).", low=1, high=2**16)
    channels: int = option(3, "Input channels (1 for MNIST-style nets).", low=1, high=2**16)
    output: Optional[str] = option(None, "New directory for the TF2 checkpoint, model.keras and "
                                   "config.json; refused if it already holds a checkpoint.")
    exclude_scopes: Tuple[str, ...] = option((), "Model scopes to leave freshly initialised "
                                             "(and their checkpoint variables to ignore), e.g. "
                                             "vgg_16/fc8.")
    ignore: Tuple[str, ...] = option((), "Checkpoint variables to leave out on purpose: scopes "
                                     "or regexes of checkpoint keys (e.g. InceptionV3/AuxLogits). "
                                     "A variable left unused in a layer whose others were filled "
                                     "fails the port unless ignored.")
    strip_scope: Tuple[str, ...] = option((), "Outer scope to remove from the start of "
                                          "checkpoint keys, e.g. model for an Estimator's "
                                          "model/LeNet/conv1/weights.")
    overrides: Optional[str] = option(None, "Renames for nets that do not follow slim naming: a "
                                      "JSON object {checkpoint key or regex: model variable path "
                                      "or null} or a file holding one. With --use_ema an "
                                      "override of a raw variable takes its "
                                      "ExponentialMovingAverage shadow.")
    use_ema: bool = option(False, "Take <var>/ExponentialMovingAverage shadows instead of the "
                           "raw weights (required for every trainable variable).")
    verify_with: Optional[str] = option(None, "package.module:function of the legacy TF1 model "
                                        "function (slim contract): it is run in a separate "
                                        "process under its arg scope (--verify_arg_scope), "
                                        "restored from --checkpoint, and its logits compared "
                                        "with the ported model's on one batch before anything "
                                        "is written.")
    verify_arg_scope: Optional[str] = option(
        None, "package.module:function of the arg scope to build --verify_with's function "
        "under, or none. Default: found in its module by slim's names (<net>_arg_scope, "
        "<family>_arg_scope such as resnet_arg_scope, <module>_arg_scope); the summary says "
        "which.")
    verify_tol: float = option(1e-4, "Largest max |logit difference| / max |legacy logit| that "
                               "passes --verify_with.", low=0.0)
    verify_images: str = option("random", "Batch for --verify_with: random (8 seeded N(0, 1) "
                                "images), a .npy file [N, H, W, C] of preprocessed images, or "
                                "image files (comma-separated paths or globs), resized to the "
                                "input and normalised as --dataset's pipeline does ([0, 1] "
                                "without --dataset).")
    verify_timeout: int = option(600, "Seconds the --verify_with process may take.", low=1)
    dry_run: bool = option(False, "Print the mapping table and report; write nothing (with "
                           "--verify_with, also verify in memory).")
    dataset: Optional[str] = option(None, "Dataset name recorded in config.json (for eval.py).")
    seed: int = option(0, "Seed of the initialisation of excluded variables and of the random "
                       "--verify_with batch.", low=0, high=2**32 - 1)

    def validate(self):
        """UsageError naming the flag of a missing or bad value; nothing is read."""
        for name in ("checkpoint", "model", "num_classes"):
            if getattr(self, name) is None:
                raise UsageError(f"--{name} is required", name)
        if not self.dry_run and not self.output:
            raise UsageError("--output is required (or pass --dry_run)", "output")
        options.check(self)
        for name in ("checkpoint", "output"):
            options.check_path(name, getattr(self, name))


options.define_flags(PortOptions)
startup.name_verbosity_levels()
FLAGS = flags.FLAGS


def _image_size(config, spec):
    size = config.image_size or spec.default_image_size
    if size is None:
        raise UsageError(f"--image_size is required: --model={config.model} has no "
                         "default_image_size (set it as a function attribute, "
                         f"{config.model.split(':')[-1]}.default_image_size = 224, or pass "
                         "--image_size)", "image_size")
    return size


# The porting library's options (`porting.rules.OPTIONS`) and the fields that give them here.
_PORTING_FIELDS = {name: name for name in ("checkpoint", "exclude_scopes", "ignore",
                                           "strip_scope", "overrides", "use_ema")}


def port(config):
    """Port as `config` (a `PortOptions`) says; the exit status (0, or 1 when the report or
    the verification failed)."""
    config.validate()
    size = _image_size(config, nets.get_net(config.model))
    named = options.flags_of(PortOptions, _PORTING_FIELDS)  # the library's errors name them
    mapping = porting.port_checkpoint(
        config.checkpoint, config.model, config.num_classes, (size, size, config.channels),
        config.output, exclude_scopes=config.exclude_scopes,
        overrides=porting.load_overrides(config.overrides, named["overrides"]),
        use_ema=config.use_ema, flags=named,
        ignore=config.ignore, strip_scope=config.strip_scope, dataset=config.dataset,
        seed=config.seed, dry_run=config.dry_run, verify_with=config.verify_with,
        verify_tol=config.verify_tol, verify_images=config.verify_images,
        verify_timeout=config.verify_timeout, verify_arg_scope=config.verify_arg_scope)
    if config.dry_run:
        print(mapping.table())
    print(mapping.report())
    if mapping.verification is not None:
        print(mapping.verification.summary())
        print(mapping.verification.arg_scope_note())
    if config.dry_run:
        return 0 if mapping.ok else 1
    print(f"wrote {config.output}: "
          f"{os.path.basename(porting.resolve_checkpoint(config.output)[0])}, model.keras, "
          "config.json")
    return 0


def main(argv):
    """Exit status 1 with the report when the checkpoint does not fill the model (or the
    verification fails); 2 and one line for bad input; a traceback and 1 for anything else."""
    if len(argv) > 1:
        _fail(f"unexpected arguments: {' '.join(argv[1:])}")
    try:
        return port(options.from_flags(PortOptions))
    except (porting.PortingError, porting.VerificationError) as err:  # their report
        print(f"error: {err}", file=sys.stderr)
        return 1
    except UsageError as err:
        _fail(err)
    except model_dir.ModelDirWriteError as err:  # disk full, no permission: what was kept
        print(f"error: {err}", file=sys.stderr)
        return 1
    except Exception:  # noqa: BLE001 -- a bug: its traceback
        traceback.print_exc()
        return 1


def _fail(message):
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def _parse(argv):
    """absl's parse; a bad flag (or a flag file that includes itself) is one 'error:' line,
    exit status 2. Then log lines go through `tfmodels.console` (short, this package's info
    only unless --verbosity=debug) and TensorFlow's held start-up lines are shown as
    --verbosity says."""
    cycle = startup.flagfile_cycle(argv)
    if cycle:
        startup.show_startup(logging.INFO, probe_gpus=False)
        _fail(f"--flagfile includes itself: {cycle}")
    try:
        rest = FLAGS(argv)
    except flags.Error as err:
        startup.show_startup(logging.INFO, probe_gpus=False)
        _fail(err)
    verbosity = 0 if FLAGS["verbosity"].using_default_value else FLAGS.verbosity
    console.setup_logging(startup.logging_level(verbosity))
    startup.show_startup(startup.logging_level(verbosity))
    return rest


if __name__ == "__main__":
    app.run(main, flags_parser=_parse)
