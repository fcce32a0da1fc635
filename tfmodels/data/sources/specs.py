"""What a dataset is (`DatasetInfo`), how a pipeline over it is asked for (`PipelineSpec`), and
what a data source provides (`Source`). Every module of `tfmodels.data` speaks these types."""
import dataclasses
import math
import re
from typing import Any, Callable, Dict, Optional, Tuple

from tfmodels.options import UsageError


class DatasetUnavailableError(UsageError):
    """A tfds dataset is not prepared under the data_dir and will not be downloaded (bad input:
    the message says how to prepare it)."""


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """What the nets and the trainer need to know about a dataset (no duplicated constants).

    Attributes:
      name: the name as given (`mnist`, `tfds:svhn_cropped`, `synthetic:32x32x3:10`).
      image_shape: (H, W, C) of the images the pipeline yields.
      num_classes: labels are ints in [0, num_classes).
      splits: split name -> number of examples.
      train_split, eval_split: the splits to train and evaluate on by default.
      source: the name of the `Source` that produces its pixels ('digits', 'tfds',
        'synthetic').
      pixel_max: the raw pixel value that scales to 1.0 (255, or 16 for digits).
      mean, std: per-channel normalisation applied after scaling to [0, 1]:
        `image = (pixels / pixel_max - mean) / std`.
      crop_padding, flip: the training augmentation (`augment=True`): zero-pad by
        `crop_padding` pixels, crop back at a random offset, and flip left-right if `flip`.
      tfds_name, image_key, label_key, data_dir: where tfds data is read from.
    """
    name: str
    image_shape: Tuple[int, int, int]
    num_classes: int
    splits: Dict[str, int]
    train_split: str = "train"
    eval_split: str = "test"
    source: str = "tfds"
    pixel_max: float = 255.0
    mean: Tuple[float, ...] = (0.0,)
    std: Tuple[float, ...] = (1.0,)
    crop_padding: int = 4
    flip: bool = True
    tfds_name: Optional[str] = None
    image_key: str = "image"
    label_key: str = "label"
    data_dir: Optional[str] = None

    @property
    def variable_size(self):
        """True when the images' height or width varies (e.g. `tfds:imagenette`)."""
        return any(d is None for d in self.image_shape[:2])

    @property
    def channels(self):
        """Channels of every image (3 when a tfds feature leaves it open)."""
        return self.image_shape[-1] or 3

    def split_bytes(self, split):
        """uint8 bytes of one split's pixels, or None when image sizes vary."""
        if any(d is None for d in self.image_shape):
            return None
        return math.prod(self.image_shape) * self.splits[split]


def check_split(info, split):
    """Raises ValueError naming `split` and the valid splits when it is not in the dataset."""
    if split not in info.splits:
        raise UsageError(f"--split={split} is not a split of dataset {info.name!r}; "
                         f"valid splits: {sorted(info.splits)}")


_SHAPE_FIELD = re.compile(r"^\d+x\d+x\d+$")


def parse_generated_name(name, default, example):
    """'KIND[:HxWxC[:CLASSES[:TRAIN[:TEST]]]]' -> ((H, W, C), classes, train, test), the fields
    not given taken from `default` (the same tuple); the name of a generated dataset.

    Raises:
      ValueError: malformed; the message shows the form and `example`.
    """
    kind, *fields = name.split(":")
    shape, classes, n_train, n_test = default
    try:
        if len(fields) > 4 or (fields and not _SHAPE_FIELD.match(fields[0])):
            raise ValueError
        if fields:
            shape = tuple(int(d) for d in fields[0].split("x"))
        numbers = [int(f) for f in fields[1:]]
        classes, n_train, n_test = (numbers + [classes, n_train, n_test][len(numbers):])[:3]
    except ValueError:
        raise UsageError(f"--dataset={name} must look like "
                         f"'{kind}[:HxWxC[:CLASSES[:TRAIN[:TEST]]]]', e.g. {example!r}") from None
    return shape, classes, n_train, n_test


@dataclasses.dataclass(frozen=True)
class PipelineSpec:
    """One input pipeline's request, every field checked (`pipeline.make_dataset`'s args).

    Attributes:
      info, split: the dataset and the split to read.
      global_batch_size: examples per step over all replicas.
      training: shuffled, augmented, endless batches; else one ordered, padded, masked pass.
      seed: shuffling and augmentation (always an int here; drawn once if the caller gave None).
      deterministic: training needs the seed to make the stream a function of (seed, step).
      start_step: training only: the global step the stream starts at.
      augment: pad + random crop (+ flip) when training.
      in_memory: tfds only: force (True) or forbid (False) reading the split into memory.
      image_size: (height, width) of the images yielded when it differs from the dataset's
        fixed size, or when the dataset's size varies; None: the dataset's own size.
      preprocessing: None: the dataset's normalisation (`preprocessing.preprocess_batch`); else
        a per-net preprocessing name (`preprocessing.PREPROCESSING_FNS`), see `transforms.py`.
      skip_undecodable: decoded datasets: drop (and count) undecodable images instead of
        stopping with an error naming them.
      skip_counter: the int64 `tf.Variable` that counts skipped examples (decoded datasets).
    """
    info: DatasetInfo
    split: str
    global_batch_size: int
    training: bool
    seed: int
    deterministic: bool = False
    start_step: int = 0
    augment: bool = False
    in_memory: Optional[bool] = None
    image_size: Optional[Tuple[int, int]] = None
    preprocessing: Optional[str] = None
    skip_undecodable: bool = False
    skip_counter: Any = dataclasses.field(default=None, compare=False)
    classes: Optional[Tuple[int, ...]] = None  # keep only these labels (in-memory splits)

    @property
    def output_size(self):
        """(height, width) of the images the pipeline yields."""
        return tuple(self.image_size or self.info.image_shape[:2])

    @property
    def output_shape(self):
        """(height, width, channels) of the images the pipeline yields."""
        return (*self.output_size, self.info.channels)


@dataclasses.dataclass(frozen=True)
class Source:
    """A kind of dataset, registered once in `datasets.SOURCES`.

    Attributes:
      name: the value of `DatasetInfo.source` for its datasets.
      names: the dataset names it lists (`list_datasets()`), patterns included (`tfds:NAME`).
      accepts: `accepts(name) -> bool` for a dataset name.
      info: `info(name, data_dir) -> DatasetInfo` (reads metadata only).
      prepare: `prepare(spec)`: work shared by every pipeline of a distributed dataset, done
        once before they are built (reading a split into memory); may do nothing.
      pipeline: `pipeline(spec, layout, input_context) -> tf.data.Dataset` of per-replica
        batches as `pipeline.make_dataset` documents (`layout` from `layout.replica_layout`).
      arrays: `arrays(info, split) -> (uint8 pixels [N, H, W, C], int32 labels [N])` for
        sources whose splits can be read whole into memory; None otherwise.
    """
    name: str
    names: Tuple[str, ...]
    accepts: Callable[[str], bool]
    info: Callable
    prepare: Callable
    pipeline: Callable
    arrays: Optional[Callable] = None


def parse_classes(text, num_classes, name="train_classes"):
    """The sorted class ids of `text`: ids and inclusive ranges, comma-separated ("0-6",
    "0,2,5-7"), each in [0, num_classes); at least one, not all of them.

    Raises:
      ValueError: naming `name`, the value and what is allowed.
    """
    ids = set()
    for part in str(text).split(","):
        low, _, high = part.strip().partition("-")
        try:
            low, high = int(low), int(high or low)
        except ValueError:
            raise UsageError(f"--{name}={text} must be class ids and ranges, e.g. '0-6' or "
                             "'0,2,5-7'") from None
        if not 0 <= low <= high < num_classes:
            raise UsageError(f"--{name}={text}: {part.strip()!r} is not a range of classes "
                             f"in [0, {num_classes - 1}]")
        ids.update(range(low, high + 1))
    if len(ids) == num_classes:
        raise UsageError(f"--{name}={text} keeps all {num_classes} classes: leave it unset "
                         "to train on every class")
    return tuple(sorted(ids))
