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
    from tfmodels.data import fake_tfds

    flags.FLAGS.unparse_flags()  # back to the defaults: presets must not leak into each other
    flags.FLAGS(["train.py", f"--flagfile={preset}", f"--model_dir={tmp_path}"])
    config = train_script.config_from_flags()
    config.validate()
    fake = {config.dataset: SPLITS[config.dataset]} if config.dataset in SPLITS else {}
    with fake_tfds.fake_prepared(fake, tmp_path):  # digits is bundled: nothing to fake
        info = data.get_dataset_info(config.dataset, data_dir=str(tmp_path))
    resolved = config.resolve(info, num_replicas=1)
    assert all(b < resolved["total_steps"] for b in config.lr_boundaries)
    # Presets train for real: 1000 steps, or 20 epochs of a small dataset (digits: 22 steps).
    assert resolved["total_steps"] >= min(1000, 20 * resolved["steps_per_epoch"])


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
