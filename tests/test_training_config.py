"""TrainConfig validation (before any work) and resolution against a dataset."""
import dataclasses
import json
import math
import os

import pytest

from tfmodels import data
from tfmodels.training import DEFAULT_EPOCHS, TrainConfig

INFO = data.DatasetInfo(name="toy", image_shape=(8, 8, 1), num_classes=10,
                        splits={"train": 1000, "test": 100})


def config(**kwargs):
    values = dict(model_dir="/tmp/unused", train_steps=10)
    values.update(kwargs)
    return TrainConfig(**values)


@pytest.mark.parametrize("kwargs, match", [
    (dict(model="alexnet"), "model='alexnet' is not one of: alexnet_v2, cifarnet, inception_v1"),
    (dict(optimizer="rmsprop"), "optimizer='rmsprop' is not one of: sgd, momentum"),
    (dict(loss="l2"), "loss='l2' is not one of"),
    (dict(mixed_precision="fp8"), "mixed_precision='fp8'"),
    (dict(global_batch_size=0), "global_batch_size=0 must be a positive int"),
    (dict(steps_per_loop=-1), "steps_per_loop=-1"),
    (dict(epochs=3.0), "at most one of train_steps=10 and epochs=3.0"),
    (dict(train_steps=None, epochs=0.0), "epochs=0.0 must be > 0"),
    (dict(train_steps=0), "train_steps=0 must be a positive int"),
    (dict(center_alpha=1.5), r"center_alpha=1.5 must be in \[0.0, 1.0\]"),
    (dict(center_loss_weight=-0.1), "center_loss_weight=-0.1 must be >= 0"),
    (dict(clip_grad_norm=0.0), "clip_grad_norm=0.0 must be > 0"),
    (dict(loss="hinge", label_smoothing=0.1), "applies to loss='cross_entropy' only"),
    (dict(strategy="one_device", virtual_devices=2), "virtual_devices=2 with strategy='one_dev"),
    (dict(checkpoint_exclude_scopes=("LeNet/fc4",)), "init_checkpoint, which is not set"),
    (dict(init_checkpoint_overrides='{"a": "b"}'), "init_checkpoint, which is not set"),
    (dict(init_checkpoint="x", init_checkpoint_overrides="{bad"),
     r"init_checkpoint_overrides='\{bad': not valid JSON"),
    (dict(lr_schedule="piecewise"), "needs lr_boundaries"),
    (dict(model_dir=""), "model_dir='' must name a directory"),
    (dict(virtual_devices=0), "virtual_devices=0 must be a positive int"),
])
def test_validate_names_the_option(kwargs, match):
    with pytest.raises(ValueError, match=match):
        config(**kwargs).validate()


NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize("kwargs, match", [
    (dict(learning_rate=INF), "learning_rate=inf must be a finite number"),
    (dict(learning_rate=1e39), r"learning_rate=1e\+39 overflows float32"),
    (dict(learning_rate=-1e39), r"learning_rate=-1e\+39 overflows float32"),
    (dict(learning_rate=1e-50), "learning_rate=1e-50 is 0 in float32"),
    (dict(learning_rate=NAN), "learning_rate=nan must be a finite number"),
    (dict(center_loss_weight=NAN), "center_loss_weight=nan must be a finite number"),
    (dict(center_loss_weight=INF), "center_loss_weight=inf must be a finite number"),
    (dict(weight_decay=NAN), "weight_decay=nan must be a finite number"),
    (dict(weight_decay=1e40), "weight_decay=1e\\+40 overflows float32"),
    (dict(lr_decay_factor=NAN), "lr_decay_factor=nan must be a finite number"),
    (dict(ema_decay=NAN), "ema_decay=nan must be a finite number"),
    (dict(momentum=INF), "momentum=inf must be a finite number"),
    (dict(clip_grad_norm=INF), "clip_grad_norm=inf must be a finite number"),
    (dict(train_steps=None, epochs=INF), "epochs=inf must be a finite number"),
    (dict(label_smoothing="0.1"), "label_smoothing='0.1' must be a number"),
])
def test_rates_decays_and_loss_weights_are_finite_in_float32(kwargs, match):
    """What is NaN, infinite, or overflows float32 (the dtype the graph uses) is refused, so
    it can neither train nor reach config.json (strict JSON)."""
    with pytest.raises(ValueError, match=match):
        config(**kwargs).validate()


def test_largest_float32_values_are_accepted():
    config(learning_rate=3.4e38, weight_decay=1e-45, center_loss_weight=3.4e38).validate()


def test_resolve_epochs_replicas_and_batch():
    resolved = config(train_steps=None, epochs=2.5, global_batch_size=64).resolve(INFO, 4)
    assert resolved.steps_per_epoch == 1000 // 64
    assert resolved.total_steps == 38  # ceil(2.5 * 15)
    assert resolved.per_replica_batch_size == 16 and resolved.num_replicas == 4
    assert resolved.num_classes == 10 and resolved.image_shape == (8, 8, 1)
    saved = resolved.to_json()
    assert set(f.name for f in dataclasses.fields(TrainConfig)) <= set(saved)
    assert saved["image_shape"] == [8, 8, 1] and saved["total_steps"] == 38
    assert json.loads(json.dumps(saved)) == saved  # plain JSON


def test_defaults_are_the_command_line_recipe():
    """TrainConfig() is what `python train.py` runs: its length and model_dir resolve the same."""
    resolved = TrainConfig().resolve(INFO, 1)
    assert resolved.config.model_dir == os.path.join("runs", "small_cnn-digits")
    assert resolved.config.epochs == DEFAULT_EPOCHS
    assert resolved.total_steps == math.ceil(DEFAULT_EPOCHS * (1000 // 64))
    named = TrainConfig(model="lenet", dataset="tfds:svhn_cropped").resolve(INFO, 1)
    assert named.config.model_dir == os.path.join("runs", "lenet-tfds_svhn_cropped")


def test_resolve_rejects_uneven_and_oversized_batches():
    with pytest.raises(ValueError, match="global_batch_size=64 is not divisible by the 3 "
                                         "replicas; use a multiple of 3"):
        config(global_batch_size=64).resolve(INFO, 3)
    with pytest.raises(ValueError, match="global_batch_size=2048 is larger than split 'train'"):
        config(global_batch_size=2048).resolve(INFO, 1)
    with pytest.raises(ValueError, match=r"warmup_steps=20 must be in \[0, 10\]"):
        config(warmup_steps=20).resolve(INFO, 1)


def test_weight_decay_type():
    assert config(optimizer="adamw").decoupled_weight_decay
    assert not config(optimizer="momentum").decoupled_weight_decay
    assert config(optimizer="momentum", weight_decay_type="decoupled").decoupled_weight_decay
