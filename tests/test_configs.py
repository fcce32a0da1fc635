"""Every preset in configs/ parses with train.py's flags and resolves against its dataset; the
flags are TrainConfig's fields (generated: `tfmodels.options`)."""
import glob
import os

import pytest
from absl import flags

from tests import scripts
from tfmodels import options
from tfmodels.training import TrainConfig

PRESETS = sorted(glob.glob(os.path.join(scripts.ROOT, "configs", "*.flags")))
SPLITS = {"mnist": {"train": 60000, "test": 10000}, "cifar10": {"train": 50000, "test": 10000}}


def _train_flags(*args):
    """train.py's flags (a fresh set) parsed from `args`."""
    values = flags.FlagValues()
    options.define_flags(TrainConfig, values)
    values(["train.py", *args])
    return values


@pytest.mark.parametrize("preset", PRESETS, ids=os.path.basename)
def test_preset_resolves(preset, tmp_path):
    from tfmodels import data
    from tests import fake_tfds

    config = options.from_flags(TrainConfig, _train_flags(f"--flagfile={preset}",
                                                          f"--model_dir={tmp_path}"))
    config.validate()
    fake = {config.dataset: SPLITS[config.dataset]} if config.dataset in SPLITS else {}
    with fake_tfds.fake_prepared(fake, tmp_path):  # digits is bundled: nothing to fake
        info = data.get_dataset_info(config.dataset, data_dir=str(tmp_path))
    resolved = config.resolve(info, num_replicas=1)
    assert all(b < resolved.total_steps for b in config.lr_boundaries)
    # Presets train for real: 1000 steps, or 20 epochs of a small dataset (digits: 22 steps).
    assert resolved.total_steps >= min(1000, 20 * resolved.steps_per_epoch)


@pytest.mark.parametrize("preset", PRESETS, ids=os.path.basename)
def test_preset_pins_its_recipe(preset, tmp_path):
    """train.py's defaults are the digits recipe; a preset must not inherit them silently."""
    values = _train_flags(f"--flagfile={preset}", f"--model_dir={tmp_path}")
    required = {"model", "dataset", "augment", "label_smoothing", "weight_decay",
                "learning_rate", "lr_schedule", "batch_size"}
    missing = sorted(name for name in required if not values[name].present)
    assert not missing, f"{os.path.basename(preset)} leaves {missing} to train.py's defaults"


def test_flags_default_to_train_config():
    """`python train.py` with no flags trains `TrainConfig()`: one set of defaults."""
    assert options.from_flags(TrainConfig, _train_flags()) == TrainConfig()


def test_the_one_renamed_option():
    """config.json keys are the field names; the flags differ only where a field says so."""
    import dataclasses

    renamed = {f.name: options.flag_name(TrainConfig, f.name)
               for f in dataclasses.fields(TrainConfig)
               if options.flag_name(TrainConfig, f.name) != f.name}
    assert renamed == {"global_batch_size": "batch_size"}
    assert options.from_flags(TrainConfig, _train_flags("--batch_size=32")).global_batch_size \
        == 32
