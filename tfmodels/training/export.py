"""Exports: a SavedModel whose serving signature returns probabilities, and a `.keras` file.

The serving signature takes raw pixels as the dataset stores them (0..255; 0..16 for digits),
float32 [N, H, W, C], applies the dataset's normalisation, and returns
{'probabilities': [N, K], 'classes': [N] int64, 'embedding': [N, D]}.

Both are written under temporary names in the model_dir and renamed into place
(`model_dir.files`): a crash leaves the previous export whole, and a symbolic link at
`model.keras` or `saved_model` is replaced, never written through.
"""
import os
import shutil
import tempfile

import tensorflow as tf

from tfmodels.data import preprocessing
from tfmodels.layers import softmax
from tfmodels.model_dir import KERAS_FILE, SAVED_MODEL_DIR, files


class _Serving(tf.Module):
    def __init__(self, model, info):
        super().__init__(name="serving")
        self.model = model
        self._norm = dict(pixel_max=info.pixel_max, mean=info.mean, std=info.std)
        self.serve = tf.function(self._serve, input_signature=[
            tf.TensorSpec([None, *info.image_shape], tf.float32, name="pixels")])

    def _serve(self, pixels):
        outputs = self.model(preprocessing.normalize(pixels, **self._norm), training=False)
        probabilities = softmax(tf.cast(outputs["logits"], tf.float32))
        return {"probabilities": probabilities,
                "classes": tf.argmax(probabilities, axis=-1),
                "embedding": tf.cast(outputs["embedding"], tf.float32)}


def export(model, info, export_dir, *, is_chief=True):
    """Write `<export_dir>/saved_model/` and `<export_dir>/model.keras`.

    Under MultiWorkerMirroredStrategy every worker must save (saving takes part in
    collectives); non-chief workers write to a temporary directory that is then deleted.

    Returns:
      The paths written: {'saved_model': ..., 'keras': ...} (chief) or {} (other workers).
    """
    target = export_dir if is_chief else tempfile.mkdtemp(prefix="tfmodels_export_")
    try:
        serving = _Serving(model, info)
        saved_model = files.replace_dir(
            os.path.join(target, SAVED_MODEL_DIR),
            lambda tmp: tf.saved_model.save(serving, tmp,
                                            signatures={"serving_default": serving.serve}))
        # Keras insists on the .keras extension, also for the temporary name.
        keras_path = files.write_atomic(os.path.join(target, KERAS_FILE), model.save,
                                        suffix=".keras")
        return {"saved_model": saved_model, "keras": keras_path} if is_chief else {}
    finally:
        if not is_chief:
            shutil.rmtree(target, ignore_errors=True)
