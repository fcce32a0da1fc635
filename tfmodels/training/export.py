"""Exports: a SavedModel and `model.keras` that take raw pixels and return probabilities, and
the bare net as `net.keras`.

The SavedModel's serving signature and `model.keras` take raw pixels (0..255; 0..16 for
digits) as float32 and apply the run's evaluation transform (`data.pipelines.serving.EvalPreprocessing`)
before the net, so they predict what eval.py measures:

* the dataset's normalisation (the default on fixed-size datasets): images [N, H, W, C] at the
  dataset's own size, resized first when the run resized them (`--image_size`);
* a per-net preprocessing ('vgg', 'inception', ...; the default on datasets of varying image
  size): images of any size [N, h, w, C] (one size per call; e.g. whole photos), each
  preprocessed as in evaluation (vgg: smaller side to 256, central crop, minus the means).

The signature returns {'probabilities': [N, K], 'classes': [N] int64, 'embedding': [N, D]};
`model.keras` (loaded after `import tfmodels`, which registers its classes) returns the
probabilities [N, K]. `net.keras` is the trained net itself, for fine-tuning: preprocessed
images in, {'logits': [N, K], 'embedding': [N, D]} out.

All three are written under temporary names in the model_dir and renamed into place
(`model_dir.files`): a crash leaves the previous export whole, and a symbolic link at
an export's name is replaced, never written through.
"""
import shutil
import tempfile

import keras
import tensorflow as tf

from tfmodels.data.pipelines.serving import EvalPreprocessing
from tfmodels.layers import Softmax, softmax
from tfmodels.model_dir import ModelDir, files


class _Serving(tf.Module):
    def __init__(self, model, preprocess):
        super().__init__(name="serving")
        self.model = model
        self._transform = preprocess
        self.serve = tf.function(self._serve, input_signature=[preprocess.signature],
                                 autograph=False)

    def _serve(self, pixels):
        outputs = self.model(self._transform(pixels), training=False)
        probabilities = softmax(tf.cast(outputs["logits"], tf.float32))
        return {"probabilities": probabilities,
                "classes": tf.argmax(probabilities, axis=-1),
                "embedding": tf.cast(outputs["embedding"], tf.float32)}


def classifier(model, preprocess):
    """`model` behind `preprocess`: raw pixels -> class probabilities [N, K] (float32).

    Args:
      model: a net as `nets.build_model` returns it (images -> {'logits', 'embedding'}).
      preprocess: the `EvalPreprocessing` of its run.
    """
    pixels = keras.Input(preprocess.signature.shape[1:], dtype="float32", name="pixels")
    logits = model(preprocess(pixels))["logits"]
    probabilities = Softmax(name="probabilities")(logits)
    return keras.Model(pixels, probabilities, name=f"{model.name}_classifier")


def export(model, info, export_dir, *, is_chief=True, image_shape=None, preprocessing=None):
    """Write `<export_dir>/saved_model/`, `<export_dir>/model.keras` and `net.keras`.

    Under MultiWorkerMirroredStrategy every worker must save (saving takes part in
    collectives); non-chief workers write to a temporary directory that is then deleted.

    Args:
      model, info: the trained model and the `DatasetInfo` it was trained on.
      export_dir: where the exports go.
      is_chief: whether this worker writes them.
      image_shape: (H, W, C) the model takes (None: the dataset's fixed shape).
      preprocessing: the run's preprocessing (None: the dataset's normalisation).

    Returns:
      The paths written: {'saved_model': ..., 'keras': ..., 'net': ...} (chief) or {} (other
      workers).
    """
    target = ModelDir(export_dir if is_chief else tempfile.mkdtemp(prefix="tfmodels_export_"))
    try:
        preprocess = EvalPreprocessing.from_info(info, image_shape or info.image_shape,
                                                 preprocessing, name="preprocessing")
        serving = _Serving(model, preprocess)
        saved_model = files.replace_dir(
            target.saved_model_path,
            lambda tmp: tf.saved_model.save(serving, tmp,
                                            signatures={"serving_default": serving.serve}))
        # Keras insists on the .keras extension, also for the temporary name.
        keras_path = files.write_atomic(target.keras_path, classifier(model, preprocess).save,
                                        suffix=".keras")
        net_path = files.write_atomic(target.net_keras_path, model.save, suffix=".keras")
        return ({"saved_model": saved_model, "keras": keras_path, "net": net_path}
                if is_chief else {})
    finally:
        if not is_chief:
            shutil.rmtree(target.path, ignore_errors=True)
