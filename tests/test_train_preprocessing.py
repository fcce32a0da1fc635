"""Per-net training preprocessing: seeded purity, stateless graphs, sizes, ranges, semantics."""
import numpy as np
import pytest
import tensorflow as tf

from tests import slim_preprocessing as slim
from tests.slim_preprocessing import photos
from tfmodels.data import preprocessing
from tfmodels.data.preprocessing import vgg as vgg_preprocessing

MEANS = np.array(vgg_preprocessing.CHANNEL_MEANS, np.float32)
RANDOM_NETS = [("vgg", {}), ("inception", {}), ("inception", {"fast_mode": False}),
               ("cifarnet", {})]
IDS = ["vgg", "inception", "inception_slow", "cifarnet"]


def seed(a, b=7):
    return tf.constant([a, b], tf.int64)


def train(name, image, height, width, **kwargs):
    return preprocessing.get_preprocessing(name, True)(image, height, width, **kwargs)


@pytest.mark.parametrize("name,kwargs", RANDOM_NETS, ids=IDS)
def test_seeded_output_is_a_pure_function_of_image_and_seed(name, kwargs):
    image = photos()["china"]
    first = train(name, image, 96, 80, seed=seed(3), **kwargs).numpy()
    assert first.shape == (96, 80, 3) and first.dtype == np.float32
    np.testing.assert_array_equal(train(name, image, 96, 80, seed=seed(3), **kwargs), first)
    outputs = [train(name, image, 96, 80, seed=seed(s), **kwargs).numpy() for s in range(4)]
    for i in range(4):
        for j in range(i):
            assert np.abs(outputs[i] - outputs[j]).max() > 1e-3, (i, j)
    # Inside a parallel, non-deterministic tf.data map each element still gets exactly its own
    # output: nothing depends on the order in which elements are processed.
    ds = tf.data.Dataset.range(4).map(
        lambda s: (s, train(name, image, 96, 80, seed=tf.stack([s, tf.constant(7, tf.int64)]),
                            **kwargs)),
        num_parallel_calls=4, deterministic=False)
    for index, out in ds:
        np.testing.assert_array_equal(out.numpy(), outputs[int(index)])


def _random_op_types(concrete):
    """Types of every op in a traced function, including nested functions (switch_case)."""
    graph_def = concrete.graph.as_graph_def()
    nodes = list(graph_def.node)
    for function in graph_def.library.function:
        nodes.extend(function.node_def)
    return {node.op for node in nodes if "Random" in node.op or "Sample" in node.op}


@pytest.mark.parametrize("name,kwargs", RANDOM_NETS, ids=IDS)
def test_seeded_graph_has_only_stateless_random_ops(name, kwargs):
    spec = tf.TensorSpec([None, None, 3], tf.uint8)
    seeded = tf.function(lambda x, s: train(name, x, 64, 64, seed=s, **kwargs))
    ops = _random_op_types(seeded.get_concrete_function(spec, tf.TensorSpec([2], tf.int64)))
    assert ops and all(op.startswith("Stateless") for op in ops), ops
    unseeded = tf.function(lambda x: train(name, x, 64, 64, **kwargs))
    stateful = _random_op_types(unseeded.get_concrete_function(spec))
    assert stateful and not any(op.startswith("Stateless") for op in stateful), stateful


@pytest.mark.parametrize("name,kwargs", RANDOM_NETS, ids=IDS)
def test_unseeded_output_draws_fresh_randomness(name, kwargs):
    image = photos()["flower"]
    a, b = (train(name, image, 64, 48, **kwargs).numpy() for _ in range(2))
    assert a.shape == b.shape == (64, 48, 3)
    assert np.abs(a - b).max() > 1e-3


def _find_window(resized, window):
    """All (row, col, flipped) where `window` sits in `resized` (to float tolerance)."""
    found = []
    height, width = window.shape[:2]
    for flipped in (False, True):
        target = window[:, ::-1] if flipped else window
        rows, cols = np.nonzero(np.abs(resized - target[0, 0]).max(-1) < 1e-3)
        for row, col in zip(rows, cols):
            candidate = resized[row:row + height, col:col + width]
            if candidate.shape == target.shape and np.abs(candidate - target).max() < 1e-3:
                found.append((int(row), int(col), flipped))
    return found


def test_vgg_train_is_a_window_of_slims_resize_minus_means():
    image = photos()["portrait"]                        # 427 x 253 -> 300 x 506 at side 300
    resized = slim.run(lambda x: slim._aspect_preserving_resize(x, 300), image)
    assert resized.shape == (506, 300, 3)
    placements = []
    for s in range(12):
        out = train("vgg", image, 224, 192, seed=seed(s), resize_side_min=300,
                    resize_side_max=300).numpy()
        assert out.shape == (224, 192, 3)
        found = _find_window(resized, out + MEANS)
        assert found, f"seed {s}: output is not a window of the resized image"
        placements.append(found[0])
    rows, cols, flips = zip(*placements)
    assert len(set(rows)) > 6 and len(set(cols)) > 4 and set(flips) == {False, True}
    assert max(rows) <= 506 - 224 and max(cols) <= 300 - 192


def test_vgg_train_scale_range():
    image = photos()["odd"]
    for s in range(6):
        pixels = train("vgg", image, 224, 224, seed=seed(s)).numpy() + MEANS
        assert pixels.min() >= -1e-3 and pixels.max() <= 255 + 1e-3
    # The smaller side is drawn from [256, 512]: with min = max the draw is pinned.
    side = vgg_preprocessing.smallest_size_at_least(301, 257, 400)
    assert [int(v) for v in side] == [int(np.rint(301 * 400 / 257)), 400]


@pytest.mark.parametrize("fast_mode", [True, False])
def test_inception_train_range_and_size(fast_mode):
    image = photos()["china"]
    for s in range(8):
        out = train("inception", image, 299, 299, seed=seed(s), fast_mode=fast_mode).numpy()
        assert out.shape == (299, 299, 3)
        assert out.min() >= -1.0 and out.max() <= 1.0
    assert np.ptp(out) > 0.5                          # not collapsed to a constant


def test_inception_train_without_crop_or_colour_change_on_grey():
    # A uniform grey image stays uniform through crop, resize, flip and colour distortion
    # (saturation and hue do nothing to grey; brightness/contrast act uniformly).
    grey = np.full((120, 90, 3), 77, np.uint8)
    for fast_mode in (True, False):
        out = train("inception", grey, 64, 64, seed=seed(1), fast_mode=fast_mode).numpy()
        assert np.ptp(out) < 1e-5 and abs(out[0, 0, 0]) <= 1.0
    # No crop: the brightness delta is in [-32/255, 32/255), so the level moves at most that.
    out = train("inception", grey, 64, 64, seed=seed(2), crop_image=False).numpy()
    level = (out[0, 0, 0] / 2 + 0.5) * 255
    assert abs(level - 77) <= 32 + 1e-3


def test_cifarnet_train_is_standardized():
    image = photos()["small"]
    for s in range(4):
        out = train("cifarnet", image, 32, 32, seed=seed(s)).numpy()
        assert out.shape == (32, 32, 3)
        np.testing.assert_allclose(out.mean(), 0.0, atol=1e-4)
        np.testing.assert_allclose(out.std(), 1.0, atol=1e-3)


def test_lenet_train_equals_eval():
    image = photos()["odd"]
    np.testing.assert_array_equal(train("lenet", image, 28, 28, seed=seed(1)).numpy(),
                                  preprocessing.get_preprocessing("lenet", False)(image, 28,
                                                                                  28).numpy())
