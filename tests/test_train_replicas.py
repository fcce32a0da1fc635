"""N replicas on a split global batch train exactly as one device on the whole batch.

Each case targets traps that silently break this (docs/EXACTNESS.md, and Keras dropout drawing
the same mask on every replica): the loss averaged
over the local instead of the global batch, regularization counted once per replica,
unsynchronised BatchNorm, gradients clipped per replica before the all-reduce, float16 overflow
tested on one replica's local gradients, XLA over several devices, center updates with local
counts. A control case with unsynchronised BatchNorm shows the comparison catches a real
divergence.
"""
import numpy as np
import pytest

from tests import replicas

GLOBAL_BATCH, STEPS, NUM_CLASSES = 16, 4, 10
CASES = {
    # Sync BN, center loss, L2 weight decay in the loss, momentum, an active global-norm clip.
    "resnet20_bn_center_clip": dict(
        model="resnet20", center_loss_weight=0.1, center_alpha=0.5, weight_decay=1e-3,
        clip_grad_norm=0.5, optimizer="momentum", learning_rate=0.1),
    # float16 with loss scaling; step 2 overflows on one replica's examples only.
    "lenet_pp_float16_overflow": dict(
        model="lenet_pp", mixed_precision="float16", optimizer="momentum", learning_rate=0.05),
    # Dropout: every example keeps its mask however the batch is split.
    "lenet_dropout": dict(model="lenet", learning_rate=0.05),
    # XLA per replica, AdamW with decoupled decay, center loss.
    "two_layer_net_xla_adamw_center": dict(
        model="two_layer_net", jit_compile=True, optimizer="adamw", weight_decay=1e-2,
        learning_rate=1e-3, center_loss_weight=0.05),
}
# Control: unsynchronised BN must differ (proves the comparison can fail).
CONTROL = {"resnet20_unsynced_bn": dict(model="resnet20", sync_bn=False, learning_rate=0.1)}
OVERFLOW_STEP, OVERFLOW_ROW = 1, GLOBAL_BATCH - 3  # in the last replica's slice for 2 and 4
# float16 sums each replica's weight gradients over its own slice before the all-reduce, so its
# rounding depends on the split (measured: 2e-5 with 2 replicas). A wrong overflow decision
# shows up as NaN or as a whole step's difference (~1e-2), far above this.
TOLERANCE = {"lenet_pp_float16_overflow": 2e-4}


def _batches(case):
    rng = np.random.default_rng(0)
    images = rng.standard_normal((STEPS * GLOBAL_BATCH, 8, 8, 1)).astype(np.float32)
    labels = rng.integers(0, NUM_CLASSES, STEPS * GLOBAL_BATCH).astype(np.int32)
    if "overflow" in case:
        images[OVERFLOW_STEP * GLOBAL_BATCH + OVERFLOW_ROW] = 1e6  # inf in float16
    return images, labels


@replicas.scenario(1, 2, 4)
def train_cases(strategy):
    return _train(strategy, CASES)


@replicas.scenario(1, 4)
def train_control(strategy):
    return _train(strategy, CONTROL)


def _train(strategy, cases):
    import keras
    import tensorflow as tf

    from tfmodels import data
    from tfmodels.training import TrainConfig
    from tfmodels.training.parts import build_training
    from tfmodels.training.step import TrainStep

    info = data.DatasetInfo(name="test", image_shape=(8, 8, 1), num_classes=NUM_CLASSES,
                            splits={"train": STEPS * GLOBAL_BATCH})
    results = {}
    for case, options in cases.items():
        config = TrainConfig(model_dir="unused", global_batch_size=GLOBAL_BATCH,
                             train_steps=STEPS, lr_schedule="constant",
                             **dict(dict(label_smoothing=0.0, weight_decay=0.0), **options))
        keras.mixed_precision.set_dtype_policy(
            "mixed_float16" if config.mixed_precision == "float16" else "float32")
        keras.utils.set_random_seed(7)
        resolved = config.resolve(info, strategy.num_replicas_in_sync)
        parts = build_training(resolved, strategy)
        images, labels = _batches(case)
        dataset = tf.data.Dataset.from_tensor_slices({"image": images, "label": labels})
        iterator = iter(strategy.experimental_distribute_dataset(dataset.batch(GLOBAL_BATCH)))
        step = TrainStep(strategy, parts, iterator, resolved)
        sums = step.loop(tf.constant(STEPS, tf.int64))
        for name, value in step.metrics.results(sums, STEPS * GLOBAL_BATCH).items():
            results[f"{case}|metric/{name}"] = value
        for var in parts.model.weights:
            results[f"{case}|{var.path}"] = var.numpy()
        if parts.center_loss is not None:
            results[f"{case}|centers"] = parts.center_loss.centers.numpy()
        if parts.loss_scale is not None:
            results[f"{case}|loss_scale"] = parts.loss_scale.scale.numpy()
        results[f"{case}|iterations"] = parts.optimizer.iterations.numpy()
    keras.mixed_precision.set_dtype_policy("float32")
    return results


def _case(result, case):
    return {k.split("|", 1)[1]: v for k, v in result.items() if k.startswith(case + "|")}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("num_replicas", [2, 4])
def test_replicas_equal_one_device(replica_runner, case, num_replicas):
    one = _case(replica_runner.run(train_cases, 1), case)
    many = _case(replica_runner.run(train_cases, num_replicas), case)
    assert one.keys() == many.keys() and len(one) > 3
    assert any(k.startswith("metric/") for k in one)
    for name, value in one.items():
        # The overflow case's loss metric is inf on every replica count (NaN equals NaN here).
        assert np.all(np.isfinite(value)) or name.startswith("metric/"), \
            f"{case}: {name} is not finite on one device"
        np.testing.assert_allclose(many[name], value, rtol=0, atol=TOLERANCE.get(case, 1e-5),
                                   err_msg=f"{case}: {name} with {num_replicas} replicas")
    moved = [k for k in one if "kernel" in k]
    assert moved, f"{case}: no kernels compared"


def test_float16_overflow_on_one_replica_skips_the_step_everywhere(replica_runner):
    for n in (1, 2, 4):
        result = _case(replica_runner.run(train_cases, n), "lenet_pp_float16_overflow")
        assert float(result["loss_scale"]) == 2.0 ** 14  # halved once, from 2**15
        assert int(result["iterations"]) == STEPS - 1  # the optimizer skipped one step


def test_unsynchronised_batch_norm_is_caught(replica_runner):
    """The control: per-replica BN statistics make 4 replicas visibly differ from one."""
    one = _case(replica_runner.run(train_control, 1), "resnet20_unsynced_bn")
    four = _case(replica_runner.run(train_control, 4), "resnet20_unsynced_bn")
    worst = max(np.abs(four[k] - one[k]).max() for k in one)
    assert worst > 1e-3
