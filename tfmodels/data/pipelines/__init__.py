"""tf.data pipelines that feed each replica its rows of every global batch.

- `layout`: which rows of which global step a pipeline element holds.
- `transforms`: how a pipeline turns raw pixels into a net's input (dataset normalisation and
  augmentation, or a net's preprocessing per example).
- `in_memory`, `streaming`, `variable_size`: the pipelines over arrays, over tfds records, and
  per example for images of varying size; `decoding`: image decoding and undecodable images.
- `resumable`: iterators whose position is saved in checkpoints.
"""
