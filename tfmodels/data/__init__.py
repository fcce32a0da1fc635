"""Datasets and input pipelines for image classification on one or many replicas.

    from tfmodels import data
    info = data.get_dataset_info("cifar10", data_dir=None)   # shape, classes, split sizes
    dist = data.distribute_dataset(strategy, "cifar10", info.train_split,
                                   global_batch_size=256, training=True, augment=True,
                                   seed=0, deterministic=True)
    iterator = iter(dist)                                     # tf.train.Checkpoint-able
    batch = next(iterator)    # {'image': float32 [B,H,W,C], 'label': int32 [B]} per replica

Evaluation elements add `mask` (float32 [B], 0 for padding); run `data.num_eval_steps(...)`
steps and weight every metric by the mask. See docs/DATA.md; data sources are registered in
`datasets.SOURCES`.
"""
from tfmodels.data.datasets import (DATASET_NAMES, get_dataset_info, list_datasets,
                                    load_arrays)
from tfmodels.data.pipeline import (class_subset, distribute_dataset, make_dataset,
                                    num_eval_steps, steps_per_epoch)
from tfmodels.data.pipelines.resumable import DistributedData, ResumableIterator
from tfmodels.data.sources.specs import DatasetInfo, DatasetUnavailableError, parse_classes
from tfmodels.data.sources.tfds_source import IN_MEMORY_LIMIT_BYTES

__all__ = [
    "DATASET_NAMES", "IN_MEMORY_LIMIT_BYTES", "DatasetInfo", "DatasetUnavailableError",
    "DistributedData", "ResumableIterator", "class_subset", "distribute_dataset", "get_dataset_info",
    "list_datasets", "load_arrays", "make_dataset", "num_eval_steps", "parse_classes", "steps_per_epoch",
]
