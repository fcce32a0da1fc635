"""Scores over all classes in chunks of the class matrix against dense NumPy scores."""
import numpy as np
import pytest
import tensorflow as tf

from tfmodels import data, nets
from tfmodels.evaluation import chunked
from tfmodels.evaluation.metrics import classification_metrics, output_metrics, ranked_metrics
from tfmodels.evaluation.predict import collect_outputs


def _problem(rng, batch=9, dim=4, classes=103, integers=False):
    """Random scores; with `integers`, small integers: every sum is exact in float32 whatever
    the order, so there are many exact ties (the smaller class id must rank first)."""
    draw = ((lambda shape: rng.integers(-2, 3, shape)) if integers
            else rng.standard_normal)
    e = draw((batch, dim)).astype(np.float32)
    kernel = draw((dim, classes)).astype(np.float32)
    bias = draw(classes).astype(np.float32)
    labels = rng.integers(0, classes, batch).astype(np.int32)
    return e, kernel, bias, labels


def _np_scores(logits, labels, k, loss, eps=0.0):
    logits = logits.astype(np.float64)
    order = np.argsort(-logits, axis=1, kind="stable")[:, :k]  # stable: smaller id first
    true = logits[np.arange(len(labels)), labels]
    rank = (logits > true[:, None]).sum(1)  # the true class is never strictly above itself
    top = logits.max(1)
    lse = top + np.log(np.exp(logits - top[:, None]).sum(1))
    if loss == "cross_entropy":
        values = lse - (1 - eps) * true - eps * logits.mean(1)
    else:
        values = np.maximum(0.0, logits - true[:, None] + 1).sum(1) - 1.0
    return order, rank, values


@pytest.mark.parametrize("integers", [False, True])
@pytest.mark.parametrize("chunk_size", [1, 10, 7, 103, 1000])
@pytest.mark.parametrize("loss, eps", [("cross_entropy", 0.0), ("cross_entropy", 0.1),
                                       ("hinge", 0.0)])
def test_chunks_equal_dense_scores(rng, chunk_size, loss, eps, integers):
    e, kernel, bias, labels = _problem(rng, integers=integers)
    scores = chunked.ChunkedScores(top_k=5, chunk_size=chunk_size, loss=loss,
                                   label_smoothing=eps)
    result = tf.function(scores)(tf.constant(e), tf.Variable(kernel), tf.Variable(bias),
                                 tf.constant(labels))
    logits = e.astype(np.float64) @ kernel + bias
    order, rank, values = _np_scores(logits, labels, 5, loss, eps)
    np.testing.assert_array_equal(result["top_ids"].numpy(), order)
    np.testing.assert_allclose(result["top_scores"].numpy(),
                               np.take_along_axis(logits, order, 1), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(result["rank"].numpy(), rank)
    np.testing.assert_allclose(result["loss"].numpy(), values, rtol=1e-5, atol=1e-4)
    dense = scores.from_logits(tf.constant(logits, tf.float32), tf.constant(labels))
    np.testing.assert_array_equal(dense["top_ids"].numpy(), order)
    np.testing.assert_array_equal(dense["rank"].numpy(), rank)
    np.testing.assert_allclose(dense["loss"].numpy(), values, rtol=1e-5, atol=1e-4)


def test_ranked_metrics_are_classification_metrics(rng):
    logits = rng.standard_normal((200, 30))
    labels = rng.integers(0, 30, 200)
    losses = rng.random(200)
    order, rank, _ = _np_scores(logits, labels, 5, "cross_entropy")
    dense = classification_metrics(labels, logits, losses, top_k=(1, 5, 30))
    ranked = ranked_metrics(labels, order, rank, losses, top_k=(1, 5, 30), num_classes=30)
    assert set(ranked) == {"accuracy", "top_1_accuracy", "top_5_accuracy", "count", "loss"}
    for key, value in ranked.items():
        assert value == pytest.approx(dense[key], abs=1e-12), key


@pytest.mark.parametrize("error, kwargs", [
    ("top_k=0", dict(top_k=0)), ("chunk_size=2.5", dict(chunk_size=2.5)),
    ("loss='mse'", dict(loss="mse")), ("label_smoothing=2", dict(label_smoothing=2))])
def test_bad_arguments(error, kwargs):
    with pytest.raises(ValueError, match=error):
        chunked.ChunkedScores(**kwargs)


def test_memory_is_batch_times_chunk():
    """The traced scoring holds no [B, C] tensor: only the class matrix's own [D, C] / [C]."""
    batch, dim, classes, chunk = 16, 8, 5003, 64
    scores = chunked.ChunkedScores(top_k=5, chunk_size=chunk)
    kernel, bias = tf.Variable(tf.zeros([dim, classes])), tf.Variable(tf.zeros([classes]))
    graph = tf.function(scores).get_concrete_function(
        tf.TensorSpec([batch, dim]), kernel, bias, tf.TensorSpec([batch], tf.int32)).graph

    def shapes(g):
        found = [t.shape for op in g.get_operations() for t in op.outputs]
        for function in g._functions.values():
            found += shapes(function.graph)
        return found

    found = [s for s in shapes(graph) if s.rank]
    with_classes = {tuple(s.as_list()) for s in found if classes in s.as_list()}
    assert with_classes <= {(dim, classes), (classes,)}, with_classes
    largest = max(np.prod([d for d in s.as_list() if d is not None]) for s in found
                  if classes not in s.as_list())
    assert largest <= max(batch * (chunk + 5), dim * batch)


@pytest.mark.parametrize("model_name", ["two_layer_net", "lenet"])
def test_collect_outputs_in_chunks_matches_dense(model_name):
    """Through the evaluation pipeline: a net with a class matrix (chunks of it) and LeNet
    (dropout before fc4: each batch's full logits) give the dense metrics."""
    info = data.DatasetInfo(name="patterns:8x8x1:40:64:37", image_shape=(8, 8, 1),
                            num_classes=40, splits={"train": 64, "test": 37, "novel": 400},
                            source="patterns", pixel_max=255.0, mean=(0.5,), std=(0.5,),
                            crop_padding=0, flip=False)
    strategy = tf.distribute.get_strategy()
    model = nets.build_model(model_name, 40, (8, 8, 1))
    eval_data = data.distribute_dataset(strategy, info, "test", global_batch_size=8,
                                        training=False)
    loss_fn = lambda y, z: tf.nn.sparse_softmax_cross_entropy_with_logits(  # noqa: E731
        tf.cast(y, tf.int32), z)
    dense = collect_outputs(strategy, model, eval_data, loss_fn=loss_fn)
    streamed = collect_outputs(strategy, model, eval_data,
                               scores=chunked.ChunkedScores(top_k=3, chunk_size=6))
    assert "logits" not in streamed and len(streamed["label"]) == 37
    np.testing.assert_allclose(streamed["embedding"], dense["embedding"], rtol=1e-6, atol=1e-6)
    expected = output_metrics(dense, top_k=(1, 3), num_classes=40)
    got = output_metrics(streamed, top_k=(1, 3), num_classes=40)
    for key in ("accuracy", "top_1_accuracy", "top_3_accuracy", "count"):
        assert got[key] == pytest.approx(expected[key], abs=1e-12), key
    assert got["loss"] == pytest.approx(expected["loss"], rel=1e-5)


def test_needs_chunks():
    assert not chunked.needs_chunks(chunked.MAX_DENSE_CLASSES)
    assert chunked.needs_chunks(chunked.MAX_DENSE_CLASSES + 1)
