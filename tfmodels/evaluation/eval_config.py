"""What to evaluate: `EvalConfig` (the user's choices) and `resolve` (the plan, all checked).

Everything that can be wrong with the input is found here, before a model is built: a missing or
empty model_dir, a config.json without the model's identity, no dataset (a ported checkpoint's
config may not name one), a dataset whose classes or image shape differ from the model's, a
split the dataset does not have, a batch not divisible by the replicas, a k larger than the
gallery, a checkpoint that does not exist, does not read, or holds inf/NaN weights.

Checkpoints are found from the model_dir's files (`model_dir.checkpoints`), never from the paths
its `checkpoint` state file names. Evaluation writes into the model_dir only by default and only
when the folder is writable: a read-only model_dir is evaluated with `output` elsewhere.
"""
import dataclasses
import math
import os
from typing import Optional, Tuple

from absl import logging

from tfmodels import data, distribute
from tfmodels import model_dir as model_dir_lib
from tfmodels.data import preprocessing as data_preprocessing
from tfmodels.data.pipeline import check_preprocessing
from tfmodels.data.sources.specs import check_split, parse_classes
from tfmodels.evaluation import pairs_file

# Without a batch size in config.json (ported checkpoints) or given: evaluation keeps no
# gradients, so a larger batch than training's is fine.
DEFAULT_GLOBAL_BATCH_SIZE = 256
VERIFICATIONS = ("none", "pairs")


class EvalConfigError(ValueError):
    """Bad input found before any evaluation (nothing was written)."""


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """Options of an evaluation (eval.py's flags; None means "from config.json").

    Attributes:
      model_dir: the training directory (config.json + checkpoints); required.
      checkpoint: a checkpoint path or a name in model_dir (`ckpt-2000`); None: the latest.
      split: the split to evaluate; None: the run's eval split.
      dataset, data_dir: override the run's dataset (needed when config.json has none).
      global_batch_size: examples per step over all replicas; None: the run's, rounded up to
        a multiple of the replicas.
      top_k: k values of top-k accuracy (k >= classes skipped).
      knn_k: k values of k-NN accuracy; () disables k-NN.
      gallery_split: k-NN gallery and class-mean split; None: the run's train split.
      use_average: evaluate the EMA weights when the run kept them.
      output: the JSON file; None: <model_dir>/eval_<split>.json (model_dir must be writable).
      plot_dir: where PNGs go; None: <model_dir>/plots when model_dir is writable, else none;
        '' disables the pictures.
      summary_dir: TensorBoard scalars; None: <model_dir>/eval (eval_<split> for another
        split) when model_dir is writable, else none; '' disables them.
      continuous: evaluate each new checkpoint until the final step (or the timeout).
      timeout: continuous mode: seconds to wait for a new checkpoint before stopping.
      strategy, num_gpus, all_reduce, virtual_devices: as train.py's strategy flags.
      preprocessing: override the run's preprocessing (None: the run's; for a record without
        one, e.g. a ported checkpoint, on a dataset of varying image size: the net's default).
      skip_undecodable: skip (and count) undecodable images instead of stopping.
    """
    model_dir: Optional[str] = None
    checkpoint: Optional[str] = None
    split: Optional[str] = None
    dataset: Optional[str] = None
    data_dir: Optional[str] = None
    global_batch_size: Optional[int] = None
    top_k: Tuple[int, ...] = (5,)
    knn_k: Tuple[int, ...] = (1, 5)
    gallery_split: Optional[str] = None
    use_average: bool = True
    output: Optional[str] = None
    plot_dir: Optional[str] = None
    summary_dir: Optional[str] = None
    continuous: bool = False
    timeout: float = 3600.0
    strategy: str = "auto"
    num_gpus: Optional[int] = None
    all_reduce: str = "auto"
    virtual_devices: int = 1
    preprocessing: Optional[str] = None
    skip_undecodable: bool = False
    # Open-set verification (docs/FACE.md): 'pairs' scores same/different pairs of images by
    # the cosine of their embeddings, from a pairs file (LFW's pairs.txt format) over an image
    # folder, or drawn from classes held out of training.
    verification: str = "none"
    pairs_file: Optional[str] = None
    pairs_images: Optional[str] = None
    verification_classes: Optional[str] = None
    verification_pairs: int = 6000
    verification_seed: int = 0
    flip_fusion: bool = False

    def validate(self):
        """Raise EvalConfigError naming the option, its value and what is allowed; no TF work."""
        if not self.model_dir:
            raise EvalConfigError("model_dir is required (the directory train.py wrote)")
        try:
            distribute.check_options(self.strategy, num_gpus=self.num_gpus,
                                     all_reduce=self.all_reduce,
                                     virtual_devices=self.virtual_devices)
        except ValueError as err:
            raise EvalConfigError(str(err)) from None
        if self.global_batch_size is not None:
            _positive_int("batch_size", self.global_batch_size)
        for name in ("top_k", "knn_k"):
            for k in getattr(self, name):
                _positive_int(name, k)
        if not self.timeout > 0:
            raise EvalConfigError(f"timeout={self.timeout} must be > 0 seconds")
        names = sorted(data_preprocessing.PREPROCESSING_FNS)
        if self.preprocessing is not None and self.preprocessing not in names:
            raise EvalConfigError(f"preprocessing={self.preprocessing!r} is not one of: "
                                  f"{', '.join(names)}")
        if not isinstance(self.skip_undecodable, bool):
            raise EvalConfigError(f"skip_undecodable={self.skip_undecodable!r} must be True or "
                                  "False")
        self._validate_verification()
        if self.continuous and self.checkpoint:
            raise EvalConfigError(f"checkpoint={self.checkpoint!r} with continuous=True: "
                                  "continuous mode evaluates each new checkpoint; give one or "
                                  "the other")


    def _validate_verification(self):
        if self.verification not in VERIFICATIONS:
            raise EvalConfigError(f"verification={self.verification!r} is not one of: "
                                  f"{', '.join(VERIFICATIONS)}")
        given = [f"{name}={getattr(self, name)!r}" for name in
                 ("pairs_file", "pairs_images", "verification_classes")
                 if getattr(self, name) is not None] + (
                     ["flip_fusion=True"] if self.flip_fusion else [])
        if self.verification == "none":
            if given:
                raise EvalConfigError(f"{', '.join(given)} apply to verification='pairs', "
                                      "which is not set")
            return
        if (self.pairs_file is None) != (self.pairs_images is None):
            raise EvalConfigError(f"pairs_file={self.pairs_file!r} and pairs_images="
                                  f"{self.pairs_images!r}: give both (a pairs.txt and the image "
                                  "folder it names) or neither (pairs drawn from held-out "
                                  "classes)")
        if self.pairs_file is not None:
            if self.verification_classes is not None:
                raise EvalConfigError(f"verification_classes={self.verification_classes!r} "
                                      "draws pairs; pairs_file gives them: use one")
            for name in ("pairs_file", "pairs_images"):
                path = getattr(self, name)
                if not (os.path.isfile(path) if name == "pairs_file" else os.path.isdir(path)):
                    raise EvalConfigError(f"{name}={path!r} is not an existing "
                                          f"{'file' if name == 'pairs_file' else 'folder'}")
        if isinstance(self.verification_pairs, bool) or not isinstance(
                self.verification_pairs, int) or self.verification_pairs < 20:
            raise EvalConfigError(f"verification_pairs={self.verification_pairs!r} must be an "
                                  "int >= 20 (10 folds of same and different pairs)")
        if isinstance(self.verification_seed, bool) or not isinstance(
                self.verification_seed, int) or not 0 <= self.verification_seed < 2**32:
            raise EvalConfigError(f"verification_seed={self.verification_seed!r} must be an "
                                  "int in [0, 2**32)")
        if self.verification_classes is not None:
            try:
                parse_classes(self.verification_classes, 1 << 30, "verification_classes")
            except ValueError as err:
                raise EvalConfigError(str(err)) from None


@dataclasses.dataclass(frozen=True)
class EvalPlan:
    """An `EvalConfig` resolved against the model_dir's record and the data, all checked.

    Attributes:
      model_dir: the training directory.
      record: its config.json (`model_dir.ModelRecord`).
      dataset, data_dir, split: what is evaluated.
      gallery_split: the k-NN gallery / class-mean split (None: not needed).
      global_batch_size: examples per step over all replicas (a multiple of them).
      top_k, knn_k, use_average: as `EvalConfig`.
      checkpoint: the checkpoint to evaluate (None in continuous mode), read in full.
      output: the results JSON; plot_dir: PNGs; summary_dir: TensorBoard scalars (None: none).
      image_size: (height, width) the pipeline yields: the model's input size.
      preprocessing: the pipeline's preprocessing (None: the dataset's normalisation).
      skip_undecodable: as `EvalConfig`.
      verification: 'none' or 'pairs'; verification_classes: the classes pairs are drawn from
        (None with a pairs file); pairs_file, pairs_images, verification_pairs,
        verification_seed, flip_fusion: as `EvalConfig`.
    """
    model_dir: str
    record: model_dir_lib.ModelRecord
    dataset: str
    data_dir: Optional[str]
    split: str
    gallery_split: Optional[str]
    global_batch_size: int
    top_k: Tuple[int, ...]
    knn_k: Tuple[int, ...]
    use_average: bool
    checkpoint: Optional[str]
    output: str
    plot_dir: Optional[str]
    summary_dir: Optional[str]
    image_size: Optional[Tuple[int, int]] = None
    preprocessing: Optional[str] = None
    skip_undecodable: bool = False
    verification: str = "none"
    verification_classes: Optional[Tuple[int, ...]] = None
    pairs_file: Optional[str] = None
    pairs_images: Optional[str] = None
    verification_pairs: int = 6000
    verification_seed: int = 0
    flip_fusion: bool = False


def resolve(config, record, num_replicas):
    """The evaluation plan: `config` over the model_dir's `record`, checked against the data.

    Args:
      config: an `EvalConfig` (validated).
      record: the `ModelRecord` that `model_dir.read_config(model_dir)` returned.
      num_replicas: replicas of the strategy that will evaluate.

    Returns:
      An `EvalPlan`.
    """
    model_dir = config.model_dir
    dataset = config.dataset or record.dataset
    if not dataset:
        raise EvalConfigError(
            f"no dataset: {model_dir_lib.CONFIG_FILE} in model_dir={model_dir!r} names none (a "
            f"ported checkpoint?); pass --dataset (one of {', '.join(data.DATASET_NAMES)})")
    same_dataset = dataset == record.dataset
    data_dir = config.data_dir or (record.data_dir if same_dataset else None)
    info = data.get_dataset_info(dataset, data_dir=data_dir)
    preprocessing = _preprocessing(config, record, info)
    # The pipeline yields the model's image shape: a per-net preprocessing brings images of any
    # size to it, and the run's own dataset is resized as the run resized it.
    resized = preprocessing is not None or same_dataset
    if (info.num_classes != record.num_classes or info.channels != record.image_shape[2]
            or (tuple(info.image_shape) != record.image_shape and not resized)):
        raise EvalConfigError(
            f"dataset={dataset!r} has {info.num_classes} classes of images "
            f"{tuple(info.image_shape)}, but the {record.model} in model_dir={model_dir!r} "
            f"takes {record.num_classes} classes of images {record.image_shape}; "
            "pass the dataset it was trained on (--dataset)")
    try:
        check_preprocessing(preprocessing, info)
    except ValueError as err:
        raise EvalConfigError(str(err)) from None
    default_split = (record.eval_split if same_dataset else None) or info.eval_split
    split = config.split or default_split
    check_split(info, split)

    needs_gallery = bool(config.knn_k) or not record.center_loss
    gallery_split = None
    if needs_gallery:
        gallery_split = (config.gallery_split
                         or (record.train_split if same_dataset else None)
                         or info.train_split)
        check_split(info, gallery_split)
        limit = info.splits[gallery_split] - int(gallery_split == split)
        for k in config.knn_k:
            if k > limit:
                raise EvalConfigError(f"knn_k={k} is larger than the {limit} examples of the "
                                      f"gallery split {gallery_split!r}")

    batch = config.global_batch_size
    if batch is None:
        batch = record.global_batch_size or DEFAULT_GLOBAL_BATCH_SIZE
        batch = math.ceil(batch / num_replicas) * num_replicas
    elif batch % num_replicas:
        raise EvalConfigError(f"batch_size={batch} is not divisible by the {num_replicas} "
                              f"replicas; use a multiple of {num_replicas}")

    layout = model_dir_lib.ModelDir(model_dir)
    writable = model_dir_lib.is_writable(model_dir)
    if config.output is None and not writable:
        raise EvalConfigError(f"model_dir={model_dir!r} is not writable: pass --output for the "
                              "results (and --summary_dir / --plot_dir for TensorBoard / PNGs)")
    output = config.output or layout.eval_json(split)
    summary_dir = _default_dir(config.summary_dir, model_dir, writable, "TensorBoard scalars",
                               layout.eval_summaries(split, default_split))
    plot_dir = _default_dir(config.plot_dir, model_dir, writable, "plots", layout.plots_dir)
    _check_targets(output, summary_dir, plot_dir)
    return EvalPlan(
        model_dir=model_dir, record=record, dataset=dataset, data_dir=data_dir, split=split,
        gallery_split=gallery_split, global_batch_size=int(batch),
        top_k=tuple(config.top_k), knn_k=tuple(config.knn_k), use_average=config.use_average,
        checkpoint=None if config.continuous else find_checkpoint(config.checkpoint, model_dir),
        output=output,
        plot_dir=plot_dir, summary_dir=summary_dir,
        image_size=tuple(record.image_shape[:2]), preprocessing=preprocessing,
        skip_undecodable=config.skip_undecodable, verification=config.verification,
        verification_classes=_verification_classes(config, record, info),
        pairs_file=config.pairs_file, pairs_images=config.pairs_images,
        verification_pairs=config.verification_pairs,
        verification_seed=config.verification_seed, flip_fusion=config.flip_fusion)


def _verification_classes(config, record, info):
    """The classes verification pairs are drawn from: the given ones, else those the run held
    out of training; None without drawn pairs."""
    if config.verification != "pairs":
        return None
    if config.pairs_file is not None:  # every image it names must be there, before any work
        try:
            pairs, _ = pairs_file.read_pairs(config.pairs_file)
            for a, i, c, j in pairs:
                pairs_file.image_path(config.pairs_images, a, i)
                pairs_file.image_path(config.pairs_images, c, j)
        except (ValueError, OSError) as err:
            raise EvalConfigError(str(err)) from None
        return None
    try:
        if config.verification_classes is not None:
            return parse_classes(config.verification_classes, info.num_classes,
                                 "verification_classes")
        if record.train_classes is not None:
            trained = parse_classes(record.train_classes, info.num_classes)
            return tuple(c for c in range(info.num_classes) if c not in trained)
    except ValueError as err:
        raise EvalConfigError(str(err)) from None
    raise EvalConfigError(
        f"verification='pairs' needs pairs of identities not trained on: the run in "
        f"model_dir={config.model_dir!r} trained on every class (train.py --train_classes "
        "holds some out); pass --verification_classes or --pairs_file/--pairs_images")


def _default_dir(given, model_dir, writable, what, path):
    """`given` ('' -> None), else `path` (in the model_dir) if the model_dir is writable, else
    None."""
    if given is not None:
        return given or None
    if not writable:
        logging.info("model_dir %s is not writable: no %s (pass a folder elsewhere)", model_dir,
                     what)
        return None
    if os.path.islink(path):
        raise EvalConfigError(f"{path!r} is a symbolic link: nothing is written through links; "
                              f"remove it or pass a folder for the {what}")
    return path


def _check_targets(output, summary_dir, plot_dir):
    """Every path the evaluation writes can be written, checked before it starts."""
    targets = [(output, "file", "--output")]
    targets += [(path, "folder", flag) for path, flag in ((summary_dir, "--summary_dir"),
                                                         (plot_dir, "--plot_dir")) if path]
    for path, kind, flag in targets:
        try:
            model_dir_lib.check_target(path, kind, flag)
        except ValueError as err:
            raise EvalConfigError(str(err)) from None


def check_checkpoint(inspection):
    """Raise EvalConfigError when a read checkpoint (`model_dir.Inspection`) cannot be
    evaluated: it does not read, or holds inf/NaN (a diverged run: its numbers mean nothing)."""
    if inspection.problem:
        raise EvalConfigError(f"checkpoint {inspection.path!r} cannot be read: "
                              f"{inspection.problem}")
    if inspection.non_finite:
        raise EvalConfigError(
            f"checkpoint {inspection.path!r} {inspection.reason()}: the weights of a diverged "
            "run are not evaluated; pass --checkpoint with an earlier one")


def _preprocessing(config, record, info):
    """The given preprocessing, else the run's; a record without one (a ported checkpoint) on
    a dataset of varying image size takes the net's default."""
    found = config.preprocessing or record.preprocessing
    if found is None and info.variable_size:
        if record.model not in data_preprocessing.NET_PREPROCESSING:
            raise EvalConfigError(
                f"dataset {info.name!r} has images of varying size, which need a per-net "
                f"preprocessing, and model {record.model!r} has no default one; pass "
                f"--preprocessing={'|'.join(sorted(data_preprocessing.PREPROCESSING_FNS))}")
        found = data_preprocessing.default_preprocessing(record.model)
    return found


def find_checkpoint(name, model_dir):
    """The checkpoint `name` (a path, or a name inside model_dir), or the newest one that
    reads; checked in full (`check_checkpoint`)."""
    checkpoints = model_dir_lib.checkpoints
    if not name:
        found, skipped = checkpoints.newest_usable(model_dir, finite=False)
        if found is None and skipped:
            raise EvalConfigError(f"model_dir={model_dir!r} holds no readable checkpoint:\n"
                                  f"{checkpoints.describe_unusable(skipped)}")
        if found is None:
            raise EvalConfigError(f"model_dir={model_dir!r} has no checkpoint yet (use "
                                  "--continuous to wait for one)")
        for bad in skipped:
            logging.warning("checkpoint %s cannot be read (%s); evaluating %s, the newest that "
                            "can", bad.path, bad.reason(), found.path)
        check_checkpoint(found)
        return found.path
    for path in (name, model_dir_lib.ModelDir(model_dir).checkpoint_path(name)):
        if os.path.exists(path + ".index"):
            check_checkpoint(checkpoints.inspect(path))
            return path
    available = [os.path.basename(p) for _, p in checkpoints.list_checkpoints(model_dir)]
    raise EvalConfigError(f"checkpoint={name!r} does not exist (as a path or in "
                          f"model_dir={model_dir!r}); available: {available or 'none'}")


def _positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise EvalConfigError(f"{name}={value!r} must be a positive int")
