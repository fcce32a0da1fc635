"""The one registry of data sources, and what each dataset name is.

Names accepted everywhere (`get_dataset_info`, `make_dataset`, `--dataset`):

* `digits` – scikit-learn's bundled handwritten digits (`digits.py`, no network).
* `mnist`, `fashion_mnist`, `cifar10`, `cifar100`, `tfds:NAME` – tensorflow-datasets
  (`tfds_source.py`), read into memory or streamed.
* `synthetic[:HxWxC[:CLASSES[:TRAIN[:TEST]]]]` – random data for benchmarks (`synthetic.py`).
* `patterns[:HxWxC[:CLASSES[:TRAIN[:TEST]]]]` – a learnable dataset of up to millions of
  classes, the label a fixed function of the pixels (`patterns.py`).

A new kind of data is one `Source` (see `specs.Source`) added to `SOURCES`; nothing else
dispatches on the kind.
"""
from tfmodels.data.sources import digits, patterns, synthetic, tfds_source
from tfmodels.data.sources.specs import DatasetInfo, check_split
from tfmodels.options import UsageError

SOURCES = (digits.SOURCE, tfds_source.SOURCE, synthetic.SOURCE, patterns.SOURCE)
DATASET_NAMES = tuple(name for source in SOURCES for name in source.names)


def list_datasets():
    """Returns the accepted dataset names (`tfds:NAME` and `synthetic` are patterns)."""
    return list(DATASET_NAMES)


def get_dataset_info(name, data_dir=None):
    """Describes a dataset without reading its pixels.

    Args:
      name: one of `list_datasets()`, or a `DatasetInfo` (returned as is).
      data_dir: tfds data folder (tfds's default, `~/tensorflow_datasets` or `$TFDS_DATA_DIR`,
        when None). Ignored by `digits` and `synthetic`.

    Returns:
      A `DatasetInfo`.

    Raises:
      ValueError: unknown name, malformed synthetic spec, or not an image-classification dataset.
      DatasetUnavailableError: a tfds dataset that is not prepared under `data_dir`.
    """
    if isinstance(name, DatasetInfo):
        return name
    if not isinstance(name, str):
        raise UsageError(f"--dataset={name} must be a string, one of {list_datasets()}", "dataset")
    for source in SOURCES:
        if source.accepts(name):
            return source.info(name, data_dir)
    raise UsageError(f"unknown --dataset={name}; valid names: {list_datasets()} "
                     "(e.g. tfds:svhn_cropped, synthetic:32x32x3:10)", "dataset")


def source_of(info):
    """The registered `Source` that produces `info`'s pixels."""
    for source in SOURCES:
        if source.name == info.source:
            return source
    raise ValueError(f"dataset {info.name!r} has source={info.source!r}, which is not one of "
                     f"{[s.name for s in SOURCES]}")


def load_arrays(info, split):
    """Reads one split fully into memory.

    Args:
      info: a `DatasetInfo` from `get_dataset_info` (source 'digits' or 'tfds').
      split: a key of `info.splits`.

    Returns:
      (pixels uint8 [N, H, W, C], labels int32 [N]); cached per process, do not modify.
    """
    check_split(info, split)
    source = source_of(info)
    if source.arrays is None:
        raise ValueError(f"load_arrays needs a dataset held as arrays, not source="
                         f"{info.source!r} ({info.name!r})")
    return source.arrays(info, split)
