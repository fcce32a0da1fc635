"""Checkpoints laid out as real TF1 training code left them, ported and verified against the
legacy graph (`porting.verify`: the TF1 function rebuilt in its own process, restored with a
Saver, fed the same batch):

- models/research/slim `train_image_classifier.py` with `deployment/model_deploy.py`: two
  clones (`clone_0/`, `clone_1/` name scopes sharing one set of variables, so the checkpoint
  keys carry no clone prefix), `--moving_average_decay` (shadows of every model variable, BN
  statistics included, decay tied to `global_step`), Momentum slots;
- a TF1 Estimator model_fn: the net under an outer `model/` variable scope, Adam slots,
  `beta1_power` / `beta2_power`, `global_step`, a sharded Saver;
- two towers with their own copies (`tower_0/`, `tower_1/`) and EMA shadows.

The nets are the guide's custom ConvNet (docs/examples: BatchNorm with gamma, slim.repeat,
nested scopes) and models/research/slim's LeNet (tests/slim_reference.py). Then the checks
that names cannot do: a BatchNorm epsilon left at its default is caught by the logits.
"""
import gc

import numpy as np
import pytest
import tensorflow as tf

from tests import scripts, slim_reference
from tfmodels import porting

pytestmark = pytest.mark.filterwarnings("ignore:`(layer.apply|tf.layers.flatten)`:UserWarning")

EXAMPLES = f"{scripts.ROOT}/docs/examples"
TOL = 1e-4
MEASURED = {}  # verified logit differences, printed at the end of the module (pytest -s)


@pytest.fixture(scope="module", autouse=True)
def examples_on_path():
    """The guide's nets importable here and, through sys.path, in the verify process."""
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(EXAMPLES)
        yield


def legacy_convnet():
    import legacy_convnet as module
    return module


def run_steps(train_op, saver, path, steps, global_step):
    with tf.compat.v1.Session() as session:
        session.run([tf.compat.v1.global_variables_initializer(),
                     tf.compat.v1.local_variables_initializer()])
        for _ in range(steps):
            session.run(train_op)
        return saver.save(session, path, global_step=global_step)


# ---------------------------------------------------------------- the three layouts


def write_train_image_classifier(directory, num_clones=2, steps=4):
    """train_image_classifier.py's graph, reduced: model_deploy.create_clones (name scope
    `clone_i`, `variable_scope(reuse=i > 0)`), per-clone losses / num_clones plus the
    regularization once (optimize_clones), summed gradients, first clone's UPDATE_OPS, EMA of
    slim.get_model_variables() with num_updates=global_step, Momentum."""
    net = legacy_convnet()
    slim = net.slim
    images, labels = net.fake_images(8 * num_clones, seed=3)
    with tf.Graph().as_default():
        tf.compat.v1.set_random_seed(0)
        global_step = tf.compat.v1.train.get_or_create_global_step()
        clone_scopes = []
        for i in range(num_clones):
            with tf.name_scope(f"clone_{i}") as clone_scope:
                with tf.compat.v1.variable_scope(tf.compat.v1.get_variable_scope(),
                                                 reuse=True if i > 0 else None):
                    with slim.arg_scope(net.convnet_arg_scope()):
                        logits, _ = net.convnet(tf.constant(images[i::num_clones]),
                                                is_training=True)
                    slim.losses.softmax_cross_entropy(
                        logits, tf.one_hot(labels[i::num_clones], 10))
            clone_scopes.append(clone_scope)
        update_ops = tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.UPDATE_OPS,
                                                 clone_scopes[0])
        averages = tf.compat.v1.train.ExponentialMovingAverage(0.9, global_step)
        update_ops.append(averages.apply(slim.get_model_variables()))
        optimizer = tf.compat.v1.train.MomentumOptimizer(0.1, 0.9)
        regularization = tf.add_n(tf.compat.v1.losses.get_regularization_losses())
        gradients = []
        for i, scope in enumerate(clone_scopes):
            loss = tf.add_n(tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.LOSSES,
                                                        scope)) / num_clones
            gradients.append(optimizer.compute_gradients(
                loss + regularization if i == 0 else loss))
        summed = [(tf.add_n([g for g, _ in pairs]), pairs[0][1])
                  for pairs in zip(*gradients) if pairs[0][0] is not None]
        train_op = tf.group(optimizer.apply_gradients(summed, global_step=global_step),
                            *update_ops)
        return run_steps(train_op, tf.compat.v1.train.Saver(),
                         str(directory / "model.ckpt"), steps, global_step)


def write_estimator(directory, steps=3):
    """What a TF1 Estimator's model_fn left: `model/LeNet/...` (the model_fn's outer
    variable scope), Adam slots and beta powers, global_step, a sharded Saver."""
    rng = np.random.default_rng(4)
    images = rng.normal(size=(8, 28, 28, 1)).astype(np.float32)
    with tf.Graph().as_default():
        tf.compat.v1.set_random_seed(0)
        global_step = tf.compat.v1.train.get_or_create_global_step()
        with tf.compat.v1.variable_scope("model"):
            logits = slim_reference.lenet(tf.constant(images), 10, is_training=True)
        loss = tf.compat.v1.losses.sparse_softmax_cross_entropy(rng.integers(0, 10, 8), logits)
        train_op = tf.compat.v1.train.AdamOptimizer(1e-2).minimize(loss, global_step)
        return run_steps(train_op, tf.compat.v1.train.Saver(sharded=True),
                         str(directory / "model.ckpt"), steps, global_step)


def write_two_towers(directory, steps=3):
    """Two towers, each with its own LeNet copy under `tower_i/` (tf.Variable-style, no
    reuse), averaged with EMA shadows, Momentum."""
    rng = np.random.default_rng(5)
    images = rng.normal(size=(8, 28, 28, 1)).astype(np.float32)
    with tf.Graph().as_default():
        tf.compat.v1.set_random_seed(0)
        global_step = tf.compat.v1.train.get_or_create_global_step()
        losses = []
        for i in range(2):
            with tf.compat.v1.variable_scope(f"tower_{i}"):
                logits = slim_reference.lenet(tf.constant(images[i::2]), 10, is_training=True)
            losses.append(tf.compat.v1.losses.sparse_softmax_cross_entropy(
                rng.integers(0, 10, 4), logits))
        averages = tf.compat.v1.train.ExponentialMovingAverage(0.5)
        step = tf.compat.v1.train.MomentumOptimizer(0.05, 0.9).minimize(
            tf.add_n(losses), global_step)
        with tf.control_dependencies([step]):
            train_op = averages.apply(tf.compat.v1.trainable_variables())
        return run_steps(train_op, tf.compat.v1.train.Saver(), str(directory / "model.ckpt"),
                         steps, global_step)


def keys_of(path):
    return [key for key, _ in tf.train.list_variables(path)]


def port_and_verify(name, path, model, num_classes, shape, tmp_path, **kwargs):
    mapping = porting.port_checkpoint(path, model, num_classes, shape, str(tmp_path / name),
                                      **kwargs)
    result = mapping.verification
    MEASURED[name] = (result.max_abs, result.max_rel)
    assert result.ok and result.max_rel <= TOL
    return mapping


def test_train_image_classifier_layout(tmp_path):
    path = write_train_image_classifier(tmp_path)
    keys = keys_of(path)
    assert not any(key.startswith("clone_") for key in keys)  # clones share the variables
    assert "global_step" in keys
    assert "ConvNet/stem/conv/BatchNorm/moving_mean/ExponentialMovingAverage" in keys
    assert "ConvNet/logits/weights/Momentum" in keys
    reader = tf.train.load_checkpoint(path)
    assert not np.allclose(reader.get_tensor("ConvNet/logits/weights"),
                           reader.get_tensor("ConvNet/logits/weights/ExponentialMovingAverage"))
    mapping = port_and_verify("train_image_classifier (2 clones, EMA)", path, "convnet:convnet",
                              10, (16, 16, 3), tmp_path, use_ema=True,
                              verify_with="legacy_convnet:convnet")
    # Every model variable, BN statistics included, from its shadow (eval_image_classifier's
    # variables_to_restore over the model variables).
    assert all(m.key.endswith("/ExponentialMovingAverage") for m in mapping.matched)
    assert sorted(mapping.skipped) == ["bookkeeping", "optimizer slot",
                                       "raw value (EMA shadow used)"]


def test_estimator_layout(tmp_path):
    path = write_estimator(tmp_path)
    keys = keys_of(path)
    assert {"model/LeNet/conv1/weights", "model/LeNet/conv1/weights/Adam_1", "global_step",
            "beta1_power"} <= set(keys)
    mapping = port_and_verify("Estimator (model/ scope, Adam)", path, "lenet", 10, (28, 28, 1),
                              tmp_path, strip_scope="model",
                              verify_with="tests.slim_reference:lenet")
    assert mapping.verification.prefix == "model/"
    assert mapping.verification.arg_scope is None  # tests.slim_reference has none: said so
    assert ("tests.slim_reference:lenet was built WITHOUT an arg scope: none found in its "
            "module (looked for lenet_arg_scope, slim_reference_arg_scope, slim_arg_scope, "
            "the module's only *_arg_scope)") in mapping.verification.arg_scope_note()
    assert len(mapping.skipped["optimizer slot"]) == 16


def test_two_tower_layout(tmp_path):
    path = write_two_towers(tmp_path)
    keys = keys_of(path)
    assert {"tower_0/LeNet/fc4/biases/ExponentialMovingAverage",
            "tower_1/LeNet/fc4/biases"} <= set(keys)
    mapping = port_and_verify("two towers (own copies, EMA)", path, "lenet", 10, (28, 28, 1),
                              tmp_path, use_ema=True, verify_with="tests.slim_reference:lenet")
    assert mapping.verification.prefix == "tower_0/"
    assert all(m.key.startswith("tower_0/") and m.key.endswith("/ExponentialMovingAverage")
               for m in mapping.matched)


@pytest.mark.subprocess
def test_tf_layers_style(tmp_path):
    """tf.compat.v1.layers code (no net scope, `conv2d_1/kernel`, `dense_1/bias`), trained and
    saved under legacy Keras in its own process, ports into LeNet by structure and order and
    verifies against the same code (the verify process sets up legacy Keras itself)."""
    import os
    import subprocess
    import sys

    env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run([sys.executable, f"{EXAMPLES}/legacy_layers_lenet.py",
                             str(tmp_path / "run" / "model.ckpt")], env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert {"conv2d_1/kernel", "dense_1/bias", "global_step"} <= set(keys_of(
        str(tmp_path / "run" / "model.ckpt-3")))
    mapping = port_and_verify("tf.compat.v1.layers (no net scope, Adam)", str(tmp_path / "run"),
                              "lenet", 10, (28, 28, 1), tmp_path,
                              verify_with="legacy_layers_lenet:lenet")
    assert {m.key: m.path for m in mapping.matched}["conv2d_1/kernel"] == "LeNet/conv2/kernel"
    assert "dense -> LeNet/fc3, dense_1 -> LeNet/fc4" in mapping.report()


# ---------------------------------------------------------------- what verify catches


@pytest.fixture(scope="module")
def convnet_checkpoint(tmp_path_factory):
    return write_train_image_classifier(tmp_path_factory.mktemp("convnet"), num_clones=1)


def test_forgotten_batch_norm_epsilon_fails_verification(convnet_checkpoint, tmp_path,
                                                         monkeypatch):
    code = open(f"{EXAMPLES}/convnet.py").read()
    assert "epsilon=1e-5" in code
    (tmp_path / "convnet_eps.py").write_text(
        code.replace("decay=0.9,\n                              epsilon=1e-5", "decay=0.9"))
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(porting.VerificationError) as error:
        porting.port_checkpoint(convnet_checkpoint, "convnet_eps:convnet", 10, (16, 16, 3),
                                str(tmp_path / "out"), verify_with="legacy_convnet:convnet")
    result = error.value.verification
    MEASURED["convnet with epsilon 1e-3 (caught)"] = (result.max_abs, result.max_rel)
    assert result.max_rel > 10 * TOL  # measured 3.5e-3
    assert "batch_norm epsilon" in str(error.value) and "Nothing was written" in str(error.value)
    assert not (tmp_path / "out").exists()


def test_verify_on_real_images(convnet_checkpoint, tmp_path):
    """Image files (decoded, resized, scaled to [0, 1]) and a .npy batch reach both models."""
    from tfmodels import nets

    rng = np.random.default_rng(8)
    for i in range(3):
        pixels = rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)
        tf.io.write_file(str(tmp_path / f"img{i}.png"), tf.io.encode_png(pixels))
    model = nets.build_model("convnet:convnet", 10, (16, 16, 3))
    porting.load_checkpoint(model, convnet_checkpoint)
    result = porting.verify(model, convnet_checkpoint, "legacy_convnet:convnet",
                            images=str(tmp_path / "img*.png"))
    assert result.num_images == 3 and "scaled to [0, 1]" in result.images
    MEASURED["convnet on 3 PNG images"] = (result.max_abs, result.max_rel)
    assert result.ok
    batch, _ = porting.verification.load_images(str(tmp_path / "img*.png"), (16, 16, 3))
    assert batch.shape == (3, 16, 16, 3) and 0 <= batch.min() and batch.max() <= 1
    np.save(tmp_path / "batch.npy", batch[:2])
    mapping = porting.port_checkpoint(  # a dry run verifies in memory and writes nothing
        convnet_checkpoint, "convnet:convnet", 10, (16, 16, 3), None, dry_run=True,
        verify_with="legacy_convnet:convnet", verify_images=str(tmp_path / "batch.npy"))
    assert mapping.verification.num_images == 2 and mapping.verification.ok
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "batch.npy", "img0.png", "img1.png", "img2.png"]
    with pytest.raises(ValueError, match=r"does not fit the model's input \[N, 16, 16, 3\]"):
        porting.verify(model, convnet_checkpoint, "legacy_convnet:convnet",
                       images=np.zeros((2, 8, 8, 3), np.float32))
    with pytest.raises(ValueError, match="--verify_with=legacy_convnet must be "
                                         "'package.module:function'"):
        porting.verify(model, convnet_checkpoint, "legacy_convnet")
    with pytest.raises(ValueError, match="importing no_such_legacy failed: "
                                         "ModuleNotFoundError"):
        porting.verify(model, convnet_checkpoint, "no_such_legacy:net")
    del model
    gc.collect()


@pytest.fixture(scope="module", autouse=True)
def _print_measured():
    yield
    if MEASURED:
        print("\nlogit differences vs the legacy graph (max abs, max relative): " + "; ".join(
            f"{name} {a:.1e}, {r:.1e}" for name, (a, r) in MEASURED.items()))
