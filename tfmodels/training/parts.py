"""What a run trains, created under `strategy.scope()`: `build_training(resolved, strategy)`.

The model (slim-style net from the registry), the variables the optimizer updates
(`trainable_scopes`), the center loss, the optimizer (built), the schedule, the step counter,
the weight averages, the float16 loss scale and the sampled head (`heads.py`, None for the
dense softmax), in one `TrainingParts` that the step and the checkpoint take whole.
"""
import contextlib
import dataclasses
from typing import Callable, List, Optional

import keras
import tensorflow as tf
from absl import logging

from tfmodels import losses, nets, porting, schedules
from tfmodels.averaging import WeightAverage
from tfmodels.layers import CenterLoss
from tfmodels.nets import class_matrix as class_matrix_lib
from tfmodels.training import heads, margins, optimizers
from tfmodels.options import UsageError


@dataclasses.dataclass
class TrainingParts:
    """The objects of a run (all created under the strategy's scope)."""
    model: keras.Model
    train_variables: List[tf.Variable]     # what the optimizer updates (trainable_scopes)
    optimizer: keras.optimizers.Optimizer
    schedule: schedules.WarmupSchedule
    step_counter: tf.Variable              # global steps done
    loss_fn: Callable                      # per-example data loss fn(labels, logits)
    center_loss: Optional[CenterLoss] = None
    weight_average: Optional[WeightAverage] = None
    loss_scale: Optional[optimizers.DynamicLossScale] = None
    head: Optional[heads.SampledSoftmaxHead] = None   # or PartialFCHead; None: dense softmax
    margin: Optional[margins.Margin] = None           # margin softmax (None: plain logits)
    class_kernel: Optional[tf.Variable] = None        # the logits layer's kernel, with a margin

    def trackables(self):
        """What a checkpoint of the run holds, by name (input position added by the trainer)."""
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


def build_training(resolved, strategy, init_from=None):
    """The `TrainingParts` of a `ResolvedConfig`, created under `strategy.scope()`.

    `init_from`: a TF1 or TF2 checkpoint to initialise the model from (strict, with the
    config's exclude scopes; see tfmodels.porting) before anything else reads its weights.

    Raises:
      ValueError: the checkpoint does not fill the model (the porting report), a trainable
        scope matches nothing, XLA is asked for synchronized batch norm off GPUs, or a sampled
        head or a margin for a net without a class matrix fed by its embedding.
    """
    config = resolved.config
    with strategy.scope():
        model = nets.build_model(
            config.model, resolved.num_classes, resolved.image_shape,
            weight_decay=0.0 if config.decoupled_weight_decay else config.weight_decay,
            sync_batch_norm=config.sync_bn)
        flags = config.porting_flags()  # the porting library's errors name train.py's flags
        if init_from:
            mapping = porting.load_checkpoint(
                model, init_from, exclude_scopes=config.checkpoint_exclude_scopes,
                use_ema=config.init_checkpoint_use_ema, ignore=config.init_checkpoint_ignore,
                strip_scope=config.init_checkpoint_strip_scope,
                overrides=config.init_checkpoint_overrides, flags=flags)
            logging.info("initialised from %s\n%s", init_from, mapping.report())
        train_variables = porting.trainable_variables(model, config.trainable_scopes, flags)
        if init_from:
            porting.check_fresh_not_frozen(mapping, model, train_variables,
                                           config.trainable_scopes, flags)
        if config.trainable_scopes or init_from:
            logging.info("%s", porting.describe_trainable(model, train_variables))
        center_loss = None
        if resolved.center_loss:
            center_loss = CenterLoss(resolved.num_classes, model.output["embedding"].shape[-1],
                                     alpha=config.center_alpha)
        schedule = schedules.WarmupSchedule(
            config.lr_schedule, config.learning_rate, resolved.total_steps,
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
        weight_average = (WeightAverage(model.trainable_variables, config.ema_decay)
                          if config.ema_decay else None)
        loss_scale = optimizers.DynamicLossScale() if resolved.loss_scaling else None
        loss_fn = losses.per_example_loss_fn(config.loss, config.label_smoothing)
        margin = config.margin_softmax()
        class_kernel = None
        if margin is not None:
            # The margin scores cosines with the logits layer's own kernel: checkpoints,
            # porting and evaluation see the same variables as without it.
            class_kernel = class_matrix_lib.class_matrix(
                model, purpose=f"--margin={config.margin}").kernel
        head = heads.build_head(config, model, optimizer, train_variables,
                                resolved.num_classes, loss_fn, margin=margin)
    _check_xla_sync_batch_norm(config, strategy, model)
    return TrainingParts(
        model=model, train_variables=train_variables, optimizer=optimizer, schedule=schedule,
        step_counter=step_counter, loss_fn=loss_fn, center_loss=center_loss,
        weight_average=weight_average, loss_scale=loss_scale, head=head, margin=margin,
        class_kernel=class_kernel)


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
        raise UsageError(
            f"--jit_compile with synchronized batch norm ({len(synced)} layers of {config.model}) "
            f"needs GPUs; these replicas run on {', '.join(devices)}. Use --nojit_compile or "
            "--nosync_bn.")


def _all_layers(layer):
    for sub in getattr(layer, "_layers", None) or ():
        yield sub
        yield from _all_layers(sub)
