"""Checkpoint porting against tf-slim's own graphs.

TF1 checkpoints of tf_slim's vgg_16 / resnet_v1_50 and of slim-layout LeNet / CifarNet (random
weights and biases, random BN statistics, optimizer slots, EMA shadows) are saved with
`tf.compat.v1.train.Saver` and ported into our nets: logits must equal slim's on the same images
(inference mode) within 1e-4 relative. Then towers, EMA, strict failures, overrides, TF2
checkpoints, trainable scopes, and loading into mirrored variables.

The big graphs are built and saved once per module; the fixtures keep only the checkpoint path
and slim's outputs.
"""
import collections
import gc
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests import replicas, slim_reference
from tfmodels import nets, porting
from tfmodels.porting import rules

pytestmark = pytest.mark.filterwarnings("ignore:`(layer.apply|tf.layers.flatten)`:UserWarning")

RTOL = 1e-4  # max |ours - slim| / max |slim| over the logits
Saved = collections.namedtuple("Saved", "path images expected extra")
MEASURED = {}  # relative logit errors, printed at the end of the module (pytest -s)


def relative_error(got, expected):
    return float(np.max(np.abs(np.asarray(got) - expected)) / np.max(np.abs(expected)))


def randomize_biases(rng):
    """Assign ops giving slim's zero/one-initialised biases, beta and gamma random values, so
    a bias mapped to the wrong variable changes the logits."""
    ops = []
    for v in tf.compat.v1.global_variables():
        leaf = v.op.name.rpartition("/")[2]
        if leaf in ("biases", "beta"):
            ops.append(v.assign(rng.normal(0, 0.1, v.shape).astype(np.float32)))
        elif leaf == "gamma":
            ops.append(v.assign(rng.uniform(0.5, 1.5, v.shape).astype(np.float32)))
    return ops


def slim_optimizer_slots(optimizer):
    """Slots and step counter as a TF1 training run leaves them in its checkpoints."""
    step = tf.compat.v1.train.get_or_create_global_step()
    pairs = [(tf.zeros_like(v), v) for v in tf.compat.v1.trainable_variables()]
    optimizer.apply_gradients(pairs, global_step=step)


def write_tf1_checkpoint(values, path):
    """A name-based checkpoint holding `values` ({key: array}) under exactly those keys."""
    with tf.Graph().as_default():
        variables = {key: tf.compat.v1.Variable(value) for key, value in values.items()}
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            return tf.compat.v1.train.Saver(variables).save(session, path)


# ---------------------------------------------------------------- checkpoints (once each)


@pytest.fixture(scope="module")
def ckpt_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("porting")


@pytest.fixture(scope="module")
def lenet_checkpoint(ckpt_dir):
    rng = np.random.default_rng(11)
    images = rng.normal(size=(2, 28, 28, 1)).astype(np.float32)

    def setup():
        slim_optimizer_slots(tf.compat.v1.train.MomentumOptimizer(0.1, 0.9))
        return [randomize_biases(rng)]

    logits, _, path = slim_reference.save_checkpoint(
        lambda x: slim_reference.lenet(x, 10), images, str(ckpt_dir / "lenet/model.ckpt"),
        setup=setup)
    return Saved(path, images, logits, None)


@pytest.fixture(scope="module")
def cifarnet_checkpoint(ckpt_dir):
    rng = np.random.default_rng(12)
    images = rng.normal(size=(2, 32, 32, 3)).astype(np.float32)

    def setup():
        slim_optimizer_slots(tf.compat.v1.train.AdamOptimizer(0.1))
        return [randomize_biases(rng)]

    logits, _, path = slim_reference.save_checkpoint(
        lambda x: slim_reference.cifarnet(x, 10), images, str(ckpt_dir / "cifarnet/model.ckpt"),
        setup=setup)
    return Saved(path, images, logits, None)


@pytest.fixture(scope="module")
def vgg_16_checkpoint(ckpt_dir):
    """tf_slim's vgg_16 at 224x224 with 1000 classes; `extra` is its fc7 end point."""
    rng = np.random.default_rng(13)
    images = rng.normal(size=(2, 224, 224, 3)).astype(np.float32)
    fn, arg_scope = slim_reference.vgg("vgg_16")

    def build(x):
        with slim_reference.slim().arg_scope(arg_scope()):
            logits, end_points = fn(x, 1000, is_training=False)
        return {"logits": logits, "fc7": end_points["vgg_16/fc7"][:, 0, 0, :]}

    outputs, _, path = slim_reference.save_checkpoint(
        build, images, str(ckpt_dir / "vgg_16/model.ckpt"),
        setup=lambda: [randomize_biases(rng)])
    gc.collect()
    return Saved(path, images, outputs["logits"], outputs["fc7"])


@pytest.fixture(scope="module")
def resnet_v1_50_checkpoint(ckpt_dir):
    """tf_slim's resnet_v1_50 (64x64 images) with random BN statistics and EMA shadows of the
    trainable variables (set to the raw values times U(0.8, 1.2)); `extra` holds the logits of
    slim's evaluation path restoring `ema.variables_to_restore()`."""
    rng = np.random.default_rng(14)
    images = rng.normal(size=(2, 64, 64, 3)).astype(np.float32)
    fn, arg_scope = slim_reference.resnet_v1("resnet_v1_50")
    ema = tf.compat.v1.train.ExponentialMovingAverage(0.999)

    def build(x):
        with slim_reference.slim().arg_scope(arg_scope()):
            logits, _ = fn(x, 1000, is_training=False)
        return logits[:, 0, 0, :]  # tf_slim's resnet_v1 returns [N, 1, 1, C]

    def setup():
        trainable = tf.compat.v1.trainable_variables()
        ema.apply(trainable)
        shadows = [ema.average(v).assign(
            v * rng.uniform(0.8, 1.2, v.shape).astype(np.float32)) for v in trainable]
        return [randomize_biases(rng), shadows]

    logits, averaged, path = slim_reference.save_checkpoint(
        build, images, str(ckpt_dir / "resnet_v1_50/model.ckpt"), randomize_moving_stats=rng,
        setup=setup, restore=ema.variables_to_restore)
    assert relative_error(averaged, logits) > 1e-2  # the shadows really differ
    return Saved(path, images, logits, averaged)


# ---------------------------------------------------------------- name rules


@pytest.mark.parametrize("key, stripped, rank", [
    ("LeNet/conv1/weights", "LeNet/conv1/weights", ()),
    ("tower_0/LeNet/conv1/weights", "LeNet/conv1/weights", (0,)),
    ("clone_3/LeNet/fc4/biases", "LeNet/fc4/biases", (3,)),
    ("clone_1/tower_12/x/y", "x/y", (1, 12)),
    ("LeNet/tower_0/x", "LeNet/tower_0/x", ()),  # only leading components
    ("tower_x/a", "tower_x/a", ()),
])
def test_strip_replica_prefix(key, stripped, rank):
    assert rules.strip_replica_prefix(key) == (stripped, rank)


@pytest.mark.parametrize("key, paths", [
    ("vgg_16/conv1/conv1_1/weights", ("vgg_16/conv1/conv1_1/kernel",)),
    ("LeNet/fc4/biases", ("LeNet/fc4/bias",)),
    ("r/block1/unit_1/bottleneck_v1/conv1/BatchNorm/gamma",
     ("r/block1/unit_1/bottleneck_v1/conv1/BatchNorm/gamma",)),
    ("n/BatchNorm/moving_variance", ("n/BatchNorm/moving_variance",)),
    ("n/dw/depthwise_weights", ("n/dw/kernel", "n/dw/depthwise_kernel")),
    ("n/sep/pointwise_weights", ("n/sep/pointwise_kernel",)),
    ("LeNetPP/fc1/PReLU/alpha", ("LeNetPP/fc1/PReLU/alpha",)),
    ("weights", ("kernel",)),
])
def test_keras_candidates(key, paths):
    assert rules.keras_candidates(key) == paths


@pytest.mark.parametrize("key, reason", [
    ("Net/conv1/weights", None),
    ("Net/conv1/weights/Momentum", "optimizer slot"),
    ("Net/conv1/weights/Adam_1", "optimizer slot"),
    ("Net/conv1/BatchNorm/beta/RMSProp_1", "optimizer slot"),
    ("bert/dense/kernel/adam_v", "optimizer slot"),
    ("global_step", "bookkeeping"),
    ("beta1_power", "bookkeeping"),
    # slim batch_norm(zero_debias_moving_mean=True) really doubles the scope (TF 2.21):
    ("Net/conv1/BatchNorm/Net/conv1/BatchNorm/moving_mean/biased", "bookkeeping"),
    ("Net/conv1/BatchNorm/Net/conv1/BatchNorm/moving_mean/local_step", "bookkeeping"),
    ("Momentum", None),
])
def test_skip_reason(key, reason):
    assert rules.skip_reason(key) == reason


def test_ema_names():
    assert rules.ema_base("a/b/weights/ExponentialMovingAverage") == "a/b/weights"
    assert rules.ema_base("a/b/weights") is None
    assert rules.ema_base("ExponentialMovingAverage") is None


def test_depthwise_and_separable_convs_port_from_slim(tmp_path):
    """slim's depthwise (`num_outputs=None`) and separable convs against Keras
    DepthwiseConv2D / SeparableConv2D: names map (`depthwise_weights` -> `kernel` or
    `depthwise_kernel`) and outputs agree. None of our nets has depthwise convs yet."""
    rng = np.random.default_rng(3)
    images = rng.normal(size=(2, 9, 9, 4)).astype(np.float32)
    slim = slim_reference.slim()

    def build(x):
        return {"dw": slim.separable_conv2d(x, None, [3, 3], depth_multiplier=2, scope="dw"),
                "sep": slim.separable_conv2d(x, 6, [3, 3], depth_multiplier=1, scope="sep")}

    expected, _, path = slim_reference.save_checkpoint(
        build, images, str(tmp_path / "dw.ckpt"), setup=lambda: [randomize_biases(rng)])
    inputs = keras.Input((9, 9, 4))
    model = keras.Model(inputs, {
        "dw": keras.layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same",
                                           activation="relu", name="dw")(inputs),
        "sep": keras.layers.SeparableConv2D(6, 3, padding="same", activation="relu",
                                            name="sep")(inputs)})
    mapping = porting.load_checkpoint(model, path)
    assert {(m.path, m.key) for m in mapping.matched} == {
        ("dw/kernel", "dw/depthwise_weights"), ("dw/bias", "dw/biases"),
        ("sep/depthwise_kernel", "sep/depthwise_weights"),
        ("sep/pointwise_kernel", "sep/pointwise_weights"), ("sep/bias", "sep/biases")}
    outputs = model(images)
    for key in ("dw", "sep"):
        assert relative_error(outputs[key], expected[key]) <= RTOL


def test_overrides_exact_regex_and_skip():
    overrides = rules.Overrides({
        "net/c1/w": "LeNet/conv1/kernel",                    # exact
        r"net/f(\d)/(w|b)": r"LeNet/fc\1/\2",                # regex with groups
        "junk/.*": None,                                     # skip
        "never/seen": "x",
    })
    assert overrides.apply("net/c1/w", "net/c1/w") == (True, "LeNet/conv1/kernel")
    assert overrides.apply("tower_0/net/f3/b", "net/f3/b") == (True, "LeNet/fc3/b")
    assert overrides.apply("junk/counter", "junk/counter") == (True, None)
    assert overrides.apply("net/c2/w", "net/c2/w") == (False, None)
    assert overrides.unused() == ["never/seen"]
    with pytest.raises(ValueError, match=r"pattern 'a\(' is not a valid regular expression"):
        rules.Overrides({"a(": "b"})
    with pytest.raises(ValueError, match="must map a string pattern"):
        rules.Overrides({"a": 3})


def test_load_overrides(tmp_path):
    spec = {"a/(.*)": r"LeNet/\1", "b": None}
    (tmp_path / "o.json").write_text(json.dumps(spec))
    assert rules.load_overrides(str(tmp_path / "o.json")) == spec
    assert rules.load_overrides(json.dumps(spec)) == spec
    assert rules.load_overrides(spec) == spec and rules.load_overrides(None) == {}
    with pytest.raises(ValueError, match="neither a JSON object nor an existing file"):
        rules.load_overrides(str(tmp_path / "missing.json"))
    with pytest.raises(ValueError, match="not valid JSON"):
        rules.load_overrides("{a: b}")
    (tmp_path / "list.json").write_text("[1]")
    with pytest.raises(ValueError, match="must hold a JSON object"):
        rules.load_overrides(str(tmp_path / "list.json"))


def test_scopes():
    assert rules.parse_scopes(" vgg_16/fc8/, vgg_16/fc7 ,", "x") == ("vgg_16/fc8", "vgg_16/fc7")
    assert rules.parse_scopes(["a"], "x") == ("a",) and rules.parse_scopes(None, "x") == ()
    assert rules.in_scope("vgg_16/fc8/kernel", "vgg_16/fc8")
    assert rules.in_scope("vgg_16/fc8/kernel", "vgg_16/fc8/weights")  # slim spelling
    assert not rules.in_scope("vgg_16/fc8b/kernel", "vgg_16/fc8")  # whole components
    with pytest.raises(ValueError, match=r"^--exclude_scopes=vgg16/fc8: the scope matches no "
                                         r"variable of the model; .* vgg_16/fc8"):
        rules.check_scopes(["vgg16/fc8"], ["vgg_16/fc8/kernel"], "exclude_scopes")
    with pytest.raises(ValueError, match="^--trainable_scopes=3 must be a comma-separated"):
        rules.parse_scopes(3, "trainable_scopes")


# ---------------------------------------------------------------- slim graphs -> our nets


@pytest.mark.parametrize("name, input_shape", [
    ("lenet", (28, 28, 1)), ("cifarnet", (32, 32, 3)), ("vgg_16", (224, 224, 3)),
    ("resnet_v1_50", (64, 64, 3))])
def test_logits_match_slim(name, input_shape, request):
    saved = request.getfixturevalue(f"{name}_checkpoint")
    num_classes = saved.expected.shape[-1]
    model = nets.build_model(name, num_classes, input_shape)
    mapping = porting.load_checkpoint(model, saved.path)
    assert mapping.ok and len(mapping.matched) == len(model.weights)
    assert mapping.unused == [] and mapping.source_format == "tf1"
    error = relative_error(model(saved.images, training=False)["logits"], saved.expected)
    MEASURED[name] = error
    assert error <= RTOL
    del model
    gc.collect()


def test_plan_skips_slots_and_assigns_nothing(lenet_checkpoint):
    model = nets.build_model("lenet", 10, (28, 28, 1))
    before = [v.numpy() for v in model.weights]
    mapping = porting.map_checkpoint(model, lenet_checkpoint.path)
    assert mapping.ok
    assert all(np.array_equal(b, v.numpy()) for b, v in zip(before, model.weights))
    assert mapping.skipped == {
        "bookkeeping": ["global_step"],
        "optimizer slot": sorted(f"{slim_reference.keras_to_slim_name(v.path)}/Momentum"
                                 for v in model.weights)}
    table = mapping.table().splitlines()
    assert table[0].split() == ["model", "variable", "shape", "checkpoint", "variable", "rule"]
    assert ["LeNet/conv1/kernel", "(5,", "5,", "1,", "32)", "<-", "LeNet/conv1/weights",
            "weights->kernel"] in [line.split() for line in table]
    assert len(table) == 1 + len(model.weights)
    report = mapping.report()
    assert "Result: OK" in report and "skipped        9" in report


@pytest.mark.filterwarnings("ignore:Attempting to use a closed FileWriter:UserWarning")
def test_checkpoint_of_slim_learning_train_ports(tmp_path):
    """A legacy training loop (slim.learning.train: Supervisor threads, needs
    compat.enable_tf_slim's third fix on TF 2.x) writes the checkpoint; slim's graph restored
    from it is the reference."""
    slim = slim_reference.slim()
    rng = np.random.default_rng(31)
    images = rng.normal(size=(4, 28, 28, 1)).astype(np.float32)
    with tf.Graph().as_default():
        tf.compat.v1.set_random_seed(0)
        logits = slim_reference.lenet(tf.constant(images), 10, is_training=True)
        slim.losses.softmax_cross_entropy(logits, tf.one_hot([1, 2, 3, 4], 10))
        train_op = slim.learning.create_train_op(
            slim.losses.get_total_loss(), tf.compat.v1.train.MomentumOptimizer(0.01, 0.9))
        slim.learning.train(train_op, str(tmp_path), number_of_steps=3,
                            save_summaries_secs=10 ** 6, log_every_n_steps=10 ** 6)
    path = tf.train.latest_checkpoint(str(tmp_path))
    assert path.endswith("model.ckpt-3")
    with tf.Graph().as_default():
        logits = slim_reference.lenet(tf.constant(images), 10, is_training=False)
        with tf.compat.v1.Session() as session:
            tf.compat.v1.train.Saver().restore(session, path)
            expected = session.run(logits)
    model = nets.build_model("lenet", 10, (28, 28, 1))
    mapping = porting.load_checkpoint(model, str(tmp_path))
    assert mapping.skipped["bookkeeping"] == ["global_step"]
    assert len(mapping.skipped["optimizer slot"]) == 8
    assert relative_error(model(images, training=False)["logits"], expected) <= RTOL


# ---------------------------------------------------------------- towers and EMA


def _two_tower_lenet(shared):
    """Two towers on the same images: shared variables under `tower_0/` (the second tower
    reopens that scope with reuse=True), or one copy per tower (`tower_0/`, `tower_1/`)."""
    def build(x):
        outputs = []
        for i in range(2):
            scope = "tower_0" if shared else f"tower_{i}"
            with tf.compat.v1.variable_scope(scope, reuse=shared and i > 0):
                outputs.append(slim_reference.lenet(x, 10))
        return outputs
    return build


@pytest.mark.parametrize("shared", [True, False])
def test_two_tower_checkpoint(shared, tmp_path):
    rng = np.random.default_rng(21)
    images = rng.normal(size=(2, 28, 28, 1)).astype(np.float32)

    def setup():
        slim_optimizer_slots(tf.compat.v1.train.MomentumOptimizer(0.1, 0.9))
        return [randomize_biases(rng)]

    (tower_0, tower_1), _, path = slim_reference.save_checkpoint(
        _two_tower_lenet(shared), images, str(tmp_path / "towers.ckpt"), setup=setup)
    keys = [key for key, _ in tf.train.list_variables(path)]
    assert "tower_0/LeNet/conv1/weights" in keys
    assert ("tower_1/LeNet/conv1/weights" in keys) is not shared
    model = nets.build_model("lenet", 10, (28, 28, 1))
    mapping = porting.load_checkpoint(model, path)
    assert {m.key for m in mapping.matched} == {
        f"tower_0/{slim_reference.keras_to_slim_name(v.path)}" for v in model.weights}
    assert len(mapping.skipped.get("other replica copy", [])) == (0 if shared else 8)
    assert relative_error(model(images, training=False)["logits"], tower_0) <= RTOL
    if not shared:  # the copies differ, so taking tower_0's is a real choice
        assert relative_error(tower_1, tower_0) > 1e-2


def test_ema_shadows_port(resnet_v1_50_checkpoint):
    """use_ema takes the shadows of trainable variables and the raw BN moving statistics
    (they have no shadow), exactly as slim's eval with `ema.variables_to_restore()`."""
    saved = resnet_v1_50_checkpoint
    model = nets.build_model("resnet_v1_50", 1000, (64, 64, 3))
    mapping = porting.load_checkpoint(model, saved.path, use_ema=True)
    sources = {m.path: m.key for m in mapping.matched}
    trainable = {v.path for v in model.trainable_variables}
    assert all(sources[p].endswith("/ExponentialMovingAverage") == (p in trainable)
               for p in sources)
    assert len(mapping.skipped["raw value (EMA shadow used)"]) == len(trainable)
    error = relative_error(model(saved.images, training=False)["logits"], saved.extra)
    MEASURED["resnet_v1_50 (EMA)"] = error
    assert error <= RTOL
    del model
    gc.collect()


@pytest.mark.parametrize("module, function, expected", [
    ("resnet_v1", "resnet_v1_50", "resnet_arg_scope"),  # per family, in resnet_utils
    ("resnet_v2", "resnet_v2_152", "resnet_arg_scope"),
    ("vgg", "vgg_16", "vgg_arg_scope"),
    ("inception_v3", "inception_v3", "inception_v3_arg_scope"),
    ("inception_v1", "inception_v1", "inception_v1_arg_scope"),
    ("alexnet", "alexnet_v2", "alexnet_v2_arg_scope"),
    ("overfeat", "overfeat", "overfeat_arg_scope"),
])
def test_arg_scope_found_by_slim_conventions(module, function, expected):
    import importlib

    from tfmodels.porting import legacy_graph

    found, tried = legacy_graph.find_arg_scope(
        importlib.import_module(f"tf_slim.nets.{module}"), function)
    assert found == expected and tried[-1] == f"{expected}"
    assert tried[0] == f"{function}_arg_scope"


@pytest.mark.subprocess
def test_verify_with_tf_slims_own_module(resnet_v1_50_checkpoint):
    """tf_slim.nets.resnet_v1:resnet_v1_50 as it is: built under resnet_arg_scope (BN with
    gamma, epsilon 1e-5), found by its family name (without it slim's convs would have
    biases and no BatchNorm, and the checkpoint would not fit)."""
    saved = resnet_v1_50_checkpoint
    model = nets.build_model("resnet_v1_50", 1000, (64, 64, 3))
    porting.load_checkpoint(model, saved.path)
    result = porting.verify(model, saved.path, "tf_slim.nets.resnet_v1:resnet_v1_50",
                            images=saved.images, timeout=300)
    MEASURED["resnet_v1_50 vs tf_slim.nets.resnet_v1 (verify)"] = result.max_rel
    assert result.ok and result.max_rel <= RTOL
    assert result.arg_scope == "tf_slim.nets.resnet_v1:resnet_arg_scope"
    assert "built under arg scope tf_slim.nets.resnet_v1:resnet_arg_scope" in (
        result.arg_scope_note())
    del model
    gc.collect()


def test_ema_missing_fails(lenet_checkpoint):
    model = nets.build_model("lenet", 10, (28, 28, 1))
    with pytest.raises(porting.PortingError) as error:
        porting.load_checkpoint(model, lenet_checkpoint.path, use_ema=True)
    message = str(error.value)
    assert "8 model variables unmatched" in message
    assert ("LeNet/conv1/kernel (5, 5, 1, 32): expected "
            "LeNet/conv1/weights/ExponentialMovingAverage; no ExponentialMovingAverage shadow"
            in message)
    assert error.value.mapping.matched == []


# ---------------------------------------------------------------- strict failures


def _fingerprint(model):
    return [float(tf.reduce_sum(tf.cast(v, tf.float64))) for v in model.weights]


def test_wrong_class_count_fails_then_works_with_exclude(vgg_16_checkpoint):
    saved = vgg_16_checkpoint
    model = nets.build_model("vgg_16", 10, (224, 224, 3))
    before = _fingerprint(model)
    with pytest.raises(porting.PortingError) as error:
        porting.load_checkpoint(model, saved.path)
    message = str(error.value)
    assert "Result: FAILED (2 shape mismatches)" in message
    assert "vgg_16/fc8/kernel (1, 1, 4096, 10) <- vgg_16/fc8/weights (1, 1, 4096, 1000)" in message
    assert "vgg_16/fc8/bias (10,) <- vgg_16/fc8/biases (1000,)" in message
    assert "--exclude_scopes=vgg_16/fc8" in message and "Nothing was assigned" in message
    assert _fingerprint(model) == before  # never a partial load

    mapping = porting.load_checkpoint(model, saved.path, exclude_scopes="vgg_16/fc8")
    assert mapping.ok and mapping.excluded == ["vgg_16/fc8/kernel", "vgg_16/fc8/bias"]
    assert mapping.skipped["excluded scope"] == ["vgg_16/fc8/biases", "vgg_16/fc8/weights"]
    after = _fingerprint(model)
    assert after[-2:] == before[-2:]  # fc8 keeps its initial values
    embedding = model(saved.images, training=False)["embedding"]
    assert relative_error(embedding, saved.extra) <= RTOL  # fc7 equals slim's
    del model
    gc.collect()


def test_non_slim_names_need_overrides(lenet_checkpoint, tmp_path):
    """A LeNet saved under other names fails with hints, then ports with regex overrides."""
    renames = {"conv1": "c1", "conv2": "c2", "fc3": "f3", "fc4": "f4"}
    reader = tf.train.load_checkpoint(lenet_checkpoint.path)
    values = {}
    for key in reader.get_variable_to_shape_map():
        scope, _, leaf = key.partition("/")[2].rpartition("/")
        if key.startswith("LeNet/") and leaf in ("weights", "biases"):
            values[f"net/{renames[scope]}/{leaf[0]}"] = reader.get_tensor(key)
    path = write_tf1_checkpoint(values, str(tmp_path / "renamed.ckpt"))
    model = nets.build_model("lenet", 10, (28, 28, 1))
    with pytest.raises(porting.PortingError, match="8 model variables unmatched") as error:
        porting.load_checkpoint(model, path)
    assert ("LeNet/conv1/kernel (5, 5, 1, 32): expected LeNet/conv1/weights; unused checkpoint "
            "variable of that shape: net/c1/w") in str(error.value)
    assert "net/c1/w (5, 5, 1, 32)" in str(error.value)  # listed as unused
    overrides = {r"net/c(\d)/w": r"LeNet/conv\1/kernel", r"net/c(\d)/b": r"LeNet/conv\1/bias",
                 r"net/f(\d)/w": r"LeNet/fc\1/kernel", r"net/f(\d)/b": r"LeNet/fc\1/bias"}
    mapping = porting.load_checkpoint(model, path, overrides=overrides)
    assert {m.rule for m in mapping.matched} == {"override"}
    logits = model(lenet_checkpoint.images, training=False)["logits"]
    assert relative_error(logits, lenet_checkpoint.expected) <= RTOL
    with pytest.raises(porting.PortingError, match="1 unused override"):
        porting.load_checkpoint(model, path, overrides={**overrides, "nothing/here": "x"})


def test_non_strict_loads_the_matching_variables(lenet_checkpoint):
    model = nets.build_model("lenet", 5, (28, 28, 1))
    by_path = {v.path: v for v in model.weights}
    fc4 = by_path["LeNet/fc4/kernel"].numpy()
    mapping = porting.load_checkpoint(model, lenet_checkpoint.path, strict=False)
    assert not mapping.ok and len(mapping.matched) == 6 and len(mapping.mismatched) == 2
    reader = tf.train.load_checkpoint(lenet_checkpoint.path)
    np.testing.assert_array_equal(by_path["LeNet/conv1/kernel"],
                                  reader.get_tensor("LeNet/conv1/weights"))
    np.testing.assert_array_equal(by_path["LeNet/fc4/kernel"], fc4)


@pytest.mark.parametrize("kwargs, match", [
    (dict(checkpoint_path="/nonexistent/model.ckpt"), r"--checkpoint=/nonexistent/model.ckpt "
                                                      r"does not exist"),
    (dict(checkpoint_path=""), "must be a checkpoint prefix or a directory"),
    (dict(exclude_scopes="LeNet/fc5"), "^--exclude_scopes=LeNet/fc5: the scope matches no "
                                       "variable"),
    (dict(overrides=["a"]), "--overrides=\\['a'\\] must be a dict"),
])
def test_bad_arguments(kwargs, match, lenet_checkpoint, tmp_path):
    model = nets.build_model("lenet", 10, (28, 28, 1))
    arguments = dict(checkpoint_path=lenet_checkpoint.path)
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=match):
        porting.map_checkpoint(model, arguments.pop("checkpoint_path"), **arguments)
    with pytest.raises(ValueError, match=r"holds no checkpoint index file \(\*\.index\)"):
        porting.map_checkpoint(model, str(tmp_path))


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_a_damaged_checkpoint_is_one_line(damage, lenet_checkpoint, tmp_path):
    """A bit flipped or the data file cut short: the read's checksum or length check fails,
    reported as one UsageError line naming --checkpoint=path and the variable, not
    TensorFlow's error."""
    import glob
    import shutil

    from tfmodels.options import UsageError

    for name in glob.glob(lenet_checkpoint.path + ".*"):
        shutil.copy(name, tmp_path)
    prefix = str(tmp_path / os.path.basename(lenet_checkpoint.path))
    data_file = glob.glob(prefix + ".data-*")[0]
    content = bytearray(open(data_file, "rb").read())
    if damage == "flip":  # one bit in each stretch of 997 bytes: every tensor is hit
        for position in range(0, len(content), 997):
            content[position] ^= 0x10
    else:
        content = content[:len(content) // 10]
    open(data_file, "wb").write(bytes(content))
    model = nets.build_model("lenet", 10, (28, 28, 1))
    with pytest.raises(UsageError) as raised:
        porting.load_checkpoint(model, prefix)
    message = str(raised.value)
    assert "\n" not in message and raised.value.option == "checkpoint"
    assert message.startswith(f"--checkpoint={prefix}: variable 'LeNet/")
    assert "' cannot be read (" in message
    assert message.endswith("): the file is damaged or truncated")


def test_a_full_disk_while_writing_the_port_is_one_line(lenet_checkpoint, tmp_path,
                                                        monkeypatch):
    """TensorFlow's ResourceExhaustedError while saving the TF2 checkpoint: one
    ModelDirWriteError naming --output, and nothing left behind (no staging folder)."""
    from tfmodels import model_dir as model_dir_lib

    def save(self, *args, **kwargs):
        raise tf.errors.ResourceExhaustedError(None, None, "ckpt-1_temp; No space left on device")

    monkeypatch.setattr(tf.train.CheckpointManager, "save", save)
    output = tmp_path / "ported"
    with pytest.raises(model_dir_lib.ModelDirWriteError) as err:
        porting.port_checkpoint(lenet_checkpoint.path, "lenet", 10, (28, 28, 1), str(output))
    assert str(err.value) == (f"cannot write {output}: no space left on device (or quota "
                              "exceeded); nothing was written")
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------- unused in filled layers


def small_net(scale=True, bias=True):
    """Net/conv1 (with BatchNorm, gamma if `scale`) and Net/fc (bias if `bias`)."""
    from tfmodels.slim import scopes

    inputs = keras.Input((6, 6, 2))
    with keras.name_scope("Net"):
        net = scopes.conv2d(inputs, 3, 3, normalizer_fn=scopes.batch_norm,
                            normalizer_params={"scale": scale}, scope="conv1")
        net = scopes.fully_connected(scopes.flatten(net), 4, activation_fn=None,
                                     biases_initializer="zeros" if bias else None, scope="fc")
    return keras.Model(inputs, net, name="Net")


def small_net_checkpoint(path, prefix="", shadows=False, extra=()):
    """A TF1 checkpoint of `small_net()` (gamma and biases included) under slim names."""
    rng = np.random.default_rng(41)
    values = {}
    for variable in small_net().weights:
        value = rng.uniform(0.5, 1.5, variable.shape).astype(np.float32)
        name = prefix + slim_reference.keras_to_slim_name(variable.path)
        values[name] = value
        if shadows:
            values[f"{name}/ExponentialMovingAverage"] = value * 0.5
    values.update({key: np.ones(3, np.float32) for key in extra})
    values["global_step"] = np.int64(3)
    return write_tf1_checkpoint(values, path), values


def test_variables_unused_in_filled_layers_fail_with_the_setting(tmp_path):
    path, values = small_net_checkpoint(str(tmp_path / "c.ckpt"), extra=["Net/aux/weights"])
    model = small_net(scale=False, bias=False)
    with pytest.raises(porting.PortingError) as error:
        porting.load_checkpoint(model, path)
    message = str(error.value)
    assert ("Result: FAILED (2 checkpoint variables unused in filled layers)" in message)
    assert "the builder needs batch_norm(scale=True)" in message
    assert "Net/conv1/BatchNorm/gamma (3,)" in message
    assert "the builder needs a bias: biases_initializer not None" in message
    assert "Net/fc/biases (4,)" in message
    assert "--ignore=Net/conv1/BatchNorm/gamma,Net/fc/biases" in message
    # Net/aux has no filled variable: an unused head, listed, never a failure.
    assert "Checkpoint variables that fill no model variable:\n  Net/aux/weights (3,)" in message

    mapping = porting.load_checkpoint(model, path, ignore=["Net/conv1/BatchNorm/gamma",
                                                           r".*/biases"])
    assert mapping.ok and mapping.skipped["ignored"] == ["Net/conv1/BatchNorm/gamma",
                                                         "Net/fc/biases"]
    assert mapping.unused == [("Net/aux/weights", (3,))]
    with pytest.raises(ValueError, match="^--ignore=Net/conv9 matches no checkpoint "
                                         "variable"):
        porting.map_checkpoint(model, path, ignore="Net/conv9")
    full = small_net()  # built as the legacy net was: everything fills
    assert porting.map_checkpoint(full, path).ok


def test_overrides_follow_use_ema(tmp_path):
    """An override naming a raw variable takes its shadow with use_ema (and the raw value
    without); a trainable variable without a shadow fails under use_ema even if overridden."""
    path, values = small_net_checkpoint(str(tmp_path / "c.ckpt"), prefix="legacy/",
                                        shadows=True)
    model = small_net()
    overrides = {r"legacy/Net/conv1/weights": "Net/conv1/kernel"}
    ema = porting.load_checkpoint(model, path, overrides=overrides, use_ema=True,
                                  strip_scope="legacy")
    sources = {m.path: (m.key, m.rule) for m in ema.matched}
    assert sources["Net/conv1/kernel"] == (
        "legacy/Net/conv1/weights/ExponentialMovingAverage", "override, EMA shadow")
    assert sources["Net/fc/kernel"][0] == "legacy/Net/fc/weights/ExponentialMovingAverage"
    kernel = next(v for v in model.weights if v.path == "Net/conv1/kernel")
    np.testing.assert_array_equal(kernel, values["legacy/Net/conv1/weights"] * 0.5)
    assert "legacy/Net/conv1/weights" in ema.skipped["raw value (EMA shadow used)"]

    raw = porting.load_checkpoint(model, path, overrides=overrides, strip_scope="legacy")
    assert {m.path: m.key for m in raw.matched}["Net/conv1/kernel"] == "legacy/Net/conv1/weights"
    np.testing.assert_array_equal(kernel, values["legacy/Net/conv1/weights"])

    no_shadow, _ = small_net_checkpoint(str(tmp_path / "raw.ckpt"))
    with pytest.raises(porting.PortingError, match=r"Net/conv1/kernel \(3, 3, 2, 3\): expected "
                                                   "Net/conv1/weights/ExponentialMovingAverage"):
        porting.load_checkpoint(model, no_shadow, use_ema=True,
                                overrides={"Net/conv1/weights": "Net/conv1/kernel"})


def test_outer_scope_is_hinted_then_stripped(tmp_path):
    path, _ = small_net_checkpoint(str(tmp_path / "c.ckpt"), prefix="model/")
    model = small_net()
    mapping = porting.map_checkpoint(model, path)
    assert not mapping.ok and len(mapping.unmatched) == len(model.weights)
    assert "strip it with --strip_scope=model" in mapping.report()
    # Through train.py (its flags passed in), the hint names train.py's flag.
    flagged = porting.map_checkpoint(model, path, flags={
        "strip_scope": "init_checkpoint_strip_scope", "overrides": "init_checkpoint_overrides"})
    report = flagged.report()
    assert "strip it with --init_checkpoint_strip_scope=model" in report
    assert "pass --init_checkpoint_overrides={checkpoint key or regex" in report
    assert "--strip_scope=" not in report and "--overrides=" not in report
    mapping = porting.map_checkpoint(model, path, strip_scope="model")
    assert mapping.ok and mapping.matched[0].key.startswith("model/Net/")


# ---------------------------------------------------------------- TF2 checkpoints


def write_tf2_model_dir(directory, num_classes=10, ema=False, seed=0):
    """A model_dir laid out as train.py writes it: `ckpt-7` of model, optimizer, step (and
    weight averages) through a CheckpointManager, and config.json. Returns (model, shadows)."""
    from tfmodels import averaging
    from tfmodels import model_dir as model_dir_lib

    rng = np.random.default_rng(seed)
    model = nets.build_model("lenet", num_classes, (28, 28, 1))
    for v in model.weights:
        v.assign(rng.normal(0, 0.1, v.shape).astype(np.float32))
    optimizer = keras.optimizers.SGD(0.1, momentum=0.9)
    optimizer.build(model.trainable_variables)
    parts = dict(model=model, optimizer=optimizer, step=tf.Variable(7, dtype=tf.int64))
    shadows = None
    if ema:
        average = averaging.WeightAverage(model.trainable_variables, 0.99)
        for shadow in average.shadows:
            shadow.assign(shadow * rng.uniform(0.8, 1.2, shadow.shape).astype(np.float32))
        parts["weight_average"] = average
        shadows = [s.numpy() for s in average.shadows]
    tf.train.CheckpointManager(tf.train.Checkpoint(**parts), str(directory),
                               max_to_keep=1).save(checkpoint_number=7)
    model_dir_lib.write_json_atomic(str(directory / model_dir_lib.CONFIG_FILE), {
        "model": "lenet", "num_classes": num_classes, "image_shape": [28, 28, 1],
        "optimizer": "momentum", "ema_decay_enabled": ema, "ema_decay": 0.99})
    return model, shadows


def test_tf2_checkpoint_ports_by_variable_path(tmp_path):
    source, shadows = write_tf2_model_dir(tmp_path, ema=True)
    # Object paths only, no layer names: each variable is stored once, under the first path
    # TF finds to it (here LeNet's kernels are `optimizer/_trainable_variables/N/...`).
    keys = [key for key, _ in tf.train.list_variables(str(tmp_path / "ckpt-7"))]
    assert all("/.ATTRIBUTES/" in key for key in keys if key != "_CHECKPOINTABLE_OBJECT_GRAPH")
    assert not any("LeNet" in key for key in keys)

    target = nets.build_model("lenet", 10, (28, 28, 1))
    mapping = porting.load_checkpoint(target, str(tmp_path))  # the directory: latest ckpt
    assert mapping.source_format == "tf2" and mapping.ok
    assert {m.rule for m in mapping.matched} == {"same name"}
    for ours, theirs in zip(target.weights, source.weights):
        np.testing.assert_array_equal(ours, theirs)

    porting.load_checkpoint(target, str(tmp_path / "ckpt-7"), use_ema=True)
    for ours, shadow in zip(target.trainable_variables, shadows):
        np.testing.assert_array_equal(ours, shadow)


def test_tf2_checkpoint_fine_tunes_to_new_classes(tmp_path):
    source, _ = write_tf2_model_dir(tmp_path)
    target = nets.build_model("lenet", 5, (28, 28, 1))
    with pytest.raises(porting.PortingError, match=r"LeNet/fc4/kernel \(1024, 5\) <- "
                                                   r"LeNet/fc4/kernel \(1024, 10\)"):
        porting.load_checkpoint(target, str(tmp_path))
    with pytest.raises(porting.PortingError, match="holds no weight averages"):
        porting.load_checkpoint(target, str(tmp_path), use_ema=True)
    # Through train.py (its flags passed): its own flags are named.
    from tfmodels.training import TrainConfig
    with pytest.raises(porting.PortingError) as raised:
        porting.load_checkpoint(target, str(tmp_path), use_ema=True,
                                flags=TrainConfig.porting_flags())
    assert str(raised.value) == (
        f"--init_checkpoint_use_ema: --init_checkpoint={tmp_path}/ckpt-7 holds no weight "
        "averages (trained without train.py's --ema_decay); take it without "
        "--init_checkpoint_use_ema")
    mapping = porting.load_checkpoint(target, str(tmp_path), exclude_scopes=["LeNet/fc4"])
    assert mapping.excluded == ["LeNet/fc4/kernel", "LeNet/fc4/bias"]
    by_path = {v.path: v for v in source.weights}
    for v in target.weights[:-2]:
        np.testing.assert_array_equal(v, by_path[v.path])


def test_tf2_checkpoint_needs_its_config(tmp_path):
    write_tf2_model_dir(tmp_path)
    (tmp_path / "config.json").unlink()
    model = nets.build_model("lenet", 10, (28, 28, 1))
    with pytest.raises(ValueError, match=r"TF2 \(object-based\) checkpoint: its model is "
                                         r"rebuilt from config.json"):
        porting.map_checkpoint(model, str(tmp_path))
    with pytest.raises(ValueError, match=r"^--init_checkpoint=\S+ is a TF2 \(object-based\)"):
        porting.map_checkpoint(model, str(tmp_path), flags={"checkpoint": "init_checkpoint"})
    with pytest.raises(ValueError, match="checkpoint_path is not one of the porting options"):
        porting.map_checkpoint(model, str(tmp_path), flags={"checkpoint_path": "x"})


# ---------------------------------------------------------------- trainable scopes


def test_trainable_variables():
    model = nets.build_model("resnet20", 10, (8, 8, 3))
    assert porting.trainable_variables(model, "") == model.trainable_variables
    assert porting.trainable_variables(model, None) == model.trainable_variables
    scopes = ("resnet20/logits", "resnet20/block3/unit_3")
    chosen = porting.trainable_variables(model, ",".join(scopes))
    assert [v.path for v in chosen] == [v.path for v in model.trainable_variables
                                        if v.path.startswith(tuple(s + "/" for s in scopes))]
    assert len(chosen) == 2 + 2 * 3  # logits kernel/bias; two convs' kernel, gamma, beta
    assert porting.trainable_variables(model, ["resnet20/logits/weights"]) == chosen[-2:-1]
    with pytest.raises(ValueError, match="^--trainable_scopes=resnet20/block4: the scope "
                                         "matches no trainable variable"):
        porting.trainable_variables(model, "resnet20/block4")
    with pytest.raises(ValueError,
                       match="--trainable_scopes=resnet20/conv1/BatchNorm/moving_mean: "):
        porting.trainable_variables(model, "resnet20/conv1/BatchNorm/moving_mean")


# ---------------------------------------------------------------- mirrored variables


@replicas.scenario(1, 2)
def ported_under_strategy(strategy):
    """resnet20 (batch norm, nested models) built and filled from a TF1 checkpoint inside
    `strategy.scope()`: the largest difference between any replica's copy of any variable and
    the checkpoint, and every replica's logits."""
    import tempfile

    rng = np.random.default_rng(5)
    template = nets.build_model("resnet20", 10, (8, 8, 3))
    values = {}
    for v in template.weights:
        value = rng.normal(0, 0.3, v.shape).astype(np.float32)
        if v.path.endswith("moving_variance"):
            value = np.abs(value) + 0.5
        values[slim_reference.keras_to_slim_name(v.path)] = value
    path = write_tf1_checkpoint(values, tempfile.mkdtemp() + "/model.ckpt")
    with strategy.scope():
        model = nets.build_model("resnet20", 10, (8, 8, 3))
        porting.load_checkpoint(model, path)
    images = tf.constant(rng.normal(size=(2, 8, 8, 3)).astype(np.float32))

    def replica_fn():
        return ([tf.identity(v.value) for v in model.weights],
                model(images, training=False)["logits"])

    copies, logits = strategy.run(replica_fn)
    error = max(float(np.max(np.abs(np.asarray(c) - values[
        slim_reference.keras_to_slim_name(v.path)])))
        for v, per_replica in zip(model.weights, copies)
        for c in strategy.experimental_local_results(per_replica))
    logits = np.stack([np.asarray(x) for x in strategy.experimental_local_results(logits)])
    return {"copy_error": np.array(error), "logits": logits}


def test_load_into_mirrored_variables(replica_runner):
    one = replica_runner.run(ported_under_strategy, 1)
    two = replica_runner.run(ported_under_strategy, 2)
    assert one["logits"].shape == (1, 2, 10) and two["logits"].shape == (2, 2, 10)
    assert float(one["copy_error"]) == 0.0 and float(two["copy_error"]) == 0.0
    np.testing.assert_allclose(two["logits"][1], two["logits"][0], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(two["logits"][0], one["logits"][0], rtol=1e-6, atol=1e-6)


@pytest.fixture(scope="module", autouse=True)
def _print_measured():
    yield
    if MEASURED:
        print("\nrelative logit errors vs tf-slim: " + ", ".join(
            f"{name} {error:.1e}" for name, error in MEASURED.items()))
