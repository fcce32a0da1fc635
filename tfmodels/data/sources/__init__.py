"""Where examples come from: one `specs.Source` per dataset kind (`datasets.SOURCES` lists them).

- `specs`: `DatasetInfo`, the `Source` contract and the `PipelineSpec` a source's pipeline gets.
- `digits` (scikit-learn's bundled 8x8 digits), `tfds_source` (any TensorFlow Datasets name),
  `synthetic` (random images, for speed), `patterns` (generated, up to millions of classes).
"""
