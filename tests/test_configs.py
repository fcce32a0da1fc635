"""Every preset in configs/ parses with train.py's flags and resolves against its dataset."""
import glob
import os

import pytest

from tests import scripts

PRESETS = sorted(glob.glob(os.path.join(scripts.ROOT, "configs", "*.flags")))
SPLITS = {"mnist": {"train": 60000, "test": 10000}, "cifar10": {"train": 50000, "test": 10000}}


@pytest.fixture(scope="module")
def train_script():
    import importlib
    import logging
    import sys

    absl_level = logging.getLogger("absl").level  # parsing --verbosity sets it; put it back
    sys.path.insert(0, scripts.ROOT)
    module = importlib.import_module("train")  # defines train.py's flags once per session
    yield module
    sys.path.remove(scripts.ROOT)
    logging.getLogger("absl").setLevel(absl_level)


@pytest.mark.parametrize("preset", PRESETS, ids=os.path.basename)
def test_preset_resolves(train_script, preset, tmp_path):
    from absl import flags

    from tfmodels import data
    from tests import fake_tfds

    flags.FLAGS.unparse_flags()  # back to the defaults: presets must not leak into each other
    flags.FLAGS(["train.py", f"--flagfile={preset}", f"--model_dir={tmp_path}"])
    config = train_script.config_from_flags()
    config.validate()
    fake = {config.dataset: SPLITS[config.dataset]} if config.dataset in SPLITS else {}
    with fake_tfds.fake_prepared(fake, tmp_path):  # digits is bundled: nothing to fake
        info = data.get_dataset_info(config.dataset, data_dir=str(tmp_path))
    resolved = config.resolve(info, num_replicas=1)
    assert all(b < resolved.total_steps for b in config.lr_boundaries)
    # Presets train for real: 1000 steps, or 20 epochs of a small dataset (digits: 22 steps).
    assert resolved.total_steps >= min(1000, 20 * resolved.steps_per_epoch)


@pytest.mark.parametrize("preset", PRESETS, ids=os.path.basename)
def test_preset_pins_its_recipe(train_script, preset, tmp_path):
    """train.py's defaults are the digits recipe; a preset must not inherit them silently."""
    from absl import flags

    flags.FLAGS.unparse_flags()
    flags.FLAGS(["train.py", f"--flagfile={preset}", f"--model_dir={tmp_path}"])
    required = {"model", "dataset", "augment", "label_smoothing", "weight_decay",
                "learning_rate", "lr_schedule", "batch_size"}
    missing = sorted(name for name in required if not flags.FLAGS[name].present)
    assert not missing, f"{os.path.basename(preset)} leaves {missing} to train.py's defaults"


def test_flags_default_to_train_config(train_script):
    """`python train.py` with no flags trains `TrainConfig()`: one set of defaults."""
    from absl import flags

    from tfmodels.training import TrainConfig

    flags.FLAGS.unparse_flags()
    flags.FLAGS(["train.py"])
    assert train_script.config_from_flags() == TrainConfig()


def test_every_option_has_a_flag(train_script, tmp_path):
    """Each TrainConfig field is set by its flag (a forgotten mapping would keep the default)."""
    import dataclasses

    from absl import flags

    from tfmodels.training import TrainConfig

    changed = {"model_dir": str(tmp_path), "model": "lenet", "dataset": "mnist",
               "data_dir": str(tmp_path), "batch_size": "32", "train_steps": "7",
               "loss": "hinge", "label_smoothing": "0", "center_loss_weight": "0.2",
               "center_alpha": "0.25", "weight_decay": "0.5", "weight_decay_type": "l2",
               "head": "partial_fc", "num_sampled": "17", "sampler": "uniform",
               "sample_rate": "0.25",
               "optimizer": "adam", "learning_rate": "0.3", "momentum": "0.5",
               "nesterov": "true", "lr_schedule": "piecewise", "lr_boundaries": "3,5",
               "lr_decay_factor": "0.5", "warmup_steps": "2", "clip_grad_norm": "1.5",
               "ema_decay": "0.9", "steps_per_loop": "3", "jit_compile": "true",
               "mixed_precision": "bfloat16", "strategy": "mirrored", "num_gpus": "0",
               "all_reduce": "one_device", "virtual_devices": "2", "sync_bn": "false",
               "augment": "false", "seed": "9", "deterministic": "true",
               "checkpoint_every": "4", "keep_checkpoints": "5", "log_every": "6",
               "export": "false", "init_checkpoint": str(tmp_path),
               "init_checkpoint_use_ema": "true", "checkpoint_exclude_scopes": "a/b",
               "init_checkpoint_ignore": "x/.*", "init_checkpoint_strip_scope": "model",
               "trainable_scopes": "c", "image_size": "32x24", "preprocessing": "vgg",
               "skip_undecodable": "true", "input_placement": "device"}
    flags.FLAGS.unparse_flags()
    flags.FLAGS(["train.py"] + [f"--{k}={v}" for k, v in changed.items()])
    config, default = train_script.config_from_flags(), TrainConfig()
    same = [f.name for f in dataclasses.fields(TrainConfig)
            if f.name != "epochs" and getattr(config, f.name) == getattr(default, f.name)]
    assert not same, f"flags do not reach {same}"
    flags.FLAGS.unparse_flags()
    flags.FLAGS(["train.py", "--epochs=2.5"])
    assert train_script.config_from_flags().epochs == 2.5
