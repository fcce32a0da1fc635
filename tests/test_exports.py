"""The default run's exports, loaded in a fresh process as a user would, fed the raw test digits
(0..16, as scikit-learn stores them), give the test accuracy the run wrote to metrics.json:

* `model.keras` (after `import tfmodels`): raw pixels in, probabilities [N, 10] out;
* `net.keras`: the bare net, fed the digits normalised by hand (`pixels / 16`);
* `saved_model/` (no tfmodels needed): raw pixels in, probabilities and classes out.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests import scripts
from tfmodels import data

pytestmark = pytest.mark.subprocess  # every test starts a script or a fresh interpreter

# A short default run (3 of its 30 epochs): well above chance, so a wrong preprocessing shows.
EPOCHS = 3
# One example either way: evaluation and the exports sum in other orders on other batches, which
# can flip a near tie.
ONE_EXAMPLE = 1 / 359

LOAD = """
import json, sys
import numpy as np
import keras
import tensorflow as tf
import tfmodels

model_dir, pixels_path = sys.argv[1:]
pixels = np.load(pixels_path)
classifier = keras.models.load_model(f"{model_dir}/model.keras")
net = keras.models.load_model(f"{model_dir}/net.keras")
serve = tf.saved_model.load(f"{model_dir}/saved_model").signatures["serving_default"]
served = serve(pixels=tf.constant(pixels))
print(json.dumps({
    "model.keras": np.asarray(classifier.predict(pixels, verbose=0)).tolist(),
    "net.keras": np.asarray(net(pixels / 16.0, training=False)["logits"]).tolist(),
    "saved_model": served["probabilities"].numpy().tolist(),
    "saved_model_classes": served["classes"].numpy().tolist()}))
"""


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    folder = tmp_path_factory.mktemp("exports")
    model_dir = str(folder / "run")
    proc = scripts.run("train.py", f"--model_dir={model_dir}", f"--epochs={EPOCHS}",
                       timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    with open(os.path.join(model_dir, "metrics.json")) as f:
        metrics = json.load(f)
    pixels, labels = data.load_arrays(data.get_dataset_info("digits"), "test")
    np.save(folder / "pixels.npy", pixels.astype(np.float32))
    result = subprocess.run([sys.executable, "-c", LOAD, model_dir, str(folder / "pixels.npy")],
                            cwd=str(folder), capture_output=True, text=True, timeout=300,
                            env=scripts.script_env(PYTHONPATH=scripts.ROOT))
    assert result.returncode == 0, result.stderr[-4000:]
    outputs = json.loads(result.stdout.strip().splitlines()[-1])
    return metrics, labels, {name: np.asarray(value) for name, value in outputs.items()}


@pytest.mark.parametrize("export", ["model.keras", "net.keras", "saved_model"])
def test_each_export_gives_the_runs_test_accuracy(loaded, export):
    metrics, labels, outputs = loaded
    assert metrics["test_accuracy"] > 0.5  # 10 classes: chance is 0.1
    scores = outputs[export]
    assert scores.shape == (len(labels), 10)
    accuracy = np.mean(scores.argmax(1) == labels)
    np.testing.assert_allclose(accuracy, metrics["test_accuracy"], rtol=0, atol=ONE_EXAMPLE)


def test_the_probabilities_agree(loaded):
    _, _, outputs = loaded
    logits = outputs["net.keras"]
    expected = np.exp(logits - logits.max(1, keepdims=True))
    expected /= expected.sum(1, keepdims=True)
    np.testing.assert_allclose(outputs["model.keras"].sum(1), 1.0, atol=1e-5)
    np.testing.assert_allclose(outputs["model.keras"], expected, atol=1e-5)
    np.testing.assert_allclose(outputs["saved_model"], expected, atol=1e-5)
    np.testing.assert_array_equal(outputs["saved_model_classes"], expected.argmax(1))
