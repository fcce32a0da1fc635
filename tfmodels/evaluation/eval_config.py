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

from tfmodels import data, distribute, options
from tfmodels import model_dir as model_dir_lib
from tfmodels.data import preprocessing as data_preprocessing
from tfmodels.data.pipelines.layout import split_batch
from tfmodels.data.pipeline import check_preprocessing
from tfmodels.data.sources.specs import check_split, parse_classes
from tfmodels.evaluation import pairs_file, pairs_tfds
from tfmodels.options import UsageError, option

# Without a batch size in config.json (ported checkpoints) or given: evaluation keeps no
# gradients, so a larger batch than training's is fine.
DEFAULT_GLOBAL_BATCH_SIZE = 256
VERIFICATIONS = ("none", "pairs")
_PREPROCESSING = sorted(data_preprocessing.PREPROCESSING_FNS)


@dataclasses.dataclass(frozen=True)
class EvalConfig(distribute.StrategyOptions):
    """Options of an evaluation: eval.py's flags (`tfmodels.options`; None means "from
    config.json"). `model_dir` is required."""
    model_dir: Optional[str] = option(None, "Directory train.py (or the porting CLI) wrote: "
                                      "config.json and checkpoints.")
    checkpoint: Optional[str] = option(None, "Checkpoint path or name in --model_dir "
                                       "(ckpt-2000); default: the latest.")
    split: Optional[str] = option(None, "Split to evaluate (default: the run's eval split).")
    dataset: Optional[str] = option(None, "Override the run's dataset (required when "
                                    "config.json names none, e.g. ported checkpoints).")
    data_dir: Optional[str] = option(None, "tensorflow-datasets directory (default: the run's).")
    global_batch_size: Optional[int] = option(
        None, "Global batch (examples per step), split across replicas (default: the run's, "
        "rounded up to a multiple of the replicas).", flag="batch_size", low=1)
    top_k: Tuple[int, ...] = option((5,), "k values of top-k accuracy (k >= classes is "
                                    "skipped).", low=1)
    knn_k: Tuple[int, ...] = option((1, 5), "k values of k-NN accuracy of the embeddings "
                                    "against the training split's; empty disables k-NN.", low=1)
    gallery_split: Optional[str] = option(None, "k-NN gallery and class-mean split (default: "
                                          "the run's train split).")
    use_average: bool = option(True, "Use the EMA weights when the run kept them.")
    output: Optional[str] = option(None, "Results JSON (default: <model_dir>/eval_<split>.json; "
                                   "--model_dir must then be writable).")
    plot_dir: Optional[str] = option(None, "PNG pictures (default: <model_dir>/plots when "
                                     "--model_dir is writable; empty: none).")
    summary_dir: Optional[str] = option(None, "TensorBoard scalars (default: <model_dir>/eval, "
                                        "eval_<split> for another split, when --model_dir is "
                                        "writable; empty: none).")
    continuous: bool = option(False, "Evaluate each new checkpoint until the run's final "
                              "step.")
    timeout: float = option(3600.0, "--continuous: seconds to wait for a new checkpoint before "
                            "stopping.", above=0.0)
    preprocessing: Optional[str] = option(
        None, "Override the run's preprocessing (default: the run's, or for a ported model on "
        "a dataset of varying image size the net's own).", choices=_PREPROCESSING)
    skip_undecodable: bool = option(False, "Skip (and count in the results) images that cannot "
                                    "be decoded, instead of stopping with an error naming "
                                    "them.")
    # Open-set verification (docs/FACE.md): pairs of images scored by the cosine of their
    # embeddings, from a pairs file (LFW's pairs.txt format) over an image folder, or drawn
    # from classes held out of training.
    verification: str = option(
        "none", "pairs: score same/different pairs of images by the cosine of their "
        "embeddings; LFW's 10-fold accuracy, ROC AUC, TAR at FAR=1e-3 and 1e-4, and a ROC "
        "plot.", choices=VERIFICATIONS)
    pairs_file: Optional[str] = option(
        None, "Pairs in LFW's pairs.txt format (with --pairs_images); default: pairs drawn "
        "from the classes the run held out (train.py --train_classes) in --split.")
    pairs_images: Optional[str] = option(
        None, "Folder of <name>/<name>_<nnnn>.jpg images that --pairs_file names (aligned "
        "crops, as the training images), or tfds:lfw: tfds's lfw in --data_dir, numbered as "
        "LFW's files (docs/FACE.md).")
    verification_classes: Optional[str] = option(
        None, "Classes to draw pairs from (ids and ranges, e.g. 7-9; default: those the run "
        "held out).")
    verification_pairs: int = option(
        6000, "Drawn pairs in all: half same, half different (fewer when a kind runs out); "
        "at least 10 folds of same and different pairs.", low=20)
    verification_seed: int = option(0, "Seed of the drawn pairs.", low=0, high=2**32 - 1)
    flip_fusion: bool = option(False, "Embed each image as the sum of its and its mirror "
                               "image's embeddings.")

    def validate(self):
        """Raise UsageError naming the option, its value and what is allowed; no TF work."""
        if not self.model_dir:
            raise UsageError("--model_dir is required (the directory train.py wrote)",
                             "model_dir")
        options.check(self)
        distribute.check_options(self.strategy, num_gpus=self.num_gpus,
                                 all_reduce=self.all_reduce,
                                 virtual_devices=self.virtual_devices,
                                 worker_connect_timeout=self.worker_connect_timeout)
        for name in ("model_dir", "data_dir", "output", "plot_dir", "summary_dir",
                     "pairs_file", "pairs_images"):
            options.check_path(name, getattr(self, name))
        self._validate_verification()
        if self.continuous and self.checkpoint:
            raise UsageError(f"--checkpoint={self.checkpoint} with --continuous: continuous "
                             "mode evaluates each new checkpoint; give one or the other",
                             "checkpoint")

    def _validate_verification(self):
        """The checks between the verification options (each one's range is declared)."""
        given = [name for name in ("pairs_file", "pairs_images", "verification_classes")
                 if getattr(self, name) is not None] + (["flip_fusion"] if self.flip_fusion
                                                        else [])
        if self.verification == "none":
            if given:
                shown = ", ".join("--flip_fusion" if name == "flip_fusion"
                                  else f"--{name}={getattr(self, name)}" for name in given)
                raise UsageError(f"{shown} apply to --verification=pairs, which is not set",
                                 given[0])
            return
        if (self.pairs_file is None) != (self.pairs_images is None):
            have, lack = (("pairs_file", "pairs_images") if self.pairs_images is None
                          else ("pairs_images", "pairs_file"))
            raise UsageError(f"--{have}={getattr(self, have)} without --{lack}: give both (a "
                             "pairs.txt and the image folder it names) or neither (pairs drawn "
                             "from held-out classes)", lack)
        if self.pairs_file is not None:
            if self.verification_classes is not None:
                raise UsageError(f"--verification_classes={self.verification_classes} draws "
                                 f"pairs; --pairs_file={self.pairs_file} gives them: use one",
                                 "verification_classes")
            if not os.path.isfile(self.pairs_file):
                raise UsageError(f"--pairs_file={self.pairs_file} is not an existing file",
                                 "pairs_file")
            if (pairs_tfds.tfds_name(self.pairs_images) is None
                    and not os.path.isdir(self.pairs_images)):
                raise UsageError(f"--pairs_images={self.pairs_images} is not an existing "
                                 "folder (or tfds:NAME, e.g. tfds:lfw)", "pairs_images")
        if self.verification_classes is not None:
            parse_classes(self.verification_classes, 1 << 30, "verification_classes")


@dataclasses.dataclass(frozen=True)
class EvalPlan:
    """An `EvalConfig` resolved against the model_dir's record and the data, all checked.

    Attributes:
      model_dir: the training directory.
      record: its config.json (`model_dir.ModelRecord`).
      dataset, data_dir, split: what is evaluated.
      gallery_split: the k-NN gallery / class-mean split (None: not needed).
      global_batch_size: examples per step over all replicas (a multiple of them).
      per_replica_batch_size: global_batch_size / the replicas.
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
    per_replica_batch_size: int
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
        raise UsageError(
            f"no dataset: {model_dir_lib.CONFIG_FILE} in --model_dir={model_dir} names none (a "
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
        raise UsageError(
            f"--dataset={dataset} has {info.num_classes} classes of images "
            f"{tuple(info.image_shape)}, but the {record.model} in --model_dir={model_dir} "
            f"takes {record.num_classes} classes of images {record.image_shape}; "
            "pass the dataset it was trained on (--dataset)")
    check_preprocessing(preprocessing, info)
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
                raise UsageError(f"--knn_k={k} is larger than the {limit} examples of the "
                                 f"gallery split {gallery_split!r}", "knn_k")

    batch = config.global_batch_size
    if batch is None:
        batch = record.global_batch_size or DEFAULT_GLOBAL_BATCH_SIZE
        batch = math.ceil(batch / num_replicas) * num_replicas
    per_replica = split_batch(batch, num_replicas)

    layout = model_dir_lib.ModelDir(model_dir)
    writable = model_dir_lib.is_writable(model_dir)
    if config.output is None and not writable:
        raise UsageError(f"--model_dir={model_dir} is not writable: pass --output for the "
                         "results (and --summary_dir / --plot_dir for TensorBoard / PNGs)",
                         "output")
    output = config.output or layout.eval_json(split)
    summary_dir = _default_dir(config.summary_dir, model_dir, writable, "TensorBoard scalars",
                               layout.eval_summaries(split, default_split))
    plot_dir = _default_dir(config.plot_dir, model_dir, writable, "plots", layout.plots_dir)
    _check_targets(output, summary_dir, plot_dir)
    return EvalPlan(
        model_dir=model_dir, record=record, dataset=dataset, data_dir=data_dir, split=split,
        gallery_split=gallery_split, global_batch_size=int(batch),
        per_replica_batch_size=per_replica,
        top_k=tuple(config.top_k), knn_k=tuple(config.knn_k), use_average=config.use_average,
        checkpoint=None if config.continuous else find_checkpoint(config.checkpoint, model_dir),
        output=output,
        plot_dir=plot_dir, summary_dir=summary_dir,
        image_size=tuple(record.image_shape[:2]), preprocessing=preprocessing,
        skip_undecodable=config.skip_undecodable, verification=config.verification,
        verification_classes=_verification_classes(config, record, info, data_dir),
        pairs_file=config.pairs_file, pairs_images=config.pairs_images,
        verification_pairs=config.verification_pairs,
        verification_seed=config.verification_seed, flip_fusion=config.flip_fusion)


def _verification_classes(config, record, info, data_dir):
    """The classes verification pairs are drawn from: the given ones, else those the run held
    out of training; None without drawn pairs."""
    if config.verification != "pairs":
        return None
    if config.pairs_file is not None:  # every image it names must be there, before any work
        pairs, _ = pairs_file.read_pairs(config.pairs_file)
        source = pairs_tfds.tfds_name(config.pairs_images)
        if source is not None:
            pairs_tfds.check_pairs(source, data_dir, pairs)
            return None
        try:
            for a, i, c, j in pairs:
                pairs_file.image_path(config.pairs_images, a, i)
                pairs_file.image_path(config.pairs_images, c, j)
        except FileNotFoundError as err:
            raise UsageError(str(err), "pairs_images") from None
        return None
    if config.verification_classes is not None:
        return parse_classes(config.verification_classes, info.num_classes,
                             "verification_classes")
    if record.train_classes is not None:
        trained = parse_classes(record.train_classes, info.num_classes)
        return tuple(c for c in range(info.num_classes) if c not in trained)
    raise UsageError(
        f"--verification=pairs needs pairs of identities not trained on: the run in "
        f"--model_dir={config.model_dir} trained on every class (train.py --train_classes "
        "holds some out); pass --verification_classes or --pairs_file/--pairs_images",
        "verification")


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
        raise UsageError(f"{path!r} is a symbolic link: nothing is written through links; "
                         f"remove it or pass a folder for the {what}")
    return path


def _check_targets(output, summary_dir, plot_dir):
    """Every path the evaluation writes can be written, checked before it starts."""
    targets = [(output, "file", "--output")]
    targets += [(path, "folder", flag) for path, flag in ((summary_dir, "--summary_dir"),
                                                         (plot_dir, "--plot_dir")) if path]
    for path, kind, flag in targets:
        model_dir_lib.check_target(path, kind, flag)


def check_checkpoint(inspection):
    """Raise UsageError when a read checkpoint (`model_dir.Inspection`) cannot be
    evaluated: it does not read, or holds inf/NaN (a diverged run: its numbers mean nothing)."""
    if inspection.problem:
        raise UsageError(f"checkpoint {inspection.path!r} cannot be read: "
                         f"{inspection.problem}", "checkpoint")
    if inspection.non_finite:
        raise UsageError(
            f"checkpoint {inspection.path!r} {inspection.reason()}: the weights of a diverged "
            "run are not evaluated; pass --checkpoint with an earlier one")


def _preprocessing(config, record, info):
    """The given preprocessing, else the run's; a record without one (a ported checkpoint) on
    a dataset of varying image size takes the net's default."""
    found = config.preprocessing or record.preprocessing
    if found is None and info.variable_size:
        if record.model not in data_preprocessing.NET_PREPROCESSING:
            raise UsageError(
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
            raise UsageError(f"--model_dir={model_dir} holds no readable checkpoint:\n"
                             f"{checkpoints.describe_unusable(skipped)}")
        if found is None:
            raise UsageError(f"--model_dir={model_dir} has no checkpoint yet (use "
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
    raise UsageError(f"--checkpoint={name} does not exist (as a path or in "
                     f"--model_dir={model_dir}); available: {available or 'none'}", "checkpoint")
