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
from tfmodels.data.layout import split_batch
from tfmodels.data.pipeline import check_preprocessing
from tfmodels.data.specs import check_split
from tfmodels.options import UsageError, option

# Without a batch size in config.json (ported checkpoints) or given: evaluation keeps no
# gradients, so a larger batch than training's is fine.
DEFAULT_GLOBAL_BATCH_SIZE = 256
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

    def validate(self):
        """Raise UsageError naming the option, its value and what is allowed; no TF work."""
        if not self.model_dir:
            raise UsageError("--model_dir is required (the directory train.py wrote)",
                             "model_dir")
        options.check(self)
        distribute.check_options(self.strategy, num_gpus=self.num_gpus,
                                 all_reduce=self.all_reduce,
                                 virtual_devices=self.virtual_devices)
        for name in ("model_dir", "data_dir", "output", "plot_dir", "summary_dir"):
            options.check_path(name, getattr(self, name))
        if self.continuous and self.checkpoint:
            raise UsageError(f"--checkpoint={self.checkpoint} with --continuous: continuous "
                             "mode evaluates each new checkpoint; give one or the other",
                             "checkpoint")


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

    writable = model_dir_lib.is_writable(model_dir)
    if config.output is None and not writable:
        raise UsageError(f"--model_dir={model_dir} is not writable: pass --output for the "
                         "results (and --summary_dir / --plot_dir for TensorBoard / PNGs)",
                         "output")
    # Our default split's curves sit beside train/ in TensorBoard; others get their own.
    summary_dir = _default_dir(config.summary_dir, model_dir, writable, "TensorBoard scalars",
                               "eval" if split == default_split else f"eval_{split}")
    plot_dir = _default_dir(config.plot_dir, model_dir, writable, "plots", "plots")
    return EvalPlan(
        model_dir=model_dir, record=record, dataset=dataset, data_dir=data_dir, split=split,
        gallery_split=gallery_split, global_batch_size=int(batch),
        per_replica_batch_size=per_replica,
        top_k=tuple(config.top_k), knn_k=tuple(config.knn_k), use_average=config.use_average,
        checkpoint=None if config.continuous else _checkpoint(config.checkpoint, model_dir),
        output=config.output or os.path.join(model_dir, f"eval_{split}.json"),
        plot_dir=plot_dir, summary_dir=summary_dir,
        image_size=tuple(record.image_shape[:2]), preprocessing=preprocessing,
        skip_undecodable=config.skip_undecodable)


def _default_dir(given, model_dir, writable, what, name):
    """`given` ('' -> None), else <model_dir>/<name> if the model_dir is writable, else None."""
    if given is not None:
        return given or None
    if not writable:
        logging.info("model_dir %s is not writable: no %s (pass a folder elsewhere)", model_dir,
                     what)
        return None
    path = os.path.join(model_dir, name)
    if os.path.islink(path):
        raise UsageError(f"{path!r} is a symbolic link: nothing is written through links; "
                         f"remove it or pass a folder for the {what}")
    return path


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


def _checkpoint(name, model_dir):
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
    for path in (name, os.path.join(model_dir, name)):
        if os.path.exists(path + ".index"):
            check_checkpoint(checkpoints.inspect(path))
            return path
    available = [os.path.basename(p) for _, p in checkpoints.list_checkpoints(model_dir)]
    raise UsageError(f"--checkpoint={name} does not exist (as a path or in "
                     f"--model_dir={model_dir}); available: {available or 'none'}", "checkpoint")
