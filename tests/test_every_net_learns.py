"""Every net of the registry learns on the embedded digits with the README's recipe for it.

The README's table of nets (between the `nets:start` / `nets:end` markers) gives one command
per net and the test accuracy it reached. Each command is run here as written (plus a model_dir
and no export) and must reach well above chance (10 classes: 10%), and not fall far below what
the README says. The rows the README marks slow (big nets, VGG at 224x224: minutes to hours on
CPU) carry the `slow` marker: deselected by default, run with `pytest -m slow`.
"""
import json
import os
import re
import shlex

import pytest

from tests import scripts
from tfmodels import nets

README = os.path.join(scripts.ROOT, "README.md")
FLOOR = 0.5            # 5x chance for 10 classes
BELOW_README = 0.20    # another CPU, another rounding: the README's figure minus this
ROW = re.compile(r"^\| `(?P<net>\w+)` \| `python train\.py(?P<flags>[^`]*)` \| "
                 r"(?:(?P<acc>[\d.]+)%|—) \| (?P<time>[^|]+) \|(?P<note>[^|]*)\|$")


def readme_rows():
    text = open(README, encoding="utf-8").read()
    table = text.split("<!-- nets:start -->", 1)[1].split("<!-- nets:end -->", 1)[0]
    rows = {}
    for line in table.strip().splitlines()[2:]:  # after the header and its rule
        match = ROW.match(line.strip())
        assert match, f"README's table of nets: a row not in the expected form: {line!r}"
        slow = match["note"].strip().startswith("slow")
        assert match["acc"] or slow, f"only a slow row may lack its figure: {line!r}"
        rows[match["net"]] = (shlex.split(match["flags"]),
                              float(match["acc"]) / 100 if match["acc"] else FLOOR, slow)
    return rows


ROWS = readme_rows()


def test_every_registry_net_has_a_row():
    assert sorted(ROWS) == sorted(nets.NETS)


@pytest.mark.subprocess
@pytest.mark.parametrize("net", [pytest.param(net, marks=pytest.mark.slow) if ROWS[net][2]
                                 else net for net in sorted(ROWS)])
def test_the_readme_recipe_learns(net, tmp_path):
    flags, readme_accuracy, slow = ROWS[net]
    proc = scripts.run("train.py", *flags, f"--model_dir={tmp_path / 'run'}", "--noexport",
                       timeout=1800 if slow else 300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads(proc.stdout)
    assert metrics["model"] == net, (net, flags)  # the row trains the net it names
    accuracy = metrics["test_accuracy"]
    assert accuracy >= FLOOR, (net, accuracy, proc.stderr[-2000:])
    assert accuracy >= readme_accuracy - BELOW_README, (net, accuracy, readme_accuracy)
    assert "chance" not in proc.stderr, proc.stderr[-2000:]
