"""TrainConfig validation (before any work) and resolution against a dataset."""
import dataclasses
import json
import math
import os

import pytest

from tfmodels import data
from tfmodels.options import UsageError
from tfmodels.training import DEFAULT_EPOCHS, TrainConfig

INFO = data.DatasetInfo(name="toy", image_shape=(8, 8, 1), num_classes=10,
                        splits={"train": 1000, "test": 100})


def config(**kwargs):
    values = dict(model_dir="/tmp/unused", train_steps=10)
    values.update(kwargs)
    return TrainConfig(**values)


@pytest.mark.parametrize("kwargs, match", [
    (dict(model="alexnet"), "--model=alexnet is not one of: alexnet_v2, cifarnet, inception_v1"),
    (dict(optimizer="rmsprop"), "--optimizer=rmsprop is not one of: sgd, momentum"),
    (dict(loss="l2"), "--loss=l2 is not one of"),
    (dict(mixed_precision="fp8"), "--mixed_precision=fp8"),
    (dict(global_batch_size=0), "--batch_size=0 must be an int >= 1"),
    (dict(global_batch_size=True), "--batch_size=True must be an int >= 1"),
    (dict(steps_per_loop=-1), "--steps_per_loop=-1"),
    (dict(epochs=3.0), "at most one of --train_steps=10 and --epochs=3"),
    (dict(train_steps=None, epochs=0.0), "--epochs=0 must be > 0"),
    (dict(train_steps=0), "--train_steps=0 must be an int >= 1"),
    (dict(train_steps=2**63), r"--train_steps=9223372036854775808 must be an int <= 2\*\*63 - 1"),
    (dict(seed=-1), r"--seed=-1 must be an int in \[0, 4294967295\]"),
    (dict(seed=2**32), r"--seed=4294967296 must be an int in \[0, 4294967295\]"),
    (dict(seed=1e23), r"--seed=1e\+23 must be an int"),
    (dict(center_alpha=1.5), r"--center_alpha=1.5 must be in \[0.0, 1.0\]"),
    (dict(center_loss_weight=-0.1), "--center_loss_weight=-0.1 must be >= 0"),
    (dict(clip_grad_norm=0.0), "--clip_grad_norm=0 must be > 0"),
    (dict(loss="hinge", label_smoothing=0.1), "applies to --loss=cross_entropy only"),
    (dict(strategy="one_device", virtual_devices=2),
     "--virtual_devices=2 with --strategy=one_device"),
    (dict(checkpoint_exclude_scopes=("LeNet/fc4",)), "--init_checkpoint, which is not set"),
    (dict(init_checkpoint_overrides='{"a": "b"}'), "--init_checkpoint, which is not set"),
    (dict(init_checkpoint="x", init_checkpoint_overrides="{bad"),
     r"--init_checkpoint_overrides=\{bad: not valid JSON"),
    (dict(lr_schedule="piecewise"), "needs --lr_boundaries"),
    (dict(model_dir=""), "--model_dir='' must name a directory"),
    (dict(model_dir="a" * 5000), "--model_dir=a{40}... is 5000 bytes long"),
    (dict(data_dir="d/" + "b" * 300), "--data_dir=d/b{38}... is 302 bytes long, with a name of "
     "300; this system takes at most 255 bytes per name"),
    (dict(virtual_devices=0), r"--virtual_devices=0 must be an int in \[1, 1024\]"),
    (dict(preprocessing="caffe"), "--preprocessing=caffe is not one of: cifarnet, inception"),
    (dict(image_size=(0, 3)), "image_size=.* must be None, a positive int or"),
])
def test_validate_names_the_option(kwargs, match):
    with pytest.raises(UsageError, match=match):
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
    with pytest.raises(UsageError, match=match):
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
    with pytest.raises(UsageError, match="--batch_size=64 is not divisible by the 3 "
                                         "replicas; use a multiple of 3"):
        config(global_batch_size=64).resolve(INFO, 3)
    with pytest.raises(ValueError, match="--batch_size=2048 is larger than split 'train'"):
        config(global_batch_size=2048).resolve(INFO, 1)
    with pytest.raises(UsageError, match=r"--warmup_steps=20 must be in \[0, 10\]"):
        config(warmup_steps=20).resolve(INFO, 1)


def test_resolve_refuses_runs_beyond_int64_steps():
    """epochs * steps per epoch (here 15) must fit the int64 step counter."""
    limit = (2**63 - 1) // 15
    assert config(train_steps=None, epochs=float(limit // 2)).resolve(INFO, 1).total_steps \
        == math.ceil(float(limit // 2) * 15)
    with pytest.raises(UsageError, match=r"--epochs=1e\+30 is 1.5e\+31 steps of 15 per epoch, "
                                         r"more than a step counter holds \(2\*\*63 - 1\)"):
        config(train_steps=None, epochs=1e30).resolve(INFO, 1)


def test_resolve_refuses_a_batch_larger_than_the_memory():
    """64 images of 100000x100000x1 float32: 64 * 1e10 * 4 bytes = 2384 GiB."""
    memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    assert 64 * 1e10 * 4 > memory  # the machine this runs on has less
    with pytest.raises(UsageError, match=r"--image_size: a batch of 64 images of "
                                         r"100000x100000x1 float32 values takes 2.38e\+03 GiB, "
                                         r"more than this machine's [\d.]+ GiB of memory"):
        config(image_size=100000, model="small_cnn").resolve(INFO, 1)


def test_weight_decay_type():
    assert config(optimizer="adamw").decoupled_weight_decay
    assert not config(optimizer="momentum").decoupled_weight_decay
    assert config(optimizer="momentum", weight_decay_type="decoupled").decoupled_weight_decay
