"""A run's record is never lost: a resume that changes what the checkpoints hold is refused in
one line naming the option, the old and the new value; other changes are appended to
config.json's history; a run that diverges before saving leaves config.json as it was."""
import json

import pytest

from tests import model_dir_runs

from tfmodels.model_dir import record as record_lib


@pytest.fixture(scope="module")
def run30(tmp_path_factory):
    model_dir = tmp_path_factory.mktemp("history") / "run"
    model_dir_runs.train(model_dir)
    return model_dir


@pytest.fixture
def run(run30, tmp_path):
    return model_dir_runs.copy(run30, tmp_path / "run")


def test_with_history_appends_what_changed():
    saved = {"model": "lenet", "learning_rate": 0.1, "seed": 0, "log_every": 10,
             "history": [{"step": 10, "changed": {"seed": {"from": 1, "to": 0}}}]}
    new = dict(saved, learning_rate=0.01, log_every=5, global_batch_size=32)
    new.pop("history")
    written = record_lib.with_history(saved, new, 30)
    assert written["learning_rate"] == 0.01 and written["log_every"] == 5
    assert written["history"] == saved["history"] + [
        {"step": 30, "changed": {"global_batch_size": {"from": None, "to": 32},
                                 "learning_rate": {"from": 0.1, "to": 0.01}}}]
    unchanged = dict(new, learning_rate=0.1, global_batch_size=None, log_every=1)
    unchanged.pop("global_batch_size")
    assert record_lib.with_history(saved, unchanged, 30)["history"] == saved["history"]


def test_a_resume_with_other_options_keeps_the_first_ones_in_the_history(run):
    first = json.loads((run / "config.json").read_text())
    model_dir_runs.train(run, train_steps=40, learning_rate=0.05, global_batch_size=32,
                         label_smoothing=0.0, seed=7, mixed_precision="bfloat16")
    saved = json.loads((run / "config.json").read_text())
    changed = saved["history"][-1]["changed"]
    assert saved["history"][-1]["step"] == 30 and len(saved["history"]) == 1
    for key, new in (("learning_rate", 0.05), ("global_batch_size", 32),
                     ("label_smoothing", 0.0), ("seed", 7), ("mixed_precision", "bfloat16"),
                     ("train_steps", 40)):
        assert changed[key] == {"from": first[key], "to": new}
        assert saved[key] == new
    # Only what changed is listed; the rest of the record is the first run's (the folder was
    # copied: where it is now is no change to record).
    same = set(saved) - set(changed) - {"history", "model_dir"}
    assert {k: saved[k] for k in same} == {k: first[k] for k in same}
    assert saved["model_dir"] == str(run)


@pytest.mark.parametrize("option, value", [("optimizer", "adam"),
                                           ("loss", "hinge")])
def test_a_resume_that_changes_what_checkpoints_hold_is_refused(run, option, value):
    also = {"label_smoothing": 0.0} if option == "loss" else {}  # hinge takes no smoothing
    from tfmodels.options import UsageError

    first = json.loads((run / "config.json").read_text())
    before = model_dir_runs.snapshot(run)
    with pytest.raises(UsageError) as err:
        model_dir_runs.train(run, train_steps=40, **{option: value}, **also)
    message = str(err.value)
    assert "\n" not in message
    assert f"{option} {first[option]!r} there, {value!r} in this run" in message
    assert f"Resume it with the same {option}, or use another --model_dir" in message
    assert model_dir_runs.snapshot(run) == before


def test_a_diverging_resume_leaves_the_record_as_it_was(run):
    from tfmodels.training import NonFiniteLossError

    before = (run / "config.json").read_bytes()
    with pytest.raises(NonFiniteLossError):
        model_dir_runs.train(run, train_steps=40, learning_rate=1e30)
    assert (run / "config.json").read_bytes() == before
