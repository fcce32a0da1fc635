"""Benchmark: tfmodels.layers.MultiHeadAttention vs keras.layers.MultiHeadAttention, fwd+bwd.

    python bench/attention.py                    # [64 x 128 tokens, 256 wide, 8 heads]
    python bench/attention.py --batch 32 --tokens 256 --repeats 11

Self-attention on the same input with the same weights (Keras's copied into ours), forward and
backward (gradients of the input and of the eight weights for a fixed upstream gradient), one
tf.function per layer, calls interleaved and the median kept. Cases: no mask, a key padding mask
[B, T, S] (each example keeps its first 50-100% of the tokens), the causal mask
(`use_causal_mask=True`).

A second table times the masked softmax alone on the scores [B, heads, T, S]: ours (the fused
kernel between two `where`s), its general path (reductions and a closed-form gradient, which
masked softmaxes took before), and Keras's recipe (a large negative number for masked logits,
then tf.nn.softmax; fully masked rows come out uniform there).
"""
import argparse
import os
import sys

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from numerics import softmax_fwd_bwd  # noqa: E402
from timing import print_table, time_calls  # noqa: E402
from tfmodels.layers import MultiHeadAttention, softmax  # noqa: E402
from tfmodels.layers.softmax import _general  # noqa: E402


def fwd_bwd(layer, x, upstream, **kwargs):
    """A tf.function computing the layer's output and its gradients."""
    @tf.function
    def step():
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, x, **kwargs)
        return tape.gradient(y, [x] + layer.trainable_variables, output_gradients=upstream)
    return step


def bench_attention(batch, tokens, width, heads, repeats):
    rng = np.random.default_rng(0)
    x = tf.constant(rng.standard_normal((batch, tokens, width)).astype(np.float32))
    upstream = tf.constant(rng.standard_normal((batch, tokens, width)).astype(np.float32))
    padding = np.broadcast_to(_masks(rng, batch, tokens)["padding mask"][:, 0],
                              (batch, tokens, tokens))
    theirs = keras.layers.MultiHeadAttention(heads, width // heads)
    ours = MultiHeadAttention(heads, width // heads)
    theirs.build(x.shape, x.shape)
    ours.build(x.shape, x.shape)
    ours.set_weights(theirs.get_weights())
    rows = []
    for case, kwargs in (("no mask", {}), ("padding mask", {"attention_mask": padding}),
                         ("causal mask", {"use_causal_mask": True})):
        times = time_calls({"keras": fwd_bwd(theirs, x, upstream, **kwargs),
                            "ours": fwd_bwd(ours, x, upstream, **kwargs)},
                           repeats=repeats, number=2)
        rows.append({"case": case, "keras ms": 1e3 * times["keras"],
                     "ours ms": 1e3 * times["ours"],
                     "ours / keras": times["ours"] / times["keras"]})
    print_table(f"Multi-head self-attention fwd+bwd, [{batch} x {tokens} tokens, {width} wide, "
                f"{heads} heads], float32 CPU: ours / keras.layers.MultiHeadAttention", rows,
                ["case", "keras ms", "ours ms", "ours / keras"])
    return rows


def _masks(rng, batch, tokens):
    lengths = rng.integers(tokens // 2, tokens + 1, batch)
    padding = np.arange(tokens)[None, None, None, :] < lengths[:, None, None, None]
    causal = np.tril(np.ones((tokens, tokens), bool))[None, None]
    return {"padding mask": padding, "causal mask": causal}


def bench_masked_softmax(batch, tokens, heads, repeats):
    rng = np.random.default_rng(0)
    shape = (batch, heads, tokens, tokens)
    scores = tf.constant(rng.standard_normal(shape).astype(np.float32))
    upstream = tf.constant(rng.standard_normal(shape).astype(np.float32))
    rows = []
    for case, mask in _masks(rng, batch, tokens).items():
        mask = tf.constant(mask)
        full = tf.broadcast_to(mask, shape)
        large_negative = tf.constant(-0.7 * np.finfo(np.float32).max, tf.float32)

        def keras_recipe(t, mask=mask):
            return tf.nn.softmax(tf.where(mask, t, large_negative), axis=-1)

        candidates = {
            "keras recipe": keras_recipe,
            "ours": lambda t, mask=mask: softmax(t, axis=-1, mask=mask),
            "general path": lambda t, full=full: _general(t, (3,), full, log=False),
        }
        times = time_calls({name: softmax_fwd_bwd(fn, scores, upstream)
                            for name, fn in candidates.items()}, repeats=repeats, number=2)
        rows.append({"case": case, **{f"{k} ms": 1e3 * v for k, v in times.items()},
                     "ours / keras recipe": times["ours"] / times["keras recipe"],
                     "ours / general path": times["ours"] / times["general path"]})
    print_table(f"Masked softmax fwd+bwd over the keys of [{batch}, {heads}, {tokens}, {tokens}] "
                "scores, float32 CPU", rows, list(rows[0]))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    bench_attention(args.batch, args.tokens, args.width, args.heads, args.repeats)
    bench_masked_softmax(args.batch, args.tokens, args.heads, args.repeats)


if __name__ == "__main__":
    main()
