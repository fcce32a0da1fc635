"""Evaluation: every example exactly once across replicas, metrics, embeddings, plots.

Modules (import what you need; this package imports none of them, so that the trainer's use of
`metrics` and `predict` does not pull in matplotlib or the evaluator):

* `predict.collect_outputs` – logits/embeddings/labels/losses of every real example, once.
* `metrics.classification_metrics` – accuracy, top-k, per-class accuracy, confusion, loss.
* `knn` – batched no-loop k-NN of embeddings against a gallery.
* `embedding_stats` – intra-/inter-class distances relative to the class centers.
* `plots` – PNGs: embedding scatter with centers (PCA beyond 2-D), confusion matrix.
* `evaluator` – `evaluate(EvalConfig(model_dir=...))`: what eval.py runs.
"""
