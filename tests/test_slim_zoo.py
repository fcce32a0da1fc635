"""tf-slim's model zoo (ResNet v1/v2, MobileNet v1/v2, VGG options) against slim's own TF1 code.

Every comparison loads the weights of slim's graph (random, with random BN moving statistics)
into our net and asserts max |logit diff| / max |logit| <= 1e-5. ResNets and VGG come from
`tf_slim.nets`; tf_slim has no MobileNets, so `tests/slim_reference.py` rebuilds them with
tf_slim ops from models/research/slim's published layer tables, and the variable lists are
pinned to slim's published per-layer parameter table and released checkpoints' names.
Fast checks run at small inputs; default-size (224) ones are marked slow.
"""
import keras
import numpy as np
import pytest
import tensorflow as tf

from tests import slim_reference
from tfmodels import nets
from tfmodels.slim import scopes
from tfmodels.nets import mobilenet_v1, resnet_v1, resnet_v2

pytestmark = pytest.mark.filterwarnings("ignore:`layer.apply`:UserWarning")

TOLERANCE = 1e-5  # max |logit diff| / max |logit|


def _relative_diff(ours, expected):
    return float(np.max(np.abs(np.asarray(ours) - expected)) / np.max(np.abs(expected)))


def _compare(name, build, shape, rng, num_classes=1001, batch=2, **net_kwargs):
    """Runs slim's graph `build`, loads its variables into our net; returns the relative
    logit difference (variables must match one to one, same shapes)."""
    images = rng.normal(size=(batch, *shape)).astype(np.float32)
    expected, values, _ = slim_reference.run_graph(build, images, randomize_moving_stats=rng,
                                                   run_updates=False)
    model = nets.build_model(name, num_classes=num_classes, input_shape=shape, **net_kwargs)
    assert slim_reference.keras_variables(model) == {k: tuple(v.shape)
                                                     for k, v in values.items()}
    slim_reference.load_into(model, values)
    return model, values, _relative_diff(model(images, training=False)["logits"], expected)


def _slim_resnet(name, num_classes, **kwargs):
    fn, arg_scope = (slim_reference.resnet_v1 if "_v1_" in name else slim_reference.resnet_v2)(
        name)

    def build(x):
        with slim_reference.slim().arg_scope(arg_scope()):
            return fn(x, num_classes, is_training=False, **kwargs)[0][:, 0, 0, :]
    return build


# ---------------------------------------------------------------- ResNets


@pytest.mark.parametrize("version", ["v1", "v2"])
@pytest.mark.parametrize("depth", [50, 101, 152, 200])
def test_resnet_blocks_are_slims(version, depth, monkeypatch):
    """Units per block, depths and strides equal those tf_slim's resnet_{v}_{depth} builds
    (read from slim's own function, its generator stubbed out so no graph is built)."""
    from tf_slim.nets import resnet_v1 as slim_v1, resnet_v2 as slim_v2
    slim_module = slim_v1 if version == "v1" else slim_v2
    captured = []
    monkeypatch.setattr(slim_module, f"resnet_{version}",
                        lambda inputs, blocks, *args, **kwargs: captured.append(blocks))
    getattr(slim_module, f"resnet_{version}_{depth}")(None)
    ours_fn = resnet_v1.resnet_v1_block if version == "v1" else resnet_v2.resnet_v2_block
    ours = resnet_v1.blocks_for(depth, ours_fn)
    assert [(b.scope, b.args) for b in ours] == [(b.scope, b.args) for b in captured[0]]


def test_resnet_v2_matches_slim(rng):
    """resnet_v2_50 at 40x40 (odd and even sizes down the strided path): the logits, the
    pooled features and output_stride=8 (atrous, no global pool) equal tf_slim's."""
    shape = (40, 40, 3)
    images = rng.normal(size=(2, *shape)).astype(np.float32)
    fn, arg_scope = slim_reference.resnet_v2("resnet_v2_50")

    def build(x):
        with slim_reference.slim().arg_scope(arg_scope()):
            logits = fn(x, 10, is_training=False)[0][:, 0, 0, :]
            features = tf.compat.v1.get_default_graph().get_tensor_by_name(
                "resnet_v2_50/pool5:0")[:, 0, 0, :]
            dense = fn(x, 10, is_training=False, global_pool=False, output_stride=8,
                       reuse=True)[0]
        return {"logits": logits, "dense": dense, "features": features}

    expected, values, _ = slim_reference.run_graph(build, images, randomize_moving_stats=rng,
                                                   run_updates=False)
    model = nets.build_model("resnet_v2_50", num_classes=10, input_shape=shape)
    assert slim_reference.keras_variables(model) == {k: tuple(v.shape)
                                                     for k, v in values.items()}
    slim_reference.load_into(model, values)
    outputs = model(images, training=False)
    assert _relative_diff(outputs["logits"], expected["logits"]) <= TOLERANCE
    assert _relative_diff(outputs["embedding"], expected["features"]) <= TOLERANCE

    inputs = keras.Input(shape)
    with scopes.arg_scope(resnet_v2.resnet_arg_scope()):
        dense, end_points = resnet_v2.resnet_v2_50(inputs, 10, is_training=False,
                                                   global_pool=False, output_stride=8,
                                                   spatial_squeeze=False)
    assert tuple(dense.shape) == (None, 5, 5, 10) and "global_pool" not in end_points
    dense_model = keras.Model(inputs, dense)
    slim_reference.load_into(dense_model, values)
    assert _relative_diff(dense_model(images), expected["dense"]) <= TOLERANCE


@pytest.mark.parametrize("output_stride, error", [(6, "must be a multiple of 4"),
                                                  (64, "cannot be reached")])
def test_resnet_bad_output_stride_fails_before_building(output_stride, error):
    with pytest.raises(ValueError, match=rf"output_stride={output_stride} {error}"):
        nets.build_model("resnet_v1_50", num_classes=10, input_shape=(32, 32, 3),
                         output_stride=output_stride)


def test_resnet_dense_prediction_needs_spatial_squeeze_off():
    with pytest.raises(ValueError, match=r"spatial_squeeze=True needs 1x1 logits, but "
                                         r"global_pool=False leaves a 2x2 map"):
        nets.build_model("resnet_v1_50", num_classes=10, input_shape=(64, 64, 3),
                         global_pool=False)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["resnet_v1_101", "resnet_v1_152", "resnet_v1_200",
                                  "resnet_v2_101", "resnet_v2_152", "resnet_v2_200"])
def test_deep_resnets_match_slim_at_a_tiny_input(name, rng):
    assert _compare(name, _slim_resnet(name, 10), (8, 8, 3), rng, num_classes=10)[2] <= TOLERANCE


@pytest.mark.slow
@pytest.mark.parametrize("name", [f"resnet_v{version}_{depth}" for version in (1, 2)
                                  for depth in (50, 101, 152, 200)])
def test_resnets_match_slim_at_the_default_size(name, rng):
    assert _compare(name, _slim_resnet(name, 1000), (224, 224, 3), rng, num_classes=1000,
                    batch=1)[2] <= TOLERANCE


# ---------------------------------------------------------------- MobileNets

# slim's mobilenet_v1.py docstring: weights per layer (Conv2D / depthwise kernels) of the
# 1.0 net (3,185,088 in all) and the 0.75 net (1,800,144), Conv2d_0 .. Conv2d_13_pointwise.
PUBLISHED_V1_PARAMS = {
    1.0: [864, 288, 2048, 576, 8192, 1152, 16384, 1152, 32768, 2304, 65536, 2304, 131072,
          4608, 262144, 4608, 262144, 4608, 262144, 4608, 262144, 4608, 262144, 4608, 524288,
          9216, 1048576],
    0.75: [648, 216, 1152, 432, 4608, 864, 9216, 864, 18432, 1728, 36864, 1728, 73728, 3456,
           147456, 3456, 147456, 3456, 147456, 3456, 147456, 3456, 147456, 3456, 294912,
           6912, 589824],
}
# Released checkpoints' variables (slim's mobilenet_v1/v2 downloads, 1001 classes), and
# Keras Applications' parameter totals for the same architectures (+ the 1001st class).
RELEASED_VARIABLES = {
    "mobilenet_v1": {"MobilenetV1/Conv2d_0/weights": (3, 3, 3, 32),
                     "MobilenetV1/Conv2d_0/BatchNorm/gamma": (32,),
                     "MobilenetV1/Conv2d_1_depthwise/depthwise_weights": (3, 3, 32, 1),
                     "MobilenetV1/Conv2d_1_depthwise/BatchNorm/moving_variance": (32,),
                     "MobilenetV1/Conv2d_13_pointwise/weights": (1, 1, 1024, 1024),
                     "MobilenetV1/Logits/Conv2d_1c_1x1/weights": (1, 1, 1024, 1001),
                     "MobilenetV1/Logits/Conv2d_1c_1x1/biases": (1001,)},
    "mobilenet_v2": {"MobilenetV2/Conv/weights": (3, 3, 3, 32),
                     "MobilenetV2/Conv/BatchNorm/beta": (32,),
                     "MobilenetV2/expanded_conv/depthwise/depthwise_weights": (3, 3, 32, 1),
                     "MobilenetV2/expanded_conv/depthwise/BatchNorm/gamma": (32,),
                     "MobilenetV2/expanded_conv/project/weights": (1, 1, 32, 16),
                     "MobilenetV2/expanded_conv_1/expand/weights": (1, 1, 16, 96),
                     "MobilenetV2/expanded_conv_16/project/weights": (1, 1, 960, 320),
                     "MobilenetV2/Conv_1/weights": (1, 1, 320, 1280),
                     "MobilenetV2/Logits/Conv2d_1c_1x1/weights": (1, 1, 1280, 1001)},
    "mobilenet_v2_140": {"MobilenetV2/Conv/weights": (3, 3, 3, 48),
                         "MobilenetV2/expanded_conv/project/weights": (1, 1, 48, 24),
                         "MobilenetV2/Conv_1/weights": (1, 1, 448, 1792),
                         "MobilenetV2/Logits/Conv2d_1c_1x1/weights": (1, 1, 1792, 1001)},
}
# Keras MobileNet(alpha) / MobileNetV2(alpha) with 1000 classes: 4,253,864 (v1 1.0),
# 475,544 (v1 0.25), 3,538,984 (v2 1.0), 6,156,712 (v2 1.4); + last depth + 1 for class 1001.
PARAMETERS = {"mobilenet_v1": 4253864 + 1025, "mobilenet_v1_025": 475544 + 257,
              "mobilenet_v2": 3538984 + 1281, "mobilenet_v2_140": 6156712 + 1793}


def _slim_mobilenet(name):
    multiplier = {"mobilenet_v1": 1.0, "mobilenet_v1_075": 0.75, "mobilenet_v1_050": 0.5,
                  "mobilenet_v1_025": 0.25, "mobilenet_v2": 1.0, "mobilenet_v2_140": 1.4}[name]
    fn = slim_reference.mobilenet_v1 if name.startswith("mobilenet_v1") else (
        slim_reference.mobilenet_v2)
    return lambda x: fn(x, 1001, multiplier)


@pytest.mark.parametrize("name", ["mobilenet_v1", "mobilenet_v2_140"])
def test_mobilenet_matches_slim_layer_tables(name, rng):
    """33x33: odd sizes down the strided 'SAME' path; v1's pool shrinks to the 2x2 map.
    (1.0 and 1.4 run the same code with other depths; all sizes are in the slow test.)"""
    assert _compare(name, _slim_mobilenet(name), (33, 33, 3), rng)[2] <= TOLERANCE


@pytest.mark.parametrize("name", sorted(PARAMETERS))
def test_mobilenet_released_checkpoint_names(name):
    model = nets.build_model(name, num_classes=1001, input_shape=(8, 8, 3))
    names = slim_reference.keras_variables(model)
    for key, shape in RELEASED_VARIABLES.get(name, {}).items():
        assert names[key] == shape, key
    assert model.count_params() == PARAMETERS[name]


@pytest.mark.parametrize("multiplier, name", [(1.0, "mobilenet_v1"), (0.75, "mobilenet_v1_075")])
def test_mobilenet_v1_kernels_match_published_table(multiplier, name):
    model = nets.build_model(name, num_classes=1001, input_shape=(8, 8, 3))
    kernels = [v for v in model.weights if v.path.endswith("kernel")][:-1]  # not the logits
    assert [int(np.prod(v.shape)) for v in kernels] == PUBLISHED_V1_PARAMS[multiplier]
    assert [v.path.split("/")[1] for v in kernels] == ["Conv2d_0"] + [
        f"Conv2d_{i}_{kind}" for i in range(1, 14) for kind in ("depthwise", "pointwise")]


def test_mobilenet_v1_pool_and_limits():
    """The 7x7 VALID head takes up to 256 pixels (an 8x8 map); global_pool any size."""
    spec = nets.get_net("mobilenet_v1")
    assert spec.image_size_limits() == (1, 256)
    assert spec.image_size_limits(global_pool=True) == (1, None)
    with pytest.raises(ValueError, match=r"mobilenet_v1 needs height and width in \[1, 256\]"):
        nets.build_model("mobilenet_v1", num_classes=5, input_shape=(257, 257, 3))
    model = nets.build_model("mobilenet_v1", num_classes=5, input_shape=(300, 300, 3),
                             global_pool=True)
    assert model.output["logits"].shape == (None, 5)
    with pytest.raises(ValueError, match=r"depth_multiplier=0 must be > 0"):
        nets.build_model("mobilenet_v1", num_classes=5, input_shape=(32, 32, 3),
                         depth_multiplier=0)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mobilenet_v1", "mobilenet_v1_075", "mobilenet_v1_050",
                                  "mobilenet_v1_025", "mobilenet_v2", "mobilenet_v2_140"])
def test_mobilenet_matches_slim_at_the_default_size(name, rng):
    assert _compare(name, _slim_mobilenet(name), (224, 224, 3), rng)[2] <= TOLERANCE


# ---------------------------------------------------------------- VGG


def _slim_vgg(name, num_classes=1000):
    fn, arg_scope = slim_reference.vgg(name)

    def build(x):
        with slim_reference.slim().arg_scope(arg_scope()):
            return fn(x, num_classes, is_training=False)[0]
    return build


def test_vgg_a_matches_slim(rng):
    assert _compare("vgg_a", _slim_vgg("vgg_a", 10), (224, 224, 3), rng, num_classes=10,
                    batch=1)[2] <= TOLERANCE


def test_vgg_options(rng):
    """global_pool: fc8 on fc7 averaged over H, W (any size from 224); fc_conv_padding='SAME'
    from 32 pixels; num_classes=0: fc7's features."""
    spec = nets.get_net("vgg_16")
    assert spec.image_size_limits(global_pool=True) == (224, None)
    assert spec.image_size_limits(fc_conv_padding="SAME") == (32, 63)
    inputs = keras.Input((64, 64, 3))
    with scopes.arg_scope(nets.vgg.vgg_arg_scope()):
        features, end_points = nets.vgg.vgg_a(inputs, 0, fc_conv_padding="SAME",
                                              is_training=False)
        logits, pooled = nets.vgg.vgg_a(inputs, 7, fc_conv_padding="SAME", global_pool=True,
                                        is_training=False, scope="pooled")
    assert tuple(features.shape) == (None, 2, 2, 4096) and "vgg_a/fc8" not in end_points
    model = keras.Model(inputs, [pooled["pooled/fc7"], logits])
    images = rng.normal(size=(2, 64, 64, 3)).astype(np.float32)
    fc7, logits = model(images)
    fc8 = [v for v in model.weights if v.path.startswith("pooled/fc8")]
    kernel, bias = (np.asarray(v) for v in sorted(fc8, key=lambda v: v.path, reverse=True))
    expected = np.asarray(fc7).mean(axis=(1, 2)) @ kernel[0, 0] + bias
    np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())


@pytest.mark.slow
@pytest.mark.parametrize("name, size", [("vgg_16", 224), ("vgg_19", 224), ("vgg_a", 255)])
def test_vgg_matches_slim_at_full_size(name, size, rng):
    assert _compare(name, _slim_vgg(name), (size, size, 3), rng, num_classes=1000,
                    batch=1)[2] <= TOLERANCE


# ---------------------------------------------------------------- depthwise builder


@pytest.mark.parametrize("multiplier, stride, rate, padding", [(1, 2, 1, "SAME"),
                                                               (2, 1, 2, "SAME"),
                                                               (3, 2, 1, "VALID")])
def test_depthwise_conv2d_is_slims_separable_conv2d_without_pointwise(multiplier, stride, rate,
                                                                      padding, rng):
    images = rng.normal(size=(2, 9, 10, 4)).astype(np.float32)
    s = slim_reference.slim()

    def build(x):
        return s.separable_conv2d(x, None, [3, 3], depth_multiplier=multiplier, stride=stride,
                                  rate=rate, padding=padding, activation_fn=tf.nn.relu6,
                                  scope="dw")
    expected, values, _ = slim_reference.run_graph(build, images)
    inputs = keras.Input((9, 10, 4))
    with keras.name_scope("net"):
        outputs = scopes.depthwise_conv2d(inputs, [3, 3], depth_multiplier=multiplier,
                                          stride=stride, rate=rate, padding=padding,
                                          activation_fn=tf.nn.relu6, scope="dw")
    model = keras.Model(inputs, outputs)
    assert {v.path: tuple(v.shape) for v in model.weights} == {
        "net/dw/depthwise_kernel": (3, 3, 4, multiplier), "net/dw/bias": (4 * multiplier,)}
    slim_reference.load_into(model, {f"net/{k}": v for k, v in values.items()})
    np.testing.assert_allclose(model(images), expected, rtol=1e-5, atol=1e-6)


def test_mobilenet_checkpoint_ports_by_name(tmp_path, rng):
    """A TF1 MobileNet checkpoint (`Saver`) loads through the porting library: every
    `depthwise_weights` lands on a `depthwise_kernel`, and the logits are slim's."""
    from tfmodels import porting
    images = rng.normal(size=(2, 16, 16, 3)).astype(np.float32)
    expected, _, path = slim_reference.save_checkpoint(
        _slim_mobilenet("mobilenet_v1_025"), images, str(tmp_path / "model.ckpt"),
        randomize_moving_stats=rng)
    model = nets.build_model("mobilenet_v1_025", num_classes=1001, input_shape=(16, 16, 3))
    porting.load_checkpoint(model, path)
    assert _relative_diff(model(images, training=False)["logits"], expected) <= TOLERANCE


def test_mobilenet_keras_file_roundtrip(tmp_path, rng):
    """The trainer exports `.keras` files: the depthwise layers (with their BN) must reload."""
    model = nets.build_model("mobilenet_v1_025", num_classes=5, input_shape=(16, 16, 3))
    images = rng.normal(size=(2, 16, 16, 3)).astype(np.float32)
    model.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras")
    np.testing.assert_array_equal(loaded(images, training=False)["logits"],
                                  model(images, training=False)["logits"])
