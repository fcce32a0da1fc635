"""Sampled heads on N replicas train exactly as on one device, and Partial FC with r = 1 is the
full softmax, over 30 steps on 1, 2 and 4 replicas (one subprocess per count, tests/replicas.py).
"""
import numpy as np
import pytest

from tests import replicas

GLOBAL_BATCH, STEPS, NUM_CLASSES = 16, 30, 50
# L2 decay in the loss, label smoothing, momentum and an active global-norm clip: each is
# computed over the selected classes by the sampled heads and must still match.
DENSE_RECIPE = dict(model="two_layer_net", weight_decay=1e-3, label_smoothing=0.1,
                    optimizer="momentum", learning_rate=0.1, clip_grad_norm=2.0)
ARCFACE_RECIPE = dict(DENSE_RECIPE, margin="arcface", margin_scale=16.0, label_smoothing=0.0,
                      center_loss_weight=0.05)
CASES = {
    "softmax": dict(DENSE_RECIPE),
    "partial_fc_all_classes": dict(DENSE_RECIPE, head="partial_fc", sample_rate=1.0),
    # AdamW (lazy, decoupled decay on selected classes only) and the center loss.
    "partial_fc_adamw_center": dict(model="two_layer_net", head="partial_fc", sample_rate=0.3,
                                    optimizer="adamw", weight_decay=1e-2, learning_rate=1e-2,
                                    center_loss_weight=0.05),
    # Margin softmax (ArcFace on the dense logits and on Partial FC with r = 1, with a center
    # loss; CosFace on Partial FC).
    "softmax_arcface_center": dict(ARCFACE_RECIPE),
    "partial_fc_arcface_center_all_classes": dict(ARCFACE_RECIPE, head="partial_fc",
                                                  sample_rate=1.0),
    "partial_fc_cosface": dict(model="two_layer_net", head="partial_fc", sample_rate=0.3,
                               margin="cosface", margin_scale=16.0, label_smoothing=0.0,
                               learning_rate=0.1),
    "sampled_softmax_uniform": dict(model="two_layer_net", head="sampled_softmax",
                                    num_sampled=20, sampler="uniform", label_smoothing=0.0,
                                    optimizer="momentum", nesterov=True, learning_rate=0.1),
    # XLA per replica: the head keeps static shapes (M = global batch + K, padded). The nets
    # here have no max pooling: SmallCNN with a sampled head agreed to 6e-8 for 26 steps, then
    # jumped to 2e-4 in a single step (measured), the mark of a discrete switch such as a
    # pooling window whose two largest inputs differ by a rounding error of the batch split.
    "sampled_softmax_log_uniform_xla": dict(model="two_layer_net", head="sampled_softmax",
                                            num_sampled=30, label_smoothing=0.0,
                                            jit_compile=True, learning_rate=0.05),
}


def _batches():
    rng = np.random.default_rng(0)
    images = rng.standard_normal((STEPS * GLOBAL_BATCH, 8, 8, 1)).astype(np.float32)
    labels = rng.integers(0, NUM_CLASSES, STEPS * GLOBAL_BATCH).astype(np.int32)
    labels[:GLOBAL_BATCH // 2] = 7  # one class spread over every replica's rows
    return images, labels


@replicas.scenario(1, 2, 4)
def head_runs(strategy):
    import keras
    import tensorflow as tf

    from tfmodels import data
    from tfmodels.training import TrainConfig
    from tfmodels.training.parts import build_training
    from tfmodels.training.step import TrainStep

    info = data.DatasetInfo(name="test", image_shape=(8, 8, 1), num_classes=NUM_CLASSES,
                            splits={"train": STEPS * GLOBAL_BATCH})
    images, labels = _batches()
    results = {}
    for case, options in CASES.items():
        config = TrainConfig(model_dir="unused", global_batch_size=GLOBAL_BATCH,
                             train_steps=STEPS, lr_schedule="constant", seed=3, **options)
        config.validate()
        keras.utils.set_random_seed(7)
        resolved = config.resolve(info, strategy.num_replicas_in_sync)
        parts = build_training(resolved, strategy)
        start = {v.path: v.numpy() for v in parts.model.trainable_weights}
        dataset = tf.data.Dataset.from_tensor_slices({"image": images, "label": labels})
        iterator = iter(strategy.experimental_distribute_dataset(dataset.batch(GLOBAL_BATCH)))
        step = TrainStep(strategy, parts, iterator, resolved)
        sums = step.loop(tf.constant(STEPS, tf.int64))
        for var in parts.model.weights:
            copies = strategy.experimental_local_results(var.value)
            results[f"{case}|{var.path}"] = copies[0].numpy()
            if var.path in start:
                results[f"{case}|moved {var.path}"] = np.abs(copies[0].numpy()
                                                             - start[var.path]).max()
            # Every replica wrote its own copy of the class matrix: they must agree.
            for copy in copies[1:]:
                np.testing.assert_array_equal(copy.numpy(), copies[0].numpy())
        if parts.center_loss is not None:
            results[f"{case}|centers"] = parts.center_loss.centers.numpy()
        for name, value in step.metrics.results(sums, STEPS * GLOBAL_BATCH).items():
            results[f"{case}|metric_{name}"] = np.float64(value)
        results[f"{case}|iterations"] = parts.optimizer.iterations.numpy()
    return results


def _case(result, case):
    return {k.split("|", 1)[1]: v for k, v in result.items() if k.startswith(case + "|")}


@pytest.mark.parametrize("dense_case, partial_case", [
    ("softmax", "partial_fc_all_classes"),
    ("softmax_arcface_center", "partial_fc_arcface_center_all_classes")])
@pytest.mark.parametrize("num_replicas", [1, 2, 4])
def test_partial_fc_with_every_class_is_the_full_softmax(replica_runner, num_replicas,
                                                         dense_case, partial_case):
    result = replica_runner.run(head_runs, num_replicas)
    dense, partial = _case(result, dense_case), _case(result, partial_case)
    weights = [k for k in dense if "/" in k]
    assert weights and dense.keys() == partial.keys()
    for name in weights:
        np.testing.assert_allclose(partial[name], dense[name], rtol=0, atol=1e-5,
                                   err_msg=f"{name}, {num_replicas} replicas")
    # `loss` adds the regularization: the dense step reports it once, of the weights after the
    # loop; a sampled head's (of its selected columns) is averaged over the steps.
    for name in ("metric_data_loss", "metric_accuracy"):
        np.testing.assert_allclose(partial[name], dense[name], rtol=1e-5, atol=1e-6)
    one = _case(replica_runner.run(head_runs, 1), dense_case)
    moved = max(np.abs(dense[k] - one[k]).max() for k in weights)
    assert moved < 1e-5  # the dense reference itself is replica-exact


@pytest.mark.parametrize("case", [c for c in CASES if c != "softmax"])
@pytest.mark.parametrize("num_replicas", [2, 4])
def test_sampled_heads_on_replicas_equal_one_device(replica_runner, case, num_replicas):
    one = _case(replica_runner.run(head_runs, 1), case)
    many = _case(replica_runner.run(head_runs, num_replicas), case)
    assert one.keys() == many.keys() and int(one["iterations"]) == STEPS
    # A margin scores cosines with the logits kernel: the logits bias is not used.
    unused = "logits/bias" if CASES[case].get("margin") else None
    moved = {k: float(v) for k, v in one.items() if k.startswith("moved ")
             and not (unused and k.endswith(unused))}
    if unused:
        still = [float(v) for k, v in one.items() if k.startswith("moved ")
                 and k.endswith(unused)]
        assert still == [0.0], still
    # Every layer trained (the unused bias aside).
    assert len(moved) >= (3 if unused else 4) and min(moved.values()) > 1e-4, moved
    for name, value in one.items():
        assert np.all(np.isfinite(value)), f"{case}: {name} is not finite"
        np.testing.assert_allclose(many[name], value, rtol=1e-5, atol=1e-5,
                                   err_msg=f"{case}: {name} with {num_replicas} replicas")
