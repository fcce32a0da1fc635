"""Input pipelines: exact-once evaluation, epochs, augmentation, sharding, resume, replicas.

Mocked tfds data (`fake_tfds`) has random uint8 images, so an MNIST image scaled to [0, 1] maps
back to its pixels by `rint(x * 255)` and from there to its index: the tests check which examples
were visited, not just how many.
"""
import os

import numpy as np
import pytest
import tensorflow as tf

from tests import replicas
from tests.test_preprocessing import numpy_crop_and_flip
from tfmodels import data
from tests import fake_tfds
from tfmodels.data import preprocessing

SIZES = {"mnist": {"train": 130, "test": 57}, "cifar10": {"train": 90, "test": 41}}


@pytest.fixture
def tfds_dir(tmp_path):
    with fake_tfds.fake_prepared(SIZES, tmp_path):
        yield str(tmp_path)


def mnist_index(split):
    """pixel bytes -> example index of the fake MNIST split."""
    pixels, _ = fake_tfds.fake_examples("mnist", split, SIZES["mnist"][split], (28, 28, 1), 10)
    return {p.tobytes(): i for i, p in enumerate(pixels)}


def indices_of(images, index):
    pixels = np.rint(np.asarray(images) * 255).astype(np.uint8)
    return [index[p.tobytes()] for p in pixels]


def numpy_batches(ds, count=None):
    it = iter(ds) if count is None else iter(ds.take(count))
    return [{k: v.numpy() for k, v in b.items()} for b in it]


def contexts(num_pipelines, num_replicas):
    return [tf.distribute.InputContext(num_pipelines, p, num_replicas)
            for p in range(num_pipelines)]


@pytest.mark.parametrize("in_memory", [True, False], ids=["memory", "streaming"])
@pytest.mark.parametrize("pipelines,replicas_", [(1, 1), (1, 3), (2, 4), (3, 3)])
def test_eval_visits_every_example_once(tfds_dir, in_memory, pipelines, replicas_):
    global_batch = 12  # 57 = 4 * 12 + 9: an uneven last step
    info = data.get_dataset_info("mnist", data_dir=tfds_dir)
    steps = data.num_eval_steps(info, "test", global_batch)
    assert steps == 5
    per_replica = global_batch // replicas_
    seen, labels = [], []
    want_pixels, want_labels = fake_tfds.fake_examples("mnist", "test", 57, (28, 28, 1), 10)
    for ctx in contexts(pipelines, replicas_) if replicas_ > 1 else [None]:
        batches = numpy_batches(data.make_dataset(
            "mnist", "test", global_batch_size=global_batch, training=False, input_context=ctx,
            data_dir=tfds_dir, in_memory=in_memory))
        # Every replica gets a full batch at every step, the same number of steps everywhere.
        assert len(batches) == steps * (replicas_ // pipelines)
        for b in batches:
            assert b["image"].shape == (per_replica, 28, 28, 1) and b["mask"].dtype == np.float32
            real = b["mask"] == 1
            assert set(np.unique(b["mask"])) <= {0.0, 1.0}
            assert not b["image"][~real].any() and not b["label"][~real].any()
            seen += indices_of(b["image"][real], mnist_index("test"))
            labels += list(b["label"][real])
    assert sorted(seen) == list(range(57))
    np.testing.assert_array_equal(np.array(labels), want_labels[seen])


def test_training_epochs_are_permutations_and_reshuffle(tfds_dir):
    info = data.get_dataset_info("mnist", data_dir=tfds_dir)
    steps = data.steps_per_epoch(info, "train", 16)
    assert steps == 8                      # 130 // 16: the last 2 positions are dropped
    batches = numpy_batches(data.make_dataset("mnist", "train", global_batch_size=16,
                                              training=True, seed=3, data_dir=tfds_dir,
                                              deterministic=True), 2 * steps)
    index = mnist_index("train")
    epochs = [sum((indices_of(b["image"], index) for b in batches[e * steps:(e + 1) * steps]),
                  []) for e in range(2)]
    for visited in epochs:
        assert len(visited) == len(set(visited)) == 128
    assert epochs[0] != epochs[1]
    _, labels = fake_tfds.fake_examples("mnist", "train", 130, (28, 28, 1), 10)
    np.testing.assert_array_equal(batches[0]["label"], labels[epochs[0][:16]])
    assert batches[0]["label"].dtype == np.int32 and batches[0]["image"].dtype == np.float32


def test_seeded_stream_is_reproducible(tfds_dir):
    make = lambda seed: numpy_batches(data.make_dataset(
        "cifar10", "train", global_batch_size=10, training=True, augment=True, seed=seed,
        deterministic=True, data_dir=tfds_dir), 12)
    first, again, other = make(1), make(1), make(2)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a["image"], b["image"])
        np.testing.assert_array_equal(a["label"], b["label"])
    assert any((a["image"] != c["image"]).any() for a, c in zip(first, other))


def test_augmentation_training_only_and_matches_reference(tfds_dir):
    info = data.get_dataset_info("cifar10", data_dir=tfds_dir)
    kwargs = dict(global_batch_size=30, seed=4, deterministic=True, data_dir=tfds_dir)
    plain, augmented = (numpy_batches(data.make_dataset("cifar10", "train", training=True,
                                                        augment=a, **kwargs), 4)
                        for a in (False, True))
    mean, std = np.array(info.mean, np.float32), np.array(info.std, np.float32)
    for step, (p, a) in enumerate(zip(plain, augmented)):
        assert a["image"].shape == p["image"].shape == (30, 32, 32, 3)
        np.testing.assert_array_equal(a["label"], p["label"])   # same examples, same order
        # Reference: recover the uint8 pixels, pad/crop/flip in NumPy with the same draws.
        pixels = np.rint((p["image"] * std + mean) * 255).astype(np.uint8)
        offsets, flips = preprocessing.augmentation_draws(4, step, 30, padding=4, flip=True)
        want = (numpy_crop_and_flip(pixels, offsets.numpy(), flips.numpy(), 4) / 255.0 - mean) / std
        np.testing.assert_allclose(a["image"], want, rtol=0, atol=1e-5)
        assert (a["image"] >= (0 - mean) / std - 1e-6).all()
        assert (a["image"] <= (1 - mean) / std + 1e-6).all()
        assert np.mean([(x != y).any() for x, y in zip(a["image"], p["image"])]) > 0.8
    evaluated = [numpy_batches(data.make_dataset("cifar10", "test", training=False, augment=a,
                                                 **kwargs)) for a in (False, True)]
    for p, a in zip(*evaluated):
        np.testing.assert_array_equal(p["image"], a["image"])  # identity at evaluation


@pytest.mark.parametrize("pipelines,replicas_", [(1, 3), (2, 2), (2, 6)])
def test_replica_batches_concatenate_to_the_global_batch(tfds_dir, pipelines, replicas_):
    kwargs = dict(global_batch_size=18 if replicas_ != 2 else 12, training=True, augment=True,
                  seed=9, deterministic=True, data_dir=tfds_dir)
    steps = 3
    single = numpy_batches(data.make_dataset("cifar10", "train", **kwargs), steps)
    per_pipeline = [numpy_batches(data.make_dataset("cifar10", "train", input_context=ctx,
                                                    **kwargs), steps * replicas_ // pipelines)
                    for ctx in contexts(pipelines, replicas_)]
    for step in range(steps):
        # Replica j = pipeline * R + r gets element step * R + r of its pipeline.
        r = replicas_ // pipelines
        parts = [per_pipeline[p][step * r + i] for p in range(pipelines) for i in range(r)]
        for key in ("image", "label"):
            np.testing.assert_array_equal(np.concatenate([b[key] for b in parts]),
                                          single[step][key])


def checkpoint_files_size(directory):
    return sum(os.path.getsize(os.path.join(directory, f)) for f in os.listdir(directory))


def test_iterator_checkpoint_resumes_bit_identically(tfds_dir, tmp_path):
    make = lambda **kw: data.make_dataset("cifar10", "train", global_batch_size=16, training=True,
                                          augment=True, seed=11, deterministic=True,
                                          data_dir=tfds_dir, **kw)
    iterator = iter(make())
    for _ in range(7):                     # past the first epoch (90 // 16 = 5 steps)
        next(iterator)
    path = tf.train.Checkpoint(iterator=iterator).write(str(tmp_path / "ckpt" / "it"))
    # Positions only, no shuffle buffer or prefetched images (measured ~0.5 kB).
    assert checkpoint_files_size(tmp_path / "ckpt") < 2048
    expected = [next(iterator) for _ in range(6)]
    restored = iter(make())
    tf.train.Checkpoint(iterator=restored).read(path).assert_consumed()
    started = iter(make(start_step=7))
    for want in expected:
        for got in (next(restored), next(started)):
            np.testing.assert_array_equal(got["image"].numpy(), want["image"].numpy())
            np.testing.assert_array_equal(got["label"].numpy(), want["label"].numpy())


def test_streaming_training_batches(tfds_dir):
    batches = numpy_batches(data.make_dataset(
        "mnist", "train", global_batch_size=16, training=True, augment=True, seed=2,
        deterministic=True, data_dir=tfds_dir, in_memory=False), 10)  # > one pass of 130
    again = numpy_batches(data.make_dataset(
        "mnist", "train", global_batch_size=16, training=True, augment=True, seed=2,
        deterministic=True, data_dir=tfds_dir, in_memory=False, start_step=4), 6)
    for b in batches:
        assert b["image"].shape == (16, 28, 28, 1) and b["label"].shape == (16,)
        assert 0 <= b["image"].min() and b["image"].max() <= 1
    for want, got in zip(batches[4:], again):
        np.testing.assert_array_equal(want["image"], got["image"])


def test_synthetic_batches():
    name = "synthetic:6x5x2:7:100:23"
    train = numpy_batches(data.make_dataset(name, "train", global_batch_size=8, training=True,
                                            seed=1), 3)
    assert train[0]["image"].shape == (8, 6, 5, 2) and train[0]["image"].dtype == np.float32
    assert ((0 <= train[0]["label"]) & (train[0]["label"] < 7)).all()
    np.testing.assert_array_equal(train[0]["image"], train[2]["image"])   # made once, repeated
    test = numpy_batches(data.make_dataset(name, "test", global_batch_size=8, training=False))
    assert len(test) == 3 and sum(b["mask"].sum() for b in test) == 23


def test_split_sizes_reported_equal_what_is_yielded(tfds_dir):
    for name in ("mnist", "cifar10"):
        info = data.get_dataset_info(name, data_dir=tfds_dir)
        for split, size in info.splits.items():
            batches = numpy_batches(data.make_dataset(name, split, global_batch_size=7,
                                                      training=False, data_dir=tfds_dir))
            assert sum(b["mask"].sum() for b in batches) == size == SIZES[name][split]


class RefusingStrategy:
    """A strategy stand-in that fails if any distribution work starts."""
    num_replicas_in_sync = 3

    class extended:  # noqa: N801 (mirrors tf.distribute.Strategy.extended)
        @staticmethod
        def _in_multi_worker_mode():
            return False

    def distribute_datasets_from_function(self, *args, **kwargs):
        raise AssertionError("work started before argument checks")


@pytest.mark.parametrize("kwargs,match", [
    (dict(global_batch_size=0), "global_batch_size=0"),
    (dict(global_batch_size=8.0), "global_batch_size=8.0"),
    (dict(training="yes"), "training='yes'"),
    (dict(augment=1), "augment=1 must be True or False"),
    (dict(in_memory="auto"), "in_memory='auto'"),
    (dict(seed=-1), "seed=-1"),
    (dict(start_step=-2), "start_step=-2"),
    (dict(deterministic=True, seed=None), "seed=None"),
    (dict(split="validation"), r"--split=validation.*\['test', 'train'\]"),
    (dict(name="cifar11"), "--dataset=cifar11"),
    (dict(global_batch_size=2000), "--batch_size=2000 is larger than split 'train'"),
])
def test_bad_arguments(kwargs, match):
    args = dict(name="digits", split="train", global_batch_size=8, training=True, seed=0)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        data.make_dataset(args.pop("name"), args.pop("split"), **args)


def test_indivisible_global_batch_fails_before_any_work(tmp_path):
    # data_dir is empty: reaching the dataset would raise DatasetUnavailableError instead.
    with pytest.raises(ValueError, match="--batch_size=64 is not divisible by the 3 replicas"):
        data.distribute_dataset(RefusingStrategy(), "cifar10", "train", global_batch_size=64,
                                training=True, data_dir=str(tmp_path))
    with pytest.raises(ValueError, match="--batch_size=10 is not divisible by the 4 replicas"):
        data.make_dataset("digits", "test", global_batch_size=10, training=False,
                          input_context=tf.distribute.InputContext(1, 0, 4))
    with pytest.raises(TypeError, match="shuffle"):
        data.distribute_dataset(RefusingStrategy(), "digits", "train", global_batch_size=6,
                                training=True, shuffle=True)

    class MultiWorker(RefusingStrategy):
        class extended:  # noqa: N801
            @staticmethod
            def _in_multi_worker_mode():
                return True
    # Workers drawing their own seeds would each shuffle differently.
    with pytest.raises(ValueError, match="seed=None: multi-worker"):
        data.distribute_dataset(MultiWorker(), "digits", "train", global_batch_size=6,
                                training=True)


# ---- Under a real strategy over 1, 2, 3 logical CPU devices (one subprocess per count) ----

EVAL_BATCH = 48  # 359 digits test examples = 7 * 48 + 23: an uneven last step


def local(strategy, values):
    return np.stack([v.numpy() for v in strategy.experimental_local_results(values)])


@replicas.scenario(1, 2, 3)
def digits_eval(strategy):
    dist = data.distribute_dataset(strategy, "digits", "test", global_batch_size=EVAL_BATCH,
                                   training=False)
    iterator = iter(dist)
    steps = [next(iterator) for _ in range(dist.steps)]
    try:
        next(iterator)
        exhausted = False
    except (StopIteration, tf.errors.OutOfRangeError):
        exhausted = True
    return {key: np.stack([local(strategy, s[key]) for s in steps])
            for key in ("image", "label", "mask")} | {"exhausted": np.array(exhausted)}


@replicas.scenario(1, 2, 3)
def digits_train_resume(strategy):
    import tempfile

    def make():
        return iter(data.distribute_dataset(strategy, "digits", "train", global_batch_size=48,
                                            training=True, augment=True, seed=5,
                                            deterministic=True))

    @tf.function
    def draw(iterator):  # the trainer's pattern: next() inside a tf.function
        batch = next(iterator)
        return [strategy.experimental_local_results(batch[k]) for k in ("image", "label")]

    def global_batch(out):
        return [np.concatenate([t.numpy() for t in parts]) for parts in out]

    iterator = make()
    stream = [global_batch(draw(iterator)) for _ in range(3)]
    folder = tempfile.mkdtemp()
    path = tf.train.Checkpoint(iterator=iterator).write(os.path.join(folder, "it"))
    stream += [global_batch(draw(iterator)) for _ in range(3)]
    restored = make()
    tf.train.Checkpoint(iterator=restored).read(path).assert_consumed()
    resumed = [global_batch(draw(restored)) for _ in range(3)]
    late = make()
    draw(late)
    try:  # restoring into an iterator a traced function already captured must not replay silently
        tf.train.Checkpoint(iterator=late).read(path)
        late_error = ""
    except RuntimeError as e:
        late_error = str(e)
    return {"images": np.stack([s[0] for s in stream]), "labels": np.stack([s[1] for s in stream]),
            "resumed_images": np.stack([s[0] for s in resumed]),
            "resumed_labels": np.stack([s[1] for s in resumed]),
            "position": np.array(restored.position), "late_error": np.array(late_error),
            "checkpoint_bytes": np.array(checkpoint_files_size(folder))}


@replicas.scenario(1, 2, 3)
def input_paths(strategy):
    """The input path our pipelines choose, and TF's default one (what GPU replicas use).

    MirroredStrategy rewrites its input workers for good once asked for PER_REPLICA input, so
    the default path runs on a fresh strategy over the same devices.
    """
    from tfmodels.data import pipeline

    options = pipeline.input_options(strategy)
    out = {"per_replica": np.array(options is not None and options.experimental_replication_mode
                                   == tf.distribute.InputReplicationMode.PER_REPLICA),
           "fetch_to_device": np.array(options is not None
                                       and options.experimental_fetch_to_device)}
    if strategy.num_replicas_in_sync == 1:
        return out
    fresh = tf.distribute.MirroredStrategy(strategy.extended.worker_devices)
    chosen, pipeline.input_options = pipeline.input_options, lambda strategy: None
    try:
        iterator = iter(data.distribute_dataset(fresh, "digits", "train", global_batch_size=48,
                                                training=True, augment=True, seed=5))
        batches = [next(iterator) for _ in range(3)]
    finally:
        pipeline.input_options = chosen
    return out | {key: np.stack([np.concatenate(local(fresh, b[key])) for b in batches])
                  for key in ("image", "label")}


@pytest.mark.parametrize("num_replicas", [1, 2, 3])
def test_input_path_per_replica_on_cpu_and_tf_default_gives_the_same_batches(
        replica_runner, num_replicas):
    out = replica_runner.run(input_paths, num_replicas)
    # One device: TF's default strategy path; CPU replicas: one pipeline per replica.
    assert bool(out["per_replica"]) == (num_replicas > 1)
    assert not bool(out["fetch_to_device"])
    if num_replicas > 1:
        reference = numpy_batches(data.make_dataset("digits", "train", global_batch_size=48,
                                                    training=True, augment=True, seed=5), 3)
        np.testing.assert_array_equal(out["image"], np.stack([b["image"] for b in reference]))
        np.testing.assert_array_equal(out["label"], np.stack([b["label"] for b in reference]))


@pytest.mark.parametrize("num_replicas", [1, 2, 3])
def test_distributed_eval_counts_each_example_once(replica_runner, num_replicas):
    out = replica_runner.run(digits_eval, num_replicas)
    per_replica = EVAL_BATCH // num_replicas
    assert out["mask"].shape == (8, num_replicas, per_replica)   # ceil(359 / 48) full steps
    assert bool(out["exhausted"])
    real = out["mask"].reshape(-1) == 1
    info = data.get_dataset_info("digits")
    pixels, labels = data.load_arrays(info, "test")
    # In (step, replica) order the real rows are the test split, in order, each exactly once.
    np.testing.assert_allclose(out["image"].reshape(-1, 8, 8, 1)[real], pixels / 16.0,
                               rtol=0, atol=1e-7)
    np.testing.assert_array_equal(out["label"].reshape(-1)[real], labels)
    assert not out["image"].reshape(-1, 8, 8, 1)[~real].any()


@pytest.mark.parametrize("num_replicas", [1, 2, 3])
def test_distributed_training_equals_one_device_and_resumes(replica_runner, num_replicas):
    out = replica_runner.run(digits_train_resume, num_replicas)
    reference = numpy_batches(data.make_dataset("digits", "train", global_batch_size=48,
                                                training=True, augment=True, seed=5,
                                                deterministic=True), 6)
    np.testing.assert_array_equal(out["images"], np.stack([b["image"] for b in reference]))
    np.testing.assert_array_equal(out["labels"], np.stack([b["label"] for b in reference]))
    np.testing.assert_array_equal(out["resumed_images"], out["images"][3:])
    np.testing.assert_array_equal(out["resumed_labels"], out["labels"][3:])
    assert int(out["position"]) == 6
    assert "restore the input iterator before" in str(out["late_error"])
    assert int(out["checkpoint_bytes"]) < 1024      # one int64 position (measured ~270 B)


# ---- MultiWorkerMirroredStrategy: two local worker processes (opt-in, ~17 s on 2 cores) ----

def multi_worker_main(index, ports, out_path):
    """One worker: eval exact-once, training == one device, resume; writes a JSON report."""
    import json

    os.environ["TF_CONFIG"] = json.dumps({
        "cluster": {"worker": [f"localhost:{p}" for p in ports]},
        "task": {"type": "worker", "index": index}})
    strategy = tf.distribute.MultiWorkerMirroredStrategy()  # before any eager op
    evaluation = data.distribute_dataset(strategy, "digits", "test", global_batch_size=EVAL_BATCH,
                                         training=False)
    iterator = iter(evaluation)
    steps = [{k: strategy.gather(v, axis=0).numpy() for k, v in next(iterator).items()}
             for _ in range(evaluation.steps)]
    real = np.concatenate([s["mask"] for s in steps]) == 1
    _, test_labels = data.load_arrays(data.get_dataset_info("digits"), "test")
    kwargs = dict(global_batch_size=48, training=True, augment=True, seed=5, deterministic=True)
    train = data.distribute_dataset(strategy, "digits", "train", **kwargs)

    @tf.function
    def draw(it):
        return strategy.gather(next(it)["image"], axis=0)

    iterator = iter(train)
    drawn = [draw(iterator).numpy() for _ in range(2)]
    folder = os.path.join(os.path.dirname(out_path), f"ckpt{index}")
    path = tf.train.Checkpoint(iterator=iterator).write(os.path.join(folder, "it"))
    drawn += [draw(iterator).numpy() for _ in range(2)]
    restored = iter(train)
    tf.train.Checkpoint(iterator=restored).read(path).assert_consumed()
    resumed = [draw(restored).numpy() for _ in range(2)]
    one_device = [b["image"] for b in numpy_batches(data.make_dataset("digits", "train",
                                                                      **kwargs), 4)]
    report = {
        "eval_steps": evaluation.steps, "eval_count": int(real.sum()),
        "eval_labels_in_order": bool(np.array_equal(
            np.concatenate([s["label"] for s in steps])[real], test_labels)),
        "train_equals_one_device": all(np.array_equal(a, b) for a, b in zip(drawn, one_device)),
        "resumed": all(np.array_equal(a, b) for a, b in zip(resumed, drawn[2:]))}
    with open(out_path, "w") as f:
        json.dump(report, f)


@pytest.mark.slow  # two worker processes, ~17 s; train.py's two workers are tested by default
@pytest.mark.subprocess
def test_multi_worker_pipelines(tmp_path):
    import json
    import socket
    import subprocess
    import sys

    sockets = [socket.socket() for _ in range(2)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    procs = [subprocess.Popen(
        [sys.executable, "-c", "import sys; from tests.test_pipeline import multi_worker_main; "
         f"multi_worker_main({i}, {ports}, {str(tmp_path / f'w{i}.json')!r})"],
        cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for i in range(2)]
    logs = [p.communicate(timeout=300)[0] for p in procs]
    for i, p in enumerate(procs):
        assert p.returncode == 0, logs[i][-4000:]
        report = json.loads((tmp_path / f"w{i}.json").read_text())
        assert report == {"eval_steps": 8, "eval_count": 359, "eval_labels_in_order": True,
                          "train_equals_one_device": True, "resumed": True}
