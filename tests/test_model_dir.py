"""The model-directory format: atomic JSON, the typed record, compatibility checks, restore
errors."""
import json
import os

import pytest
import tensorflow as tf

from tfmodels import model_dir as model_dir_lib


def test_write_json_atomic_never_leaves_a_half_file(tmp_path):
    path = tmp_path / "config.json"
    model_dir_lib.write_json_atomic(path, {"a": 1})
    with pytest.raises(TypeError):
        model_dir_lib.write_json_atomic(path, {"a": object()})  # fails half-way through dump
    assert json.loads(path.read_text()) == {"a": 1}
    assert os.listdir(tmp_path) == ["config.json"]  # no temporary file left behind


def _write_checkpoint(model_dir, step=3):
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(v=tf.Variable(1.0)), model_dir, 1)
    return manager.save(checkpoint_number=step)


IDENTITY = {"model": "lenet", "num_classes": 10, "image_shape": [8, 8, 1], "center_loss": False,
            "optimizer": "momentum", "ema_decay_enabled": False, "loss_scaling": False,
            "trainable_scopes": []}


def test_check_model_dir(tmp_path):
    assert model_dir_lib.check_model_dir(str(tmp_path / "new"), IDENTITY) is None
    path = _write_checkpoint(str(tmp_path))
    with pytest.raises(ValueError, match="holds checkpoint ckpt-3 but no config.json"):
        model_dir_lib.check_model_dir(str(tmp_path), IDENTITY)
    model_dir_lib.write_json_atomic(tmp_path / "config.json", dict(IDENTITY, learning_rate=0.1))
    assert model_dir_lib.check_model_dir(str(tmp_path), dict(IDENTITY, learning_rate=1.0)) == path
    with pytest.raises(ValueError, match="model: checkpoint has 'lenet', this run 'cifarnet'; "
                                         "num_classes: checkpoint has 10, this run 100"):
        model_dir_lib.check_model_dir(str(tmp_path),
                                      dict(IDENTITY, model="cifarnet", num_classes=100))


def test_record_reads_what_config_json_says(tmp_path):
    record = model_dir_lib.ModelRecord.from_json(
        dict(IDENTITY, center_loss=True, center_alpha=0.3, ema_decay=0.99, dataset="digits",
             total_steps=30, learning_rate=0.1))
    assert (record.model, record.num_classes, record.image_shape) == ("lenet", 10, (8, 8, 1))
    assert record.center_loss and record.center_alpha == 0.3 and record.total_steps == 30
    assert record.ema_decay == 0.0 and not record.has_weight_average  # ema_decay_enabled False
    averaged = model_dir_lib.ModelRecord.from_json(dict(IDENTITY, ema_decay_enabled=True,
                                                        ema_decay=0.99))
    assert averaged.has_weight_average and averaged.ema_decay == 0.99
    with pytest.raises(ValueError, match=r"lacks \['num_classes', 'image_shape'\]"):
        model_dir_lib.ModelRecord.from_json({"model": "lenet"})


def test_read_config_and_restore_errors(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        model_dir_lib.read_config(str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="has no config.json"):
        model_dir_lib.read_config(str(tmp_path))
    with pytest.raises(ValueError, match="checkpoint .*ckpt-9' does not exist"):
        model_dir_lib.restore_model(model_dir_lib.ModelRecord.from_json(IDENTITY),
                                    str(tmp_path / "ckpt-9"))
