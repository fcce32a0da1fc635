"""A run's evaluation preprocessing as a Keras layer: raw pixels in, the net's input out.

`model.keras` starts with it, so a Keras user feeds images as the dataset stores them (0..255;
0..16 for digits) and the model applies what eval.py applied (`transforms.serving_transform`):

* the dataset's normalisation, `(pixels / pixel_max - mean) / std`, on images [N, H, W, C] at
  the dataset's own size, resized first when the run resized them;
* a per-net preprocessing ('vgg', 'inception', ...) on images of any size [N, h, w, C] (one
  size per call), each preprocessed as in evaluation (vgg: smaller side to 256, central crop).

    layer = EvalPreprocessing.from_info(info, image_shape=(224, 224, 3), preprocessing="vgg")
    images = layer(pixels)                     # float32 [N, 224, 224, 3]
"""
import keras
import tensorflow as tf

from tfmodels.data.pipelines import transforms
from tfmodels.data.sources.specs import DatasetInfo


@keras.saving.register_keras_serializable(package="tfmodels")
class EvalPreprocessing(keras.layers.Layer):
    """Raw pixels -> the net's input, as in evaluation; no weights.

    Args:
      pixel_shape: (H, W, C) of the dataset's images (None for a side that varies).
      image_shape: (height, width, channels) the net takes.
      pixel_max, mean, std: the dataset's scale and normalisation (`DatasetInfo`).
      preprocessing: the run's per-net preprocessing name, or None for the normalisation.
      dataset: the dataset's name (kept in the config, named in errors).
    """

    def __init__(self, pixel_shape, image_shape, *, pixel_max=255.0, mean=(0.0,), std=(1.0,),
                 preprocessing=None, dataset="dataset", **kwargs):
        # Pixels and the transform are float32 whatever the mixed-precision policy.
        kwargs["dtype"] = "float32"
        kwargs["autocast"] = False
        super().__init__(**kwargs)
        self.pixel_shape = tuple(None if d is None else int(d) for d in pixel_shape)
        self.image_shape = tuple(int(d) for d in image_shape)
        self.pixel_max = float(pixel_max)
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        self.preprocessing = preprocessing
        self.dataset = dataset
        info = DatasetInfo(name=dataset, image_shape=self.pixel_shape, num_classes=1, splits={},
                           pixel_max=self.pixel_max, mean=self.mean, std=self.std)
        self.signature, self._transform = transforms.serving_transform(
            info, self.image_shape, preprocessing)

    @classmethod
    def from_info(cls, info, image_shape, preprocessing=None, **kwargs):
        """The layer for a run on dataset `info` whose net takes `image_shape`."""
        return cls(info.image_shape, image_shape, pixel_max=info.pixel_max, mean=info.mean,
                   std=info.std, preprocessing=preprocessing, dataset=info.name, **kwargs)

    def call(self, pixels):
        return self._transform(tf.cast(pixels, tf.float32))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *self.image_shape)

    def get_config(self):
        config = super().get_config()
        config.update(pixel_shape=list(self.pixel_shape), image_shape=list(self.image_shape),
                      pixel_max=self.pixel_max, mean=list(self.mean), std=list(self.std),
                      preprocessing=self.preprocessing, dataset=self.dataset)
        return config
