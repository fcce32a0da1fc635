"""Which checkpoint a TF1 training directory stands for: the newest readable one, found from
the files, whatever its `checkpoint` state file says, with a note saying why."""
import os

import numpy as np
import pytest
import tensorflow as tf

from tfmodels import nets, porting
from tfmodels.porting import checkpoint_choice


def save_steps(directory, steps):
    """A TF1 Saver run: `model.ckpt-<step>` holding LeNet-shaped conv1 weights = step."""
    with tf.Graph().as_default():
        weights = tf.compat.v1.get_variable("LeNet/conv1/weights", (5, 5, 1, 32))
        saver = tf.compat.v1.train.Saver(max_to_keep=None)
        with tf.compat.v1.Session() as session:
            for step in steps:
                session.run(weights.assign(np.full((5, 5, 1, 32), step, np.float32)))
                saver.save(session, str(directory / "model.ckpt"), global_step=step)


def value_of(path):
    return float(tf.train.load_checkpoint(path).get_tensor("LeNet/conv1/weights")[0, 0, 0, 0])


def test_state_file_agrees(tmp_path):
    save_steps(tmp_path, [100, 200])
    path, note = checkpoint_choice.choose_in_directory(str(tmp_path))
    assert os.path.basename(path) == "model.ckpt-200" and value_of(path) == 200
    assert note == (f"took model.ckpt-200, the newest readable of 2 checkpoints in {tmp_path} "
                    "(found from the files); the `checkpoint` state file agrees")


def test_stale_state_file_is_not_followed(tmp_path):
    save_steps(tmp_path, [100, 200, 300])
    tf.compat.v1.train.update_checkpoint_state(str(tmp_path), "model.ckpt-100")
    assert tf.train.latest_checkpoint(str(tmp_path)).endswith("model.ckpt-100")  # TF's answer
    path, source_format, note = porting.checkpoint_map.choose_checkpoint(str(tmp_path))
    assert (os.path.basename(path), source_format, value_of(path)) == ("model.ckpt-300", "tf1",
                                                                       300)
    assert note.endswith("the `checkpoint` state file names model.ckpt-100 (stale: not the "
                         "newest)")


def test_missing_state_file_and_unreadable_newest(tmp_path):
    save_steps(tmp_path, [100, 200, 1000])
    os.remove(tmp_path / "checkpoint")
    (shard,) = [p for p in os.listdir(tmp_path) if p.startswith("model.ckpt-1000.data")]
    with open(tmp_path / shard, "r+b") as f:  # flip bytes: the CRC check fails
        data = bytearray(f.read())
        data[:8] = bytes(255 - b for b in data[:8])
        f.seek(0)
        f.write(data)
    path, note = checkpoint_choice.choose_in_directory(str(tmp_path))
    assert os.path.basename(path) == "model.ckpt-200" and value_of(path) == 200
    assert "took model.ckpt-200, the newest readable of 3 checkpoints" in note
    assert "; passed over model.ckpt-1000 (" in note
    assert note.endswith("; there is no `checkpoint` state file")
    # Step numbers, not name order: model.ckpt-1000 sorts before model.ckpt-200 as text.
    assert [os.path.basename(p) for p in checkpoint_choice.list_prefixes(str(tmp_path))] == [
        "model.ckpt-100", "model.ckpt-200", "model.ckpt-1000"]


def test_port_report_says_which_and_why(tmp_path):
    save_steps(tmp_path, [1, 2])
    tf.compat.v1.train.update_checkpoint_state(str(tmp_path), "model.ckpt-1")
    model = nets.build_model("lenet", 10, (28, 28, 1))
    mapping = porting.map_checkpoint(model, str(tmp_path))
    assert mapping.checkpoint.endswith("model.ckpt-2")
    assert mapping.read("LeNet/conv1/weights")[0, 0, 0, 0] == 2
    assert ("  chosen: took model.ckpt-2, the newest readable of 2 checkpoints in "
            f"{tmp_path} (found from the files); the `checkpoint` state file names "
            "model.ckpt-1 (stale: not the newest)\n") in mapping.report()


def test_directory_without_checkpoints(tmp_path):
    tf.compat.v1.train.update_checkpoint_state(str(tmp_path), "model.ckpt-5")
    with pytest.raises(ValueError, match=rf"--checkpoint={tmp_path}: {tmp_path} holds no "
                                         r"checkpoint index file \(\*\.index\) \(its state "
                                         r"file names 'model.ckpt-5'\)"):
        porting.resolve_checkpoint(str(tmp_path))


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_a_lone_checkpoint_is_read_once_by_the_port(tmp_path, monkeypatch, damage):
    """A directory holding one checkpoint has nothing to fall back to: it is not read in full
    to choose it; the port's own reads find the damage, in one line naming the variable and
    the checkpoint, before anything is written."""
    model = nets.build_model("lenet", 10, (28, 28, 1))
    names = [v.path.replace("/kernel", "/weights").replace("/bias", "/biases")
             for v in model.weights]
    prefix = str(tmp_path / "model.ckpt-7")
    tf.raw_ops.SaveV2(prefix=prefix, tensor_names=names, shape_and_slices=[""] * len(names),
                      tensors=list(model.weights))
    monkeypatch.setattr(checkpoint_choice.checkpoint_files, "inspect",
                        lambda path: pytest.fail(f"{path} read in full to choose it"))
    path, note = checkpoint_choice.choose_in_directory(str(tmp_path))
    assert path == prefix
    assert note == (f"took model.ckpt-7, the only checkpoint in {tmp_path} (found from the "
                    "files); there is no `checkpoint` state file")

    (data_file,) = [tmp_path / n for n in os.listdir(tmp_path) if ".data-" in n]
    content = bytearray(data_file.read_bytes())
    if damage == "flip":  # one bit in each stretch of 997 bytes: every tensor is hit
        for position in range(0, len(content), 997):
            content[position] ^= 0x10
    else:
        content = content[:len(content) // 10]
    data_file.write_bytes(bytes(content))
    with pytest.raises(ValueError) as raised:
        porting.port_checkpoint(str(tmp_path), "lenet", 10, (28, 28, 1), str(tmp_path / "out"))
    message = str(raised.value)
    assert "\n" not in message, message
    assert message.startswith(f"--checkpoint={prefix}: variable 'LeNet/"), message
    assert "' cannot be read (" in message
    assert message.endswith("): the file is damaged or truncated")
    assert not (tmp_path / "out").exists()
