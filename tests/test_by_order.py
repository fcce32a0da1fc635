"""Checkpoints whose names carry no net scope (tf.compat.v1.layers: `conv2d_1/kernel`,
`dense/bias`) are paired with a net's layers by type and order, with a readable note."""
import json

import numpy as np
import tensorflow as tf

from tfmodels import nets, porting
from tfmodels.porting import by_order


def write_checkpoint(values, path):
    with tf.Graph().as_default():
        variables = [tf.compat.v1.Variable(v, name=k) for k, v in values.items()]
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.variables_initializer(variables))
            return tf.compat.v1.train.Saver(variables).save(session, path)


def small_cnn_values(rng, model):
    """tf.layers names for SmallCNN's 3 convs and 2 dense layers, plus Adam slots."""
    layers = ["conv2d", "conv2d_1", "conv2d_2", "dense", "dense_1"]
    ours = ["SmallCNN/conv1/conv1_1", "SmallCNN/conv1/conv1_2", "SmallCNN/conv2/conv2_1",
            "SmallCNN/fc3", "SmallCNN/logits"]
    shapes = {v.path: tuple(v.shape) for v in model.weights}
    values = {}
    for layer, path in zip(layers, ours):
        for leaf in ("kernel", "bias"):
            values[f"{layer}/{leaf}"] = rng.normal(size=shapes[f"{path}/{leaf}"]).astype(
                np.float32)
            values[f"{layer}/{leaf}/Adam"] = np.zeros(shapes[f"{path}/{leaf}"], np.float32)
    values["global_step"] = np.int64(7)
    return values, dict(zip(layers, ours))


def test_layers_paired_by_type_and_order(tmp_path, rng):
    model = nets.build_model("small_cnn", 10, (16, 16, 3))
    values, pairs = small_cnn_values(rng, model)
    path = write_checkpoint(values, str(tmp_path / "model.ckpt"))
    mapping = porting.load_checkpoint(model, path)
    weights = {v.path: v.numpy() for v in model.weights}
    for layer, ours in pairs.items():
        for leaf in ("kernel", "bias"):
            np.testing.assert_array_equal(weights[f"{ours}/{leaf}"], values[f"{layer}/{leaf}"])
    assert ("  layers matched by structure and order (the checkpoint's names carry no net "
            "scope: tf.compat.v1.layers style; the k-th layer of a type fills the net's k-th): "
            "conv2d -> SmallCNN/conv1/conv1_1, conv2d_1 -> SmallCNN/conv1/conv1_2, conv2d_2 -> "
            "SmallCNN/conv2/conv2_1, dense -> SmallCNN/fc3, dense_1 -> SmallCNN/logits\n"
            ) in mapping.report()


def test_estimator_outer_scope_then_order(tmp_path, rng):
    """tf.layers inside an Estimator model_fn's `model/` scope, two towers' copies: strip the
    scope, take tower_0's copy, pair by order."""
    model = nets.build_model("small_cnn", 10, (16, 16, 3))
    values, pairs = small_cnn_values(rng, model)
    scoped = {f"tower_{i}/model/{k}": v + i for k, v in values.items() if k != "global_step"
              for i in range(2)}
    path = write_checkpoint(scoped, str(tmp_path / "model.ckpt"))
    mapping = porting.load_checkpoint(model, path, strip_scope="model")
    kernel = {v.path: v for v in model.weights}["SmallCNN/logits/kernel"]
    np.testing.assert_array_equal(kernel.numpy(), values["dense_1/kernel"])
    assert "dense_1 -> SmallCNN/logits" in mapping.report()


def test_counter_order_is_numeric():
    names = [f"conv2d{'' if i == 0 else f'_{i}'}/kernel" for i in range(12)]
    assert by_order.checkpoint_layers(names[::-1])["conv2d"] == [n[:-7] for n in names]
    assert by_order.checkpoint_layers(["LeNet/conv1/weights"]) is None  # slim names


def test_layer_counts_that_differ_are_said(tmp_path, rng):
    model = nets.build_model("small_cnn", 10, (16, 16, 3))
    values, _ = small_cnn_values(rng, model)
    values = {k: v for k, v in values.items() if not k.startswith("conv2d_2/")}
    path = write_checkpoint(values, str(tmp_path / "model.ckpt"))
    mapping = porting.map_checkpoint(model, path)
    assert not mapping.ok and len(mapping.unmatched) == len(model.weights)
    assert ("layers not matched by structure and order: the checkpoint's names carry no net "
            "scope (tf.compat.v1.layers style) but its layers do not pair with the net's by "
            "type: 2 conv2d vs 3 convolution, 2 dense "
            "vs 2 fully connected (checkpoint vs net)") in mapping.report()


def test_train_takes_the_porting_clis_renames(tmp_path, rng):
    """train.py's --init_checkpoint_overrides is the porting CLI's --overrides."""
    from tfmodels.training import TrainConfig, train

    model = nets.build_model("small_cnn", 10, (8, 8, 1))
    values, pairs = small_cnn_values(rng, model)
    renamed = {f"net/{key.replace('/', '.', 1)}": v for key, v in values.items()
               if key != "global_step"}
    path = write_checkpoint(renamed, str(tmp_path / "model.ckpt"))
    overrides = {rf"net/{layer}\.(kernel|bias)": rf"{ours}/\1" for layer, ours in pairs.items()}
    train(TrainConfig(model="small_cnn", dataset="digits", model_dir=str(tmp_path / "run"),
                      init_checkpoint=path, init_checkpoint_overrides=json.dumps(overrides),
                      train_steps=1, learning_rate=1e-12, export=False))
    # A learning rate of 1e-12: one step leaves the first kernel at the checkpoint's value.
    trained = nets.build_model("small_cnn", 10, (8, 8, 1))
    porting.load_checkpoint(trained, str(tmp_path / "run"))
    kernel = {v.path: v for v in trained.weights}["SmallCNN/conv1/conv1_1/kernel"]
    np.testing.assert_allclose(kernel.numpy(), values["conv2d/kernel"], rtol=0, atol=1e-6)
