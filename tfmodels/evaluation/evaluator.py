"""Evaluate the checkpoints of a model_dir: metrics, embedding k-NN and statistics, outputs.

    from tfmodels.evaluation.evaluator import EvalConfig, evaluate
    [results] = evaluate(EvalConfig(model_dir="runs/lenet_pp-mnist"))        # latest checkpoint
    history = evaluate(EvalConfig(model_dir=..., continuous=True, timeout=600))

The model is rebuilt from the `config.json` that train.py (or the porting CLI) saved in the
model_dir; EvalConfig's dataset / data_dir / batch size, when given, override it. Per checkpoint:
every example of the split counted exactly once (`collect_outputs`), classification metrics,
k-NN accuracy of the embeddings against the training split's embeddings, intra/inter-class
distance statistics relative to the centers, then (on the chief only) a JSON file, TensorBoard
scalars at the checkpoint's step and the PNG pictures. Checkpoints are found from the
model_dir's files and read in full before use; one that does not read is passed over with a
warning, one holding inf/NaN is refused.
"""
import collections
import dataclasses
import gc
import math
import os

import numpy as np
import tensorflow as tf
from absl import logging

from tfmodels import console, data, distribute, stopping
from tfmodels import model_dir as model_dir_lib
from tfmodels.distribute import WorkerLostError
from tfmodels.evaluation import chunked, embedding_stats, knn, open_set, plots, verification
from tfmodels.evaluation.eval_config import (EvalConfig, EvalPlan, check_checkpoint,
                                             find_checkpoint, resolve)
from tfmodels.evaluation.metrics import output_metrics
from tfmodels.evaluation.predict import collect_outputs
from tfmodels.losses import per_example_loss_fn
from tfmodels.options import UsageError

__all__ = ["EvalConfig", "EvalPlan", "Evaluation", "WorkerLostError", "checkpoint_step",
           "evaluate", "evaluate_checkpoint", "evaluate_model", "summary"]

Evaluation = collections.namedtuple("Evaluation", "results outputs gallery centers")


def evaluate(config, strategy=None, stop=None):
    """Evaluate one checkpoint, or (`config.continuous`) each new one until the final step.

    Continuous mode polls the model_dir's files every second for a checkpoint newer than the
    last evaluated, evaluates the newest that reads, and stops after evaluating one whose step
    is >= the run's `total_steps` (re-read from config.json each time, since a resumed run may
    extend it), or when `config.timeout` seconds pass without a new checkpoint. A checkpoint
    deleted by the trainer's `keep_checkpoints` before it could be read is skipped with a
    warning.

    Args:
      config: an `EvalConfig`.
      strategy: an existing strategy to use instead of creating one from the config's strategy
        options (which are then ignored).
      stop: the `stopping.StopRequest` read before each checkpoint's results are written and
        while waiting for checkpoints (default: that of an enclosing
        `stopping.on_signals` block, as eval.py's, else a new one; set by SIGTERM, SIGINT and
        SIGUSR1 while `evaluate` runs): the evaluation then stops with `stopping.Stopped`, writing
        nothing for the checkpoint it was evaluating (results already written stay).

    Returns:
      A list with one results dict per evaluated checkpoint (see `evaluate_checkpoint`).

    Raises:
      UsageError: bad input, before any evaluation (missing/empty model_dir, unknown split,
        no dataset, a checkpoint of another model, ...).
      data.DatasetUnavailableError: the dataset is not prepared under data_dir.
      stopping.Stopped: a stop was requested (one line saying so is logged).
      distribute.WorkerLostError: under a multi-worker strategy, another worker is gone
        (killed, crashed), in any phase from connecting the workers to the last batch; one
        line naming it (nothing was written for the checkpoint being evaluated).
    """
    lost_worker = distribute.LostWorkerGuard(strategy, strategy_name=config.strategy)
    try:
        with lost_worker, stopping.on_signals(stop) as stop:
            return _evaluate(config, strategy, stop, lost_worker)
    finally:
        console.close_bars()  # an interrupted evaluation's bar: the terminal's cursor back
        # Free the evaluation's tf.data iterators (reference cycles) while the interpreter is
        # whole: destroyed at exit, one can hang the process (see trainer.train).
        gc.collect()


def _evaluate(config, strategy, stop, lost_worker):
    config.validate()
    record = model_dir_lib.ModelDir(config.model_dir).read_record()
    if strategy is None:
        strategy = distribute.setup(config.strategy, num_gpus=config.num_gpus,
                                    all_reduce=config.all_reduce,
                                    virtual_devices=config.virtual_devices,
                                    worker_connect_timeout=config.worker_connect_timeout)
        stop.reclaim_signals()  # a multi-worker strategy's coordination service took SIGTERM
        lost_worker.use(strategy)
    plan = resolve(config, record, strategy.num_replicas_in_sync)
    # Results are written once the whole split is evaluated, after every collective.
    lost_worker.advice = lambda: (f"nothing was written for {plan.checkpoint or 'it'}; start "
                                  "every worker again to evaluate it")
    if config.continuous and isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        # Each worker would poll on its own and could pick a different checkpoint, and the
        # collectives of the evaluation would then mismatch.
        raise UsageError("--continuous runs on one worker; use --strategy=mirrored or "
                         "one_device for continuous evaluation", "continuous")
    chief = distribute.is_chief(strategy)
    logging.debug("evaluating %s", {f.name: getattr(plan, f.name)
                                    for f in dataclasses.fields(plan) if f.name != "record"})
    logging.info("model      %s in %s, %s", plan.record.model, plan.model_dir,
                 plan.checkpoint or "each new checkpoint")
    logging.info("data       %s: %s%s", plan.dataset, plan.split,
                 f" (k-NN gallery: {plan.gallery_split})" if plan.gallery_split else "")
    logging.info("batch      %d = %d replica(s) x %d per replica; %s", plan.global_batch_size,
                 strategy.num_replicas_in_sync, plan.per_replica_batch_size,
                 distribute.describe(strategy))
    writer = model_dir_lib.ScalarWriter(
        plan.summary_dir if chief else None,
        kept=lambda: f"the checkpoints are untouched and the results are in {plan.output}")
    try:
        if not config.continuous:
            return [_evaluate_newest(config, plan, strategy, writer, chief, stop)]
        return _evaluate_continuously(plan, strategy, writer, chief, config.timeout, stop)
    finally:
        writer.close()


# A checkpoint picked as the newest may be deleted by a training run's keep-N sweep before it is
# restored; the next newest is taken then, this many times at most.
_SWEPT_RETRIES = 20


def _evaluate_newest(config, plan, strategy, writer, chief, stop):
    """Evaluate the plan's checkpoint; when it was picked as the newest (no --checkpoint) and
    is deleted before it is restored, the newest one then."""
    for _ in range(_SWEPT_RETRIES):
        try:
            return evaluate_checkpoint(plan, strategy, plan.checkpoint, writer, chief, stop)
        except (UsageError, tf.errors.OpError) as err:
            if (config.checkpoint or os.path.exists(plan.checkpoint + ".index")
                    or isinstance(err, tf.errors.UnavailableError)):  # a lost worker, say
                raise
        logging.warning("checkpoint %s was deleted (a training run keeping its newest ones?) "
                        "before it could be restored; evaluating the newest one now",
                        plan.checkpoint)
        plan = dataclasses.replace(plan, checkpoint=find_checkpoint(None, plan.model_dir))
    raise UsageError(
        f"the newest checkpoint of --model_dir={plan.model_dir} was deleted before it could be "
        f"restored {_SWEPT_RETRIES} times in a row; pass --checkpoint, or --continuous to "
        "follow the run", "checkpoint")


def _evaluate_continuously(plan, strategy, writer, chief, timeout, stop):
    history = []
    for found in model_dir_lib.checkpoints.watch(plan.model_dir, timeout,
                                                 until=lambda: stop.requested):
        check_checkpoint(found)
        try:
            results = evaluate_checkpoint(plan, strategy, found.path, writer, chief, stop)
        except (UsageError, tf.errors.NotFoundError):
            if os.path.exists(found.path + ".index"):
                raise
            logging.warning("checkpoint %s was deleted before it could be evaluated; skipped",
                            found.path)
            continue
        history.append(results)
        total = _total_steps(plan)
        if total is not None and results["step"] >= total:
            logging.info("evaluated the final checkpoint (step %d >= total_steps %d); done",
                         results["step"], total)
            break
    else:
        if stop.requested:
            _stopped(stop, chief, f"while waiting for a new checkpoint in {plan.model_dir}, "
                              f"after {len(history)} evaluation(s)")
        logging.info("no new checkpoint in %s for %s s; stopping after %d evaluation(s)",
                     plan.model_dir, timeout, len(history))
    return history


def _total_steps(plan):
    try:
        return model_dir_lib.ModelDir(plan.model_dir).read_record().total_steps
    except (UsageError, OSError):
        return plan.record.total_steps


def evaluate_checkpoint(plan, strategy, checkpoint_path, writer, chief, stop=None):
    """Restore one checkpoint, evaluate it and (chief) write JSON, scalars and PNGs.

    A stop requested in `stop` (a `stopping.StopRequest`) by the end of the evaluation raises
    `stopping.Stopped` before anything is written.

    Returns:
      The results of `evaluate_model` plus 'step', 'checkpoint', 'split', 'dataset', 'model',
      'weights' ('ema' or 'raw'), 'num_replicas', 'global_batch_size', 'output' and 'plots'.
    """
    record = plan.record
    with strategy.scope():
        model, center_loss = model_dir_lib.restore_model(record, checkpoint_path,
                                                         use_average=plan.use_average)
    step = checkpoint_step(checkpoint_path)
    evaluation = evaluate_model(
        strategy, model, dataset=plan.dataset, split=plan.split,
        global_batch_size=plan.global_batch_size, data_dir=plan.data_dir,
        loss_fn=per_example_loss_fn(record.loss, record.label_smoothing),
        center_loss=center_loss, top_k=plan.top_k, knn_k=plan.knn_k,
        gallery_split=plan.gallery_split, image_size=plan.image_size,
        preprocessing=plan.preprocessing, skip_undecodable=plan.skip_undecodable,
        scores=_chunked_scores(record, plan.top_k))
    results = dict(evaluation.results)
    if record.margin != "none" and np.isfinite(evaluation.outputs["embedding"]).all():
        # A margin-trained net classifies by cosine to the class vectors, not by x W + b.
        results["cosine_accuracy"] = open_set.cosine_accuracy(model, evaluation.outputs)
    pair_scores = None
    if plan.verification == "pairs":
        pair_scores = open_set.pair_scores(plan, strategy, model, evaluation.outputs)
        results["verification"] = verification.verify(*pair_scores)
    results.update(
        step=step, checkpoint=checkpoint_path, split=plan.split, dataset=plan.dataset,
        model=record.model, num_replicas=strategy.num_replicas_in_sync,
        global_batch_size=plan.global_batch_size, output=plan.output,
        weights="ema" if plan.use_average and record.has_weight_average else "raw",
        plots={})
    if stop is not None and stop.requested:
        _stopped(stop, chief, f"while evaluating {checkpoint_path}: nothing was written for it")
    if chief:
        if plan.plot_dir:
            results["plots"] = _write_plots(plan, evaluation, step)
            if pair_scores is not None:
                far, tar, _ = verification.roc(*pair_scores)
                results["plots"]["roc"] = plots.plot_roc(
                    os.path.join(plan.plot_dir, f"roc_{plan.split}.png"), far, tar,
                    title=f"verification, {plan.record.model}, step {step}")
        model_dir_lib.write_json_atomic(plan.output, _jsonable(results), suffix=".json")
        writer.write(step, _scalars(results))  # after the results, which it then keeps
    logging.debug("evaluated: %s", summary(results))
    if chief:
        _show_results(results)
    return results


def _stopped(stop, chief, where):
    """Log (chief) the one line saying the evaluation stopped on a signal, and raise it."""
    stopped = stop.stopped(where)
    if chief:
        logging.warning("%s", stopped)
    raise stopped


def _chunked_scores(record, top_k):
    """Scores in chunks of classes for a model of many classes (`chunked.needs_chunks`)."""
    if not chunked.needs_chunks(record.num_classes):
        return None
    return chunked.ChunkedScores(top_k=max(top_k, default=1), loss=record.loss,
                                 label_smoothing=record.label_smoothing)


def evaluate_model(strategy, model, *, dataset, split, global_batch_size, data_dir=None,
                   loss_fn=None, center_loss=None, top_k=(5,), knn_k=(1, 5), gallery_split=None,
                   image_size=None, preprocessing=None, skip_undecodable=False, scores=None):
    """Metrics, k-NN accuracy and embedding statistics of `model` on one split.

    Args:
      strategy: the strategy the model was built (restored) under.
      model: maps images to {'logits', 'embedding'}.
      dataset, split, data_dir: what to evaluate (`tfmodels.data` names).
      global_batch_size: examples per step over all replicas (a multiple of them).
      loss_fn: per-example loss `fn(labels, logits)`; adds 'loss'.
      center_loss: the run's `CenterLoss` (its centers) or None.
      top_k: k values of 'top_<k>_accuracy' (k >= classes skipped).
      knn_k: k values of 'knn_<k>_accuracy' (empty: no k-NN).
      gallery_split: the split whose embeddings are the k-NN gallery and, without a center
        loss, give the class means; None skips both. Equal to `split`: leave-one-out k-NN.
      image_size, preprocessing, skip_undecodable: the input pipeline's (`data.make_dataset`):
        the model's (height, width), the run's preprocessing (None: the dataset's
        normalisation), and whether undecodable images are skipped.
      scores: a `chunked.ChunkedScores` to score every class in chunks (many classes): the
        results then hold `metrics.ranked_metrics`' keys and no embedding statistics (their
        inter-class distances are over every pair of classes).

    Returns:
      `Evaluation(results, outputs, gallery, centers)`: results holds classification_metrics'
      keys, 'knn_<k>_accuracy', 'gallery_split', 'gallery_count', 'embedding_stats'
      (embedding_stats.embedding_stats plus 'center_source': 'learned' or
      'train_class_means'), 'skipped_undecodable' (undecodable examples of `split` skipped)
      and, with another gallery split, 'gallery_skipped_undecodable'; outputs/gallery are
      collect_outputs' arrays; centers [K, D].
    """
    skipped = {}

    def collect(name):
        split_data = data.distribute_dataset(strategy, dataset, name,
                                             global_batch_size=global_batch_size,
                                             training=False, data_dir=data_dir,
                                             image_size=image_size, preprocessing=preprocessing,
                                             skip_undecodable=skip_undecodable)
        collected = collect_outputs(strategy, model, split_data, loss_fn=loss_fn, scores=scores,
                                    description=name)
        skipped[name] = split_data.skipped_examples
        if skipped[name]:
            logging.warning("skipped %d undecodable example(s) of split %r of %s",
                            skipped[name], name, dataset)
        return collected

    outputs = collect(split)
    num_classes = int(model.output["logits"].shape[-1])
    results = output_metrics(outputs, top_k=top_k, num_classes=num_classes)
    results["skipped_undecodable"] = skipped[split]
    if not np.isfinite(outputs["embedding"]).all():
        # A diverged checkpoint: report what can be computed rather than fail on it.
        logging.warning("the embeddings hold inf/NaN: no k-NN or embedding statistics")
        return Evaluation(results, outputs, None, None)
    gallery = None
    if gallery_split is not None:
        gallery = outputs if gallery_split == split else collect(gallery_split)
        results.update(gallery_split=gallery_split, gallery_count=len(gallery["label"]))
        if gallery_split != split:
            results["gallery_skipped_undecodable"] = skipped[gallery_split]
        if knn_k:
            accuracy = knn.knn_accuracy(outputs["embedding"], outputs["label"],
                                        gallery["embedding"], gallery["label"], ks=knn_k,
                                        num_classes=num_classes,
                                        exclude_self=gallery_split == split)
            results.update({f"knn_{k}_accuracy": v for k, v in accuracy.items()})
    centers, source = None, None
    if scores is not None:
        logging.info("%d classes: no embedding statistics (distances between every pair of "
                     "class centers)", num_classes)
    elif center_loss is not None:
        centers, source = np.asarray(center_loss.centers.numpy(), np.float64), "learned"
    elif gallery is not None:
        centers = embedding_stats.class_means(gallery["embedding"], gallery["label"],
                                              num_classes)
        source = "train_class_means" if gallery_split != split else f"{split}_class_means"
    if centers is not None:
        stats = embedding_stats.embedding_stats(outputs["embedding"], outputs["label"], centers)
        results["embedding_stats"] = dict(stats, center_source=source)
    return Evaluation(results, outputs, gallery, centers)


def checkpoint_step(checkpoint_path):
    """The training step a checkpoint holds (its `step` variable, as the trainer saves it);
    else the number in its name (`ckpt-<n>`, e.g. a ported checkpoint's save count); else 0."""
    reader = tf.train.load_checkpoint(checkpoint_path)
    if reader.has_tensor("step/.ATTRIBUTES/VARIABLE_VALUE"):
        return int(reader.get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE"))
    suffix = os.path.basename(checkpoint_path).rsplit("-", 1)[-1]
    return int(suffix) if suffix.isdigit() else 0


def _write_plots(plan, evaluation, step):
    """The confusion matrix and (for finite embeddings) the embedding scatter; their paths."""
    title = f"{plan.record.model} on {plan.dataset}:{plan.split}, step {step}"
    outputs, split = evaluation.outputs, plan.split
    paths = {}
    if "confusion_matrix" in evaluation.results:  # not kept for many classes
        paths["confusion_matrix"] = plots.plot_confusion_matrix(
            os.path.join(plan.plot_dir, f"confusion_{split}.png"),
            evaluation.results["confusion_matrix"], title=f"confusion, {title}")
    if np.isfinite(outputs["embedding"]).all():
        paths["embedding"] = plots.plot_embeddings(
            os.path.join(plan.plot_dir, f"embedding_{split}.png"), outputs["embedding"],
            outputs["label"], evaluation.centers, title=f"embeddings, {title}")
    return paths


def _show_results(results):
    """One evaluated checkpoint as a small table: its scalar metrics and where they went."""
    rows = [("checkpoint", f"{results['checkpoint']} (step {results['step']:,}, "
                           f"{results['weights']} weights)"),
            ("examples", f"{results['count']:,}")]
    for name, value in _scalars(results).items():
        rows.append((name.replace("_", " "),
                     f"{value:.2%}" if name.endswith("accuracy") else f"{value:.4f}"))
    if results.get("output"):
        rows.append(("results", results["output"]))
    rows += [(f"plot: {name}", path) for name, path in results.get("plots", {}).items()]
    console.print_table(f"{results['model']} on {results['dataset']}:{results['split']}", rows)


def summary(results):
    """The scalar part of `results` (no per-class arrays), for logs and the console."""
    head = {k: results[k] for k in ("step", "split", "count", "weights", "checkpoint", "output")
            if k in results}
    return dict(head, **_scalars(results))


def _scalars(results):
    """The scalar metrics, flat: 'loss', 'accuracy', 'top_5_accuracy', 'knn_1_accuracy',
    'embedding/intra_mean', ... (NaN ones left out)."""
    found = {k: v for k, v in results.items()
             if k in ("loss", "accuracy") or k.endswith("_accuracy") and k != "per_class_accuracy"}
    for name, value in results.get("embedding_stats", {}).items():
        if isinstance(value, float):
            found[f"embedding/{name}"] = value
    for name, value in results.get("verification", {}).items():
        if isinstance(value, float) and not name.endswith("threshold"):
            found[f"verification/{name}"] = value
    return {k: float(v) for k, v in found.items() if math.isfinite(v)}


def _jsonable(value):
    """NumPy arrays/scalars to lists/numbers; NaN and inf to None (JSON has neither)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_jsonable(v) for v in (value.tolist() if isinstance(value, np.ndarray)
                                       else value)]
    if isinstance(value, (np.integer, np.bool_)):
        return value.item()
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value
