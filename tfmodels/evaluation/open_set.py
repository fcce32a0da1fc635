"""Open-set evaluation of a restored model: verification pairs scored by the cosine of their
embeddings (drawn from held-out classes, or from a pairs file over an image folder or tfds's `lfw`, optionally
with flip fusion), and the cosine classifier of a margin-trained net."""
import numpy as np
import tensorflow as tf

from tfmodels import data
from tfmodels.evaluation import pairs_file, pairs_tfds, verification
from tfmodels.evaluation.predict import collect_outputs
from tfmodels.nets.class_matrix import class_matrix


def cosine_accuracy(model, outputs):
    """Top-1 accuracy of argmax_c cos(embedding, class vector c) (the logits layer's kernel)."""
    kernel = np.asarray(class_matrix(model, purpose="cosine accuracy").kernel.numpy(),
                        np.float64)
    embedding = np.asarray(outputs["embedding"], np.float64)
    cos = (embedding / np.maximum(np.linalg.norm(embedding, axis=1, keepdims=True), 1e-12)) @ (
        kernel / np.maximum(np.linalg.norm(kernel, axis=0, keepdims=True), 1e-12))
    return float(np.mean(cos.argmax(axis=1) == outputs["label"]))


def pair_scores(plan, strategy, model, outputs):
    """(cosine scores [P], same [P]) of an `EvalPlan`'s verification pairs.

    Args:
      plan: the `EvalPlan` (pairs file and image folder, or classes to draw from; flip fusion).
      strategy, model: what evaluates.
      outputs: `collect_outputs`' arrays for `plan.split` (drawn pairs reuse its embeddings,
        unless flip fusion needs them again with the mirror images).
    """
    embed_model = FlipFused(model) if plan.flip_fusion else model
    if plan.pairs_file is not None:
        pairs, same = pairs_file.read_pairs(plan.pairs_file)
        info = data.get_dataset_info(plan.dataset, data_dir=plan.data_dir)
        source = pairs_tfds.tfds_name(plan.pairs_images)
        load = None if source is None else (
            lambda keys: pairs_tfds.read_images(source, plan.data_dir, keys))
        first, second = pairs_file.pair_embeddings(
            lambda images: embed_model(images, training=False)["embedding"], pairs,
            plan.pairs_images, plan.record.image_shape, info, plan.preprocessing,
            batch_size=plan.global_batch_size, load=load)
        return verification.cosine_scores(first, second), same
    if plan.flip_fusion:
        split_data = data.distribute_dataset(
            strategy, plan.dataset, plan.split, global_batch_size=plan.global_batch_size,
            training=False, data_dir=plan.data_dir, image_size=plan.image_size,
            preprocessing=plan.preprocessing, skip_undecodable=plan.skip_undecodable)
        outputs = collect_outputs(strategy, embed_model, split_data,
                                  description=f"{plan.split} + flipped")
    pairs = verification.draw_pairs(outputs["label"], plan.verification_classes,
                                    plan.verification_pairs, plan.verification_seed)
    scores = verification.cosine_scores(outputs["embedding"][pairs.first],
                                        outputs["embedding"][pairs.second])
    return scores, pairs.same


class FlipFused:
    """A model whose embedding is the sum of the image's and its left-right mirror's (as
    InsightFace's verification does); the logits are the image's."""

    def __init__(self, model):
        self.model = model

    def __call__(self, images, training=False):
        outputs = self.model(images, training=training)
        mirrored = self.model(tf.reverse(images, axis=[2]), training=training)
        return {"logits": outputs["logits"],
                "embedding": tf.cast(outputs["embedding"], tf.float32)
                + tf.cast(mirrored["embedding"], tf.float32)}
