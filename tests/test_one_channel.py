"""1-channel images into a net pretrained on 3 channels: the first conv's kernel is summed over
its input channels, which equals feeding the grey image tiled to 3 channels to the pretrained
net; and a scope left random by the checkpoint and frozen by the optimizer is refused."""
import os

import numpy as np
import pytest
import tensorflow as tf

from tests import slim_reference
from tfmodels import nets, porting

pytestmark = pytest.mark.filterwarnings("ignore:`(layer.apply|tf.layers.flatten)`:UserWarning")


@pytest.fixture(scope="module")
def rgb_small_cnn(tmp_path_factory):
    """SmallCNN in tf_slim graph ops trained on 3-channel 8x8 images (random weights), saved
    with a Saver; returns (prefix, grey images, slim's logits on the grey images tiled)."""
    rng = np.random.default_rng(21)
    grey = rng.normal(size=(4, 8, 8, 1)).astype(np.float32)
    logits, _, path = slim_reference.save_checkpoint(
        lambda x: slim_reference.small_cnn(x, 10), np.tile(grey, (1, 1, 1, 3)),
        str(tmp_path_factory.mktemp("rgb") / "model.ckpt"))
    return path, grey, logits


def test_first_conv_summed_over_input_channels(rgb_small_cnn):
    path, grey, expected = rgb_small_cnn
    model = nets.build_model("small_cnn", 10, (8, 8, 1))
    mapping = porting.load_checkpoint(model, path)
    (summed,) = [m for m in mapping.matched if m.sum_input_channels]
    assert summed.path == "SmallCNN/conv1/conv1_1/kernel" and summed.shape == (3, 3, 1, 32)
    assert summed.rule == "weights->kernel, summed over 3 input channels (1-channel input)"
    source = tf.train.load_checkpoint(path).get_tensor("SmallCNN/conv1/conv1_1/weights")
    kernel = {v.path: v for v in model.weights}[summed.path].numpy()
    np.testing.assert_allclose(kernel, source.sum(axis=2, keepdims=True), rtol=1e-6, atol=0)
    got = model(grey, training=False)["logits"]
    assert float(np.max(np.abs(got - expected)) / np.max(np.abs(expected))) <= 1e-5


def test_fresh_and_frozen_scope_is_refused(rgb_small_cnn):
    from tfmodels.options import UsageError
    from tfmodels.training import TrainConfig, train

    path, _, _ = rgb_small_cnn
    config = TrainConfig(model="small_cnn", dataset="digits", init_checkpoint=path,
                         model_dir=str(path) + "-never",
                         checkpoint_exclude_scopes=("SmallCNN/logits",),
                         trainable_scopes=("SmallCNN/fc3",), train_steps=2, export=False)
    with pytest.raises(UsageError) as error:
        train(config)
    assert str(error.value) == (
        "--checkpoint_exclude_scopes=SmallCNN/logits leaves SmallCNN/logits/kernel, "
        "SmallCNN/logits/bias at random initial values and --trainable_scopes=SmallCNN/fc3 "
        "freezes them: add their scope to --trainable_scopes or drop it from "
        "--checkpoint_exclude_scopes")
    assert not os.path.exists(config.model_dir)  # refused before anything was written
