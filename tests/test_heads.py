"""Sampled heads: proposals and -log Q against TensorFlow's candidate samplers, sampled softmax
against NumPy, a whole step against dense autodiff, Partial FC's class sets, which nets have a
class matrix, and the step's graph (no [B, C] tensor, no dense [D, C] gradient)."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from tfmodels import data, nets
from tfmodels.nets.class_matrix import class_matrix
from tfmodels.options import UsageError
from tfmodels.training import TrainConfig, sampling
from tfmodels.training.parts import build_training
from tfmodels.training.step import TrainStep


# --- proposals ------------------------------------------------------------------------------

@pytest.mark.parametrize("sampler, tf_sampler", [
    ("log_uniform", tf.random.log_uniform_candidate_sampler),
    ("uniform", tf.random.uniform_candidate_sampler)])
def test_log_expected_count_is_tensorflows(sampler, tf_sampler):
    """log(K Q(c)) equals the expected counts of TF's own samplers with unique=False."""
    num_classes, num_sampled = 1_000_000, 4096
    true = tf.constant([[0], [1], [17], [999_999], [123_456]], tf.int64)
    sampled, true_count, sampled_count = tf_sampler(true, 1, num_sampled, unique=False,
                                                    range_max=num_classes, seed=3)
    ours_true = sampling.log_expected_count(sampler, true[:, 0], num_sampled, num_classes)
    ours_sampled = sampling.log_expected_count(sampler, sampled, num_sampled, num_classes)
    np.testing.assert_allclose(ours_true.numpy(), np.log(true_count.numpy()[:, 0]), rtol=1e-5,
                               atol=1e-5)
    np.testing.assert_allclose(ours_sampled.numpy(), np.log(sampled_count.numpy()), rtol=1e-5,
                               atol=1e-5)


@pytest.mark.parametrize("sampler", sampling.SAMPLERS)
def test_draws_follow_the_proposal(sampler):
    num_classes, draws = 20, 200_000
    ids = sampling.sample_classes(sampler, draws, num_classes, tf.constant([1, 2], tf.int64))
    counts = np.bincount(ids.numpy(), minlength=num_classes)
    expected = np.exp(sampling.log_expected_count(sampler, tf.range(num_classes), draws,
                                                  num_classes).numpy())
    assert counts.sum() == draws and ids.numpy().min() >= 0
    np.testing.assert_allclose(expected.sum(), draws, rtol=1e-5)
    # Each count is binomial: within 5 standard deviations of its expectation.
    assert np.all(np.abs(counts - expected) < 5 * np.sqrt(expected) + 1)


def test_draws_are_a_function_of_seed_and_step():
    draw = lambda seed, step: sampling.sample_classes(  # noqa: E731
        "log_uniform", 50, 1000, sampling.step_seed(seed, tf.constant(step, tf.int64))).numpy()
    np.testing.assert_array_equal(draw(0, 5), draw(0, 5))
    assert not np.array_equal(draw(0, 5), draw(0, 6))
    assert not np.array_equal(draw(0, 5), draw(1, 5))


# --- Partial FC's class set --------------------------------------------------------------------

def test_partial_fc_classes():
    labels = np.array([7, 3, 7, 9, 3, 0], np.int32)
    classes, positions = sampling.partial_fc_classes(tf.constant(labels), 30, 12,
                                                     tf.constant([4, 5], tf.int64))
    classes, positions = classes.numpy(), positions.numpy()
    assert {7, 3, 9, 0} <= set(classes) and np.all(np.diff(classes) > 0)  # ascending
    np.testing.assert_array_equal(classes[positions], labels)
    assert len(set(classes)) == 12 and classes.min() >= 0 and classes.max() < 30
    # Negatives are uniform over the other 26 classes: each is picked 8/26 of the time.
    picks = np.zeros(30)
    for step in range(400):
        chosen, _ = sampling.partial_fc_classes(tf.constant(labels), 30, 12,
                                                sampling.step_seed(0, tf.constant(step)))
        picks[chosen.numpy()] += 1
    assert np.all(picks[[7, 3, 9, 0]] == 400)  # the positives, every time
    others = np.delete(picks, [7, 3, 9, 0])
    expected = 400 * 8 / 26
    assert np.all(np.abs(others - expected) < 5 * np.sqrt(expected * (1 - 8 / 26)))


@pytest.mark.parametrize("rate, classes, batch, size", [
    (0.1, 1_000_000, 256, 100_000), (1.0, 10, 4, 10), (0.01, 1000, 64, 64), (0.5, 7, 64, 7),
    (0.3, 10, 2, 3)])
def test_partial_fc_size(rate, classes, batch, size):
    assert sampling.partial_fc_size(rate, classes, batch) == size


# --- a small model with a sampled head -------------------------------------------------------

NUM_CLASSES, BATCH = 40, 8


def _parts(head, **options):
    info = data.DatasetInfo(name="test", image_shape=(2, 2, 1), num_classes=NUM_CLASSES,
                            splits={"train": 64})
    config = TrainConfig(model_dir="unused", model="two_layer_net", global_batch_size=BATCH,
                         train_steps=10, lr_schedule="constant", head=head,
                         **dict(dict(label_smoothing=0.0), **options))
    config.validate()
    keras.utils.set_random_seed(1)
    resolved = config.resolve(info, 1)
    return resolved, build_training(resolved, tf.distribute.get_strategy())


def _batch(seed=0):
    rng = np.random.default_rng(seed)
    images = rng.standard_normal((BATCH, 2, 2, 1)).astype(np.float32)
    labels = np.array([3, 5, 3, 0, 39, 5, 12, 3], np.int32)  # repeats on purpose
    return images, labels


def _np_log_q(sampler, classes, num_sampled):
    classes = np.asarray(classes, np.float64)
    if sampler == "uniform":
        return np.full(classes.shape, np.log(num_sampled / NUM_CLASSES))
    q = np.log((classes + 2) / (classes + 1)) / np.log(NUM_CLASSES + 1)
    return np.log(num_sampled * q)


@pytest.mark.parametrize("sampler", sampling.SAMPLERS)
def test_sampled_softmax_loss_is_the_numpy_reference(sampler):
    num_sampled = 30  # 30 draws from 40 classes: accidental hits and repeats are certain
    _, parts = _parts("sampled_softmax", num_sampled=num_sampled, sampler=sampler)
    head = parts.head
    images, labels = _batch()
    selection = head.select(tf.constant(labels), tf.constant(3, tf.int64))
    embedding, loss, metric_logits, metric_labels, _ = head.forward(
        tf.constant(images), tf.constant(labels), selection)

    e = parts.model(images)["embedding"].numpy().astype(np.float64)
    kernel = head.matrix.kernel.numpy().astype(np.float64)
    bias = head.matrix.bias.numpy().astype(np.float64)
    sampled = selection["sampled"].numpy()
    assert np.any(sampled[None, :] == labels[:, None])  # the case is exercised
    raw_true = (e * kernel[:, labels].T).sum(1) + bias[labels]
    raw_sampled = e @ kernel[:, sampled] + bias[sampled]
    hits = sampled[None, :] == labels[:, None]
    logits = np.concatenate([(raw_true - _np_log_q(sampler, labels, num_sampled))[:, None],
                             raw_sampled - _np_log_q(sampler, sampled, num_sampled)], 1)
    logits[:, 1:][hits] = -np.inf
    top = logits.max(1)
    expected = top + np.log(np.exp(logits - top[:, None]).sum(1)) - logits[:, 0]
    np.testing.assert_allclose(embedding.numpy(), e, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(loss.numpy(), expected, rtol=1e-5, atol=1e-5)
    raw = np.concatenate([raw_true[:, None], np.where(hits, -np.inf, raw_sampled)], 1)
    finite = np.isfinite(raw)
    np.testing.assert_allclose(metric_logits.numpy()[finite], raw[finite], rtol=1e-5, atol=1e-5)
    assert np.all(metric_logits.numpy()[~finite] < -1e37)
    np.testing.assert_array_equal(metric_labels.numpy(), 0)


@pytest.mark.parametrize("head, options", [
    ("sampled_softmax", dict(num_sampled=30, sampler="uniform")),
    ("sampled_softmax", dict(num_sampled=25, sampler="log_uniform", weight_decay=0.05)),
    ("partial_fc", dict(sample_rate=0.4, weight_decay=0.05, label_smoothing=0.1)),
])
def test_one_step_is_dense_autodiff_of_the_sampled_objective(head, options):
    """One SGD step through TrainStep (dedup, padding, lazy update) equals TensorFlow's own
    gradient of the same objective written with tf.gather on the dense variables."""
    lr = 0.5
    resolved, parts = _parts(head, optimizer="sgd", learning_rate=lr, **options)
    images, labels = _batch(1)
    selection = parts.head.select(tf.constant(labels), tf.constant(0, tf.int64))
    kernel, bias = parts.head.matrix.kernel, parts.head.matrix.bias
    variables = parts.train_variables
    with tf.GradientTape() as tape:
        e = parts.head.body(images, training=True)
        if head == "sampled_softmax":
            sampled = selection["sampled"]
            log_q = lambda c: sampling.log_expected_count(  # noqa: E731
                options["sampler"], c, options["num_sampled"], NUM_CLASSES)
            true = (tf.reduce_sum(e * tf.transpose(tf.gather(kernel, labels, axis=1)), 1)
                    + tf.gather(bias, labels) - log_q(labels))
            other = (e @ tf.gather(kernel, sampled, axis=1) + tf.gather(bias, sampled)
                     - log_q(sampled)[None, :])
            other = tf.where(labels[:, None] == sampled[None, :], tf.float32.min, other)
            per_example = tf.nn.sparse_softmax_cross_entropy_with_logits(
                tf.zeros(BATCH, tf.int32), tf.concat([true[:, None], other], 1))
            touched = np.unique(np.concatenate([labels, sampled.numpy()]))
        else:
            classes = selection["ids"]
            logits = e @ tf.gather(kernel, classes, axis=1) + tf.gather(bias, classes)
            per_example = parts.loss_fn(selection["label_index"], logits)
            touched = classes.numpy()
        objective = tf.reduce_mean(per_example) + tf.add_n(
            [tf.constant(0.0)] + parts.head.body.losses)
        # The logits layer's L2 (slim's wd * sum(w^2) / 2) on the distinct selected columns.
        decay = resolved.config.weight_decay
        objective += decay * tf.nn.l2_loss(tf.gather(kernel, touched, axis=1))
    grads = tape.gradient(objective, variables)
    expected = [v.numpy() - lr * tf.convert_to_tensor(g).numpy()
                for v, g in zip(variables, grads)]
    before = kernel.numpy()

    dataset = tf.data.Dataset.from_tensors({"image": images, "label": labels}).repeat()
    TrainStep(tf.distribute.get_strategy(), parts, iter(dataset), resolved).loop(
        tf.constant(1, tf.int64))
    for variable, value in zip(variables, expected):
        np.testing.assert_allclose(variable.numpy(), value, rtol=1e-5, atol=1e-6,
                                   err_msg=variable.path)
    untouched = np.setdiff1d(np.arange(NUM_CLASSES), touched)
    assert len(untouched) > 0
    np.testing.assert_array_equal(kernel.numpy()[:, untouched], before[:, untouched])
    assert int(parts.optimizer.iterations.numpy()) == 1


@pytest.mark.parametrize("head, options", [
    ("partial_fc", dict(sample_rate=0.5)),
    ("sampled_softmax", dict(num_sampled=16, sampler="uniform")),
])
def test_float16_with_loss_scaling(head, options):
    """Under mixed_float16 the head computes in float32 and the loss-scaled step applies (or
    skips, on overflow) the column update with the rest."""
    keras.mixed_precision.set_dtype_policy("mixed_float16")  # as the trainer sets it
    try:
        resolved, parts = _parts(head, mixed_precision="float16", **options)
        assert parts.model.output["embedding"].dtype == "float16"
        images, labels = _batch(2)
        images[3] = 1e6  # inf in float16 at the first step: that step is skipped
        batches = tf.data.Dataset.from_tensors({"image": images, "label": labels}).concatenate(
            tf.data.Dataset.from_tensors({"image": _batch(3)[0], "label": labels}).repeat())
        kernel = parts.head.matrix.kernel.numpy()
        step = TrainStep(tf.distribute.get_strategy(), parts, iter(batches), resolved)
        step.loop(tf.constant(1, tf.int64))
        np.testing.assert_array_equal(parts.head.matrix.kernel.numpy(), kernel)  # skipped
        assert float(parts.loss_scale.scale.numpy()) == 2.0 ** 14
        step.loop(tf.constant(3, tf.int64))
        assert int(parts.optimizer.iterations.numpy()) == 3
        moved = parts.head.matrix.kernel.numpy() - kernel
        assert np.all(np.isfinite(moved)) and np.abs(moved).max() > 0
    finally:
        keras.mixed_precision.set_dtype_policy("float32")


def test_trainable_scopes_must_keep_the_class_matrix():
    with pytest.raises(ValueError, match="--head=partial_fc trains the class matrix "
                                         "TwoLayerNet/logits, which --trainable_scopes"):
        _parts("partial_fc", trainable_scopes=("TwoLayerNet/fc1",))


# --- which nets have a class matrix ------------------------------------------------------------

# Zoo nets that are another one's code with more units or other depths: built only with -m slow.
_SAME_CODE = {"resnet_v1_152", "resnet_v1_200", "resnet_v2_101", "resnet_v2_152",
              "resnet_v2_200", "mobilenet_v1_075", "mobilenet_v1_050", "mobilenet_v1_025",
              "mobilenet_v2_140"}


@pytest.mark.parametrize("name", [pytest.param(name, marks=pytest.mark.slow)
                                  if name in _SAME_CODE else name for name in sorted(nets.NETS)])
def test_class_matrix_of_every_net(name):
    spec = nets.get_net(name)
    low, high = spec.image_size_limits()
    size = max(low, 32) if high is None else min(max(low, 32), high)
    channels = 1 if name == "lenet_pp" else 3
    model = nets.build_model(name, 11, (size, size, channels))
    # 1x1-conv logits (slim's zoo) or dropout before them: not a class matrix.
    refused = name == "lenet" or name.startswith(
        ("vgg", "resnet_v", "mobilenet", "alexnet", "overfeat", "inception"))
    if refused:
        with pytest.raises(ValueError, match=f"--head=partial_fc.*{model.name}"):
            class_matrix(model, purpose="--head=partial_fc")
        return
    matrix = class_matrix(model)
    assert matrix.kernel.path.endswith("logits/kernel") and matrix.num_classes == 11
    assert matrix.embedding_model.output is model.output["embedding"]
    images = np.random.default_rng(0).standard_normal((2, size, size, channels)).astype(
        np.float32)
    outputs = model(images)
    logits = matrix.embedding_model(images) @ matrix.kernel + matrix.bias
    np.testing.assert_allclose(logits.numpy(), outputs["logits"].numpy(), rtol=1e-4, atol=1e-4)


def test_refused_net_is_a_config_error_naming_the_head(tmp_path):
    from tfmodels import training

    config = TrainConfig(model_dir=str(tmp_path / "run"), model="lenet", dataset="digits",
                         train_steps=1, head="partial_fc", export=False)
    with pytest.raises(UsageError, match="--head=partial_fc.*LeNet.*dropout"):
        training.train(config)
    assert not (tmp_path / "run" / "config.json").exists()


@pytest.mark.parametrize("options, match", [
    (dict(head="sampled"), "--head=sampled is not one of: softmax, sampled_softmax"),
    (dict(sampler="zipf"), "--sampler=zipf is not one of: log_uniform, uniform"),
    (dict(num_sampled=0), "--num_sampled=0 must be an int >= 1"),
    (dict(sample_rate=0.0), "--sample_rate=0 must be > 0 and <= 1"),
    (dict(sample_rate=1.5), "--sample_rate=1.5 must be > 0 and <= 1"),
    (dict(head="sampled_softmax", label_smoothing=0.1), "label_smoothing=0.1 .*sampled_softmax"),
    (dict(head="sampled_softmax", loss="hinge", label_smoothing=0.0), "--loss=hinge: --head=sampled_softmax is a cross-entropy"),
    (dict(head="partial_fc", ema_decay=0.9), "ema_decay=0.9 .*partial_fc"),
])
def test_bad_head_options(options, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**options).validate()


def test_num_sampled_below_the_classes():
    info = data.DatasetInfo(name="ten", image_shape=(8, 8, 1), num_classes=10,
                            splits={"train": 100})
    config = TrainConfig(head="sampled_softmax", num_sampled=10, label_smoothing=0.0)
    with pytest.raises(ValueError, match="num_sampled=10 must be < the 10 classes of 'ten'"):
        config.resolve(info, 1)
    config = TrainConfig(head="sampled_softmax", num_sampled=9, label_smoothing=0.0)
    assert config.resolve(info, 1).config.num_sampled == 9


# --- the step's graph --------------------------------------------------------------------------

GRAPH_CLASSES, GRAPH_BATCH = 5003, 16  # a prime no other dimension equals
# Inside the XLA programs of layers.variable_slices and lazy_update the class matrix is read and
# rewritten in place: these ops carry its full shape without computing anything per class.
IN_PLACE = {"ReadVariableOp", "EnsureShape", "TensorScatterUpdate", "TensorScatterAdd"}


def _class_sized(graph, xla=False, seen=None):
    """[(function, under XLA, op type, shape, op name)] of every tensor with a dimension of
    GRAPH_CLASSES in `graph` and in the functions it calls (loops, replicas, XLA programs)."""
    seen = set() if seen is None else seen
    found = [(graph.name, xla, op.type, t.shape.as_list(), op.name)
             for op in graph.get_operations() for t in op.outputs
             if t.shape.rank and GRAPH_CLASSES in t.shape.as_list()]
    for name, function in graph._functions.items():
        if name not in seen:
            seen.add(name)
            compiled = xla or function.definition.attr["_XlaMustCompile"].b
            found += _class_sized(function.graph, compiled, seen)
    return found


@pytest.mark.parametrize("head", ["softmax", "sampled_softmax", "partial_fc"])
def test_step_graph_has_no_dense_class_tensor(head):
    """A sampled step holds no [B, C] logits and no [D, C] (or [C]) gradient: outside the
    in-place XLA updates nothing has C entries, except Partial FC's O(C) scalar draw."""
    info = data.DatasetInfo(name="test", image_shape=(2, 2, 1), num_classes=GRAPH_CLASSES,
                            splits={"train": 64})
    config = TrainConfig(model_dir="unused", model="two_layer_net",
                         global_batch_size=GRAPH_BATCH, train_steps=2, label_smoothing=0.0,
                         head=head, num_sampled=64, sample_rate=0.01, optimizer="adam",
                         center_loss_weight=0.1)
    resolved = config.resolve(info, 1)
    parts = build_training(resolved, tf.distribute.get_strategy())
    rng = np.random.default_rng(0)
    batch = {"image": rng.standard_normal((GRAPH_BATCH, 2, 2, 1)).astype(np.float32),
             "label": rng.integers(0, GRAPH_CLASSES, GRAPH_BATCH).astype(np.int32)}
    step = TrainStep(tf.distribute.get_strategy(), parts,
                     iter(tf.data.Dataset.from_tensors(batch).repeat()), resolved)
    graph = step.loop.get_concrete_function(tf.constant(1, tf.int64)).graph
    found = _class_sized(graph)
    outside = [f for f in found if not (f[1] and f[2] in IN_PLACE)]
    if head == "softmax":  # the control: the dense head has both, so the check can fail
        shapes = [f[3] for f in outside]
        assert [GRAPH_BATCH, GRAPH_CLASSES] in shapes and [100, GRAPH_CLASSES] in shapes
        return
    assert found, "the class matrix should be read and written (in place)"
    if head == "partial_fc":  # its draw: one uniform score per class, top-k
        outside = [f for f in outside if not (len(f[3]) == 1 and "partial_fc_draw" in f[4])]
    assert not outside, outside
    step.loop(tf.constant(2, tf.int64))  # and it runs
    assert int(parts.optimizer.iterations.numpy()) == 2
