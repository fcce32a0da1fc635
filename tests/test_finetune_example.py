"""The README's fine-tuning example, end to end, on mocked tfds data and a tf-slim checkpoint.

    python train.py --model=vgg_16 --dataset=tfds:oxford_flowers102 --init_checkpoint=vgg_16.ckpt \
        --checkpoint_exclude_scopes=vgg_16/fc8 --trainable_scopes=vgg_16/fc7,vgg_16/fc8 \
        --learning_rate=0.01 --model_dir=runs/vgg_16-flowers
    python eval.py --model_dir=runs/vgg_16-flowers

The test writes tf_slim's own vgg_16 (ImageNet's 1000 classes, random weights) as a TF1 Saver
checkpoint, then runs the two commands unchanged inside `tfds.testing.mock_data` (flower images
of random sizes), with a short run added (`--train_steps=2 --batch_size=2`).
"""
import json
import os
import time

import numpy as np
import pytest
import tensorflow as tf

from tests import scripts, slim_reference
from tfmodels import model_dir as model_dir_lib

pytestmark = pytest.mark.subprocess  # every test starts a script or a fresh interpreter

N = 6  # mocked examples per split (k-NN takes k = 1, 5)


def write_slim_vgg_16(path):
    """tf_slim.nets.vgg_16 at 224x224, 1000 classes, saved by tf.compat.v1.train.Saver."""
    fn, arg_scope = slim_reference.vgg("vgg_16")

    def build(images):
        with slim_reference.slim().arg_scope(arg_scope()):
            logits, _ = fn(images, 1000, is_training=False)
        return logits

    images = np.random.default_rng(0).normal(size=(1, 224, 224, 3)).astype(np.float32)
    _, _, saved = slim_reference.save_checkpoint(build, images, path)
    return saved


def mocked(script, *args):
    proc = scripts.run("-m tests.mock_tfds_run", str(N), script, *args, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


def test_readme_fine_tuning_example(tmp_path):
    start = time.perf_counter()
    slim_checkpoint = write_slim_vgg_16(str(tmp_path / "slim" / "vgg_16.ckpt"))
    model_dir = str(tmp_path / "runs" / "vgg_16-flowers")
    proc = mocked("train.py", "--model=vgg_16", "--dataset=tfds:oxford_flowers102",
                  f"--init_checkpoint={slim_checkpoint}",
                  "--checkpoint_exclude_scopes=vgg_16/fc8",
                  "--trainable_scopes=vgg_16/fc7,vgg_16/fc8", "--learning_rate=0.01",
                  f"--model_dir={model_dir}", "--train_steps=2", "--batch_size=2",
                  "--steps_per_loop=1", "--noexport")
    metrics = json.loads(proc.stdout)
    assert metrics["steps"] == 2 and metrics["test_examples"] == N
    with open(os.path.join(model_dir, "config.json")) as f:
        config = json.load(f)
    assert config["image_shape"] == [224, 224, 3] and config["preprocessing"] == "vgg"
    assert config["num_classes"] == 102

    # Ported from slim: the frozen layers hold slim's values, fc7 was trained, fc8 is new.
    model, _ = model_dir_lib.restore_model(model_dir_lib.read_config(model_dir),
                                           os.path.join(model_dir, "ckpt-2"))
    slim = tf.train.load_checkpoint(slim_checkpoint)
    tuned = {slim_reference.keras_to_slim_name(v.path): v.numpy() for v in model.weights}
    del model
    assert tuned.keys() == set(slim.get_variable_to_shape_map()) - {"global_step"}
    changed = {name for name, value in tuned.items()
               if value.shape != tuple(slim.get_tensor(name).shape)
               or (value != slim.get_tensor(name)).any()}
    assert changed == {"vgg_16/fc7/weights", "vgg_16/fc7/biases", "vgg_16/fc8/weights",
                       "vgg_16/fc8/biases"}
    assert tuned["vgg_16/fc8/weights"].shape == (1, 1, 4096, 102)
    # The porting report: everything but the excluded logits layer came from the checkpoint.
    assert "excluded       2 model variables in scopes vgg_16/fc8" in proc.stderr
    assert "Result: OK" in proc.stderr and "vgg_16/fc7    trained 2" in proc.stderr

    evaluated = mocked("eval.py", f"--model_dir={model_dir}", "--plot_dir=")
    [summary] = json.loads(evaluated.stdout)
    assert summary["count"] == N and summary["step"] == 2
    np.testing.assert_allclose(summary["accuracy"], metrics["test_accuracy"], atol=1e-9)
    print(f"README fine-tuning example: {time.perf_counter() - start:.0f} s")
