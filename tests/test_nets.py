"""The nets registry and every registered net: variable paths and shapes (against tf-slim's own
graphs where slim has the net), parameter counts against published figures, end points,
gradients, input sizes, mixed precision, and forward passes equal to slim's on the same weights.

Each net is built once per module (the `built` fixture) at its reference size.
"""
import dataclasses
import functools
import gc

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests import slim_reference
from tfmodels import nets
from tfmodels.slim import scopes
from tfmodels.slim import layers as slim_layers

pytestmark = pytest.mark.filterwarnings("ignore:`(layer.apply|tf.layers.flatten)`:UserWarning")

WEIGHT_DECAY = 1e-3
SMALL_NETS = ["softmax_regression", "two_layer_net", "ufldl_cnn", "small_cnn", "lenet",
              "lenet_pp", "cifarnet", "resnet20", "vit_tiny"]

# name: (input shape, num_classes, embedding size, (total, trainable) parameters).
# vgg / resnet_v1 with 1000 classes: tf-slim's graph counts (vgg_16 138,357,544; resnet_v1_50
# 25,610,152 with BN moving statistics, 25,557,032 trainable; the trainable counts equal
# torchvision's vgg11/16/19 and resnet50/101). resnet_v1's variables do not depend on the image
# size, so it is built at 32x32. CIFAR ResNets: the paper's 0.27M / 0.85M (269,722 / 853,018
# trainable, option A shortcuts, 10 classes). Small nets: closed forms in the comments.
REFERENCE = {
    "softmax_regression": ((28, 28, 1), 10, 784, (7850,) * 2),  # 784*10 + 10
    "two_layer_net": ((32, 32, 3), 10, 100, (308310,) * 2),  # 3072*100+100 + 100*10+10
    "ufldl_cnn": ((28, 28, 1), 10, 3920, (40850,) * 2),  # 9*9*20+20 + 14*14*20*10+10
    # 3*3*1*32+32 + 3*3*32*32+32 + 3*3*32*64+64 + 2*2*64*128+128 + 128*10+10 (8x8 digits)
    "small_cnn": ((8, 8, 1), 10, 128, (62250,) * 2),
    "lenet": ((28, 28, 1), 10, 1024, (3274634,) * 2),  # slim's LeNet on MNIST
    "lenet_pp": ((28, 28, 1), 10, 2, (799426,) * 2),  # see test_lenet_pp_closed_form
    "cifarnet": ((32, 32, 3), 10, 192, (1756426,) * 2),  # slim's CifarNet on CIFAR-10
    "resnet20": ((32, 32, 3), 10, 64, (271098, 269722)),
    "resnet56": ((32, 32, 3), 10, 64, (857082, 853018)),
    "vgg_a": ((224, 224, 3), 1000, 4096, (132863336,) * 2),
    "vgg_16": ((224, 224, 3), 1000, 4096, (138357544,) * 2),
    "vgg_19": ((224, 224, 3), 1000, 4096, (143667240,) * 2),
    "resnet_v1_50": ((32, 32, 3), 1000, 2048, (25610152, 25557032)),
    "resnet_v1_101": ((32, 32, 3), 1000, 2048, (44654504, 44549160)),
    # ViTs: the closed form in tests/test_vit.py (vit_tiny patch 2 on 8x8, vit_small patch 4).
    "vit_tiny": ((8, 8, 1), 10, 64, (202186,) * 2),
    "vit_small": ((32, 32, 3), 10, 192, (2693578,) * 2),
    # tf-slim's zoo at the smallest size each classifies (inception_v2: 33, as any size up to
    # 224 works; 33 gives odd maps down to 1x1); variables do not depend on the size. Counts
    # are tf-slim's graphs'; inception_v3's 23,851,784 is also Keras Applications' InceptionV3.
    "alexnet_v2": ((195, 195, 3), 1000, 4096, (50303912,) * 2),
    "overfeat": ((231, 231, 3), 1000, 4096, (145704424,) * 2),
    "inception_v1": ((193, 193, 3), 1000, 1024, (6632184, 6617624)),
    "inception_v2": ((33, 33, 3), 1000, 1024, (11198112, 11178336)),
    "inception_v3": ((75, 75, 3), 1000, 2048, (23851784, 23817352)),
}
ZOO = ("alexnet_v2", "overfeat", "inception_v1", "inception_v2", "inception_v3")
VIT_SIZES = {"vit_tiny": (64, 4, 256), "vit_small": (192, 6, 768)}  # width, blocks, MLP
# tf-slim zoo nets checked against slim's own code in tests/test_slim_zoo.py instead (their
# builds are long; the variables and logits are compared there).
ZOO_NETS = {"resnet_v1_152", "resnet_v1_200", "resnet_v2_50", "resnet_v2_101", "resnet_v2_152",
            "resnet_v2_200", "mobilenet_v1", "mobilenet_v1_075", "mobilenet_v1_050",
            "mobilenet_v1_025", "mobilenet_v2", "mobilenet_v2_140"}


@dataclasses.dataclass
class Built:
    name: str
    model: keras.Model
    end_points: dict
    input_shape: tuple
    num_classes: int


@pytest.fixture(scope="module", params=sorted(REFERENCE))
def built(request):
    """build_model(name) at the reference size, recording the end points the net returned."""
    name = request.param
    spec = nets.NETS[name]
    recorded = {}

    @functools.wraps(spec.fn)
    def recording(*args, **kwargs):
        logits, end_points = spec.fn(*args, **kwargs)
        recorded.update(end_points)
        return logits, end_points

    shape, num_classes = REFERENCE[name][:2]
    keras.utils.set_random_seed(1234)
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(nets.NETS, name, dataclasses.replace(spec, fn=recording))
        model = nets.build_model(name, num_classes=num_classes, input_shape=shape,
                                 weight_decay=WEIGHT_DECAY)
    yield Built(name, model, recorded, shape, num_classes)
    del model, recorded
    gc.collect()  # the VGGs hold ~0.5 GB each


# ---------------------------------------------------------------- registry


def test_registry_names_and_specs():
    assert set(nets.NETS) == set(REFERENCE) | ZOO_NETS
    for name, spec in nets.NETS.items():
        assert spec.name == name
        assert spec.default_image_size == spec.fn.default_image_size
        assert isinstance(spec.arg_scope(weight_decay=0.0), dict)
        low, high = spec.image_size_limits()
        assert low <= spec.default_image_size and (high is None or spec.default_image_size
                                                   <= high)


def test_get_net_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match="unknown --model=lenet5") as error:
        nets.get_net("lenet5")
    assert all(name in str(error.value) for name in nets.NETS)
    assert nets.get_net("lenet") is nets.NETS["lenet"]


@pytest.mark.parametrize("name, kwargs, error, match", [
    ("lenet", dict(num_classes=0), ValueError, r"num_classes=0 must be an int >= 1"),
    ("lenet", dict(num_classes=2.5), ValueError, r"num_classes=2.5"),
    ("lenet", dict(num_classes=True), ValueError, r"num_classes=True"),
    ("lenet", dict(input_shape=(28, 28)), ValueError, r"input_shape=\(28, 28\) must be"),
    ("lenet", dict(input_shape=(1, 28, 28, 1)), ValueError, r"input_shape=\(1, 28, 28, 1\)"),
    ("lenet", dict(input_shape=(28, 28, 0)), ValueError, r"input_shape=\(28, 28, 0\)"),
    ("lenet", dict(input_shape=None), ValueError, r"input_shape=None"),
    ("lenet", dict(input_shape=(3, 28, 1)), ValueError, r"lenet needs height and width >= 4"),
    ("vgg_16", dict(input_shape=(223, 224, 3)), ValueError, r"in \[224, 255\]"),
    ("vgg_16", dict(input_shape=(256, 256, 3)), ValueError, r"in \[224, 255\]"),
    ("ufldl_cnn", dict(input_shape=(9, 9, 1), padding="VALID"), ValueError, r">= 10"),
    ("lenet", dict(weight_decay=-1.0), ValueError, r"weight_decay=-1.0"),
    ("lenet", dict(weight_decay=float("nan")), ValueError, r"weight_decay=nan"),
    ("lenet", dict(is_training="yes"), ValueError, r"is_training='yes'"),
    ("lenet", dict(hidden_size=10), TypeError, r"lenet does not take \['hidden_size'\]"),
    ("lenet7", {}, ValueError,
     r"unknown --model=lenet7; valid names: alexnet_v2, cifarnet, inception_v1,"),
])
def test_build_model_rejects_bad_arguments_before_building(name, kwargs, error, match,
                                                            monkeypatch):
    for key, spec in nets.NETS.items():  # any build attempt fails the test
        @functools.wraps(spec.fn)
        def must_not_build(*args, **unused):
            raise AssertionError("built despite invalid arguments")
        monkeypatch.setitem(nets.NETS, key, dataclasses.replace(spec, fn=must_not_build))
    arguments = dict(num_classes=10, input_shape=(28, 28, 1) if name != "vgg_16"
                     else (224, 224, 3))
    arguments.update(kwargs)
    with pytest.raises(error, match=match):
        nets.build_model(name, **arguments)


# ---------------------------------------------------------------- every net, built once


def _slim_graph(name, input_shape, num_classes):
    """(build function for slim_reference.graph_variables) or None if slim lacks the net."""
    slim = slim_reference.slim
    if name in ("lenet", "cifarnet", "small_cnn"):
        return lambda x: getattr(slim_reference, name)(x, num_classes)
    if name.startswith(("vgg", "resnet_v1")):
        fn, arg_scope = (slim_reference.vgg if name.startswith("vgg")
                         else slim_reference.resnet_v1)(name)

        def build(x):
            with slim().arg_scope(arg_scope()):
                return fn(x, num_classes)
        return build
    if name in ZOO:
        fn, arg_scope = slim_reference.zoo(name)
        kwargs = {"create_aux_logits": False} if name == "inception_v3" else {}

        def build_zoo(x):
            with slim().arg_scope(arg_scope()):
                return fn(x, num_classes, is_training=False, **kwargs)
        return build_zoo
    return None


def _conv(path, kernel, depth_in, depth, bias=True, batch_norm=False, prelu=False):
    shapes = {f"{path}/kernel": (kernel, kernel, depth_in, depth)}
    if bias:
        shapes[f"{path}/bias"] = (depth,)
    if batch_norm:
        shapes.update({f"{path}/BatchNorm/{leaf}": (depth,) for leaf in
                       ("gamma", "beta", "moving_mean", "moving_variance")})
    if prelu:
        shapes[f"{path}/PReLU/alpha"] = (depth,)
    return shapes


def _dense(path, units_in, units, prelu=False):
    shapes = {f"{path}/kernel": (units_in, units), f"{path}/bias": (units,)}
    if prelu:
        shapes[f"{path}/PReLU/alpha"] = (units,)
    return shapes


def _expected_variables(name, num_classes):
    """Hand-written variable paths and shapes of the nets tf-slim does not have."""
    if name == "softmax_regression":
        return _dense("SoftmaxRegression/logits", 784, num_classes)
    if name == "two_layer_net":
        return {**_dense("TwoLayerNet/fc1", 3072, 100),
                **_dense("TwoLayerNet/logits", 100, num_classes)}
    if name == "ufldl_cnn":
        return {**_conv("UfldlCnn/conv1", 9, 1, 20),
                **_dense("UfldlCnn/logits", 14 * 14 * 20, num_classes)}
    if name == "lenet_pp":
        shapes, depth_in = {}, 1
        for stage, depth in enumerate((32, 64, 128), start=1):
            for i in (1, 2):
                shapes.update(_conv(f"LeNetPP/conv{stage}/conv{stage}_{i}", 5, depth_in, depth,
                                    prelu=True))
                depth_in = depth
        return {**shapes, **_dense("LeNetPP/fc1", 4 * 4 * 128, 2, prelu=True),
                **_dense("LeNetPP/logits", 2, num_classes)}
    if name in ("resnet20", "resnet56"):
        units = {"resnet20": 3, "resnet56": 9}[name]
        shapes = _conv(f"{name}/conv1", 3, 3, 16, bias=False, batch_norm=True)
        depth_in = 16
        for block, depth in enumerate((16, 32, 64), start=1):
            for unit in range(1, units + 1):
                prefix = f"{name}/block{block}/unit_{unit}/basic_v1"
                shapes.update(_conv(f"{prefix}/conv1", 3, depth_in, depth, False, True))
                shapes.update(_conv(f"{prefix}/conv2", 3, depth, depth, False, True))
                depth_in = depth
        return {**shapes, **_dense(f"{name}/logits", 64, num_classes)}
    if name in VIT_SIZES:
        return _vit_variables(name, num_classes)
    raise KeyError(name)


def _vit_variables(name, num_classes):
    (height, _, channels), width, depth, mlp_dim = REFERENCE[name][0], *VIT_SIZES[name]
    patch = 2 if height <= 16 else 4
    heads = {"vit_tiny": 4, "vit_small": 3}[name]
    shapes = {f"{name}/embedding/kernel": (patch, patch, channels, width),
              f"{name}/embedding/bias": (width,), f"{name}/cls/token": (1, 1, width),
              f"{name}/posembed/embedding": ((height // patch) ** 2 + 1, width)}
    for i in range(depth):
        block = f"{name}/block_{i}"
        for norm in ("ln1", "ln2"):
            shapes.update({f"{block}/{norm}/gamma": (width,), f"{block}/{norm}/beta": (width,)})
        for projection in ("query", "key", "value"):
            shapes[f"{block}/attention/{projection}/kernel"] = (width, heads, width // heads)
            shapes[f"{block}/attention/{projection}/bias"] = (heads, width // heads)
        shapes[f"{block}/attention/attention_output/kernel"] = (heads, width // heads, width)
        shapes[f"{block}/attention/attention_output/bias"] = (width,)
        shapes.update({**_dense(f"{block}/mlp/fc1", width, mlp_dim),
                       **_dense(f"{block}/mlp/fc2", mlp_dim, width)})
    return {**shapes, f"{name}/encoder_norm/gamma": (width,),
            f"{name}/encoder_norm/beta": (width,), **_dense(f"{name}/logits", width, num_classes)}


@functools.lru_cache(maxsize=None)
def _slim_info(name, input_shape, num_classes):
    """({variable name: shape}, {end point: shape}) of slim's graph, built once per net."""
    build = _slim_graph(name, input_shape, num_classes)
    graph = tf.Graph()
    with graph.as_default():
        output = build(tf.compat.v1.placeholder(tf.float32, (None, *input_shape)))
        end_points = output[1] if isinstance(output, tuple) else {}
        return ({v.op.name: tuple(v.shape) for v in tf.compat.v1.global_variables()},
                {key: tuple(value.shape) for key, value in end_points.items()})


def test_variable_paths_and_shapes(built):
    """Exactly one Keras variable per slim variable, same shape (the porting contract)."""
    ours = slim_reference.keras_variables(built.model)
    if _slim_graph(built.name, built.input_shape, built.num_classes) is not None:
        expected = _slim_info(built.name, built.input_shape, built.num_classes)[0]
    else:
        expected = {slim_reference.keras_to_slim_name(path): shape for path, shape in
                    _expected_variables(built.name, built.num_classes).items()}
    assert ours == expected
    assert all(v.path.startswith(built.model.name + "/") for v in built.model.weights)
    assert built.model.name == nets.NETS[built.name].scope


def test_parameter_counts(built):
    total, trainable = REFERENCE[built.name][3]
    assert built.model.count_params() == total
    assert sum(int(np.prod(v.shape)) for v in built.model.trainable_variables) == trainable


def test_lenet_pp_closed_form():
    convs = [(1, 32), (32, 32), (32, 64), (64, 64), (64, 128), (128, 128)]
    conv = sum(25 * c_in * c_out + 2 * c_out for c_in, c_out in convs)  # + bias + alpha
    dense = (2048 * 2 + 2 + 2) + (2 * 10 + 10)
    assert conv + dense == REFERENCE["lenet_pp"][3][0]


def _expected_end_points(name):
    common = {"logits", "embedding"}
    slim_style = {"Logits", "Flatten"}
    if name == "softmax_regression":
        return common | slim_style
    if name == "two_layer_net":
        return common | slim_style | {"fc1"}
    if name == "ufldl_cnn":
        return common | slim_style | {"conv1", "pool1"}
    if name == "small_cnn":
        return common | slim_style | {"conv1", "pool1", "conv2", "pool2", "fc3"}
    if name == "lenet":
        return common | slim_style | {"conv1", "pool1", "conv2", "pool2", "fc3", "dropout3",
                                      "Predictions"}
    if name == "lenet_pp":
        return common | slim_style | {"conv1", "conv2", "conv3", "pool1", "pool2", "pool3",
                                      "fc1"}
    if name == "cifarnet":
        return common | slim_style | {"conv1", "pool1", "conv2", "pool2", "fc3", "fc4",
                                      "Predictions"}
    if name.startswith("resnet_v1"):
        return common | {f"{name}/{key}" for key in (
            "conv1", "block1", "block2", "block3", "block4", "logits", "spatial_squeeze")} | {
            "predictions", "global_pool"}
    if name.startswith("resnet"):
        return common | {f"{name}/{key}" for key in ("conv1", "block1", "block2", "block3")}
    if name.startswith("vgg") or name in ZOO:  # slim's end points, compared with its graph
        return None
    if name in VIT_SIZES:
        return common | {"patches", "tokens", "encoder_norm"} | {
            f"block_{i}" for i in range(VIT_SIZES[name][1])}
    raise KeyError(name)


def test_end_points(built):
    end_points = built.end_points
    expected = _expected_end_points(built.name)
    if built.name.startswith(("vgg", "resnet_v1")) or built.name in ZOO:
        slim_shapes = _slim_info(built.name, built.input_shape, built.num_classes)[1]
        if expected is None:
            expected = {"logits", "embedding"} | set(slim_shapes)
        for key in set(end_points) & set(slim_shapes):  # same layout, end point by end point
            assert tuple(end_points[key].shape) == slim_shapes[key], key
    assert set(end_points) == expected
    embedding_size = REFERENCE[built.name][2]
    assert tuple(end_points["embedding"].shape) == (None, embedding_size)
    assert tuple(end_points["logits"].shape) == (None, built.num_classes)
    assert built.model.output["logits"] is end_points["logits"]
    assert built.model.output["embedding"] is end_points["embedding"]


def test_weight_decay_in_model_losses(built):
    """model.losses = wd * sum(w**2) / 2 over the decayed kernels (slim's choice per net)."""
    undecayed = {"cifarnet": {"CifarNet/conv1/kernel", "CifarNet/conv2/kernel",
                              "CifarNet/logits/kernel"}}.get(built.name, set())
    kernels = [v for v in built.model.weights
               if v.path.endswith("/kernel") and v.path not in undecayed]
    # Float64 reference (float32 accumulation over VGG's fc6 is 0.2% off); in TF because
    # copying 130M weights to NumPy and squaring them there took seconds.
    expected = WEIGHT_DECAY * sum(float(tf.reduce_sum(tf.square(tf.cast(v, tf.float64)))) / 2
                                  for v in kernels)
    assert len(built.model.losses) == len(kernels)
    np.testing.assert_allclose(float(tf.add_n(built.model.losses)), expected, rtol=1e-5)


def test_forward_and_gradients(built, rng):
    """Outputs have the contract's shapes, are finite, and every trainable variable learns.

    vgg_16 / vgg_19 run forward only: a 224x224 backward pass costs ~30 GFLOPs each, and they
    are vgg_a's code (`vgg._vgg`) with more repeats, which their variable test pins.
    """
    # BN needs more than one value; the nets without BN (VGG, AlexNet, OverFeat) take one.
    batch = 1 if built.name.startswith(("vgg", "alexnet", "overfeat")) else 4
    images = rng.normal(size=(batch, *built.input_shape)).astype(np.float32)
    labels = rng.integers(0, built.num_classes, batch)
    model = built.model
    if built.name in ("vgg_16", "vgg_19"):
        outputs = model(images, training=True)
        assert outputs["logits"].shape == (batch, built.num_classes)
        assert np.all(np.isfinite(outputs["logits"])) and np.all(np.isfinite(
            outputs["embedding"]))
        return
    with tf.GradientTape() as tape:
        outputs = model(images, training=True)
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=labels, logits=outputs["logits"])) + tf.add_n(model.losses)
    gradients = tape.gradient(loss, model.trainable_variables)
    assert outputs["logits"].shape == (batch, built.num_classes)
    assert outputs["embedding"].shape == (batch, REFERENCE[built.name][2])
    assert np.all(np.isfinite(outputs["logits"])) and np.all(np.isfinite(outputs["embedding"]))
    for variable, gradient in zip(model.trainable_variables, gradients):
        assert gradient is not None, variable.path
        gradient = np.asarray(gradient)
        assert np.all(np.isfinite(gradient)), variable.path
        assert np.any(gradient != 0), variable.path


def test_batch_norm_settings(built):
    """resnet_v1: slim's epsilon 1e-5 / decay 0.997; CIFAR ResNets: Torch's 1e-5 / 0.9."""
    batch_norms = [layer for layer in built.model._flatten_layers()
                   if isinstance(layer, slim_layers.BatchNorm)]
    expected = {"resnet_v1_50": (53, 1e-5, 0.997), "resnet_v1_101": (104, 1e-5, 0.997),
                "resnet20": (19, 1e-5, 0.9), "resnet56": (55, 1e-5, 0.9)}.get(built.name)
    scale = True
    if built.name.startswith("inception"):  # slim's Inception BN: no gamma, one per conv
        slim_variables = _slim_info(built.name, built.input_shape, built.num_classes)[0]
        expected = (sum(name.endswith("/moving_mean") for name in slim_variables), 1e-3, 0.9997)
        scale = False
    if expected is None:
        assert batch_norms == []
        return
    count, epsilon, momentum = expected
    assert len(batch_norms) == count
    assert {(bn.epsilon, bn.momentum, bn.scale, bn.synchronized, bn.is_training)
            for bn in batch_norms} == {(epsilon, momentum, scale, False, None)}


# ---------------------------------------------------------------- sizes, dtypes, sync BN


@pytest.mark.parametrize("shape", [(8, 8, 1), (28, 28, 1), (32, 32, 3)])
@pytest.mark.parametrize("name", SMALL_NETS)
def test_small_nets_run_on_digits_mnist_and_cifar_sizes(name, shape, rng):
    model = nets.build_model(name, num_classes=7, input_shape=shape)
    outputs = model(rng.normal(size=(2, *shape)).astype(np.float32), training=False)
    assert outputs["logits"].shape == (2, 7)
    assert np.all(np.isfinite(outputs["logits"]))


@pytest.mark.parametrize("name, smallest", [("small_cnn", 4), ("lenet", 4), ("cifarnet", 4),
                                           ("vgg_a", 224)])
def test_minimum_image_size_is_tight(name, smallest):
    assert nets.NETS[name].image_size_limits()[0] == smallest
    if smallest < 224:  # building the smallest VGG would cost a 130M-parameter model
        model = nets.build_model(name, num_classes=3, input_shape=(smallest, smallest, 1))
        assert model(np.zeros((1, smallest, smallest, 1), np.float32))["logits"].shape == (1, 3)
    with pytest.raises(ValueError, match="needs height and width"):
        nets.build_model(name, num_classes=3, input_shape=(smallest - 1, smallest, 1))


def test_ufldl_cnn_valid_layout_is_the_exercise():
    model = nets.build_model("ufldl_cnn", 10, (28, 28, 1), padding="VALID")
    assert model.output["embedding"].shape == (None, 2000)  # 20 maps of 10x10
    assert model.count_params() == 9 * 9 * 20 + 20 + 2000 * 10 + 10


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
@pytest.mark.parametrize("name", SMALL_NETS + ["resnet56"])
def test_mixed_precision(name, policy, rng):
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        model = nets.build_model(name, num_classes=5, input_shape=(8, 8, 3), weight_decay=1e-4)
        outputs = model(rng.normal(size=(2, 8, 8, 3)).astype(np.float32), training=True)
        losses = model.losses
    finally:
        keras.config.set_dtype_policy(previous)
    assert outputs["logits"].dtype == policy.split("_")[1]
    assert {v.dtype for v in model.weights} == {"float32"}
    for value in (outputs["logits"], outputs["embedding"], tf.add_n(losses)):
        assert np.all(np.isfinite(tf.cast(value, tf.float32)))


@pytest.mark.parametrize("sync", [True, False])
def test_sync_batch_norm_reaches_every_batch_norm(sync):
    model = nets.build_model("resnet20", 10, (8, 8, 3), sync_batch_norm=sync)
    batch_norms = [layer for layer in model._flatten_layers()
                   if isinstance(layer, slim_layers.BatchNorm)]
    assert len(batch_norms) == 19
    assert {bn.synchronized for bn in batch_norms} == {sync}
    assert {bn.epsilon for bn in batch_norms} == {1e-5}  # the net's own params still apply


def test_is_training_pins_batch_norm_and_dropout(rng):
    images = rng.normal(size=(4, 8, 8, 3)).astype(np.float32)
    model = nets.build_model("resnet20", 10, (8, 8, 3), is_training=False)
    np.testing.assert_array_equal(model(images, training=True)["logits"],
                                  model(images, training=False)["logits"])
    assert all(bn.is_training is False for bn in model._flatten_layers()
               if isinstance(bn, slim_layers.BatchNorm))
    model = nets.build_model("lenet", 10, (8, 8, 3), is_training=True)
    first, second = (model(images, training=False)["logits"] for _ in range(2))
    assert np.max(np.abs(first - second)) > 1e-3  # dropout stays on


# ---------------------------------------------------------------- same numbers as tf-slim


@pytest.mark.parametrize("name, shape", [("lenet", (28, 28, 1)), ("cifarnet", (32, 32, 3)),
                                         ("small_cnn", (8, 8, 1)), ("small_cnn", (28, 28, 1))])
def test_forward_matches_slim_graph(name, shape, rng):
    """slim's net (inference: no dropout) and ours on the same weights and images."""
    images = rng.normal(size=(2, *shape)).astype(np.float32)
    expected, values, _ = slim_reference.run_graph(_slim_graph(name, shape, 10), images)
    model = nets.build_model(name, num_classes=10, input_shape=shape)
    slim_reference.load_into(model, values)
    np.testing.assert_allclose(model(images, training=False)["logits"], expected, rtol=1e-4,
                               atol=1e-5 * np.max(np.abs(expected)))


def test_resnet_v1_forward_matches_slim_graph(rng):
    """resnet_v1_50 in both BN modes; 40x40 gives odd and even sizes down the strided path
    (20, 10, 5, 3, 2, 2), where conv2d_same and 'SAME' differ."""
    shape = (40, 40, 3)
    images = rng.normal(size=(2, *shape)).astype(np.float32)
    fn, arg_scope = slim_reference.resnet_v1("resnet_v1_50")

    def build(x):
        with slim_reference.slim().arg_scope(arg_scope()):
            inference = fn(x, 10, is_training=False)[0]
            training = fn(x, 10, is_training=True, reuse=True)[0]
        return {"inference": inference[:, 0, 0, :], "training": training[:, 0, 0, :]}

    expected, values, _ = slim_reference.run_graph(build, images, randomize_moving_stats=rng,
                                                   run_updates=False)
    model = nets.build_model("resnet_v1_50", num_classes=10, input_shape=shape)
    slim_reference.load_into(model, values)
    inference = model(images, training=False)["logits"]  # before training moves the stats
    training = model(images, training=True)["logits"]
    scale = np.max(np.abs(expected["inference"]))
    np.testing.assert_allclose(inference, expected["inference"], rtol=1e-4, atol=1e-5 * scale)
    # Batch statistics over few values amplify float32 rounding with depth: measured relative
    # error 1e-7 after conv1 up to 2e-4 after block4 (2x2x2 = 8 values per channel). Using the
    # moving statistics instead, or another epsilon, moves the logits by O(1).
    scale = np.max(np.abs(expected["training"]))
    np.testing.assert_allclose(training, expected["training"], rtol=1e-3, atol=2e-3 * scale)


def _randomize_moving_statistics(model, rng):
    """BN moving means ~ N(0, 0.5), variances ~ U(0.5, 2): inference is not mean 0 / var 1."""
    for variable in model.weights:
        if variable.path.endswith("/moving_mean"):
            variable.assign(rng.normal(0, 0.5, variable.shape).astype(np.float32))
        elif variable.path.endswith("/moving_variance"):
            variable.assign(rng.uniform(0.5, 2.0, variable.shape).astype(np.float32))


def _relative_difference_to_slim(model, build, images, keys=("logits",)):
    """max |ours - slim| / max |slim| per output key, slim's graph running on our weights."""
    values = {slim_reference.keras_to_slim_name(v.path): v.numpy() for v in model.weights}
    expected = slim_reference.run_graph_with_values(build, images, values)
    expected = expected if isinstance(expected, dict) else {"logits": expected}
    outputs = model(images, training=False)
    return {key: float(np.max(np.abs(np.asarray(outputs[key]) - expected[key]))
                       / np.max(np.abs(expected[key]))) for key in keys}


def test_zoo_forward_matches_slim_graph(built, rng):
    """tf-slim's own AlexNet / OverFeat / Inception graph and ours on the same random weights and
    random BN moving statistics (inference) at the smallest size each classifies:
    max |logit difference| / max |logit| <= 1e-5 (measured: 0 to 1.4e-6)."""
    if built.name not in ZOO:
        pytest.skip("tf-slim zoo nets only (the others are compared above)")
    images = rng.normal(size=(2, *built.input_shape)).astype(np.float32)
    _randomize_moving_statistics(built.model, rng)
    build = _slim_graph(built.name, built.input_shape, built.num_classes)
    difference = _relative_difference_to_slim(
        built.model, lambda x: build(x)[0], images)["logits"]
    assert difference <= 1e-5


def test_zoo_size_limits_follow_the_options():
    """Without global_pool the fixed logits pool needs a map of one size; with it any larger map
    classifies; Inception v3's aux head needs a 5x5 Mixed_6e."""
    limits = {name: nets.NETS[name].image_size_limits() for name in ZOO}
    assert limits == {"alexnet_v2": (195, 226), "overfeat": (231, 262),
                      "inception_v1": (193, 224), "inception_v2": (1, 224),
                      "inception_v3": (75, 330)}
    assert nets.NETS["inception_v1"].image_size_limits(global_pool=True) == (1, None)
    assert nets.NETS["overfeat"].image_size_limits(global_pool=True) == (231, None)
    assert nets.NETS["inception_v3"].image_size_limits(create_aux_logits=True) == (107, 330)
    with pytest.raises(ValueError, match=r"inception_v1 needs height and width in \[193, 224\]"):
        nets.build_model("inception_v1", 10, (225, 225, 3))


def test_zoo_global_pool_and_features(rng):
    """global_pool: the logits are the 1x1 conv of Mixed_5c averaged over its whole map (2x2
    here; closed form); num_classes=0: the pooled features, without a logits layer."""
    spec = nets.NETS["inception_v2"]
    images = rng.normal(size=(2, 64, 64, 3)).astype(np.float32)
    inputs = keras.Input((64, 64, 3))
    with scopes.arg_scope(spec.arg_scope(weight_decay=0.0)):
        logits, end_points = spec.fn(inputs, num_classes=10, global_pool=True)
    model = keras.Model(inputs, [logits, end_points["Mixed_5c"], end_points["embedding"]])
    logits, mixed_5c, embedding = (np.asarray(t) for t in model(images, training=False))
    assert mixed_5c.shape == (2, 2, 2, 1024) and "global_pool" in end_points
    layer = model.get_layer("Conv2d_1c_1x1")
    pooled = mixed_5c.mean(axis=(1, 2))
    np.testing.assert_allclose(embedding, pooled, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(logits, pooled @ layer.kernel.numpy()[0, 0] + layer.bias.numpy(),
                               rtol=1e-4, atol=1e-5 * np.max(np.abs(logits)))

    inputs = keras.Input((33, 33, 3))
    with scopes.arg_scope(spec.arg_scope(weight_decay=0.0)):
        features, end_points = spec.fn(inputs, num_classes=0, depth_multiplier=0.5)
    assert tuple(features.shape) == (None, 512) and "Logits" not in end_points
    model = keras.Model(inputs, features)
    assert not any("Conv2d_1c_1x1" in v.path for v in model.weights)
    # depth_multiplier 0.5 halves every depth, min_depth 16 (Conv2d_1a: 64 -> 32, mult 8).
    shapes = {v.path: tuple(v.shape) for v in model.weights}
    assert shapes["InceptionV2/Conv2d_1a_7x7/pointwise_kernel"] == (1, 1, 24, 32)
    assert shapes["InceptionV2/Mixed_3b/Branch_3/Conv2d_0b_1x1/kernel"] == (1, 1, 96, 16)


@pytest.mark.slow
@pytest.mark.parametrize("name", ZOO)
def test_zoo_forward_matches_slim_graph_at_default_size(name, rng):
    """As above at each net's default size (inception_v3 with its AuxLogits head, compared
    too)."""
    spec = nets.NETS[name]
    shape = (spec.default_image_size, spec.default_image_size, 3)
    fn, arg_scope = slim_reference.zoo(name)
    inputs = keras.Input(shape)
    kwargs = {"create_aux_logits": True} if name == "inception_v3" else {}
    with scopes.arg_scope(spec.arg_scope(weight_decay=0.0)):
        logits, end_points = spec.fn(inputs, num_classes=1000, **kwargs)
    keys = ("logits", "aux") if kwargs else ("logits",)
    model = keras.Model(inputs, {"logits": logits, "aux": end_points.get("AuxLogits", logits)})
    _randomize_moving_statistics(model, rng)

    def build(x):
        with slim_reference.slim().arg_scope(arg_scope()):
            slim_logits, slim_end_points = fn(x, 1000, is_training=False, **kwargs)
        return {"logits": slim_logits, "aux": slim_end_points.get("AuxLogits", slim_logits)}

    images = rng.normal(size=(2, *shape)).astype(np.float32)
    differences = _relative_difference_to_slim(model, build, images, keys)
    assert max(differences.values()) <= 1e-5, differences


@pytest.mark.parametrize("name", ["lenet_pp", "resnet20", "vit_tiny"])
def test_keras_file_roundtrip(name, tmp_path, rng):
    """The trainer exports `.keras` files: PReLU/BN sublayers and nested models must reload."""
    model = nets.build_model(name, num_classes=5, input_shape=(8, 8, 3), weight_decay=1e-3)
    images = rng.normal(size=(2, 8, 8, 3)).astype(np.float32)
    model.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras")
    for key in ("logits", "embedding"):
        np.testing.assert_array_equal(loaded(images, training=False)[key],
                                      model(images, training=False)[key])
    assert len(loaded.losses) == len(model.losses)
    # Keras does not serialise name scopes: reloaded paths lose the net's scope prefix
    # (documented in docs/NAMING.md); the weights are restored by structure.
    assert sorted(v.path.split("/")[-1] for v in loaded.weights) == sorted(
        v.path.split("/")[-1] for v in model.weights)
