"""Train a classifier on one or many devices: `train(TrainConfig(...)) -> final metrics`.

Order of work: validate the config (no TensorFlow work yet), split devices and create the
strategy (both must precede any op), read the dataset's shape and classes, check the model_dir
(checkpoint files of another run stop everything before a byte is written), take the
model_dir's writer lock, recover it (leftovers of interrupted writes removed, unreadable
checkpoints set aside, state file rebuilt), build model, optimizer, center loss and step counter
under `strategy.scope()`, resume from the newest readable checkpoint, train in loops of
`steps_per_loop` steps per tf.function call (saving only finite state), evaluate every test
example exactly once, export, and write `metrics.json`; then release the lock and the input
iterators.
"""
import gc
import math
import os
import time

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from tfmodels import console, data, distribute, porting, stopping
from tfmodels import model_dir as model_dir_lib
from tfmodels.evaluation import chunked
from tfmodels.evaluation.metrics import output_metrics
from tfmodels.evaluation.predict import collect_outputs
from tfmodels.training import export, guards
from tfmodels.training.checkpoints import CheckpointSaver
from tfmodels.training.guards import NonFiniteLossError
from tfmodels.training.parts import build_training
from tfmodels.training.progress import Progress
from tfmodels.training.stop_points import StopPoints
from tfmodels.training.step import TrainStep
from tfmodels.options import UsageError

_POLICIES = {"none": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}


def train(config, strategy=None, stop=None):
    """Train as `config` (a `TrainConfig`) says and return the final metrics (a dict).

    `strategy`: an existing strategy to use instead of creating one from the config's
    strategy options (which are then ignored).

    `stop`: the `stopping.StopRequest` the run reads between loops of steps (default: that of
    an enclosing `stopping.on_signals` block, as train.py's, else a new one). While `train`
    runs, SIGTERM, SIGINT and SIGUSR1 set it (`stopping.on_signals`; under a multi-worker
    strategy taken back from TensorFlow's coordination service, which installs its own SIGTERM
    handler when the strategy starts); the run then finishes its current loop of steps, saves
    a checkpoint of that step (unless one exists), logs one line saying so and raises
    `stopping.Stopped`. Requested after the last step, the final checkpoint is kept and the
    evaluation, exports and metrics.json are left to the next run of the same model_dir.

    Raises:
      UsageError: bad input, before any work (unknown model/dataset/optimizer, batch not
        divisible by replicas, too many GPUs, model_dir holding another run's checkpoints or
        being written by another process, no readable checkpoint to resume from, ...).
      data.DatasetUnavailableError: the dataset is not prepared and cannot be downloaded.
      NonFiniteLossError: the loss or the weights became inf/NaN (nothing non-finite was
        saved; the last good checkpoint is kept).
      stopping.Stopped: a stop was requested; the run's state is saved in model_dir.
      distribute.WorkerLostError: under a multi-worker strategy, another worker is gone
        (killed, crashed), in any phase from connecting the workers to the last step: known
        within the coordination service's heartbeat timeout. The message is one line naming
        the lost worker and the last checkpoint saved.
    """
    lost_worker = distribute.LostWorkerGuard(strategy, strategy_name=config.strategy)
    try:
        with lost_worker, stopping.on_signals(stop) as stop:
            return _train(config, strategy, stop, lost_worker)
    finally:
        console.close_bars()  # an interrupted run's bar: give the terminal its cursor back
        # The run's tf.data iterators (one per replica, each with its autotune thread) sit in
        # reference cycles. Left to interpreter exit, destroying one there can hang for good
        # (the main thread waits on a thread that can no longer run): free them now. After an
        # exception its traceback still holds them; the scripts drop it, then collect again.
        gc.collect()


def _train(config, strategy, stop, lost_worker):
    config.validate()
    lost_worker.advice = lambda: _after_lost_worker(None)
    if strategy is None:
        strategy = distribute.setup(config.strategy, num_gpus=config.num_gpus,
                                    all_reduce=config.all_reduce,
                                    virtual_devices=config.virtual_devices,
                                    worker_connect_timeout=config.worker_connect_timeout,
                                    cluster=config.cluster)
        stop.reclaim_signals()  # a multi-worker strategy's coordination service took SIGTERM
        lost_worker.use(strategy)
    info = data.get_dataset_info(config.dataset, data_dir=config.data_dir)
    if config.train_classes is not None:  # steps per epoch over the kept examples
        info = data.class_subset(info, info.train_split, data.parse_classes(
            config.train_classes, info.num_classes))
    resolved = config.resolve(info, strategy.num_replicas_in_sync)
    config = resolved.config  # model_dir and length filled in
    record = resolved.to_json()
    layout = model_dir_lib.ModelDir(config.model_dir)
    # Lost before this run saves: what an earlier run of the model_dir saved is what is left.
    lost_worker.advice = lambda: _after_lost_worker(
        (layout.checkpoints() or [(None, None)])[-1][1])
    # Reads only: another run's records, or a path of the run of the wrong kind, stop it.
    found = layout.check_for_training(record, export=config.export)
    init_from = None
    if config.init_checkpoint and not found:  # model_dir > init_checkpoint > scratch
        init_from, _ = porting.resolve_checkpoint(config.init_checkpoint,
                                                  config.porting_flags()["checkpoint"])
    chief = distribute.is_chief(strategy)
    keras.mixed_precision.set_dtype_policy(_POLICIES[config.mixed_precision])
    keras.utils.set_random_seed(config.seed)
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
    # Built (and filled from --init_checkpoint) before the model_dir is touched: a checkpoint
    # that does not fit the net is bad input, and leaves nothing behind.
    parts = build_training(resolved, strategy, init_from=init_from)
    # One writer per model_dir, from here until the end (the OS drops it if we die).
    lock = layout.lock() if chief else None
    if chief:
        _log_start(resolved, info, record, strategy, parts.model.count_params())
    try:
        return _run(resolved, info, record, strategy, chief, parts, init_from, layout, stop,
                    lost_worker)
    finally:
        if lock is not None:
            lock.release()


def _prepare_model_dir(layout, record, chief):
    """The checkpoint to resume from (an `Inspection`, or None), after making the model_dir
    consistent (chief, holding the lock: leftovers removed, unusable checkpoints set aside,
    state file rebuilt) or just finding it (other workers: they only read)."""
    layout.check_identity(record)  # again, now under the lock
    if chief:
        model_dir_lib.files.real_dir(layout.train_dir, "TensorBoard folder")
        return layout.recover()
    resume, skipped = layout.newest_usable(finite=True)
    if skipped and resume is None:
        raise model_dir_lib.NoUsableCheckpointError(
            f"--model_dir={layout.path} holds no usable checkpoint:\n"
            f"{model_dir_lib.checkpoints.describe_unusable(skipped)}")
    return resume


def _run(resolved, info, record, strategy, chief, parts, init_from, layout, stop,
         lost_worker):
    config = resolved.config
    resume = _prepare_model_dir(layout, record, chief)
    if resume is not None and init_from:
        # Another run wrote a checkpoint since the first look: it wins over init_checkpoint.
        logging.info("model_dir holds %s: --init_checkpoint is not used", resume.path)
        init_from = None
    train_data = data.distribute_dataset(
        strategy, config.dataset, info.train_split, global_batch_size=config.global_batch_size,
        training=True, augment=config.augment, seed=config.seed,
        deterministic=config.deterministic, data_dir=config.data_dir,
        classes=resolved.train_classes, input_placement=config.input_placement,
        **_input_options(resolved))
    iterator = iter(train_data)
    checkpoint = tf.train.Checkpoint(input=iterator, **parts.trackables())
    saver = CheckpointSaver(checkpoint, config.model_dir, keep=config.keep_checkpoints,
                            is_chief=chief,
                            finite_check=guards.FiniteCheck(guards.state_variables(parts)))
    stop = StopPoints(stop, strategy, saver, total_steps=resolved.total_steps)
    lost_worker.advice = lambda: _after_lost_worker(saver.last_good or (
        resume.path if resume is not None else None))
    try:
        if resume is not None:
            _restore(saver, resume.path, config)
            logging.info("resuming from step %d (%s)", int(parts.step_counter.numpy()),
                         resume.path)
        elif not init_from:
            logging.info("training from scratch")
        start_step = int(parts.step_counter.numpy())
        if chief:
            saver.call_before_first_save(layout.record_writer(record, start_step))
        train_metrics = _train_loop(resolved, strategy, parts, iterator, saver, chief, layout,
                                    stop)
        train_metrics["skipped_undecodable"] = train_data.skipped_examples
        stop.check()
        metrics = _final_metrics(resolved, info, strategy, parts, train_metrics, start_step)
        stop.check()
        exported = {}
        if config.export:
            with parts.averaged_weights():
                exported = export.export(parts.model, info, config.model_dir, is_chief=chief,
                                         image_shape=resolved.image_shape,
                                         preprocessing=resolved.preprocessing)
        if chief:
            layout.write_metrics(metrics)
            _show_results(config, metrics, saver.last_good, exported, layout)
        return metrics
    finally:
        saver.close()


def _after_lost_worker(last_checkpoint):
    """What the line of a lost worker adds: the checkpoints all workers saved are whole (a
    save is staged), and the next run starts from the newest."""
    return (f"the last checkpoint saved: {last_checkpoint or 'none yet'}; start every worker "
            "again with the same --model_dir to resume")


def _restore(saver, path, config):
    """Restore the run's state from `path`; a checkpoint that holds something else (another
    net's, copied in) is bad input: one line, before anything but the state file is written."""
    try:
        saver.restore(path)
    except tf.errors.UnavailableError:
        raise  # not the checkpoint's fault: a lost worker (distribute.LostWorkerGuard)
    except (AssertionError, ValueError, tf.errors.OpError) as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:300]
        raise UsageError(
            f"checkpoint {path} does not hold this run's state (--model={config.model}): "
            f"{first}; it was left as it is. Move it away or use another --model_dir") from None


def _train_loop(resolved, strategy, parts, iterator, saver, chief, layout, stop):
    config, total = resolved.config, resolved.total_steps
    step = int(parts.step_counter.numpy())
    train_step = TrainStep(strategy, parts, iterator, resolved)
    writer = model_dir_lib.ScalarWriter(layout.train_dir if chief else None,
                                        kept=lambda: _checkpoints_kept(saver))
    progress = Progress(resolved, step)
    timings, results, last_saved = [], {}, step  # (steps, seconds) of each loop
    while step < total:
        stop.check(step)
        to_checkpoint = config.checkpoint_every - step % config.checkpoint_every
        num_steps = min(config.steps_per_loop, total - step, to_checkpoint)
        start = time.perf_counter()
        sums = train_step.loop(tf.constant(num_steps, tf.int64)).numpy()  # waits for the loop
        results = train_step.metrics.results(sums, num_steps * config.global_batch_size)
        seconds = time.perf_counter() - start
        previous, step = step, step + num_steps
        if not math.isfinite(results["loss"]):
            good = saver.last_good or "none (no checkpoint was written)"
            raise NonFiniteLossError(
                f"the training loss became {results['loss']} between step {previous} and step "
                f"{step}; the last good checkpoint is {good} "
                "(try a lower --learning_rate or --clip_grad_norm)")
        timings.append((num_steps, seconds))
        images_per_sec = num_steps * config.global_batch_size / seconds
        writer.write(step, {**results, "images_per_sec": images_per_sec,
                            "learning_rate": float(parts.schedule(parts.optimizer.iterations))})
        progress.update(step, results, images_per_sec)
        if step - last_saved >= config.checkpoint_every or step >= total:
            saver.save(step)
            last_saved = step
    writer.close()
    timed = timings[1:] or timings  # the first loop also traces and compiles the step
    steps_run, seconds_run = sum(n for n, _ in timed), sum(t for _, t in timed)
    results["images_per_sec"] = (steps_run * config.global_batch_size / seconds_run
                                 if seconds_run else float("nan"))
    return results


def _checkpoints_kept(saver):
    """What a failed summary write leaves: the checkpoints, in words."""
    if saver.last_good is None:
        return "no checkpoint was written yet"
    return f"the checkpoints are kept (newest {os.path.basename(saver.last_good)})"


def _final_metrics(resolved, info, strategy, parts, train_metrics, start_step):
    """metrics.json: the test metrics, and the training metrics this run measured.

    A run resumed at its last step trains no step: its training loss, accuracy and speed were
    not measured, so they are left out (not written as null); `measured_in_this_run` names the
    metrics this process measured and `start_step` the step it started from.
    """
    config = resolved.config
    # A run trained on some classes (train_classes) is tested on those classes' examples: it
    # cannot classify the held-out ones (eval.py --verification=pairs measures those).
    eval_data = data.distribute_dataset(
        strategy, config.dataset, info.eval_split, global_batch_size=config.global_batch_size,
        training=False, data_dir=config.data_dir, classes=resolved.train_classes,
        **_input_options(resolved))
    chunks = None  # many classes: score them in chunks of the class matrix, no [N, C] logits
    if chunked.needs_chunks(resolved.num_classes):
        chunks = chunked.ChunkedScores(loss=config.loss, label_smoothing=config.label_smoothing)
    with parts.averaged_weights():
        outputs = collect_outputs(strategy, parts.model, eval_data, loss_fn=parts.loss_fn,
                                  scores=chunks, description=info.eval_split)
    scores = output_metrics(outputs, num_classes=resolved.num_classes)
    measured = {"test_accuracy": scores["accuracy"], "test_loss": scores["loss"],
                "test_examples": scores["count"],
                "test_skipped_undecodable": eval_data.skipped_examples}
    measured.update({k: v for k, v in scores.items() if k.startswith("top_")})
    steps = int(parts.step_counter.numpy())
    if steps > start_step:
        measured.update(images_per_sec=train_metrics.get("images_per_sec", float("nan")),
                        train_loss=train_metrics.get("loss", float("nan")),
                        train_accuracy=train_metrics.get("accuracy", float("nan")),
                        train_skipped_undecodable=train_metrics.get("skipped_undecodable", 0))
    metrics = dict(
        measured, eval_split=info.eval_split, test_classes=config.train_classes or "all",
        steps=steps, start_step=start_step,
        measured_in_this_run=sorted(measured), num_replicas=resolved.num_replicas,
        global_batch_size=config.global_batch_size, model=config.model, dataset=config.dataset)
    for split, name in ((info.train_split, "train"), (info.eval_split, "test")):
        if metrics.get(f"{name}_skipped_undecodable"):
            logging.warning("skipped %d undecodable example(s) of split %r of %s",
                            metrics[f"{name}_skipped_undecodable"], split, config.dataset)
    logging.debug("final metrics: %s", {k: (round(v, 5) if isinstance(v, float) else v)
                                        for k, v in metrics.items()})
    return {k: (None if isinstance(v, float) and not np.isfinite(v) else v)
            for k, v in metrics.items()}


def _input_options(resolved):
    """The resolved input size and preprocessing, as `data.distribute_dataset` takes them."""
    return dict(image_size=tuple(resolved.image_shape[:2]),
                preprocessing=resolved.preprocessing,
                skip_undecodable=resolved.config.skip_undecodable)


def _log_start(resolved, info, record, strategy, num_params):
    """The run in five lines: net, data, batch split, length and recipe, model_dir."""
    config = resolved.config
    logging.debug("config: %s", {k: record[k] for k in sorted(record)})
    logging.info("model      %s, %s parameters, %d classes", config.model, f"{num_params:,}",
                 resolved.num_classes)
    logging.info("data       %s: %s %s / %s %s images of %s", config.dataset,
                 resolved.train_split, f"{info.splits.get(resolved.train_split, 0):,}",
                 resolved.eval_split, f"{info.splits.get(resolved.eval_split, 0):,}",
                 "x".join(str(d) for d in resolved.image_shape))
    logging.info("batch      %d = %d replica(s) x %d per replica; %s", config.global_batch_size,
                 resolved.num_replicas, resolved.per_replica_batch_size,
                 distribute.describe(strategy))
    epochs = resolved.total_steps / resolved.steps_per_epoch
    logging.info("steps      %d = %s epoch(s) of %d; %s, learning rate %g, %s schedule",
                 resolved.total_steps, f"{epochs:.3g}", resolved.steps_per_epoch,
                 config.optimizer, config.learning_rate, config.lr_schedule)
    logging.info("model_dir  %s", config.model_dir)


def _show_results(config, metrics, checkpoint, exported, layout):
    """The end of a run: its final metrics and where it wrote things, as a small table."""
    def percent(name):
        return f"{metrics[name]:.2%}" if metrics.get(name) is not None else "-"

    classes = metrics.get("test_classes", "all")
    rows = [("test accuracy", f"{percent('test_accuracy')} of {metrics['test_examples']:,} "
                              f"{metrics['eval_split']} examples"
                              + ("" if classes == "all" else f" of classes {classes}")),
            ("test loss", _number(metrics.get("test_loss")))]
    if "train_accuracy" in metrics:  # measured: this run trained at least one step
        rows += [("train accuracy", f"{percent('train_accuracy')} (last loop)"),
                 ("train loss", _number(metrics.get("train_loss"))),
                 ("speed", f"{_number(metrics.get('images_per_sec'), '{:,.0f}')} images/s")]
    rows += [("steps", f"{metrics['steps']:,}"),
             ("model_dir", config.model_dir),
             ("checkpoint", os.path.basename(checkpoint) if checkpoint else "-"),
             ("metrics", model_dir_lib.METRICS_FILE)]
    if exported:
        rows.append(("exports", ", ".join(os.path.basename(path.rstrip(os.sep)) for path in
                                          exported.values())))
    rows.append(("TensorBoard", f"tensorboard --logdir {layout.train_dir}"))
    console.print_table(f"{config.model} on {config.dataset}", rows)


def _number(value, spec="{:.4f}"):
    return "-" if value is None else spec.format(value)
