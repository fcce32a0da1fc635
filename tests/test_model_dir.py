"""model_dir files: atomic JSON, compatibility checks, restore errors."""
import json
import os

import pytest
import tensorflow as tf

from tfmodels.training import checkpoints


def test_write_json_atomic_never_leaves_a_half_file(tmp_path):
    path = tmp_path / "config.json"
    checkpoints.write_json_atomic(path, {"a": 1})
    with pytest.raises(TypeError):
        checkpoints.write_json_atomic(path, {"a": object()})  # fails half-way through dump
    assert json.loads(path.read_text()) == {"a": 1}
    assert os.listdir(tmp_path) == ["config.json"]  # no temporary file left behind


def _write_checkpoint(model_dir, step=3):
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(v=tf.Variable(1.0)), model_dir, 1)
    return manager.save(checkpoint_number=step)


IDENTITY = {"model": "lenet", "num_classes": 10, "image_shape": [8, 8, 1], "center_loss": False,
            "optimizer": "momentum", "ema_decay_enabled": False, "loss_scaling": False,
            "trainable_scopes": []}


def test_check_model_dir(tmp_path):
    assert checkpoints.check_model_dir(str(tmp_path / "new"), IDENTITY) is None
    path = _write_checkpoint(str(tmp_path))
    with pytest.raises(ValueError, match="holds checkpoint ckpt-3 but no config.json"):
        checkpoints.check_model_dir(str(tmp_path), IDENTITY)
    checkpoints.write_json_atomic(tmp_path / "config.json", dict(IDENTITY, learning_rate=0.1))
    assert checkpoints.check_model_dir(str(tmp_path), dict(IDENTITY, learning_rate=1.0)) == path
    with pytest.raises(ValueError, match="model: checkpoint has 'lenet', this run 'cifarnet'; "
                                         "num_classes: checkpoint has 10, this run 100"):
        checkpoints.check_model_dir(str(tmp_path),
                                    dict(IDENTITY, model="cifarnet", num_classes=100))


def test_read_config_and_restore_errors(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        checkpoints.read_config(str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="has no config.json"):
        checkpoints.read_config(str(tmp_path))
    with pytest.raises(ValueError, match="checkpoint .*ckpt-9' does not exist"):
        checkpoints.restore_model(IDENTITY, str(tmp_path / "ckpt-9"))
