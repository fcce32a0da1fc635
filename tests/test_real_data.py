"""train.py and eval.py on users' real data: unchanged inside `tfds.testing.mock_data` on a dataset
of varying image size (resolved size and preprocessing recorded, exact resume, exports that apply
the evaluation preprocessing, undecodable images named or counted), digits resized for LeNet,
and a net refused for its input size."""
import json
import os
import re

import numpy as np
import pytest
import tensorflow as tf

from tests import scripts

pytestmark = pytest.mark.subprocess  # every test starts a script or a fresh interpreter

N = 10  # mocked examples per split
FLOWERS = ["--model=cifarnet", "--dataset=tfds:oxford_flowers102", "--batch_size=4",
           "--steps_per_loop=3", "--checkpoint_every=3", "--log_every=3", "--deterministic",
           "--lr_schedule=constant", "--learning_rate=0.01", "--seed=4"]


def mocked(script, *args):
    """`python -m tests.mock_tfds_run N script args`: the script unchanged inside mock_data."""
    proc = scripts.run("-m tests.mock_tfds_run", str(N), script, *args, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


def read(path):
    with open(path) as f:
        return json.load(f)


def checkpoint_values(prefix):
    reader = tf.train.load_checkpoint(prefix)
    return {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map()
            if k != "_CHECKPOINTABLE_OBJECT_GRAPH" and not k.startswith("save_counter")}


@pytest.fixture(scope="module")
def flowers(tmp_path_factory):
    model_dir = str(tmp_path_factory.mktemp("flowers") / "run")
    proc = mocked("train.py", f"--model_dir={model_dir}", "--train_steps=6", *FLOWERS)
    return model_dir, proc


def test_train_and_eval_run_unchanged_inside_mock_data(flowers):
    model_dir, proc = flowers
    config = read(os.path.join(model_dir, "config.json"))
    # Varying image sizes: the net's default size and slim's preprocessing for it.
    assert config["image_shape"] == [32, 32, 3] and config["preprocessing"] == "cifarnet"
    assert config["image_size"] is None and config["num_classes"] == 102
    metrics = json.loads(proc.stdout)
    assert metrics["test_examples"] == N and metrics["steps"] == 6
    assert metrics["train_skipped_undecodable"] == metrics["test_skipped_undecodable"] == 0
    evaluated = mocked("eval.py", f"--model_dir={model_dir}", "--plot_dir=")
    [summary] = json.loads(evaluated.stdout)
    assert summary["count"] == N and summary["step"] == 6
    # The same pipeline as the training run's own evaluation: the same numbers.
    np.testing.assert_allclose(summary["accuracy"], metrics["test_accuracy"], atol=1e-9)
    np.testing.assert_allclose(summary["loss"], metrics["test_loss"], rtol=1e-5)


def test_resume_is_exact(flowers, tmp_path):
    model_dir = str(tmp_path / "resumed")
    mocked("train.py", f"--model_dir={model_dir}", "--train_steps=3", "--noexport", *FLOWERS)
    proc = mocked("train.py", f"--model_dir={model_dir}", "--train_steps=6", "--noexport",
                  *FLOWERS)
    assert "resuming from step 3" in proc.stderr
    straight = checkpoint_values(os.path.join(flowers[0], "ckpt-6"))
    resumed = checkpoint_values(os.path.join(model_dir, "ckpt-6"))
    assert straight.keys() == resumed.keys() and len(straight) > 10
    for key in straight:
        np.testing.assert_array_equal(resumed[key], straight[key], err_msg=key)


def mocked_test_images():
    """The raw images the mocked flowers test split holds (random sizes)."""
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=N):
        builder = tfds.builder("oxford_flowers102")
        feature = builder.info.features["image"]
        encoded = builder.as_dataset(split="test",
                                     decoders={"image": tfds.decode.SkipDecoding()})
        return [feature.decode_example(e["image"]).numpy() for e in encoded.take(4)]


def softmax(logits):
    e = np.exp(logits - logits.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_export_serves_whole_images_with_the_evaluation_preprocessing(flowers):
    import keras

    from tfmodels.data import preprocessing

    model_dir, _ = flowers
    serve = tf.saved_model.load(os.path.join(model_dir, "saved_model")).signatures[
        "serving_default"]
    classifier = keras.models.load_model(os.path.join(model_dir, "model.keras"))
    net = keras.models.load_model(os.path.join(model_dir, "net.keras"))
    eval_fn = preprocessing.get_preprocessing("cifarnet", is_training=False)
    images = mocked_test_images()
    assert len({image.shape for image in images}) > 1  # any size, one per call
    for image in images:
        served = serve(pixels=tf.constant(image[None], tf.float32))
        logits = net(eval_fn(image, 32, 32)[None], training=False)["logits"].numpy()
        np.testing.assert_allclose(served["probabilities"].numpy(), softmax(logits), atol=1e-6)
        np.testing.assert_array_equal(served["classes"].numpy(), logits.argmax(-1))
        np.testing.assert_allclose(classifier(image[None].astype(np.float32)).numpy(),
                                   softmax(logits), atol=1e-6)


def test_digits_resized_for_lenet(tmp_path):
    """--image_size=28 resizes the 8x8 digits for LeNet: eval.py rebuilds the same pipeline
    from config.json, and the export takes the stored 8x8 pixels and resizes them."""
    import keras

    from tfmodels import data

    model_dir = str(tmp_path / "lenet")
    proc = scripts.run("train.py", f"--model_dir={model_dir}", "--model=lenet",
                       "--image_size=28", "--train_steps=20", "--steps_per_loop=10",
                       "--learning_rate=0.05")
    assert proc.returncode == 0, proc.stderr[-4000:]
    metrics = json.loads(proc.stdout)
    assert read(os.path.join(model_dir, "config.json"))["image_shape"] == [28, 28, 1]
    evaluated = scripts.run("eval.py", f"--model_dir={model_dir}", "--plot_dir=")
    assert evaluated.returncode == 0, evaluated.stderr[-4000:]
    [summary] = json.loads(evaluated.stdout)
    assert summary["count"] == 359
    np.testing.assert_allclose(summary["accuracy"], metrics["test_accuracy"], atol=1e-9)

    pixels, _ = data.load_arrays(data.get_dataset_info("digits"), "test")
    serve = tf.saved_model.load(os.path.join(model_dir, "saved_model")).signatures[
        "serving_default"]
    served = serve(pixels=tf.constant(pixels[:16], tf.float32))["probabilities"].numpy()
    net = keras.models.load_model(os.path.join(model_dir, "net.keras"))
    resized = tf.image.resize(pixels[:16].astype(np.float32), (28, 28)) / 16.0
    logits = net(resized, training=False)["logits"].numpy()
    np.testing.assert_allclose(served, softmax(logits), atol=1e-5)
    classifier = keras.models.load_model(os.path.join(model_dir, "model.keras"))
    np.testing.assert_allclose(classifier(pixels[:16].astype(np.float32)).numpy(),
                               softmax(logits), atol=1e-5)


@pytest.mark.parametrize("flags, message", [
    (["--model=vgg_16"], "error: --model=vgg_16 cannot take the 8x8 images of dataset 'digits': "
                         "vgg_16 takes height and width in [224, 255]; pass --image_size=224 "
                         "to resize the images to 224x224"),
    (["--image_size=12y4"], "error: --image_size='12y4' must be N (square) or HxW"),
    (["--preprocessing=vgg"], "error: --preprocessing=vgg works on RGB images; dataset "
                              "'digits' has 1 channel(s)"),
])
def test_a_size_the_net_cannot_take_is_refused_before_any_work(tmp_path, flags, message):
    model_dir = str(tmp_path / "never")
    proc = scripts.run("train.py", f"--model_dir={model_dir}", *flags, timeout=300)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr and "--keep_checkpoints" not in proc.stderr
    assert not os.path.exists(model_dir)


def test_undecodable_images_stop_the_run_naming_them_or_are_counted(tmp_path):
    run = ["-m tests.mock_tfds_run", "8", "--undecodable=2,5"]  # 6 of 8 images decode
    flags = ["--model=lenet", "--dataset=tfds:food101", "--image_size=16", "--batch_size=2",
             "--train_steps=4", "--steps_per_loop=2", "--noexport"]
    proc = scripts.run(*run, "train.py", f"--model_dir={tmp_path / 'a'}", *flags, timeout=600)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert re.search(r"error: could not decode the image of example\(s\) #\d+ "
                     r"\(id=food101-train.tfrecord-00000-of-00001__[25]\) of dataset "
                     r"tfds:food101; pass --skip_undecodable", proc.stderr), proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr

    model_dir = str(tmp_path / "b")
    proc = scripts.run(*run, "train.py", f"--model_dir={model_dir}", "--skip_undecodable",
                       *flags, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads(proc.stdout)
    assert metrics["test_examples"] == 6 and metrics["test_skipped_undecodable"] == 2
    assert metrics["train_skipped_undecodable"] >= 2  # 8 training images: all of epoch 1 read
    assert "skipped 2 undecodable example(s) of split 'test' of tfds:food101" in proc.stderr
    assert "skipped undecodable example(s) #5 (id=food101-test.tfrecord-00000-of-00001__5)" \
        in proc.stderr

    proc = scripts.run(*run, "eval.py", f"--model_dir={model_dir}", "--plot_dir=",
                       "--skip_undecodable", timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = read(os.path.join(model_dir, "eval_test.json"))
    assert results["count"] == 6 and results["skipped_undecodable"] == 2
    assert results["gallery_count"] == 6 and results["gallery_skipped_undecodable"] == 2
    np.testing.assert_allclose(results["accuracy"], metrics["test_accuracy"], atol=1e-9)
