"""tfds datasets of images of varying size, under `tfds.testing.mock_data` (random image sizes):
mocked builders are accepted, every example is evaluated exactly once, training preprocessing
draws from (seed, step, row), resume is exact, undecodable images are named or counted."""
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from tfmodels import data
from tfmodels.data import preprocessing
from tfmodels.data.pipelines import transforms

N = 7  # examples per mocked split
VARIABLE = ["imagenette", "oxford_flowers102", "caltech101", "food101", "cats_vs_dogs"]


@pytest.fixture
def mocked():
    with tfds.testing.mock_data(num_examples=N):
        yield


def reference_examples(tfds_name, split="test"):
    """(uint8 images, labels) the mocked split serves, decoded by tfds's own image feature."""
    builder = tfds.builder(tfds_name)
    feature = builder.info.features["image"]
    encoded = builder.as_dataset(split=split, decoders={"image": tfds.decode.SkipDecoding()})
    examples = [(feature.decode_example(e["image"]).numpy(), int(e["label"])) for e in encoded]
    assert len(examples) == N
    return [image for image, _ in examples], np.array([label for _, label in examples])


def batches(ds, count=None):
    return [{k: v.numpy() for k, v in b.items()} for b in (ds.take(count) if count else ds)]


def test_mocked_builders_are_accepted_with_their_yielded_sizes(mocked):
    info = data.get_dataset_info("tfds:oxford_flowers102")
    assert info.image_shape == (None, None, 3) and info.variable_size and info.channels == 3
    assert info.num_classes == 102
    assert info.splits == {"train": N, "validation": N, "test": N}
    assert (info.train_split, info.eval_split) == ("train", "test")


def test_unprepared_dataset_still_fails_fast(tmp_path):
    with pytest.raises(data.DatasetUnavailableError, match="'oxford_flowers102' is not prepared"):
        data.get_dataset_info("tfds:oxford_flowers102", data_dir=str(tmp_path))


@pytest.mark.parametrize("tfds_name", VARIABLE)
@pytest.mark.parametrize("pipelines,replicas", [(1, 1), (2, 4)])
def test_eval_preprocesses_every_example_exactly_once(mocked, tfds_name, pipelines, replicas):
    name, size, global_batch = f"tfds:{tfds_name}", (24, 20), 4  # 7 = 4 + 3: a padded step
    images, labels = reference_examples(tfds_name)
    eval_fn = preprocessing.get_preprocessing("inception", is_training=False)
    want = np.stack([eval_fn(image, *size).numpy() for image in images])
    contexts = ([tf.distribute.InputContext(pipelines, p, replicas) for p in range(pipelines)]
                if replicas > 1 else [None])
    for p, context in enumerate(contexts):
        got = batches(data.make_dataset(name, "test", global_batch_size=global_batch,
                                        training=False, input_context=context, image_size=size,
                                        preprocessing="inception"))
        assert len(got) == 2 * replicas // pipelines  # ceil(7 / 4) steps on every replica
        merged = {k: np.concatenate([b[k] for b in got]) for k in got[0]}
        assert merged["image"].shape[1:] == (24, 20, 3) and merged["image"].dtype == np.float32
        real = merged["mask"] == 1
        mine = np.arange(p, N, pipelines)  # element-wise shards, in order
        np.testing.assert_array_equal(merged["label"][real], labels[mine])
        np.testing.assert_allclose(merged["image"][real], want[mine], rtol=0, atol=1e-5)
        assert not merged["image"][~real].any() and not merged["label"][~real].any()


def train_stream(name="tfds:food101", **kwargs):
    values = dict(global_batch_size=4, training=True, augment=True, seed=5, deterministic=True,
                  image_size=32, preprocessing="vgg")
    values.update(kwargs)
    return data.make_dataset(name, "train", **values)


def test_training_draws_come_from_seed_step_and_row(mocked):
    images, labels = reference_examples("food101", "train")
    train_fn = preprocessing.get_preprocessing("vgg", is_training=True)
    got = batches(train_stream(), 3)
    for step, batch in enumerate(got):
        assert batch["image"].shape == (4, 32, 32, 3)
        for row, (image, label) in enumerate(zip(batch["image"], batch["label"])):
            seed = transforms.example_seed(5, step, row)
            candidates = [train_fn(images[k], 32, 32, seed=seed).numpy()
                          for k in np.flatnonzero(labels == label)]
            assert any(np.abs(c - image).max() < 1e-4 for c in candidates), (step, row)
    # The same seed gives the same stream; another seed other crops.
    again, other = batches(train_stream(), 3), batches(train_stream(seed=6), 3)
    for a, b, c in zip(got, again, other):
        np.testing.assert_array_equal(a["image"], b["image"])
        assert np.abs(a["image"] - c["image"]).max() > 1
    # One pipeline feeding 2 replicas: their batches make up the one-device global batch.
    context = tf.distribute.InputContext(1, 0, 2)
    halves = batches(train_stream(input_context=context), 6)
    for step, batch in enumerate(got):
        for key in ("image", "label"):
            np.testing.assert_array_equal(
                np.concatenate([halves[2 * step][key], halves[2 * step + 1][key]]), batch[key])


@pytest.mark.parametrize("skip_undecodable", [False, True])
def test_a_stream_started_at_a_step_continues_exactly(mocked, skip_undecodable):
    straight = batches(train_stream(skip_undecodable=skip_undecodable), 5)  # > 2 epochs of 7
    resumed = batches(train_stream(skip_undecodable=skip_undecodable, start_step=3), 2)
    for want, got in zip(straight[3:], resumed, strict=True):
        for key in ("image", "label"):
            np.testing.assert_array_equal(got[key], want[key])


def corrupt_as_dataset(bad):
    """A mock `_as_dataset` serving N PNGs of different sizes, those at `bad` corrupt."""
    def as_dataset(self, split, decoders=None, read_config=None, shuffle_files=False):
        del self, decoders, read_config, shuffle_files
        images = [tf.io.encode_png(np.full((5 + i, 9 - i, 3), 10 * i, np.uint8)).numpy()
                  for i in range(N)]
        for position in bad:
            images[position] = images[position][:20]  # truncated
        return tf.data.Dataset.from_tensor_slices({
            "image": images, "label": np.arange(N, dtype=np.int64),
            "tfds_id": [f"food101-{split}.tfrecord__{i}".encode() for i in range(N)]})
    return as_dataset


def test_undecodable_image_is_an_error_naming_dataset_and_example():
    with tfds.testing.mock_data(as_dataset_fn=corrupt_as_dataset([3])):
        ds = data.make_dataset("tfds:food101", "test", global_batch_size=2, training=False,
                               image_size=8, preprocessing="lenet")
        with pytest.raises(tf.errors.InvalidArgumentError,
                           match=r"could not decode the image of example\(s\) #3 \(id=food101-"
                                 r"test.tfrecord__3\) of dataset tfds:food101"):
            batches(ds)


def test_skipped_images_are_counted_and_evaluation_stays_exact(capfd):
    strategy = tf.distribute.get_strategy()
    with tfds.testing.mock_data(as_dataset_fn=corrupt_as_dataset([0, 4])):
        evaluation = data.distribute_dataset(strategy, "tfds:food101", "test",
                                             global_batch_size=3, training=False, image_size=8,
                                             preprocessing="lenet", skip_undecodable=True)
        assert evaluation.skipped_examples == 0
        got = [{k: v.numpy() for k, v in b.items()}
               for b in evaluation.distributed_dataset.take(evaluation.steps)]
        training = data.distribute_dataset(strategy, "tfds:food101", "train",
                                           global_batch_size=2, training=True, seed=1,
                                           image_size=8, preprocessing="lenet",
                                           skip_undecodable=True)
        # 4 batches of 2 need 8 decoded examples: all of epoch 1 (5 decodable) was read.
        labels = np.concatenate([b["label"].numpy()
                                 for b in training.distributed_dataset.take(4)])
    merged = {k: np.concatenate([b[k] for b in got]) for k in got[0]}
    assert len(got) == 3 and merged["mask"].sum() == N - 2
    np.testing.assert_array_equal(merged["label"][merged["mask"] == 1], [1, 2, 3, 5, 6])
    # LeNet preprocessing of the PNG at position 1 (6x8, value 10): centre pad to 8x8, scale.
    want = np.full((8, 8, 3), -1.0, np.float32)
    want[1:7] = (10 - 128) / 128
    np.testing.assert_allclose(merged["image"][0], want, atol=1e-6)
    assert evaluation.skipped_examples == 2
    assert set(labels) <= {1, 2, 3, 5, 6} and training.skipped_examples >= 2
    assert "skipped undecodable example(s) #0 (id=food101-test.tfrecord__0) of dataset " \
           "tfds:food101" in capfd.readouterr().err


def test_bad_requests_fail_before_any_work(mocked):
    kwargs = dict(global_batch_size=2, training=False)
    with pytest.raises(ValueError, match=r"varying size \(None, None, 3\): batching them needs "
                                         r"image_size=\(height, width\) and a per-net"):
        data.make_dataset("tfds:imagenette", "test", **kwargs)
    with pytest.raises(ValueError, match="needs image_size.*got image_size=64, "
                                         "preprocessing=None"):
        data.make_dataset("tfds:imagenette", "test", image_size=64, **kwargs)
    with pytest.raises(ValueError, match=r"--preprocessing=resnet is not one of: None \(the "
                                         r"dataset's normalisation\), cifarnet, inception"):
        data.make_dataset("tfds:imagenette", "test", image_size=64, preprocessing="resnet",
                          **kwargs)
    with pytest.raises(ValueError, match=r"image_size=\(0, 3\) must be None, a positive int"):
        data.make_dataset("tfds:imagenette", "test", image_size=(0, 3), preprocessing="vgg",
                          **kwargs)
    with pytest.raises(ValueError, match="in_memory=True: dataset 'tfds:imagenette' has images "
                                         "of varying size, which are streamed"):
        data.make_dataset("tfds:imagenette", "test", image_size=64, preprocessing="vgg",
                          in_memory=True, **kwargs)
    with pytest.raises(ValueError, match="--preprocessing=vgg works on RGB images; dataset "
                                         "'digits' has 1 channel"):
        data.make_dataset("digits", "test", preprocessing="vgg", **kwargs)
