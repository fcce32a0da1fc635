"""What to evaluate: `EvalConfig` (the user's choices) and `resolve` (the plan, all checked).

Everything that can be wrong with the input is found here, before a model is built: a missing or
empty model_dir, a config.json without the model's identity, no dataset (a ported checkpoint's
config may not name one), a dataset whose classes or image shape differ from the model's, a
split the dataset does not have, a batch not divisible by the replicas, a k larger than the
gallery, a checkpoint that does not exist.
"""
import dataclasses
import math
import os
from typing import Optional, Tuple

import tensorflow as tf

from tfmodels import data
from tfmodels.data.datasets import check_split
from tfmodels.training import checkpoints
from tfmodels.training.strategy import ALL_REDUCE, STRATEGIES

# Without a batch size in config.json (ported checkpoints) or given: evaluation keeps no
# gradients, so a larger batch than training's is fine.
DEFAULT_GLOBAL_BATCH_SIZE = 256
_IDENTITY = ("model", "num_classes", "image_shape")


class EvalConfigError(ValueError):
    """Bad input found before any evaluation (nothing was written)."""


@dataclasses.dataclass
class EvalConfig:
    """Options of an evaluation (eval.py's flags; None means "from config.json").

    Attributes:
      model_dir: the training directory (config.json + checkpoints).
      checkpoint: a checkpoint path or a name in model_dir (`ckpt-2000`); None: the latest.
      split: the split to evaluate; None: the run's eval split.
      dataset, data_dir: override the run's dataset (needed when config.json has none).
      global_batch_size: examples per step over all replicas; None: the run's, rounded up to
        a multiple of the replicas.
      top_k: k values of top-k accuracy (k >= classes skipped).
      knn_k: k values of k-NN accuracy; () disables k-NN.
      gallery_split: k-NN gallery and class-mean split; None: the run's train split.
      use_average: evaluate the EMA weights when the run kept them.
      output: the JSON file; None: <model_dir>/eval_<split>.json.
      plot_dir: where PNGs go; None: <model_dir>/plots; '' disables the pictures.
      continuous: evaluate each new checkpoint until the final step (or the timeout).
      timeout: continuous mode: seconds to wait for a new checkpoint before stopping.
      strategy, num_gpus, all_reduce, virtual_devices: as train.py's strategy flags.
    """
    model_dir: str
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
    continuous: bool = False
    timeout: float = 3600.0
    strategy: str = "auto"
    num_gpus: Optional[int] = None
    all_reduce: str = "auto"
    virtual_devices: int = 1

    def validate(self):
        """Raise EvalConfigError naming the option, its value and what is allowed; no TF work."""
        if not self.model_dir:
            raise EvalConfigError("model_dir is required (the directory train.py wrote)")
        if self.strategy not in STRATEGIES:
            raise EvalConfigError(f"strategy={self.strategy!r} is not one of: "
                                  f"{', '.join(STRATEGIES)}")
        if self.all_reduce not in ALL_REDUCE:
            raise EvalConfigError(f"all_reduce={self.all_reduce!r} is not one of: "
                                  f"{', '.join(ALL_REDUCE)}")
        if self.global_batch_size is not None:
            _positive_int("batch_size", self.global_batch_size)
        _positive_int("virtual_devices", self.virtual_devices)
        for name in ("top_k", "knn_k"):
            for k in getattr(self, name):
                _positive_int(name, k)
        if not self.timeout > 0:
            raise EvalConfigError(f"timeout={self.timeout} must be > 0 seconds")
        if self.continuous and self.checkpoint:
            raise EvalConfigError(f"checkpoint={self.checkpoint!r} with continuous=True: "
                                  "continuous mode evaluates each new checkpoint; give one or "
                                  "the other")


def resolve(config, saved, num_replicas):
    """The evaluation plan: `config` over the `saved` config.json, checked against the data.

    Args:
      config: an `EvalConfig` (validated).
      saved: the dict `checkpoints.read_config(model_dir)` returned.
      num_replicas: replicas of the strategy that will evaluate.

    Returns:
      dict: model_dir, saved, dataset, data_dir, split, gallery_split (None: not needed),
      global_batch_size, top_k, knn_k, use_average, checkpoint (None in continuous mode until
      one appears), output, plot_dir (None: no pictures), summary_dir.
    """
    model_dir = config.model_dir
    missing = [key for key in _IDENTITY if key not in saved]
    if missing:
        raise EvalConfigError(f"{os.path.join(model_dir, checkpoints.CONFIG_FILE)} lacks "
                              f"{missing}: it must name the model it describes")
    dataset = config.dataset or saved.get("dataset")
    if not dataset:
        raise EvalConfigError(
            f"no dataset: {checkpoints.CONFIG_FILE} in model_dir={model_dir!r} names none (a "
            f"ported checkpoint?); pass --dataset (one of {', '.join(data.DATASET_NAMES)})")
    same_dataset = dataset == saved.get("dataset")
    data_dir = config.data_dir or (saved.get("data_dir") if same_dataset else None)
    info = data.get_dataset_info(dataset, data_dir=data_dir)
    if info.num_classes != saved["num_classes"] or \
            tuple(info.image_shape) != tuple(saved["image_shape"]):
        raise EvalConfigError(
            f"dataset={dataset!r} has {info.num_classes} classes of images "
            f"{tuple(info.image_shape)}, but the {saved['model']} in model_dir={model_dir!r} "
            f"takes {saved['num_classes']} classes of images {tuple(saved['image_shape'])}; "
            "pass the dataset it was trained on (--dataset)")
    default_split = (saved.get("eval_split") if same_dataset else None) or info.eval_split
    split = config.split or default_split
    check_split(info, split)

    needs_gallery = bool(config.knn_k) or not saved.get("center_loss")
    gallery_split = None
    if needs_gallery:
        gallery_split = (config.gallery_split
                         or (saved.get("train_split") if same_dataset else None)
                         or info.train_split)
        check_split(info, gallery_split)
        limit = info.splits[gallery_split] - int(gallery_split == split)
        for k in config.knn_k:
            if k > limit:
                raise EvalConfigError(f"knn_k={k} is larger than the {limit} examples of the "
                                      f"gallery split {gallery_split!r}")

    batch = config.global_batch_size
    if batch is None:
        batch = saved.get("global_batch_size") or DEFAULT_GLOBAL_BATCH_SIZE
        batch = math.ceil(batch / num_replicas) * num_replicas
    elif batch % num_replicas:
        raise EvalConfigError(f"batch_size={batch} is not divisible by the {num_replicas} "
                              f"replicas; use a multiple of {num_replicas}")

    plot_dir = (os.path.join(model_dir, "plots") if config.plot_dir is None
                else config.plot_dir or None)
    return dict(
        model_dir=model_dir, saved=saved, dataset=dataset, data_dir=data_dir, split=split,
        gallery_split=gallery_split, global_batch_size=int(batch),
        top_k=tuple(config.top_k), knn_k=tuple(config.knn_k), use_average=config.use_average,
        checkpoint=None if config.continuous else _checkpoint(config.checkpoint, model_dir),
        output=config.output or os.path.join(model_dir, f"eval_{split}.json"),
        plot_dir=plot_dir,
        # Our default split's curves sit beside train/ in TensorBoard; others get their own.
        summary_dir=os.path.join(model_dir, "eval" if split == default_split
                                 else f"eval_{split}"))


def _checkpoint(name, model_dir):
    """The checkpoint path for `name` (a path, or a name inside model_dir), or the latest."""
    if not name:
        latest = checkpoints.latest_checkpoint(model_dir)
        if latest is None:
            raise EvalConfigError(f"model_dir={model_dir!r} has no checkpoint yet (use "
                                  "--continuous to wait for one)")
        return latest
    for path in (name, os.path.join(model_dir, name)):
        if tf.io.gfile.exists(path + ".index"):
            return path
    state = tf.train.get_checkpoint_state(model_dir)
    available = [os.path.basename(p) for p in state.all_model_checkpoint_paths] if state else []
    raise EvalConfigError(f"checkpoint={name!r} does not exist (as a path or in "
                          f"model_dir={model_dir!r}); available: {available or 'none'}")


def _positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise EvalConfigError(f"{name}={value!r} must be a positive int")
