"""Port a checkpoint into a net and write a model directory eval.py / train.py read.

    mapping = port_checkpoint("legacy/model.ckpt-5000", "lenet", num_classes=10,
                              input_shape=(28, 28, 1), output_dir="runs/lenet-ported",
                              verify_with="legacy_lenet:lenet")

The net is a registered name or `package.module:function` (`nets.get_net`). With
`verify_with` the ported model's logits are compared with the legacy TF1 function's
(`porting.verify`) before anything is written.

The directory gets the TF2 checkpoint `ckpt-1` (`tf.train.Checkpoint(model=model)` through a
`CheckpointManager`, so `tf.train.latest_checkpoint` finds it), `model.keras`, and
`config.json` (`model`, `num_classes`, `image_shape`, `dataset` if given, `ported_from`,
`porting`), which `model_dir.read_config` / `restore_model` read.
"""
import os
import shutil
import tempfile

import keras
import tensorflow as tf

from tfmodels import nets
from tfmodels.model_dir import ModelDir
from tfmodels.model_dir.files import write_failure
from tfmodels.nets import custom
from tfmodels.porting import rules, verification
from tfmodels.porting.checkpoint_map import map_checkpoint
from tfmodels.porting.tf2_init import load_checkpoint
from tfmodels.options import UsageError


def check_output_dir(output_dir):
    """Refuse an output directory that already holds a checkpoint or a ported model."""
    if not output_dir:
        raise UsageError(f"--output={output_dir} must name a directory to write", "output")
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise UsageError(f"--output={output_dir} exists and is not a directory", "output")
    layout = ModelDir(output_dir)
    held = [os.path.basename(path) for path in (layout.state_path, layout.config_path,
                                                layout.keras_path) if os.path.exists(path)]
    if os.path.isdir(output_dir):  # also a checkpoint whose index file is elsewhere
        held += [name for name in sorted(os.listdir(output_dir)) if name.endswith(".index")]
    if held:
        raise UsageError(f"--output={output_dir} already holds {', '.join(held)}; nothing was "
                         "written. Choose a new --output directory or remove that one.", "output")


def port_checkpoint(checkpoint_path, model_name, num_classes, input_shape, output_dir, *,
                    exclude_scopes=(), overrides=None, use_ema=False, ignore=(),
                    strip_scope=(), dataset=None, seed=0, dry_run=False, verify_with=None,
                    verify_tol=1e-4, verify_images=None, verify_timeout=600,
                    verify_arg_scope=None, flags=None):
    """Build `model_name`, fill it from the checkpoint (strict), verify it, write `output_dir`.

    Args:
      checkpoint_path: TF1 or TF2 checkpoint prefix or directory.
      model_name, num_classes, input_shape: the net to build (`nets.build_model`): a
        registered name or `package.module:function`.
      output_dir: new directory (or one without a checkpoint/config/model file).
      exclude_scopes, overrides, use_ema, ignore, strip_scope: see `porting.map_checkpoint`.
        Excluded variables keep their initialisation (seeded by `seed`).
      dataset: optional dataset name recorded in config.json (eval.py's default dataset);
        image files given as verify_images are normalised as its pipeline does.
      dry_run: plan only; nothing is written (the output directory is still checked). With
        verify_with, a plan that is OK is loaded into the model in memory and verified.
      verify_with: 'module:function' of the legacy TF1 model function to compare logits with
        (`porting.verify`), run in a separate process; None skips the check.
      verify_tol, verify_images, verify_timeout, verify_arg_scope: `verify`'s tol, images,
        timeout and arg_scope.
      flags: {option: flag} naming the caller's flags in errors (`rules.flag_names`).

    Returns:
      The `Mapping` (for a dry run possibly not `ok`); `.verification` holds the numbers
      when verified.

    Raises:
      PortingError: the plan has problems (and not dry_run); nothing was written.
      VerificationError: the logits differ by more than verify_tol; nothing was written.
      ValueError: bad arguments, a missing checkpoint, or an output_dir already in use.
    """
    flags = rules.flag_names(flags)
    if output_dir or not dry_run:
        check_output_dir(output_dir)
    if verify_with is not None:
        custom.check_name(verify_with, "verify_with")
        excluded = rules.parse_scopes(exclude_scopes, flags["exclude_scopes"])
        if excluded:
            raise UsageError(f"--verify_with={verify_with} compares logits, which excluded "
                             "(re-initialised) scopes change: drop "
                             f"--{flags['exclude_scopes']}={','.join(excluded)} or --verify_with",
                             "verify_with")
    keras.utils.set_random_seed(seed)
    model = nets.build_model(model_name, num_classes, tuple(input_shape))
    options = dict(exclude_scopes=exclude_scopes, overrides=overrides, use_ema=use_ema,
                   ignore=ignore, strip_scope=strip_scope, flags=flags)
    if dry_run:
        mapping = map_checkpoint(model, checkpoint_path, **options)
        if verify_with is None or not mapping.ok:
            return mapping
    mapping = load_checkpoint(model, checkpoint_path, strict=True, **options)
    if verify_with is not None:
        try:
            mapping.verification = verification.verify(
                model, mapping.checkpoint, verify_with, images=verify_images, use_ema=use_ema,
                tol=verify_tol, seed=seed, dataset=dataset, timeout=verify_timeout,
                arg_scope=verify_arg_scope)
        except verification.VerificationError as err:
            raise verification.VerificationError(
                f"{err}\n{'' if dry_run else 'Nothing was written.'}".rstrip(),
                err.verification) from None
    if dry_run:
        return mapping
    config = {
        "model": model_name, "num_classes": int(num_classes),
        "image_shape": [int(d) for d in input_shape],
        # Absolute, so the record stays meaningful wherever the directory is read from.
        "ported_from": (mapping.checkpoint if "://" in mapping.checkpoint
                        else os.path.abspath(mapping.checkpoint)),
        "porting": {"source_format": mapping.source_format,
                    "exclude_scopes": list(mapping.exclude_scopes),
                    "use_ema": mapping.use_ema, "matched": len(mapping.matched),
                    "excluded": mapping.excluded, "ignored": mapping.skipped.get("ignored", []),
                    "strip_scope": list(mapping.strip_scope), "seed": seed},
    }
    if mapping.verification is not None:
        result = mapping.verification
        config["porting"]["verified"] = {
            "with": result.function, "arg_scope": result.arg_scope,
            "images": f"{result.num_images} {result.images}",
            "max_abs_logit_difference": result.max_abs,
            "max_relative_logit_difference": result.max_rel, "tolerance": result.tol}
    if dataset:
        config["dataset"] = dataset
    write_model_dir(model, output_dir, config)
    return mapping


def write_model_dir(model, output_dir, config):
    """Write checkpoint, .keras file and config into a staging directory beside
    `output_dir`, then move them in, config.json last: a failure leaves nothing behind (a
    full disk or no permission: `ModelDirWriteError`, one line)."""
    parent = os.path.dirname(os.path.abspath(output_dir))
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(dir=parent, prefix=".porting_")
    try:
        # max_to_keep=1 and relative paths in the index file (CheckpointManager's default), so
        # the files stay valid after the move.
        manager = tf.train.CheckpointManager(tf.train.Checkpoint(model=model), staging,
                                             max_to_keep=1)
        manager.save(checkpoint_number=1)
        staged = ModelDir(staging)
        model.save(staged.keras_path)
        staged.write_config(config)
        check_output_dir(output_dir)  # nobody wrote there meanwhile
        os.makedirs(output_dir, exist_ok=True)
        # The state file makes the checkpoint visible; config.json makes it a model_dir.
        last = (os.path.basename(staged.state_path), os.path.basename(staged.config_path))
        present = os.listdir(staging)
        names = sorted(n for n in present if n not in last) + [n for n in last if n in present]
        for name in names:
            os.replace(os.path.join(staging, name), os.path.join(output_dir, name))
    except Exception as err:
        failure = write_failure(err, output_dir, "nothing was written")
        if failure is not None:
            raise failure from None
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)

