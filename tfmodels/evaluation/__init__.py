"""Evaluation: every example exactly once across replicas, metrics, embeddings, plots."""
