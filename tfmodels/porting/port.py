"""Port a checkpoint into a registered net and write a model directory eval.py / train.py read.

    mapping = port_checkpoint("legacy/model.ckpt-5000", "lenet", num_classes=10,
                              input_shape=(28, 28, 1), output_dir="runs/lenet-ported")

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
from tfmodels.model_dir import CONFIG_FILE, KERAS_FILE, write_json_atomic
from tfmodels.porting.checkpoint_map import map_checkpoint
from tfmodels.porting.tf2_init import load_checkpoint


def check_output_dir(output_dir):
    """Refuse an output directory that already holds a checkpoint or a ported model."""
    if not output_dir:
        raise ValueError(f"output={output_dir!r} must name a directory to write")
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise ValueError(f"output={output_dir!r} exists and is not a directory")
    held = [name for name in ("checkpoint", CONFIG_FILE, KERAS_FILE)
            if os.path.exists(os.path.join(output_dir, name))]
    if os.path.isdir(output_dir):  # also a checkpoint whose index file is elsewhere
        held += [name for name in sorted(os.listdir(output_dir)) if name.endswith(".index")]
    if held:
        raise ValueError(f"output={output_dir!r} already holds {', '.join(held)}; nothing was "
                         "written. Choose a new --output directory or remove that one.")


def port_checkpoint(checkpoint_path, model_name, num_classes, input_shape, output_dir, *,
                    exclude_scopes=(), overrides=None, use_ema=False, dataset=None, seed=0,
                    dry_run=False):
    """Build `model_name`, fill it from the checkpoint (strict), and write `output_dir`.

    Args:
      checkpoint_path: TF1 or TF2 checkpoint prefix or directory.
      model_name, num_classes, input_shape: the net to build (`nets.build_model`).
      output_dir: new directory (or one without a checkpoint/config/model file).
      exclude_scopes, overrides, use_ema: see `porting.map_checkpoint`. Excluded variables
        keep their initialisation (seeded by `seed`).
      dataset: optional dataset name recorded in config.json (eval.py's default dataset).
      dry_run: plan only; nothing is written (the output directory is still checked).

    Returns:
      The `Mapping` (for a dry run possibly not `ok`).

    Raises:
      PortingError: the plan has problems (and not dry_run); nothing was written.
      ValueError: bad arguments, a missing checkpoint, or an output_dir already in use.
    """
    if output_dir or not dry_run:
        check_output_dir(output_dir)
    keras.utils.set_random_seed(seed)
    model = nets.build_model(model_name, num_classes, tuple(input_shape))
    if dry_run:
        return map_checkpoint(model, checkpoint_path, exclude_scopes=exclude_scopes,
                              overrides=overrides, use_ema=use_ema)
    mapping = load_checkpoint(model, checkpoint_path, exclude_scopes=exclude_scopes,
                              overrides=overrides, use_ema=use_ema, strict=True)
    config = {
        "model": model_name, "num_classes": int(num_classes),
        "image_shape": [int(d) for d in input_shape],
        # Absolute, so the record stays meaningful wherever the directory is read from.
        "ported_from": (mapping.checkpoint if "://" in mapping.checkpoint
                        else os.path.abspath(mapping.checkpoint)),
        "porting": {"source_format": mapping.source_format,
                    "exclude_scopes": list(mapping.exclude_scopes),
                    "use_ema": mapping.use_ema, "matched": len(mapping.matched),
                    "excluded": mapping.excluded, "seed": seed},
    }
    if dataset:
        config["dataset"] = dataset
    write_model_dir(model, output_dir, config)
    return mapping


def write_model_dir(model, output_dir, config):
    """Write checkpoint, .keras file and config into a staging directory beside
    `output_dir`, then move them in, config.json last: a failure leaves nothing behind."""
    parent = os.path.dirname(os.path.abspath(output_dir))
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(dir=parent, prefix=".porting_")
    try:
        # max_to_keep=1 and relative paths in the index file (CheckpointManager's default), so
        # the files stay valid after the move.
        manager = tf.train.CheckpointManager(tf.train.Checkpoint(model=model), staging,
                                             max_to_keep=1)
        manager.save(checkpoint_number=1)
        model.save(os.path.join(staging, KERAS_FILE))
        write_json_atomic(os.path.join(staging, CONFIG_FILE), config)
        check_output_dir(output_dir)  # nobody wrote there meanwhile
        os.makedirs(output_dir, exist_ok=True)
        last = ("checkpoint", CONFIG_FILE)  # the index file makes the checkpoint visible
        present = os.listdir(staging)
        names = sorted(n for n in present if n not in last) + [n for n in last if n in present]
        for name in names:
            os.replace(os.path.join(staging, name), os.path.join(output_dir, name))
    finally:
        shutil.rmtree(staging, ignore_errors=True)

