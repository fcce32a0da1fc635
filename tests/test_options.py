"""Options declared once (tfmodels.options): flags, defaults, parsing and the one-line errors
generated from the config fields; train.py's bad values refused in-process before any work."""
import dataclasses
import io
import os
import subprocess
import sys
from typing import Optional, Tuple

import pytest
from absl import flags

from tests import scripts
from tfmodels import data, options, startup
from tfmodels.options import UsageError, option
from tfmodels.training import TrainConfig


@dataclasses.dataclass(frozen=True)
class Toy:
    """One field of every kind an option can have."""
    steps: int = option(3, "Steps.", low=1)
    rate: float = option(0.5, "Rate.", above=0.0, high=1.0)
    name: str = option("a", "Name.", choices=("a", "b"))
    kind: Optional[str] = option(None, "Kind.", choices=("x", "y"))
    path: Optional[str] = option(None, "Path.")
    on: bool = option(True, "On.")
    ks: Tuple[int, ...] = option((1, 5), "Ks.", low=1)
    scopes: Tuple[str, ...] = option((), "Scopes.")
    batch: int = option(8, "Batch.", flag="batch_size", low=1)


def _parsed(cls, *args):
    values = flags.FlagValues()
    options.define_flags(cls, values)
    values(["prog", *args])
    return options.from_flags(cls, values)


def test_flags_are_generated_from_the_fields():
    assert _parsed(Toy) == Toy()
    got = _parsed(Toy, "--steps=7", "--rate=0.25", "--name=b", "--kind=y", "--path=p", "--noon",
                  "--ks=2,3", "--scopes=a/b,c", "--batch_size=16")
    assert got == Toy(steps=7, rate=0.25, name="b", kind="y", path="p", on=False, ks=(2, 3),
                      scopes=("a/b", "c"), batch=16)
    assert _parsed(Toy, "--kind=", "--ks=").kind is None  # '' is the default of a choice
    assert _parsed(Toy, "--ks=").ks == ()


def test_help_lists_bounds_and_choices():
    values = flags.FlagValues()
    options.define_flags(Toy, values)
    assert values["steps"].help == "Steps. (>= 1)"
    assert values["rate"].help == "Rate. (> 0 and <= 1)"
    assert values["name"].help == "Name. One of: a, b."
    assert "batch" not in values and values["batch_size"].default == 8


@pytest.mark.parametrize("args, message", [
    (["--steps=0"], "--steps=0 must be an int >= 1"),
    (["--steps=99999999999999999999"],
     "--steps=99999999999999999999 must be an int <= 2**63 - 1, the int64 maximum"),
    (["--rate=0"], "--rate=0 must be > 0 and <= 1"),
    (["--rate=1.5"], "--rate=1.5 must be > 0 and <= 1"),
    (["--rate=nan"], "--rate=nan must be a finite number"),
    (["--name=c"], "--name=c is not one of: a, b"),
    (["--ks=1,x"], "--ks=1,x must be a comma-separated list of ints"),
    (["--ks=0"], "--ks=0 must be an int >= 1"),
    (["--batch_size=0"], "--batch_size=0 must be an int >= 1"),
])
def test_each_bad_value_is_one_error_naming_its_flag(args, message):
    with pytest.raises(UsageError) as raised:
        _parsed(Toy, *args)
    assert str(raised.value) == message
    assert raised.value.option == args[0][2:].split("=")[0]


def test_check_int_is_the_one_int_check():
    assert options.check_int("k", 3, low=1) == 3
    for value in (True, 2.0, "3", None):
        with pytest.raises(UsageError, match=f"k={value!r} must be an int >= 1"):
            options.check_int("k", value, low=1)
    with pytest.raises(UsageError, match=r"k=11 must be an int in \[1, 10\]"):
        options.check_int("k", 11, low=1, high=10)


def test_check_path_knows_the_file_system_limits():
    name_max = os.pathconf("/", "PC_NAME_MAX")
    options.check_path("model_dir", "runs/" + "a" * name_max)
    with pytest.raises(UsageError, match=f"with a name of {name_max + 1}; this system takes "
                                         f"at most {name_max} bytes per name"):
        options.check_path("model_dir", "runs/" + "a" * (name_max + 1))
    path_max = os.pathconf("/", "PC_PATH_MAX")
    with pytest.raises(UsageError, match=f"per name and {path_max - 1} per path"):
        options.check_path("model_dir", "/".join(["abcdefgh"] * (path_max // 9 + 1)))


def _train(*args):
    """What train.py does with `args` before any work: parse, validate, resolve on digits."""
    config = _parsed(TrainConfig, "--model_dir=/never", *args)
    config.validate()
    info = data.get_dataset_info(config.dataset, data_dir=config.data_dir)
    return config.resolve(info, config.virtual_devices)


@pytest.mark.parametrize("args, message", [
    (["--model=alexnet"], "--model=alexnet is not one of: alexnet_v2, cifarnet, inception_v1"),
    (["--model=nowhere.mod:net"], "--model=nowhere.mod:net: no module named 'nowhere'"),
    (["--virtual_devices=3", "--batch_size=64"],
     "--batch_size=64 is not divisible by the 3 replicas; use a multiple of 3"),
    (["--batch_size=0"], "--batch_size=0 must be an int >= 1"),
    (["--dataset=imagenet_fake"], "unknown --dataset=imagenet_fake"),
    (["--learning_rate=inf"], "--learning_rate=inf must be a finite number"),
    (["--learning_rate=1e39"], "--learning_rate=1e+39 overflows float32"),
    (["--center_loss_weight=nan"], "--center_loss_weight=nan must be a finite number"),
    (["--epochs=1e30"], "--epochs=1e+30 is 2.2e+31 steps of 22 per epoch, more than a step "
                        "counter holds (2**63 - 1)"),
    (["--train_steps=99999999999999999999"],
     "--train_steps=99999999999999999999 must be an int <= 2**63 - 1"),
    (["--seed=-1"], "--seed=-1 must be an int in [0, 4294967295]"),
    (["--strategy=multi_worker", "--worker_connect_timeout=0"],
     "--worker_connect_timeout=0 must be an int in [1, 86400]"),
    (["--model_dir=" + "m" * 5000], "--model_dir=" + "m" * 40 + "... is 5000 bytes long"),
    (["--image_size=100000"], "--image_size: a batch of 64 images of 100000x100000x1 float32 "
                              "values takes 2.38e+03 GiB, more than this machine's"),
    (["--preprocessing=caffe"], "--preprocessing=caffe is not one of: cifarnet, inception"),
    (["--lr_boundaries=5,x"], "--lr_boundaries=5,x must be a comma-separated list of ints"),
    (["--epochs=-1"], "--epochs=-1 must be > 0"),
    (["--dataset=tfds:nope"],
     "--dataset=tfds:nope: tfds has no dataset named 'nope'; see tfds.list_builders()"),
])
def test_train_flags_are_refused_before_any_work(args, message):
    with pytest.raises(UsageError) as raised:
        _train(*args)
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)


@pytest.fixture
def common_flags():
    import importlib

    sys.path.insert(0, scripts.ROOT)
    yield importlib.import_module("common_flags")
    sys.path.remove(scripts.ROOT)


def test_a_flagfile_that_includes_itself_is_named(tmp_path):
    (tmp_path / "a.flags").write_text(f"--train_steps=3\n--flagfile={tmp_path}/b.flags\n")
    (tmp_path / "b.flags").write_text(f"--flagfile={tmp_path}/a.flags\n")
    (tmp_path / "ok.flags").write_text("--train_steps=3\n")
    assert startup.flagfile_cycle(["train.py", f"--flagfile={tmp_path}/ok.flags"]) is None
    assert startup.flagfile_cycle(["train.py", f"--flagfile={tmp_path}/a.flags"]) == \
        f"{tmp_path}/a.flags -> {tmp_path}/b.flags -> {tmp_path}/a.flags"


@pytest.mark.parametrize("error, status, first_line", [
    (UsageError("--batch_size=3 is odd", "batch_size"), 2, "error: --batch_size=3 is odd"),
    (ValueError("a bug"), 1, "Traceback (most recent call last):"),
])
def test_usage_errors_are_one_line_and_bugs_a_traceback(common_flags, monkeypatch, error,
                                                         status, first_line):
    stderr = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stderr)

    def work():
        raise error

    with pytest.raises(SystemExit) as exit_:
        common_flags.run_and_release(work)
    assert exit_.value.code == status
    lines = stderr.getvalue().splitlines()
    assert lines[0] == first_line
    assert (len(lines) == 1) == (status == 2)
    if status == 1:
        assert lines[-1] == "ValueError: a bug"


def test_importing_common_flags_changes_nothing(tmp_path):
    """No stderr redirection, no TensorFlow at import: quiet_start() does that, when called."""
    code = ("import os, sys; before = os.fstat(2).st_ino; import common_flags; "
            "assert os.fstat(2).st_ino == before; assert 'tensorflow' not in sys.modules; "
            "print('ok')")
    proc = subprocess.run([sys.executable, "-c", code], cwd=scripts.ROOT, capture_output=True,
                          text=True, timeout=120, env=scripts.script_env())
    assert proc.returncode == 0 and proc.stdout == "ok\n", proc.stderr[-2000:]
