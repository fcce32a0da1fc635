"""The porting library's one-line errors name the flags of the front end that called it.

The same bad value reaches the library from the porting CLI (`--exclude_scopes=...`) and from
train.py (`--checkpoint_exclude_scopes=...`); each user must read the flag they typed, its
value and what is allowed. train.py runs in process (`training.train`); the CLI's options
define absl flags when its module is imported, so its cases run in one child process that
calls the CLI's `port` on each and prints the errors.
"""
import glob
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tests import scripts, slim_reference
from tfmodels import nets
from tfmodels.options import UsageError

# Each front end's flag of each porting option, as its --help lists them.
CLI = {"checkpoint": "checkpoint", "exclude_scopes": "exclude_scopes", "ignore": "ignore",
       "overrides": "overrides", "strip_scope": "strip_scope"}
TRAIN = {"checkpoint": "init_checkpoint", "exclude_scopes": "checkpoint_exclude_scopes",
         "ignore": "init_checkpoint_ignore", "overrides": "init_checkpoint_overrides",
         "strip_scope": "init_checkpoint_strip_scope", "trainable_scopes": "trainable_scopes"}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """(a TF1 checkpoint of SmallCNN for 8x8x1 digits under slim's names, a copy of it with
    every stretch of its data file bit-flipped)."""
    root = tmp_path_factory.mktemp("flags")
    model = nets.build_model("small_cnn", 10, (8, 8, 1))
    rng = np.random.default_rng(3)
    values = {slim_reference.keras_to_slim_name(v.path):
              rng.normal(0, 0.1, v.shape).astype(np.float32) for v in model.weights}
    with tf.Graph().as_default():
        variables = {key: tf.compat.v1.Variable(value) for key, value in values.items()}
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            good = tf.compat.v1.train.Saver(variables).save(session, str(root / "good.ckpt"))
    damaged_dir = root / "damaged"
    damaged_dir.mkdir()
    for name in glob.glob(good + ".*"):
        shutil.copy(name, damaged_dir)
    damaged = str(damaged_dir / "good.ckpt")
    data_file = glob.glob(damaged + ".data-*")[0]
    content = bytearray(open(data_file, "rb").read())
    for position in range(0, len(content), 997):  # every tensor is hit
        content[position] ^= 0x10
    open(data_file, "wb").write(bytes(content))
    return good, damaged


def cases(good, damaged):
    """[(option, value or None for the checkpoint's, checkpoint, expected message with
    '{flag}' for the option's flag)]; an option None: the checkpoint option alone is bad."""
    return [
        ("exclude_scopes", ("SmallCNN/nope",), good,
         "--{flag}=SmallCNN/nope: the scope matches no variable of the model"),
        ("ignore", ("Nope",), good, "--{flag}=Nope matches no checkpoint variable"),
        ("overrides", json.dumps({"(": "SmallCNN/logits/bias"}), good,
         "--{flag}: pattern '(' is not a valid regular expression"),
        ("overrides", "{bad", good, "--{flag}={bad: not valid JSON"),
        ("checkpoint", None, damaged,
         "--{flag}=" + damaged + ": variable 'SmallCNN/"),
        ("checkpoint", None, damaged + "-missing",
         "--{flag}=" + damaged + "-missing does not exist"),
    ]


def check(message, option, flag, expected):
    assert "\n" not in message
    assert message.startswith(expected.replace("{flag}", flag)), message
    assert option == flag


def test_train_names_its_own_flags(checkpoints, tmp_path):
    from tfmodels.training import TrainConfig, train

    good, damaged = checkpoints
    for n, (option, value, checkpoint, expected) in enumerate(cases(good, damaged)):
        extra = {} if value is None else {TRAIN[option]: value}
        config = TrainConfig(model="small_cnn", dataset="digits", init_checkpoint=checkpoint,
                             model_dir=str(tmp_path / f"run{n}"), train_steps=1, export=False,
                             **extra)
        with pytest.raises(UsageError) as raised:
            train(config)
        check(str(raised.value), raised.value.option, TRAIN[option], expected)
        assert not os.path.exists(config.model_dir)  # refused before anything was written
    config = TrainConfig(model="small_cnn", dataset="digits", init_checkpoint=good,
                         model_dir=str(tmp_path / "frozen"), train_steps=1, export=False,
                         trainable_scopes=("SmallCNN/nope",))
    with pytest.raises(UsageError) as raised:
        train(config)
    check(str(raised.value), raised.value.option, "trainable_scopes",
          "--{flag}=SmallCNN/nope: the scope matches no trainable variable of the model")


_CLI_RUN = """
import json, sys
from tfmodels.options import UsageError
from tfmodels.porting.__main__ import PortOptions, port

results = []
for kwargs in json.loads(sys.argv[1]):
    try:
        # JSON has no tuples: a list is a tuple option's value.
        kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in kwargs.items()}
        port(PortOptions(model="small_cnn", num_classes=10, image_size=8, channels=1,
                         **kwargs))
        results.append(None)
    except UsageError as err:
        results.append([str(err), err.option])
print(json.dumps(results))
"""


def test_the_porting_cli_names_its_own_flags(checkpoints, tmp_path):
    good, damaged = checkpoints
    runs = []
    for n, (option, value, checkpoint, _) in enumerate(cases(good, damaged)):
        # Not a dry run: that reads no values, and a damaged one is found reading them.
        kwargs = {"checkpoint": checkpoint, "output": str(tmp_path / f"out{n}")}
        if value is not None:
            kwargs[CLI[option]] = list(value) if isinstance(value, tuple) else value
        runs.append(kwargs)
    proc = subprocess.run([sys.executable, "-c", _CLI_RUN, json.dumps(runs)], cwd=scripts.ROOT,
                          env=scripts.script_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    for (option, _, _, expected), result in zip(cases(good, damaged), results):
        assert result is not None, expected
        check(result[0], result[1], CLI[option], expected)
    assert os.listdir(tmp_path) == []  # refused before anything was written
