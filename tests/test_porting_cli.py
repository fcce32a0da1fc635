"""The porting CLI and guide end to end.

docs/PORTING.md's worked example runs as written (a slim LeNet trained by `slim.learning.train`,
`python -m tfmodels.porting` dry run and port with --verify_with, the logits compared with the
legacy graph); then the output directory is checked against `restore_model`, `model.keras` and
the library, the CLI must refuse a directory in use and fail a bad port with exit status 1 and
the report, and a checkpoint written by the real trainer ports to a new class count.

The guide's custom-net section runs as written too (its files are docs/examples/, shown
verbatim): a TF1 ConvNet trained with EMA, ported into its TF2 builder given as
`--model=convnet:convnet` and verified; then the two mistakes it shows (no `scale=True`, no
`epsilon=1e-5`) fail as it says.
"""
import contextlib
import json
import os
import pathlib
import re
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests import scripts
from tfmodels import nets, porting
from tfmodels import model_dir as model_dir_lib

pytestmark = [pytest.mark.subprocess,
              pytest.mark.filterwarnings("ignore:`(layer.apply|tf.layers.flatten)`:UserWarning")]

ROOT = pathlib.Path(scripts.ROOT)
DOC = ROOT / "docs" / "PORTING.md"


def worked_example_blocks(title="## Worked example"):
    """[(language, code)] of the python/sh blocks of a section of the guide, in order."""
    section = DOC.read_text().split(title, 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```(python|sh)\n(.*?)```", section, re.S)


def run(command, cwd):
    """Run a shell command with this interpreter first on PATH (so `python` is ours)."""
    env = scripts.script_env(
        PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""),
        PYTHONPATH=str(ROOT), TFMODELS=str(ROOT))
    return subprocess.run(["bash", "-e", "-c", command], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


def cli(args, cwd):
    return run("python -m tfmodels.porting " + " ".join(args), cwd)


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    """Runs the worked example in a scratch directory; returns (directory, shell outputs).

    A python block starting with `# <name>.py:` is a file the next shell block runs; other
    python blocks run here, in the directory, as a reader would paste them."""
    directory = tmp_path_factory.mktemp("example")
    blocks = worked_example_blocks()
    assert [language for language, _ in blocks] == ["python", "sh", "sh", "sh", "python"]
    outputs = []
    for language, code in blocks:
        if language == "sh":
            result = run(code, directory)
            assert result.returncode == 0, f"{code}\n{result.stdout[-2000:]}{result.stderr[-4000:]}"
            outputs.append(result.stdout)
            continue
        script = re.match(r"# (\w+\.py):", code)
        if script:
            (directory / script.group(1)).write_text(code)
            continue
        sys.path.insert(0, str(directory))
        try:
            with contextlib.chdir(directory):
                exec(compile(code, str(DOC), "exec"), {"__name__": "porting_example"})
        finally:
            sys.path.remove(str(directory))
            sys.modules.pop("legacy_lenet", None)
    return directory, outputs


def test_worked_example(example):
    directory, (_, dry_run, port) = example
    assert "Result: OK" in dry_run and "skipped        9" in dry_run
    assert ["LeNet/fc4/kernel", "(1024,", "10)", "<-", "LeNet/fc4/weights",
            "weights->kernel"] in [line.split() for line in dry_run.splitlines()]
    assert "wrote ported_lenet: ckpt-1, model.keras, config.json" in port
    verified = re.search(r"Verified against legacy_lenet:lenet on 8 random N\(0, 1\) images "
                         r"\(seed 0\): max \|logit difference\| (\S+), relative (\S+) "
                         r"\(tolerance 0.0001\): OK", port)
    assert verified and float(verified.group(2)) <= 1e-4
    config = model_dir_lib.read_json(str(directory / "ported_lenet" / model_dir_lib.CONFIG_FILE))
    assert config["porting"]["verified"]["with"] == "legacy_lenet:lenet"
    assert config["porting"]["verified"]["max_relative_logit_difference"] == float(
        verified.group(2))


def test_output_directory(example):
    """config.json, the TF2 checkpoint and model.keras hold the same model, equal to what the
    library loads from the TF1 checkpoint in this process."""
    directory, _ = example
    output = str(directory / "ported_lenet")
    legacy = tf.train.latest_checkpoint(str(directory / "legacy_lenet"))
    config = model_dir_lib.read_json(os.path.join(output, model_dir_lib.CONFIG_FILE))
    assert config["model"] == "lenet" and config["num_classes"] == 10
    assert config["image_shape"] == [28, 28, 1] and config["dataset"] == "mnist"
    assert config["ported_from"] == os.path.abspath(legacy)
    assert config["porting"]["source_format"] == "tf1"
    latest = tf.train.latest_checkpoint(output)
    assert os.path.basename(latest) == "ckpt-1"

    restored, _ = model_dir_lib.restore_model(model_dir_lib.read_config(output), latest)
    direct = nets.build_model("lenet", 10, (28, 28, 1))
    porting.load_checkpoint(direct, legacy)
    reloaded = keras.models.load_model(os.path.join(output, "model.keras"))
    images = np.random.default_rng(0).normal(size=(3, 28, 28, 1)).astype(np.float32)
    expected = direct(images, training=False)["logits"]
    np.testing.assert_array_equal(restored(images, training=False)["logits"], expected)
    np.testing.assert_array_equal(reloaded(images, training=False)["logits"], expected)


def test_cli_refuses_a_directory_in_use(example):
    directory, _ = example
    output = directory / "ported_lenet"
    before = {p.name: p.stat().st_mtime_ns for p in output.iterdir()}
    result = cli(["--checkpoint=legacy_lenet", "--model=lenet", "--num_classes=10",
                  "--image_size=28", "--channels=1", "--output=ported_lenet"], directory)
    assert result.returncode == 2
    assert ("error: --output=ported_lenet already holds checkpoint, config.json, model.keras, "
            "ckpt-1.index; nothing was written") in result.stderr
    assert {p.name: p.stat().st_mtime_ns for p in output.iterdir()} == before


def test_cli_failing_port_writes_nothing_then_exclude_scopes(example, tmp_path):
    directory, _ = example
    result = cli(["--checkpoint=legacy_lenet", "--model=lenet", "--num_classes=5",
                  "--image_size=28", "--channels=1", f"--output={tmp_path / 'lenet5'}"],
                 directory)
    assert result.returncode == 1
    assert "Result: FAILED (2 shape mismatches)" in result.stderr
    assert "LeNet/fc4/kernel (1024, 5) <- LeNet/fc4/weights (1024, 10)" in result.stderr
    assert "--exclude_scopes=LeNet/fc4" in result.stderr
    assert not (tmp_path / "lenet5").exists()

    legacy = str(directory / "legacy_lenet")
    mapping = porting.port_checkpoint(legacy, "lenet", 5, (28, 28, 1), str(tmp_path / "lenet5"),
                                      exclude_scopes="LeNet/fc4", seed=3)
    assert mapping.excluded == ["LeNet/fc4/kernel", "LeNet/fc4/bias"]
    config = model_dir_lib.read_json(str(tmp_path / "lenet5" / model_dir_lib.CONFIG_FILE))
    assert config["porting"]["excluded"] == mapping.excluded and "dataset" not in config
    model, _ = model_dir_lib.restore_model(
        model_dir_lib.read_config(str(tmp_path / "lenet5")), tf.train.latest_checkpoint(
        str(tmp_path / "lenet5")))
    reader = tf.train.load_checkpoint(legacy)
    weights = {v.path: v.numpy() for v in model.weights}
    np.testing.assert_array_equal(weights["LeNet/fc3/kernel"],
                                  reader.get_tensor("LeNet/fc3/weights"))
    assert weights["LeNet/fc4/kernel"].shape == (1024, 5)


def test_checkpoint_written_by_the_trainer(tmp_path):
    """A real train() model_dir (object-based checkpoint with optimizer, centers and weight
    averages) initialises a LeNet with another class count, averaged weights included."""
    from tfmodels import training

    model_dir = str(tmp_path / "run")
    training.train(training.TrainConfig(
        model_dir=model_dir, model="lenet", dataset="digits", train_steps=2, steps_per_loop=1,
        global_batch_size=16, export=False, ema_decay=0.9, center_loss_weight=0.01))
    config = model_dir_lib.read_config(model_dir)
    source, _ = model_dir_lib.restore_model(config, tf.train.latest_checkpoint(model_dir),
                                            use_average=True)
    target = nets.build_model("lenet", 5, config.image_shape)
    with pytest.raises(porting.PortingError, match="exclude_scopes=LeNet/fc4"):
        porting.load_checkpoint(target, model_dir, use_ema=True)
    mapping = porting.load_checkpoint(target, model_dir, exclude_scopes="LeNet/fc4",
                                      use_ema=True)
    assert mapping.source_format == "tf2" and len(mapping.matched) == 6
    expected = {v.path: v.numpy() for v in source.weights}
    for variable in target.weights[:-2]:
        np.testing.assert_array_equal(variable, expected[variable.path])
    raw, _ = model_dir_lib.restore_model(config, tf.train.latest_checkpoint(model_dir),
                                         use_average=False)
    assert not np.array_equal(raw.weights[0].numpy(), expected[raw.weights[0].path])


# ---------------------------------------------------------------- custom nets


@pytest.fixture(scope="module")
def custom_example(tmp_path_factory):
    """Runs the guide's custom-net section in a scratch directory; returns (directory, the
    shell blocks' stdout, their stderr). Its python blocks must be the files of docs/examples,
    verbatim."""
    directory = tmp_path_factory.mktemp("custom")
    blocks = worked_example_blocks("## Custom nets")
    assert [language for language, _ in blocks] == ["python", "sh", "python", "sh", "sh"]
    outputs, logs = [], []
    for language, code in blocks:
        if language == "python":
            name = re.match(r"# (\w+\.py):", code).group(1)
            assert code == (ROOT / "docs" / "examples" / name).read_text(), name
            (directory / name).write_text(code)
            continue
        result = run(code, directory)
        assert result.returncode == 0, f"{code}\n{result.stdout[-2000:]}{result.stderr[-4000:]}"
        outputs.append(result.stdout)
        logs.append(result.stderr)
    return directory, outputs, logs


def test_custom_net_walkthrough(custom_example):
    directory, (_, port, _), _ = custom_example
    assert "Result: OK" in port and "32 averaged" in port
    assert re.search(r"Verified against legacy_convnet:convnet on 8 random .*: OK", port)
    config = model_dir_lib.read_json(str(directory / "ported_convnet" /
                                         model_dir_lib.CONFIG_FILE))
    assert config["model"] == "convnet:convnet" and config["image_shape"] == [16, 16, 3]
    assert config["porting"]["verified"]["max_relative_logit_difference"] <= 1e-4
    # What eval.py does with the directory: config.json's module:function is imported again.
    sys.path.insert(0, str(directory))
    try:
        model, _ = model_dir_lib.restore_model(
            model_dir_lib.read_config(str(directory / "ported_convnet")),
            tf.train.latest_checkpoint(str(directory / "ported_convnet")))
        reloaded = keras.models.load_model(str(directory / "ported_convnet" / "model.keras"))
    finally:
        sys.path.remove(str(directory))
        sys.modules.pop("convnet", None)
    images = np.random.default_rng(2).normal(size=(4, 16, 16, 3)).astype(np.float32)
    np.testing.assert_array_equal(reloaded(images, training=False)["logits"],
                                  model(images, training=False)["logits"])


def test_custom_net_trains_and_evaluates_by_module_function(custom_example):
    """train.py and eval.py take the custom net as the guide shows: eval re-imports it from
    config.json; fine-tuning from the TF1 checkpoint trains only ConvNet/logits, keeps the
    legacy (averaged) values elsewhere, and logs trained vs frozen counts by scope."""
    directory, (_, _, evaluated_and_trained), (_, _, log) = custom_example
    evaluated = json.loads(evaluated_and_trained[:evaluated_and_trained.index("]") + 1])
    assert evaluated[0]["count"] == 64 and evaluated[0]["split"] == "test"
    metrics = json.loads(evaluated_and_trained[evaluated_and_trained.index("]") + 1:])
    assert metrics["steps"] == 4 and metrics["model"] == "convnet:convnet"
    assert re.search(r"training 2 variables \(650 values\), keeping \d+ frozen", log)
    assert re.search(r"ConvNet/logits +trained 2 \(650 values\)", log)
    run_dir = str(directory / "runs" / "convnet")
    legacy = tf.train.load_checkpoint(str(directory / "legacy_convnet"))
    sys.path.insert(0, str(directory))
    try:
        model, _ = model_dir_lib.restore_model(model_dir_lib.read_config(run_dir),
                                               tf.train.latest_checkpoint(run_dir))
    finally:
        sys.path.remove(str(directory))
        sys.modules.pop("convnet", None)
    weights = {v.path: v.numpy() for v in model.weights}
    np.testing.assert_array_equal(
        weights["ConvNet/stem/conv/kernel"],
        legacy.get_tensor("ConvNet/stem/conv/weights/ExponentialMovingAverage"))


def test_custom_net_mistakes_fail_as_the_guide_shows(custom_example):
    directory = custom_example[0]
    code = (directory / "convnet.py").read_text()
    (directory / "convnet_noscale.py").write_text(code.replace("scale=True, ", ""))
    (directory / "convnet_eps.py").write_text(
        code.replace("decay=0.9,\n                              epsilon=1e-5", "decay=0.9"))
    args = ["--checkpoint=legacy_convnet", "--num_classes=10", "--use_ema"]
    result = cli(args + ["--model=convnet_noscale:convnet", "--output=noscale"], directory)
    assert result.returncode == 1 and not (directory / "noscale").exists()
    assert "Result: FAILED (12 checkpoint variables unused in filled layers)" in result.stderr
    assert ("the builder needs batch_norm(scale=True): slim's batch_norm makes no gamma unless "
            "scale=True") in result.stderr
    assert "  ConvNet/block1/conv/conv_1/BatchNorm/gamma (16,)\n" in result.stderr
    assert "--ignore='.*/BatchNorm/gamma(/.*)?'" in result.stderr

    result = cli(args + ["--model=convnet_eps:convnet", "--verify_with=legacy_convnet:convnet",
                         "--output=eps"], directory)
    assert result.returncode == 1 and not (directory / "eps").exists()
    failed = re.search(r"error: Verified against legacy_convnet:convnet on 8 random N\(0, 1\) "
                       r"images \(seed 0\): max \|logit difference\| \S+, relative (\S+) "
                       r"\(tolerance 0.0001\): FAILED\nThe names matched but the numbers do "
                       r"not; check what names cannot show: batch_norm epsilon", result.stderr)
    assert failed and float(failed.group(1)) > 1e-3
    assert "Nothing was written." in result.stderr


# ---------------------------------------------------------------- a quiet start

# What TensorFlow's C++ code prints while it loads: absl's pre-initialisation notice and log
# lines 'I0000 00:00:1796671857.126206   11942 port.cc:153] ...'.
NATIVE_LINE = re.compile(r"^[IWEF]\d{4} [\d:.]+\s+\d+ \S+:\d+\]|absl::InitializeLog|"
                         r"^To enable the following instructions", re.M)


def save_tf1_lenet(prefix):
    """A name-based (TF1 Saver layout) checkpoint of a 10-class LeNet under slim's names."""
    model = nets.build_model("lenet", 10, (28, 28, 1))
    names = [v.path.replace("/kernel", "/weights").replace("/bias", "/biases")
             for v in model.weights]
    tf.raw_ops.SaveV2(prefix=str(prefix), tensor_names=names,
                      shape_and_slices=[""] * len(names), tensors=list(model.weights))


def test_cli_starts_quietly(tmp_path):
    """`python -m tfmodels.porting` imports tfmodels, and TensorFlow with it, before any of its
    code runs: the start-up lines are held and dropped at the default verbosity, as train.py
    does. Bad input is one line and status 2; a port prints its report and nothing of
    TensorFlow's; --verbosity=debug shows them."""
    save_tf1_lenet(tmp_path / "model.ckpt-7")
    env = dict(PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL=None)

    def port(*args):
        return subprocess.run([sys.executable, "-m", "tfmodels.porting", *args], cwd=tmp_path,
                              capture_output=True, text=True, timeout=300,
                              env=scripts.script_env(**env))

    bad = port("--bogus=1")
    assert (bad.returncode, bad.stderr, bad.stdout) == (
        2, "error: Unknown command line flag 'bogus'\n", "")

    good = port(f"--checkpoint={tmp_path}", "--model=lenet", "--num_classes=10",
                "--image_size=28", "--channels=1", "--output=ported")
    assert good.returncode == 0, good.stderr[-3000:]
    assert "Result: OK" in good.stdout and "wrote ported: ckpt-1" in good.stdout
    assert not NATIVE_LINE.search(good.stderr), good.stderr[-3000:]

    debug = port(f"--checkpoint={tmp_path}", "--model=lenet", "--num_classes=10",
                 "--image_size=28", "--channels=1", "--dry_run", "--verbosity=debug")
    assert debug.returncode == 0 and "Result: OK" in debug.stdout, debug.stderr[-3000:]
    assert NATIVE_LINE.search(debug.stderr), debug.stderr[-3000:]
