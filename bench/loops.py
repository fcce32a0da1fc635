"""The training loops the benchmarks compare on one device: ours, a minimal loop, `model.fit`.

    fns = build_loops("resnet_v1_50", (224, 224, 3), batch=256, steps_per_loop=10,
                      mixed_precision="bfloat16", jit_compile=True, num_classes=1000)
    fns["ours"]()        # 10 training steps in one call; returns something to block on

Every loop trains its own copy of the same net (built from the registry with the same seed) on
the same synthetic batch, repeated so that input costs nothing but the copy to the device, with
the same recipe: cross-entropy + slim's L2 weight decay, SGD with momentum 0.9 at a constant
rate, `steps_per_loop` steps per call.

- `ours`: `tfmodels.training.step.TrainStep` as the trainer runs it (its checkpointable
  iterator, its metrics; with `jit_compile` XLA compiles each replica's forward and backward).
- `minimal`: a hand-written `tf.function` loop: forward, loss, gradient, apply, nothing else;
  with `jit_compile` XLA compiles the whole step, the update included. float16 scales the
  loss with Keras's `LossScaleOptimizer`.
- `model.fit`: a single-output Keras model over the same layers, `steps_per_execution` =
  `steps_per_loop`, `jit_compile` as given (Keras wraps float16 in `LossScaleOptimizer`).
- `ours, one_device`: ours under `OneDeviceStrategy` (`--strategy=one_device`), whose input
  prefetches each batch to the device; `--strategy=auto` on one device uses TensorFlow's default
  strategy (the `ours` row), whose batches stay in host memory until the step copies them.
- `minimal, batch on device`: the minimal loop reading the batch from tensors already on the
  device instead of a host iterator, to show what the host-to-device copy of each batch costs.
"""
import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

LOOPS = ("ours", "minimal", "model.fit")
ONE_DEVICE, DEVICE_BATCH = "ours, one_device", "minimal, batch on device"
ALL_LOOPS = LOOPS + (ONE_DEVICE, DEVICE_BATCH)
WEIGHT_DECAY, LEARNING_RATE, MOMENTUM = 1e-3, 0.01, 0.9
_POLICIES = {"none": "float32", "float32": "float32", "bfloat16": "mixed_bfloat16",
             "float16": "mixed_float16"}


def trainer_parts(model_name, image_shape, batch, *, strategy=None, num_classes=10,
                  mixed_precision="none", jit_compile=False):
    """Our trainer's `ResolvedConfig` and `TrainingParts` for a synthetic dataset of this
    shape, with the benchmarks' recipe, under `strategy` (None: TensorFlow's default
    strategy)."""
    import tensorflow as tf

    strategy = strategy or tf.distribute.get_strategy()
    from tfmodels import data
    from tfmodels.training import TrainConfig
    from tfmodels.training.parts import build_training

    info = data.DatasetInfo(name="bench", image_shape=tuple(image_shape),
                            num_classes=num_classes, splits={"train": batch * 1000})
    config = TrainConfig(
        model_dir="unused", model=model_name, global_batch_size=batch, train_steps=10_000,
        lr_schedule="constant", learning_rate=LEARNING_RATE, optimizer="momentum",
        momentum=MOMENTUM, label_smoothing=0.0, weight_decay=WEIGHT_DECAY,
        mixed_precision="none" if mixed_precision == "float32" else mixed_precision,
        jit_compile=jit_compile)
    resolved = config.resolve(info, strategy.num_replicas_in_sync)
    return resolved, build_training(resolved, strategy)


def synthetic_batch(image_shape, batch, num_classes=10):
    """One random batch {'image': float32 [B, H, W, C], 'label': int32 [B]} (NumPy)."""
    import numpy as np

    rng = np.random.default_rng(0)
    return {"image": rng.standard_normal((batch, *image_shape)).astype(np.float32),
            "label": rng.integers(0, num_classes, batch).astype(np.int32)}


def build_loops(model_name, image_shape, batch, steps_per_loop, *, num_classes=10,
                mixed_precision="none", jit_compile=False, loops=LOOPS):
    """Zero-argument callables, each running `steps_per_loop` training steps per call.

    Args:
      model_name: a registered net.
      image_shape: (H, W, C) of the synthetic images.
      batch: examples per step.
      steps_per_loop: steps per call (one tf.function call, or one `fit` of that many steps).
      num_classes: classes of the synthetic labels and the net's logits.
      mixed_precision: `none`/`float32`, `bfloat16` or `float16` (Keras mixed policies; the
        global policy is restored afterwards).
      jit_compile: XLA (see the module docstring for what each loop compiles).
      loops: which of `ALL_LOOPS` to build.

    Returns:
      dict name -> callable, in the order asked.
    """
    import keras
    import tensorflow as tf

    from tfmodels.data import ResumableIterator
    from tfmodels.training.step import TrainStep

    unknown = set(loops) - set(ALL_LOOPS)
    if unknown or mixed_precision not in _POLICIES:
        raise ValueError(f"loops={list(loops)} must be among {ALL_LOOPS} and mixed_precision="
                         f"{mixed_precision!r} one of {sorted(_POLICIES)}")
    arrays = synthetic_batch(image_shape, batch, num_classes)
    dataset = tf.data.Dataset.from_tensors(arrays).repeat()
    n = tf.constant(steps_per_loop, tf.int64)
    fns = {}
    previous = keras.mixed_precision.global_policy().name
    keras.mixed_precision.set_dtype_policy(_POLICIES[mixed_precision])
    try:
        for name in loops:
            keras.utils.set_random_seed(0)  # the same initial weights for every loop
            strategy = None
            if name == ONE_DEVICE:
                strategy = tf.distribute.OneDeviceStrategy(
                    "/gpu:0" if tf.config.list_logical_devices("GPU") else "/cpu:0")
            resolved, parts = trainer_parts(model_name, image_shape, batch, strategy=strategy,
                                          num_classes=num_classes,
                                          mixed_precision=mixed_precision,
                                          jit_compile=jit_compile)
            if name in ("ours", ONE_DEVICE):
                source = (dataset if strategy is None
                          else strategy.experimental_distribute_dataset(dataset))
                step = TrainStep(strategy or tf.distribute.get_strategy(), parts,
                                 ResumableIterator(lambda start, source=source: source), resolved)
                fns[name] = _bind(step.loop, n)
            elif name == "minimal":
                fns[name] = _bind(_minimal(parts.model, iter(dataset), mixed_precision,
                                           jit_compile), n)
            elif name == DEVICE_BATCH:
                on_device = {k: tf.identity(tf.constant(v)) for k, v in arrays.items()}
                fns[name] = _bind(_minimal(parts.model, None, mixed_precision, jit_compile,
                                           batch=on_device), n)
            else:
                fns[name] = _fit(parts.model, dataset, steps_per_loop, jit_compile)
    finally:
        keras.mixed_precision.set_dtype_policy(previous)
    return fns


def _bind(fn, n):
    return lambda: fn(n)


def _minimal(model, iterator, mixed_precision, jit_compile, batch=None):
    """forward, mean cross-entropy + regularization, gradient, apply; `batch` if not None,
    else `next(iterator)`."""
    import keras
    import tensorflow as tf

    optimizer = keras.optimizers.SGD(LEARNING_RATE, momentum=MOMENTUM)
    if mixed_precision == "float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    variables = model.trainable_variables
    optimizer.build(variables)

    def step(b):
        with tf.GradientTape() as tape:
            logits = tf.cast(model(b["image"], training=True)["logits"], tf.float32)
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
                b["label"], logits))
            if model.losses:
                loss += tf.add_n([tf.cast(l, tf.float32) for l in model.losses])
            if mixed_precision == "float16":
                loss = optimizer.scale_loss(loss)
        optimizer.apply(tape.gradient(loss, variables), variables)

    if jit_compile:
        step = tf.function(step, jit_compile=True)

    @tf.function
    def loop(num_steps):
        for _ in tf.range(num_steps):
            step(batch if batch is not None else next(iterator))
        return optimizer.iterations

    return loop


def _fit(model, dataset, steps_per_loop, jit_compile):
    import keras

    fit_model = keras.Model(model.input, model.output["logits"])
    fit_model.compile(optimizer=keras.optimizers.SGD(LEARNING_RATE, momentum=MOMENTUM),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      steps_per_execution=steps_per_loop, jit_compile=bool(jit_compile))
    fit_data = dataset.map(lambda b: (b["image"], b["label"]))

    def fit():
        fit_model.fit(fit_data, steps_per_epoch=steps_per_loop, epochs=1, verbose=0)

    return fit
