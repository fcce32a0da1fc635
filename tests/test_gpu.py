"""What CPU logical devices cannot show, checked on a GPU: `pytest -m gpu` (skipped without one).

- MirroredStrategy over 2 logical GPUs carved from one equals the whole GPU, for the replica
  cases of test_train_replicas (sync BN + center loss + clipping, float16 with an overflow on
  one replica, dropout, XLA + AdamW + center loss), metrics included;
- float16 loss scaling with real float16 kernels: the overflowing step is skipped everywhere
  and the scale halves;
- XLA on the GPU: the compiled forward/backward gives the uncompiled update;
- mixed-precision softmax and center loss compute in float32 on the GPU; the center loss
  rejects out-of-range labels (a GPU gather silently returns zeros for them);
- input: MirroredStrategy over GPUs delivers each replica's batch on its own GPU (prefetched
  to the device).

TF32 is turned off here (it is on by default from Ampere and rounds float32 matmuls and
convolutions to a 10-bit mantissa): exactness is checked in float32. Run: `python -m pytest -m
gpu -q tests/test_gpu.py` (`bench/gpu.py` runs it and records the outcome).
"""
import os

# This process and the replica subprocesses share the GPU: take memory as needed, not all of it.
os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from tests import replicas  # noqa: E402
from tests.test_train_replicas import (CASES, GLOBAL_BATCH, NUM_CLASSES, STEPS,  # noqa: E402
                                       TOLERANCE, _batches, _case, train_cases)

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not tf.config.list_physical_devices("GPU"),
                       reason="no GPU visible to TensorFlow"),
]


@pytest.fixture(scope="module")
def gpu_runner(tmp_path_factory):
    return replicas.Runner(tmp_path_factory.mktemp("gpu_replicas"), timeout=900, device="gpu")


@pytest.fixture(autouse=True)
def _float32_is_float32():
    previous = tf.config.experimental.tensor_float_32_execution_enabled()
    tf.config.experimental.enable_tensor_float_32_execution(False)
    yield
    tf.config.experimental.enable_tensor_float_32_execution(previous)


@pytest.mark.parametrize("case", list(CASES))
def test_two_logical_gpus_equal_one_gpu(gpu_runner, case):
    one = _case(gpu_runner.run(train_cases, 1), case)
    two = _case(gpu_runner.run(train_cases, 2), case)
    assert one.keys() == two.keys() and any(k.startswith("metric/") for k in one)
    for name, value in one.items():
        assert np.all(np.isfinite(value)) or name.startswith("metric/"), \
            f"{case}: {name} is not finite on one GPU"
        np.testing.assert_allclose(two[name], value, rtol=0, atol=TOLERANCE.get(case, 1e-5),
                                   err_msg=f"{case}: {name} on 2 logical GPUs")


@pytest.mark.parametrize("num_replicas", [1, 2])
def test_float16_overflow_skips_the_step_on_gpus(gpu_runner, num_replicas):
    result = _case(gpu_runner.run(train_cases, num_replicas), "lenet_pp_float16_overflow")
    assert float(result["loss_scale"]) == 2.0 ** 14  # halved once, from 2**15
    assert int(result["iterations"]) == STEPS - 1
    assert all(np.all(np.isfinite(v)) for k, v in result.items() if not k.startswith("metric/"))


def _train_on_gpu(jit_compile, steps):
    import keras

    from tfmodels import data
    from tfmodels.training import TrainConfig
    from tfmodels.training.parts import build_training
    from tfmodels.training.step import TrainStep

    info = data.DatasetInfo(name="test", image_shape=(8, 8, 1), num_classes=NUM_CLASSES,
                            splits={"train": STEPS * GLOBAL_BATCH})
    config = TrainConfig(model_dir="unused", model="resnet20", global_batch_size=GLOBAL_BATCH,
                         train_steps=STEPS, lr_schedule="constant", learning_rate=0.1,
                         label_smoothing=0.0, weight_decay=1e-3, center_loss_weight=0.1,
                         jit_compile=jit_compile)
    keras.utils.set_random_seed(7)
    strategy = tf.distribute.OneDeviceStrategy("/gpu:0")
    resolved = config.resolve(info, 1)
    parts = build_training(resolved, strategy)
    images, labels = _batches("xla")
    dataset = tf.data.Dataset.from_tensor_slices({"image": images, "label": labels})
    iterator = iter(strategy.experimental_distribute_dataset(dataset.batch(GLOBAL_BATCH)))
    step = TrainStep(strategy, parts, iterator, resolved)
    metrics = step.metrics.results(step.loop(tf.constant(steps, tf.int64)), steps * GLOBAL_BATCH)
    return {v.path: v.numpy() for v in parts.model.weights}, metrics


def test_xla_on_gpu_gives_the_uncompiled_update():
    """One step of ResNet-20 (BN, center loss, weight decay): compiled == uncompiled."""
    plain, plain_metrics = _train_on_gpu(jit_compile=False, steps=1)
    compiled, compiled_metrics = _train_on_gpu(jit_compile=True, steps=1)
    for name, value in plain.items():
        np.testing.assert_allclose(compiled[name], value, rtol=0, atol=1e-5, err_msg=name)
    for name, value in plain_metrics.items():
        np.testing.assert_allclose(compiled_metrics[name], value, rtol=1e-5, err_msg=name)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_softmax_computes_in_float32_on_gpu(dtype, rng):
    from tfmodels.layers import Softmax

    logits = rng.standard_normal((256, 1000)).astype(np.float32) * 4
    with tf.device("/gpu:0"):
        x = tf.cast(tf.constant(logits), dtype)
        probs = Softmax(dtype=f"mixed_{dtype}")(x)
    assert probs.dtype == tf.float32 and "GPU" in probs.device
    exact = tf.cast(x, tf.float64).numpy()  # the low-precision inputs, in float64
    exact = np.exp(exact - exact.max(1, keepdims=True))
    exact /= exact.sum(1, keepdims=True)
    np.testing.assert_allclose(probs.numpy(), exact, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(probs.numpy().sum(1), 1.0, atol=1e-5)  # float16 rows: ~1e-3


def test_center_loss_in_float32_and_checked_labels_on_gpu(rng):
    from tfmodels.layers import CenterLoss

    features = rng.standard_normal((64, 2)).astype(np.float32)
    labels = rng.integers(0, 10, 64).astype(np.int32)
    with tf.device("/gpu:0"):
        layer = CenterLoss(num_classes=10, feature_dim=2, alpha=0.5)
        layer.centers.assign(rng.standard_normal((10, 2)).astype(np.float32))
        centers = layer.centers.numpy()
        half = tf.cast(tf.constant(features), tf.float16)
        loss = layer(half, tf.constant(labels), training=True)
        assert loss.dtype == tf.float32
        x = tf.cast(half, tf.float64).numpy()
        np.testing.assert_allclose(loss.numpy(), 0.5 * ((x - centers[labels]) ** 2).sum(1),
                                   rtol=1e-5)
        # The paper's update with the global counts: c_j -= alpha * sum(c_j - x_i) / (1 + n_j).
        expected = centers.astype(np.float64).copy()
        for j in range(10):
            rows = labels == j
            expected[j] -= 0.5 * (centers[j] - x[rows]).sum(0) / (1 + rows.sum())
        np.testing.assert_allclose(layer.centers.numpy(), expected, rtol=1e-5, atol=1e-6)
        with pytest.raises(tf.errors.InvalidArgumentError, match="CenterLoss labels"):
            layer(half, tf.constant(np.full(64, 10, np.int32)), training=False)


@replicas.scenario(1, 2)
def batch_devices(strategy):
    """Where each replica's batch lands with the trainer's input path."""
    from tfmodels import data

    dataset = data.distribute_dataset(strategy, "synthetic:8x8x1:10", "train",
                                      global_batch_size=GLOBAL_BATCH, training=True, seed=0)
    batch = next(iter(dataset))
    devices = [t.device for t in strategy.experimental_local_results(batch["image"])]
    return {"devices": np.array(devices), "workers": np.array(
        list(strategy.extended.worker_devices))}


@pytest.mark.parametrize("num_replicas", [1, 2])
def test_each_replica_gets_its_batch_on_its_gpu(gpu_runner, num_replicas):
    result = gpu_runner.run(batch_devices, num_replicas)
    devices, workers = list(result["devices"]), list(result["workers"])
    assert len(devices) == num_replicas
    for device, worker in zip(devices, workers):
        assert tf.DeviceSpec.from_string(device).device_type == "GPU", devices
        assert tf.DeviceSpec.from_string(device).device_index == \
            tf.DeviceSpec.from_string(worker).device_index, (devices, workers)
