"""Saved models load where they are used: the `.keras` files after a bare `import tfmodels`, and
the exported SavedModel in a process that cannot import tfmodels at all.

Each check runs in a fresh interpreter (the registrations of this test process would hide a
missing one) on a model holding every custom layer (SlimConv2D with BatchNorm and PReLU,
SlimDense, LocalResponseNormalization, Dropout, the L2WeightDecay regularizer) and is compared
with this process's outputs.
"""
import json
import subprocess
import sys

import keras
import numpy as np
import pytest

from tests import scripts
from tfmodels.slim import scopes
from tfmodels.data import DatasetInfo
from tfmodels.slim.regularizers import l2_regularizer
from tfmodels.training import export

pytestmark = pytest.mark.subprocess  # every test starts a script or a fresh interpreter

INFO = DatasetInfo(name="test", image_shape=(8, 8, 3), num_classes=4, splits={"test": 1},
                   pixel_max=255.0, mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3))


def every_custom_layer_model():
    images = keras.Input(INFO.image_shape, name="images")
    with keras.name_scope("Net"), scopes.arg_scope(
            [scopes.conv2d, scopes.fully_connected], weights_regularizer=l2_regularizer(1e-3)):
        net = scopes.conv2d(images, 6, 3, normalizer_fn=scopes.batch_norm,
                            normalizer_params={"scale": True}, activation_fn=scopes.prelu,
                            scope="conv1")
        net = scopes.lrn(net, 2, scope="norm1")
        net = scopes.flatten(scopes.max_pool2d(net, 2, scope="pool1"), scope="Flatten")
        embedding = scopes.fully_connected(net, 5, scope="fc2")
        net = scopes.dropout(embedding, 0.5, scope="dropout2")
        logits = scopes.fully_connected(net, INFO.num_classes, activation_fn=None, scope="fc3")
    model = keras.Model(images, {"logits": logits, "embedding": embedding}, name="Net")
    rng = np.random.default_rng(0)
    for variable in model.weights:  # moving_variance must stay positive
        variable.assign(rng.uniform(0.5, 1.5, variable.shape).astype(np.float32))
    return model


def run_python(code, cwd, **env):
    result = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True,
                            text=True, timeout=300, env=scripts.script_env(**env))
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    directory = tmp_path_factory.mktemp("export")
    model = every_custom_layer_model()
    paths = export.export(model, INFO, str(directory))
    pixels = np.random.default_rng(1).uniform(0, 255, (3, *INFO.image_shape)).astype(np.float32)
    np.save(directory / "pixels.npy", pixels)
    return model, paths, pixels, directory


def softmax(logits):
    logits = np.asarray(logits, np.float64)
    e = np.exp(logits - logits.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_keras_files_load_after_import_tfmodels(exported):
    """model.keras: raw pixels -> probabilities; net.keras: the net itself. Before `import
    tfmodels` Keras cannot find the classes and says which (it imports only its own packages)."""
    model, paths, pixels, directory = exported
    code = f"""
import json, numpy as np
import keras
try:
    keras.saving.load_model({paths['keras']!r})
    error = None
except TypeError as e:
    error = str(e)
import tfmodels
pixels = np.load({str(directory / 'pixels.npy')!r})
classifier = keras.saving.load_model({paths['keras']!r})
net = keras.saving.load_model({paths['net']!r})
normalized = np.load({str(directory / 'normalized.npy')!r})
print(json.dumps({{"error": error,
                   "probabilities": np.asarray(classifier(pixels)).tolist(),
                   "logits": np.asarray(net(normalized, training=False)["logits"]).tolist(),
                   "classes": sorted({{type(layer).__name__ for layer in net.layers}})}}))
"""
    normalized = ((pixels / INFO.pixel_max - np.array(INFO.mean)) / np.array(INFO.std))
    np.save(directory / "normalized.npy", normalized.astype(np.float32))
    result = run_python(code, cwd=str(directory), PYTHONPATH=scripts.ROOT)
    assert "Could not locate class 'EvalPreprocessing'" in result["error"]
    assert "tfmodels.data.pipelines.serving" in result["error"]
    assert {"SlimConv2D", "SlimDense", "LocalResponseNormalization",
            "Dropout"} <= set(result["classes"])
    logits = model(normalized.astype(np.float32), training=False)["logits"]
    np.testing.assert_allclose(result["logits"], logits, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(result["probabilities"], softmax(logits), rtol=1e-5, atol=1e-6)


def test_saved_model_serves_without_tfmodels(exported):
    model, paths, pixels, directory = exported
    # `sys.modules['tfmodels'] = None` makes any import of it fail, whatever sys.path holds.
    code = f"""
import json, sys
sys.modules["tfmodels"] = None
import numpy as np, tensorflow as tf
try:
    import tfmodels
    raise SystemExit("tfmodels is importable")
except ImportError:
    pass
serve = tf.saved_model.load({paths['saved_model']!r}).signatures["serving_default"]
out = serve(pixels=tf.constant(np.load({str(directory / 'pixels.npy')!r})))
print(json.dumps({{key: np.asarray(value).tolist() for key, value in out.items()}}))
"""
    result = run_python(code, cwd=str(directory))
    normalized = (pixels / INFO.pixel_max - np.array(INFO.mean)) / np.array(INFO.std)
    outputs = model(normalized.astype(np.float32), training=False)
    expected = softmax(outputs["logits"])
    np.testing.assert_allclose(result["probabilities"], expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(result["classes"], expected.argmax(-1))
    np.testing.assert_allclose(result["embedding"], outputs["embedding"], rtol=1e-5, atol=1e-5)
