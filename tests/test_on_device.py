"""Training data placed on the devices (tfmodels/data/pipelines/on_device.py): the batches the
host pipeline makes, bitwise, on 1 and 2 replicas; resume (also across placements); the choice
and its log line; the run's results unchanged by the placement."""
import os
import tempfile

import numpy as np
import pytest
import tensorflow as tf
from absl import logging

from tests import replicas
from tfmodels import data
from tfmodels.data import pipeline
from tfmodels.data.pipelines import on_device

TRAIN = dict(global_batch_size=48, training=True, augment=True, seed=5, deterministic=True)
STEPS = 32  # digits: 1,438 // 48 = 29 steps an epoch, so the draws cross into a new epoch


def _drawer(strategy):
    @tf.function
    def draw(iterator):
        batch = next(iterator)
        return [strategy.experimental_local_results(batch[k]) for k in ("image", "label")]

    def global_batch(iterator):
        return [np.concatenate([t.numpy() for t in parts]) for parts in draw(iterator)]
    return global_batch


@replicas.scenario(1, 2)
def host_and_device_batches(strategy):
    def make(placement):
        return iter(data.distribute_dataset(strategy, "digits", "train", input_placement=placement,
                                            **TRAIN))

    draw = _drawer(strategy)
    host, device = make("host"), make("device")
    host_stream = [draw(host) for _ in range(STEPS)]
    device_stream = [draw(device) for _ in range(STEPS)]
    folder = tempfile.mkdtemp()
    device_ckpt = tf.train.Checkpoint(iterator=device).write(os.path.join(folder, "device"))
    host_ckpt = tf.train.Checkpoint(iterator=host).write(os.path.join(folder, "host"))
    # Restored after its function was traced (the position is read in the graph).
    resumed = make("device")
    draw(resumed)
    tf.train.Checkpoint(iterator=resumed).read(device_ckpt).assert_consumed()
    across = make("device")  # a host iterator's checkpoint continues on the device
    tf.train.Checkpoint(iterator=across).read(host_ckpt).assert_consumed()
    after = [draw(host) for _ in range(2)]
    return {"host_images": np.stack([s[0] for s in host_stream]),
            "host_labels": np.stack([s[1] for s in host_stream]),
            "device_images": np.stack([s[0] for s in device_stream]),
            "device_labels": np.stack([s[1] for s in device_stream]),
            "after_images": np.stack([s[0] for s in after]),
            "resumed_images": np.stack([draw(resumed)[0] for _ in range(2)]),
            "across_images": np.stack([draw(across)[0] for _ in range(2)]),
            "placed_on": np.array(type(device).__name__)}


@pytest.mark.parametrize("num_replicas", [1, 2])
def test_device_batches_are_the_host_pipelines_and_resume(replica_runner, num_replicas):
    out = replica_runner.run(host_and_device_batches, num_replicas)
    assert str(out["placed_on"]) == "DeviceIterator"
    # The one-device reference: the tf.data pipeline without a strategy.
    reference = [{k: v.numpy() for k, v in b.items()} for b in
                 data.make_dataset("digits", "train", **TRAIN).take(STEPS)]
    np.testing.assert_array_equal(out["host_images"], np.stack([b["image"] for b in reference]))
    np.testing.assert_array_equal(out["device_images"], out["host_images"])
    np.testing.assert_array_equal(out["device_labels"], out["host_labels"])
    np.testing.assert_array_equal(out["resumed_images"], out["after_images"])
    np.testing.assert_array_equal(out["across_images"], out["after_images"])


@replicas.scenario(1, 2)
def device_training(strategy):
    from tfmodels.training import TrainConfig, train

    metrics = train(TrainConfig(model_dir=tempfile.mkdtemp(), model="two_layer_net",
                                train_steps=8, steps_per_loop=4, export=False,
                                input_placement="device"), strategy=strategy)
    return {k: np.array(metrics[k]) for k in ("train_loss", "test_loss", "test_accuracy")}


def test_training_on_device_with_two_replicas_equals_one(replica_runner):
    one, two = (replica_runner.run(device_training, n) for n in (1, 2))
    for key in one:  # replicas sum the same gradients in another order: rounding only
        np.testing.assert_allclose(two[key], one[key], rtol=1e-5, err_msg=key)


def test_synthetic_batch_on_device_is_the_host_batch():
    strategy = tf.distribute.get_strategy()
    kwargs = dict(global_batch_size=16, training=True, seed=3)
    host = next(iter(data.distribute_dataset(strategy, "synthetic:8x8x3:5", "train", **kwargs)))
    device = iter(data.distribute_dataset(strategy, "synthetic:8x8x3:5", "train",
                                          input_placement="device", **kwargs))
    for _ in range(2):
        batch = next(device)
        np.testing.assert_array_equal(batch["image"].numpy(), host["image"].numpy())
        np.testing.assert_array_equal(batch["label"].numpy(), host["label"].numpy())
    assert device.position == 2


def _spec(name="digits", **kwargs):
    args = dict(global_batch_size=48, training=True, seed=0, deterministic=False, start_step=0,
                data_dir=None, augment=True, in_memory=None, num_replicas=1)
    return pipeline._validate(name, "train", **(args | kwargs))


def test_choice_is_logged_with_the_bytes_per_replica(monkeypatch):
    lines = []
    monkeypatch.setattr(logging, "info", lambda fmt, *args: lines.append(fmt % args))
    strategy = tf.distribute.get_strategy()
    pixels, labels = data.load_arrays(data.get_dataset_info("digits"), "train")
    size = pixels.nbytes + labels.nbytes  # uint8 pixels + int32 labels: 1,438 * (64 + 4)
    assert on_device.device_bytes(_spec()) == size == 1438 * 68
    assert on_device.choose_placement(_spec(), strategy, "auto") == "host"  # CPU replicas
    assert "the replicas are CPUs" in lines[-1]
    monkeypatch.setattr(on_device, "_on_accelerators", lambda strategy: True)
    assert on_device.choose_placement(_spec(), strategy, "auto") == "device"
    assert lines[-1] == (f"input      device: digits train, {size:,} bytes per replica x 1 "
                         "replica(s)")
    assert on_device.choose_placement(_spec(), strategy, "host") == "host"
    # A per-example preprocessing stays on the host unless asked; device forces it.
    lenet = _spec(preprocessing_name="lenet")
    assert on_device.choose_placement(lenet, strategy, "auto") == "host"
    assert "preprocessing 'lenet'" in lines[-1]
    assert on_device.choose_placement(lenet, strategy, "device") == "device"
    monkeypatch.setattr(on_device, "DEVICE_LIMIT_BYTES", size - 1)
    assert on_device.choose_placement(_spec(), strategy, "auto") == "host"
    assert lines[-1] == (f"input      host: digits train: {size:,} bytes per replica is over the "
                         f"device limit of {size - 1:,}")
    assert on_device.choose_placement(_spec(), strategy, "device") == "device"
    data_ = data.distribute_dataset(strategy, "digits", "train", input_placement="device",
                                    global_batch_size=48, training=True, seed=0)
    assert data_.bytes_per_replica == size and data_.steps == 1438 // 48


def test_bad_placements_name_the_option():
    from tfmodels.training import TrainConfig

    with pytest.raises(ValueError, match="--input_placement=gpu is not one of: auto, device, host"):
        TrainConfig(input_placement="gpu").validate()
    with pytest.raises(ValueError, match="input_placement='gpu' must be None or one of"):
        data.distribute_dataset(tf.distribute.get_strategy(), "digits", "train",
                                global_batch_size=48, training=True, input_placement="gpu")
    varying = data.DatasetInfo(name="tfds:flowers", image_shape=(None, None, 3), num_classes=5,
                               splits={"train": 100})
    with pytest.raises(ValueError, match=r"input_placement=device: .*vary in size"):
        on_device.check_placeable(varying, "train")
    big = data.DatasetInfo(name="tfds:big", image_shape=(256, 256, 3), num_classes=5,
                           splits={"train": 10**5})  # 19.7 GB: streamed
    with pytest.raises(ValueError, match=r"input_placement=device: .*streamed"):
        on_device.check_placeable(big, "train")


def test_training_results_do_not_depend_on_the_placement(tmp_path):
    from tfmodels.training import TrainConfig, train

    results = {}
    for placement in ("host", "device"):
        results[placement] = train(TrainConfig(
            model_dir=str(tmp_path / placement), model="two_layer_net", train_steps=12,
            steps_per_loop=4, checkpoint_every=12, export=False, deterministic=True,
            input_placement=placement))
    for key in ("train_loss", "train_accuracy", "test_loss", "test_accuracy"):
        np.testing.assert_allclose(results["device"][key], results["host"][key], rtol=1e-6,
                                   err_msg=key)
