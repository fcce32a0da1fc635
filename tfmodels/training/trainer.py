"""Train a classifier on one or many devices: `train(TrainConfig(...)) -> final metrics`.

Order of work: validate the config (no TensorFlow work yet), split devices and create the
strategy (both must precede any op), read the dataset's shape and classes, check the model_dir
(a checkpoint of another model stops everything before a byte is written), build model,
optimizer, center loss and step counter under `strategy.scope()`, resume from the latest
checkpoint, train in loops of `steps_per_loop` steps per tf.function call, evaluate every test
example exactly once, export, and write `metrics.json`.
"""
import contextlib
import math
import os
import time

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from tfmodels import data, nets, porting
from tfmodels.evaluation.metrics import classification_metrics
from tfmodels.evaluation.predict import collect_outputs
from tfmodels.layers import CenterLoss
from tfmodels.training import checkpoints, export, optimizers, schedules
from tfmodels.training import strategy as strategy_lib
from tfmodels.training.progress import Progress
from tfmodels.training.step import TrainStep, per_example_loss_fn

_POLICIES = {"none": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}


class NonFiniteLossError(RuntimeError):
    """The training loss became inf or NaN; the last good checkpoint is kept."""


class ConfigError(ValueError):
    """Bad input found before any work started (nothing was written)."""


def train(config, strategy=None):
    """Train as `config` (a `TrainConfig`) says and return the final metrics (a dict).

    `strategy`: an existing strategy to use instead of creating one from the config's
    strategy options (which are then ignored).

    Raises:
      ConfigError: bad input, before any work (unknown model/dataset/optimizer, batch not
        divisible by replicas, too many GPUs, model_dir holding another model, ...).
      data.DatasetUnavailableError: the dataset is not prepared and cannot be downloaded.
      NonFiniteLossError: the loss became inf/NaN (the last good checkpoint is kept).
    """
    try:
        config.validate()
        if strategy is None:
            strategy_lib.configure_devices(config.virtual_devices)
            strategy = strategy_lib.create_strategy(
                config.strategy, num_gpus=config.num_gpus, all_reduce=config.all_reduce)
        info = data.get_dataset_info(config.dataset, data_dir=config.data_dir)
        resolved = config.resolve(info, strategy.num_replicas_in_sync)
        resume_from = checkpoints.check_model_dir(config.model_dir, resolved)
        init_from = None
        if config.init_checkpoint and not resume_from:  # model_dir > init_checkpoint > scratch
            init_from, _ = porting.resolve_checkpoint(config.init_checkpoint)
    except ValueError as err:
        if isinstance(err, ConfigError):
            raise
        raise ConfigError(str(err)) from err
    chief = strategy_lib.is_chief(strategy)
    _log_start(resolved, strategy)

    keras.mixed_precision.set_dtype_policy(_POLICIES[config.mixed_precision])
    keras.utils.set_random_seed(config.seed)
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()

    parts = build_training(config, info, strategy, resolved["total_steps"], init_from=init_from)
    train_data = data.distribute_dataset(
        strategy, config.dataset, info.train_split, global_batch_size=config.global_batch_size,
        training=True, augment=config.augment, seed=config.seed,
        deterministic=config.deterministic, data_dir=config.data_dir)
    iterator = iter(train_data)
    checkpoint = tf.train.Checkpoint(input=iterator, **parts.trackables())
    saver = checkpoints.CheckpointSaver(checkpoint, config.model_dir,
                                        keep=config.keep_checkpoints, is_chief=chief,
                                        step_counter=parts.step_counter)
    try:
        if resume_from:
            saver.restore(resume_from)
            logging.info("resuming from step %d (%s)", int(parts.step_counter.numpy()),
                         resume_from)
        elif not init_from:
            logging.info("training from scratch")
        if chief:
            checkpoints.write_json_atomic(
                os.path.join(config.model_dir, checkpoints.CONFIG_FILE), resolved)
        train_metrics = _train_loop(config, resolved, strategy, parts, iterator, saver, chief)
        metrics = _final_metrics(config, resolved, info, strategy, parts, train_metrics)
        if config.export:
            with parts.averaged_weights():
                export.export(parts.model, info, config.model_dir, is_chief=chief)
        if chief:
            checkpoints.write_json_atomic(
                os.path.join(config.model_dir, checkpoints.METRICS_FILE), metrics)
        return metrics
    finally:
        saver.close()


class TrainingParts:
    """What lives under strategy.scope(): model, optimizer, centers, counters, averages."""

    def __init__(self, **kwargs):
        self.__dict__.update(kwargs)

    def trackables(self):
        found = dict(model=self.model, optimizer=self.optimizer, step=self.step_counter)
        # Random-number states (dropout's SeedGenerator) are model variables outside `weights`
        # that TensorFlow's object-graph checkpoint does not reach: save them explicitly so a
        # resumed run draws the same masks.
        weights = {id(v) for v in self.model.weights}
        states = [v.value for v in self.model.variables if id(v) not in weights]
        if states:
            found["random_states"] = states
        for name in ("center_loss", "weight_average", "loss_scale"):
            if getattr(self, name) is not None:
                found[name] = getattr(self, name)
        return found

    def averaged_weights(self):
        """Context in which the model holds its EMA weights (a no-op without EMA)."""
        if self.weight_average is None:
            return contextlib.nullcontext()
        return self.weight_average.swapped()


def build_training(config, info, strategy, total_steps, init_from=None):
    """Model, center loss, optimizer (built), step counter, EMA and loss scale, all created
    under `strategy.scope()`, for a dataset described by `info` (classes, image shape).

    `init_from`: a TF1 or TF2 checkpoint to initialise the model from (strict, with the
    config's exclude scopes; see tfmodels.porting) before anything else reads its weights.
    """
    with strategy.scope():
        model = nets.build_model(
            config.model, info.num_classes, info.image_shape,
            weight_decay=0.0 if config.decoupled_weight_decay else config.weight_decay,
            sync_batch_norm=config.sync_bn)
        if init_from:
            try:
                mapping = porting.load_checkpoint(
                    model, init_from, exclude_scopes=config.checkpoint_exclude_scopes,
                    use_ema=config.init_checkpoint_use_ema)
            except ValueError as err:  # PortingError: nothing was assigned or written
                raise ConfigError(str(err)) from err
            logging.info("initialised from %s\n%s", init_from, mapping.report())
        try:
            train_variables = porting.trainable_variables(model, config.trainable_scopes)
        except ValueError as err:
            raise ConfigError(str(err)) from err
        center_loss = None
        if config.center_loss_weight > 0:
            center_loss = CenterLoss(info.num_classes, model.output["embedding"].shape[-1],
                                     alpha=config.center_alpha)
        schedule = schedules.WarmupSchedule(
            config.lr_schedule, config.learning_rate, total_steps,
            warmup_steps=config.warmup_steps, boundaries=config.lr_boundaries,
            decay_factor=config.lr_decay_factor)
        optimizer = optimizers.create_optimizer(
            config.optimizer, schedule, momentum=config.momentum, nesterov=config.nesterov,
            weight_decay=config.weight_decay if config.decoupled_weight_decay else 0.0)
        if config.decoupled_weight_decay and config.weight_decay:
            optimizers.exclude_from_weight_decay(optimizer, train_variables)
        optimizer.build(train_variables)
        step_counter = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step",
                                   aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
        weight_average = (optimizers.WeightAverage(model.trainable_variables, config.ema_decay)
                          if config.ema_decay else None)
        loss_scale = (optimizers.DynamicLossScale() if config.mixed_precision == "float16"
                      else None)
    _check_xla_sync_batch_norm(config, strategy, model)
    return TrainingParts(model=model, train_variables=train_variables,
                         center_loss=center_loss, optimizer=optimizer,
                  schedule=schedule, step_counter=step_counter, weight_average=weight_average,
                  loss_scale=loss_scale,
                  loss_fn=per_example_loss_fn(config.loss, config.label_smoothing))


def _check_xla_sync_batch_norm(config, strategy, model):
    """XLA cannot hold a cross-replica sum except on GPUs (TF skips merge_call only there)."""
    if not config.jit_compile or strategy.num_replicas_in_sync == 1:
        return
    devices = strategy.extended.worker_devices
    if all("GPU" in d.upper() for d in devices):
        return
    synced = [layer.name for layer in _all_layers(model)
              if isinstance(layer, keras.layers.BatchNormalization) and layer.synchronized]
    if synced:
        raise ConfigError(
            f"jit_compile with synchronized batch norm ({len(synced)} layers of {config.model}) "
            f"needs GPUs; these replicas run on {', '.join(devices)}. Use --nojit_compile or "
            "--nosync_bn.")


def _all_layers(layer):
    for sub in getattr(layer, "_layers", None) or ():
        yield sub
        yield from _all_layers(sub)


def make_train_step(config, strategy, parts, iterator):
    """The replicated step of `config` over `parts`, drawing batches from `iterator`."""
    return TrainStep(
        strategy, model=parts.model, variables=parts.train_variables,
        optimizer=parts.optimizer, loss_fn=parts.loss_fn,
        global_batch_size=config.global_batch_size, step_counter=parts.step_counter,
        iterator=iterator, center_loss=parts.center_loss,
        center_loss_weight=config.center_loss_weight, clip_grad_norm=config.clip_grad_norm,
        loss_scale=parts.loss_scale, weight_average=parts.weight_average,
        jit_compile=config.jit_compile)


def _train_loop(config, resolved, strategy, parts, iterator, saver, chief):
    total = resolved["total_steps"]
    step = int(parts.step_counter.numpy())
    train_step = make_train_step(config, strategy, parts, iterator)
    writer = (tf.summary.create_file_writer(os.path.join(config.model_dir, "train")) if chief
              else tf.summary.create_noop_writer())
    progress = Progress(total, step, config.global_batch_size)
    timings, results, last_saved = [], {}, step  # (steps, seconds) of each loop
    while step < total:
        to_checkpoint = config.checkpoint_every - step % config.checkpoint_every
        num_steps = min(config.steps_per_loop, total - step, to_checkpoint)
        start = time.perf_counter()
        train_step.loop(tf.constant(num_steps, tf.int64))
        results = train_step.metrics.results()  # reading them waits for the loop to finish
        seconds = time.perf_counter() - start
        previous, step = step, step + num_steps
        if not math.isfinite(results["loss"]):
            raise NonFiniteLossError(
                f"the training loss became {results['loss']} between step {previous} and step "
                f"{step}; the last good checkpoint is {saver.manager.latest_checkpoint} "
                "(try a lower --learning_rate or --clip_grad_norm)")
        timings.append((num_steps, seconds))
        images_per_sec = num_steps * config.global_batch_size / seconds
        _write_summaries(writer, step, results, images_per_sec,
                         float(parts.schedule(parts.optimizer.iterations)))
        if step // config.log_every > previous // config.log_every or step >= total:
            progress.update(step, results, images_per_sec)
        train_step.metrics.reset()
        if step - last_saved >= config.checkpoint_every or step >= total:
            saver.save(step)
            last_saved = step
    writer.flush()
    timed = timings[1:] or timings  # the first loop also traces and compiles the step
    steps_run, seconds_run = sum(n for n, _ in timed), sum(t for _, t in timed)
    results["images_per_sec"] = (steps_run * config.global_batch_size / seconds_run
                                 if seconds_run else float("nan"))
    return results


def _write_summaries(writer, step, results, images_per_sec, learning_rate):
    with writer.as_default(step=step):
        for name, value in results.items():
            tf.summary.scalar(name, value)
        tf.summary.scalar("images_per_sec", images_per_sec)
        tf.summary.scalar("learning_rate", learning_rate)


def _final_metrics(config, resolved, info, strategy, parts, train_metrics):
    eval_data = data.distribute_dataset(
        strategy, config.dataset, info.eval_split, global_batch_size=config.global_batch_size,
        training=False, data_dir=config.data_dir)
    with parts.averaged_weights():
        outputs = collect_outputs(strategy, parts.model, eval_data, loss_fn=parts.loss_fn)
    scores = classification_metrics(outputs["label"], outputs["logits"], outputs["loss"])
    metrics = {
        "test_accuracy": scores["accuracy"], "test_loss": scores["loss"],
        "test_examples": scores["count"], "eval_split": info.eval_split,
        "steps": int(parts.step_counter.numpy()),
        "images_per_sec": train_metrics.get("images_per_sec", float("nan")),
        "train_loss": train_metrics.get("loss", float("nan")),
        "train_accuracy": train_metrics.get("accuracy", float("nan")),
        "num_replicas": resolved["num_replicas"],
        "global_batch_size": config.global_batch_size,
        "model": config.model, "dataset": config.dataset,
    }
    metrics.update({k: v for k, v in scores.items() if k.startswith("top_")})
    logging.info("final metrics: %s", {k: (round(v, 5) if isinstance(v, float) else v)
                                       for k, v in metrics.items()})
    return {k: (None if isinstance(v, float) and not np.isfinite(v) else v)
            for k, v in metrics.items()}


def _log_start(resolved, strategy):
    logging.info("config: %s", {k: resolved[k] for k in sorted(resolved)})
    logging.info("strategy: %s", strategy_lib.describe(strategy))
    logging.info("global batch %d = %d replica(s) x per-replica batch %d; %d steps "
                 "(%d per epoch)", resolved["global_batch_size"], resolved["num_replicas"],
                 resolved["per_replica_batch_size"], resolved["total_steps"],
                 resolved["steps_per_epoch"])
