"""tf-slim-style builders making Keras 3 functional models: slim model code ports line by line.

    import tfmodels.slim.scopes as slim

    images = keras.Input((28, 28, 1))
    with keras.name_scope("LeNet"), slim.arg_scope([slim.conv2d], weights_regularizer=l2):
        net = slim.conv2d(images, 32, [5, 5], scope="conv1")    # LeNet/conv1/{kernel,bias}
        net = slim.max_pool2d(net, [2, 2], 2, scope="pool1")
        net = slim.conv2d(net, 64, 5, normalizer_fn=slim.batch_norm, scope="conv2")
        # -> LeNet/conv2/kernel, LeNet/conv2/BatchNorm/{beta,moving_mean,moving_variance}

Every builder is decorated with tf-slim's own `add_arg_scope`, takes a Keras tensor and returns
the Keras functional output; signatures follow slim. Variable paths mirror slim's names
(`weights`<->`kernel`, `biases`<->`bias`, see docs/NAMING.md): a builder creates ONE layer named
after `scope`, inside the `keras.name_scope`s that are active. `scope=None` lets Keras pick a
unique name (slim would say `Conv`, `Conv_1`, ...): pass `scope` for stable paths.

Layer builders. `batch_norm` and `prelu` called with `inputs=None` return their (unbuilt) Keras
layer instead of applying it. `conv2d` / `fully_connected` build `normalizer_fn` /
`activation_fn` that way, as sublayers named `BatchNorm` / `PReLU`: the call goes through the
arg_scope decorator, so `arg_scope([batch_norm], synchronized=True)` reaches every BN made by
`conv2d(normalizer_fn=batch_norm)`, and explicit `normalizer_params` keys win over it.

`scope` may hold '/' as in slim (`scope='block2/conv'`: layer `conv` under name scope
`block2`), and one leaf name may repeat under different scopes (`block1/conv`, `block2/conv`):
the layer is renamed after it is built, its variable paths stay slim's
(`tfmodels.slim.layer_names`).
A second layer with variables at the very same path is refused, as slim refused it.
Blocks built several times can also be nested functional models (`nested_model`).

`is_training=None` (the default everywhere) follows the `training` argument of the model call;
True/False pins the mode inside the layer like slim. Channels-last only.
"""
import inspect

import keras
import tensorflow as tf
import tf_slim

from tfmodels.slim import layer_names
from tfmodels.slim import layers as slim_layers
from tfmodels.slim import separable as slim_separable
from tfmodels.layers.dropout import Dropout
from tfmodels.slim.depthwise import SlimDepthwiseConv2D

add_arg_scope = tf_slim.add_arg_scope
has_arg_scope = tf_slim.has_arg_scope

# arg_scope key of a layer builder -> default sublayer name when used as normalizer/activation.
_LAYER_BUILDERS = {}


def _op_name(op):
    return f"{getattr(op, '__module__', '?')}.{getattr(op, '__name__', repr(op))}"


def arg_scope(list_ops_or_scope, **kwargs):
    """`tf_slim.arg_scope` with clear errors; the scopes it makes are tf-slim's own.

    Nested scopes merge, the inner one overrides the outer one, and keyword arguments given
    explicitly to a builder win over both.

    Args:
      list_ops_or_scope: list/tuple of builders decorated with `add_arg_scope`, or a scope dict
        returned by an earlier `arg_scope` (e.g. `lenet_arg_scope()`), re-entered as is.
      **kwargs: default keyword arguments for those builders.

    Returns:
      A context manager yielding the current scope dict.

    Raises:
      ValueError: an op is not decorated with `add_arg_scope`, or does not take a keyword.
    """
    if isinstance(list_ops_or_scope, (list, tuple)):
        for op in list_ops_or_scope:
            if not has_arg_scope(op):
                raise ValueError(
                    f"{_op_name(op)} is not decorated with @tf_slim.add_arg_scope, so "
                    "arg_scope cannot set its defaults; decorate it or pass the arguments")
            parameters = inspect.signature(op).parameters
            if any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
                continue
            unknown = sorted(set(kwargs) - set(parameters))
            if unknown:
                raise ValueError(f"arg_scope sets {unknown}, which {_op_name(op)} does not "
                                 f"take; it takes {sorted(parameters)}")
    return tf_slim.arg_scope(list_ops_or_scope, **kwargs)


def _layer_builder(default_name):
    """`add_arg_scope` + registration as a builder that returns its layer for inputs=None."""
    def register(fn):
        decorated = add_arg_scope(fn)
        _LAYER_BUILDERS[tf_slim.arg_scope_func_key(decorated)] = default_name
        return decorated
    return register


def _sublayer(builder, params, role):
    """Makes `builder`'s layer (through its arg_scope) to live inside a conv/dense layer."""
    key = tf_slim.arg_scope_func_key(builder)
    if key not in _LAYER_BUILDERS:
        raise TypeError(
            f"{role}={_op_name(builder)} is not a tfmodels.slim.scopes layer builder; use "
            "tfmodels.slim.scopes.batch_norm / prelu (tf_slim's own ops build TF1 graphs, "
            "not Keras layers)")
    params = dict(params or {})
    params.setdefault("scope", _LAYER_BUILDERS[key])
    return builder(None, **params)


def _activation(activation_fn):
    """A plain function (tf.nn.relu, 'relu', None) stays; a layer builder becomes a sublayer."""
    if activation_fn is not None and tf_slim.arg_scope_func_key(activation_fn) in _LAYER_BUILDERS:
        return _sublayer(activation_fn, None, "activation_fn")
    return activation_fn


def _apply(make_layer, inputs, scope, builder):
    """The unbuilt layer for inputs=None (a sublayer, named by `scope`), else its outputs."""
    if inputs is not None:
        return layer_names.build_named(make_layer, inputs, scope)
    if scope is not None and "/" in scope:
        raise ValueError(f"{builder}(None, scope={scope!r}): a layer made to live inside "
                         "another one takes a plain name (its path nests under its owner)")
    return make_layer(scope)


@add_arg_scope
def conv2d(inputs, num_outputs, kernel_size, stride=1, padding="SAME", rate=1,
           activation_fn=tf.nn.relu, normalizer_fn=None, normalizer_params=None,
           weights_initializer="glorot_uniform", weights_regularizer=None,
           biases_initializer="zeros", biases_regularizer=None, trainable=True, scope=None):
    """slim's conv2d: convolution, then bias or normalizer, then activation.

    Args:
      inputs: Keras tensor [N, H, W, C].
      num_outputs: number of filters.
      kernel_size: int or [kh, kw].
      stride: int or [sh, sw].
      padding: 'SAME', 'VALID', or explicit `[[0, 0], [top, bottom], [left, right], [0, 0]]`.
      rate: dilation rate (stride must then be 1).
      activation_fn: function (default relu, like slim), None, or a layer builder (`prelu`).
      normalizer_fn: None or a layer builder (`batch_norm`); replaces the bias like in slim.
      normalizer_params: keyword arguments for `normalizer_fn`; they win over its arg_scope.
      weights_initializer, biases_initializer: Keras initializers; biases_initializer=None
        means no bias.
      weights_regularizer, biases_regularizer: Keras regularizers (e.g.
        `tfmodels.slim.regularizers.l2_regularizer(wd)`), collected by `model.losses`.
      trainable: False freezes the variables (a frozen normalizer then uses its moving
        statistics, the Keras convention).
      scope: layer name, i.e. the last name-scope component of its variable paths.

    Returns:
      The Keras tensor [N, H', W', num_outputs].
    """
    return layer_names.build_named(lambda name: slim_layers.SlimConv2D(
        num_outputs, kernel_size, strides=stride, padding=padding, dilation_rate=rate,
        use_bias=biases_initializer is not None, kernel_initializer=weights_initializer,
        bias_initializer=biases_initializer or "zeros", kernel_regularizer=weights_regularizer,
        bias_regularizer=biases_regularizer,
        normalizer=None if normalizer_fn is None else _sublayer(
            normalizer_fn, normalizer_params, "normalizer_fn"),
        activation=_activation(activation_fn), trainable=trainable, name=name), inputs, scope)


@add_arg_scope
def separable_conv2d(inputs, num_outputs, kernel_size, depth_multiplier=1, stride=1,
                     padding="SAME", rate=1, activation_fn=tf.nn.relu, normalizer_fn=None,
                     normalizer_params=None, weights_initializer="glorot_uniform",
                     pointwise_initializer=None, weights_regularizer=None,
                     biases_initializer="zeros", biases_regularizer=None, trainable=True,
                     scope=None):
    """slim's separable_conv2d: depthwise convolution, then (unless num_outputs is None) a 1x1
    pointwise one, then bias or normalizer, then activation.

    Args:
      inputs: Keras tensor [N, H, W, C].
      num_outputs: pointwise filters, or None for the depthwise convolution alone (C *
        depth_multiplier outputs; slim's MobileNet `Conv2d_N_depthwise`).
      kernel_size: int or [kh, kw] of the depthwise kernel.
      depth_multiplier: depthwise outputs per input channel.
      stride, rate: int or pairs; a stride > 1 needs rate 1.
      padding: 'SAME' or 'VALID'.
      pointwise_initializer: initializer of the pointwise kernel; None uses
        `weights_initializer` (slim's).
      weights_regularizer: applies to both kernels (slim's).
      Other arguments as `conv2d`. Variables: `<scope>/depthwise_kernel` [kh, kw, C, mult],
      `<scope>/pointwise_kernel` [1, 1, C * mult, num_outputs], `<scope>/bias` or
      `<scope>/BatchNorm/*` (slim: `depthwise_weights`, `pointwise_weights`, `biases`).

    Returns:
      The Keras tensor [N, H', W', num_outputs or C * depth_multiplier].
    """
    return layer_names.build_named(lambda name: slim_separable.SlimSeparableConv2D(
        num_outputs, kernel_size, depth_multiplier=depth_multiplier, strides=stride,
        padding=padding, dilation_rate=rate, use_bias=biases_initializer is not None,
        kernel_initializer=weights_initializer, pointwise_initializer=pointwise_initializer,
        bias_initializer=biases_initializer or "zeros", kernel_regularizer=weights_regularizer,
        bias_regularizer=biases_regularizer,
        normalizer=None if normalizer_fn is None else _sublayer(
            normalizer_fn, normalizer_params, "normalizer_fn"),
        activation=_activation(activation_fn), trainable=trainable, name=name), inputs, scope)


@add_arg_scope
def fully_connected(inputs, num_outputs, activation_fn=tf.nn.relu, normalizer_fn=None,
                    normalizer_params=None, weights_initializer="glorot_uniform",
                    weights_regularizer=None, biases_initializer="zeros",
                    biases_regularizer=None, trainable=True, scope=None):
    """slim's fully_connected on the last axis; arguments as in `conv2d`.

    Returns:
      The Keras tensor [..., num_outputs].
    """
    return layer_names.build_named(lambda name: slim_layers.SlimDense(
        num_outputs, use_bias=biases_initializer is not None,
        kernel_initializer=weights_initializer, bias_initializer=biases_initializer or "zeros",
        kernel_regularizer=weights_regularizer, bias_regularizer=biases_regularizer,
        normalizer=None if normalizer_fn is None else _sublayer(
            normalizer_fn, normalizer_params, "normalizer_fn"),
        activation=_activation(activation_fn), trainable=trainable, name=name), inputs, scope)


def conv2d_same(inputs, num_outputs, kernel_size, stride, rate=1, scope=None, **kwargs):
    """ResNet's strided 'SAME' convolution (slim `resnet_utils.conv2d_same`).

    stride 1: `conv2d(padding='SAME')`. stride > 1: symmetric zero padding of
    (k_eff - 1) // 2 before and the rest after (k_eff = k + (k - 1)(rate - 1)), then VALID,
    which is NOT what 'SAME' does for even inputs (TF pads the extra pixel after). Not itself
    arg_scope'd (like slim); it calls `conv2d`, so conv2d's arg_scope applies.

    Args:
      inputs, num_outputs, kernel_size (int), stride (int), rate, scope: as in `conv2d`.
      **kwargs: more `conv2d` arguments (e.g. activation_fn=None).

    Returns:
      The Keras tensor [N, ceil(H / stride), ceil(W / stride), num_outputs].
    """
    if stride == 1:
        return conv2d(inputs, num_outputs, kernel_size, stride=1, rate=rate, padding="SAME",
                      scope=scope, **kwargs)
    pad_total = kernel_size + (kernel_size - 1) * (rate - 1) - 1
    pad_begin, pad_end = pad_total // 2, pad_total - pad_total // 2
    padding = [[0, 0], [pad_begin, pad_end], [pad_begin, pad_end], [0, 0]]
    return conv2d(inputs, num_outputs, kernel_size, stride=stride, rate=rate, padding=padding,
                  scope=scope, **kwargs)


def _pool_args(kernel_size, stride, padding):
    pair = (lambda v: (v, v) if isinstance(v, int) else tuple(v))
    return dict(pool_size=pair(kernel_size), strides=pair(stride), padding=padding.lower())


@add_arg_scope
def max_pool2d(inputs, kernel_size, stride=2, padding="VALID", scope=None):
    """slim's max_pool2d (note slim's defaults: stride 2, 'VALID'). Returns the Keras tensor."""
    return layer_names.build_named(lambda name: keras.layers.MaxPooling2D(
        **_pool_args(kernel_size, stride, padding), name=name), inputs, scope, False)


@add_arg_scope
def avg_pool2d(inputs, kernel_size, stride=2, padding="VALID", scope=None):
    """slim's avg_pool2d; 'SAME' averages over the valid pixels only, as `tf.nn.avg_pool`."""
    return layer_names.build_named(lambda name: keras.layers.AveragePooling2D(
        **_pool_args(kernel_size, stride, padding), name=name), inputs, scope, False)


@add_arg_scope
def global_avg_pool2d(inputs, keepdims=True, scope=None):
    """Mean over H and W (slim nets: `tf.reduce_mean(net, [1, 2], keepdims=True, name='pool5')`).

    Returns:
      [N, 1, 1, C] if keepdims else [N, C].
    """
    return layer_names.build_named(lambda name: keras.layers.GlobalAveragePooling2D(
        keepdims=keepdims, name=name), inputs, scope, False)


@add_arg_scope
def flatten(inputs, scope=None):
    """slim's flatten: [N, ...] -> [N, prod(...)] in row-major (channels-last) order."""
    return layer_names.build_named(lambda name: keras.layers.Flatten(name=name), inputs, scope,
                                   False)


@add_arg_scope
def dropout(inputs, keep_prob=0.5, noise_shape=None, is_training=None, seed=None, scope=None):
    """slim's dropout: keeps each unit with probability keep_prob and scales it by 1/keep_prob.

    Args:
      is_training: None follows the model call's `training`; True always drops; False returns
        `inputs` unchanged (like slim).

    Returns:
      The Keras tensor, shaped like `inputs`.
    """
    if not 0.0 < keep_prob <= 1.0:
        raise ValueError(f"keep_prob={keep_prob} must be in (0, 1]")
    if is_training is False or keep_prob == 1.0:
        return inputs
    return layer_names.build_named(lambda name: Dropout(
        1.0 - keep_prob, noise_shape=noise_shape, seed=seed, is_training=is_training,
        name=name), inputs, scope, False)


@_layer_builder("BatchNorm")
def batch_norm(inputs, decay=0.999, center=True, scale=False, epsilon=0.001,
               activation_fn=None, param_initializers=None, param_regularizers=None,
               updates_collections=None, is_training=None, trainable=True,
               synchronized=False, scope=None, *, reuse=None, variables_collections=None,
               outputs_collections=None, fused=None, data_format="NHWC",
               zero_debias_moving_mean=False, batch_weights=None, renorm=False,
               renorm_clipping=None, renorm_decay=0.99, adjustment=None):
    """slim's batch_norm (slim's defaults: no gamma, decay 0.999, epsilon 1e-3).

    y = gamma * (x - mean) / sqrt(var + epsilon) + beta over all axes but the last; batch
    statistics in training, else the moving ones, updated as m <- decay * m + (1 - decay) * b.

    Args:
      inputs: Keras tensor, or None to get the unbuilt `BatchNorm` layer (normalizer_fn use).
      decay: Keras `momentum`.
      center, scale: create beta / gamma.
      activation_fn: function without weights applied after normalisation.
      param_initializers: dict with keys among beta, gamma, moving_mean, moving_variance.
      param_regularizers: dict with keys among beta, gamma.
      updates_collections: ignored; accepted so slim's `batch_norm_params` port unchanged
        (Keras updates the moving statistics inside the training call).
      is_training: None follows the model call; True/False pins batch/moving statistics.
      trainable: False freezes beta/gamma and (Keras) normalises with the moving statistics.
      synchronized: batch statistics over all replicas (multi-GPU training must set this,
        through `arg_scope([batch_norm], synchronized=True)`).
      scope: layer name (`BatchNorm` when used as a normalizer).
      reuse, variables_collections, outputs_collections, fused, data_format,
      zero_debias_moving_mean, batch_weights, renorm, renorm_clipping, renorm_decay,
      adjustment: slim's other arguments, accepted so that slim's `batch_norm_params` as
        written (e.g. inception_v3_arg_scope's `variables_collections`, `fused`) port
        unchanged. TF1 collections and the choice of kernel (`fused`) do not change the
        result here; settings that would (`data_format='NCHW'`, `zero_debias_moving_mean`,
        `batch_weights`, `renorm`, `adjustment`, `reuse=True`) are refused.

    Returns:
      The Keras tensor, or the layer when `inputs` is None.
    """
    del updates_collections, variables_collections, outputs_collections, fused, renorm_decay
    unsupported = {"reuse": (reuse, (None, False)), "data_format": (data_format, ("NHWC",)),
                   "zero_debias_moving_mean": (zero_debias_moving_mean, (False,)),
                   "batch_weights": (batch_weights, (None,)), "renorm": (renorm, (False,)),
                   "renorm_clipping": (renorm_clipping, (None,)),
                   "adjustment": (adjustment, (None,))}
    for name, (value, allowed) in unsupported.items():
        if not any(value is a or (isinstance(a, str) and value == a) for a in allowed):
            raise ValueError(f"batch_norm({name}={value!r}) is not supported: allowed "
                             f"{' or '.join(map(repr, allowed))} (tfmodels' BatchNorm is "
                             "channels-last Keras BatchNormalization without renorm/debias)")
    initializers = dict(param_initializers or {})
    regularizers = dict(param_regularizers or {})
    unknown = (set(initializers) - {"beta", "gamma", "moving_mean", "moving_variance"}) | (
        set(regularizers) - {"beta", "gamma"})
    if unknown:
        raise ValueError(f"unknown batch_norm parameter names {sorted(unknown)}")
    return _apply(lambda name: slim_layers.BatchNorm(
        is_training=is_training, activation=activation_fn, momentum=decay, epsilon=epsilon,
        center=center, scale=scale, synchronized=synchronized, trainable=trainable, name=name,
        **{f"{key}_initializer": value for key, value in initializers.items()},
        **{f"{key}_regularizer": value for key, value in regularizers.items()}),
        inputs, scope, "batch_norm")


@_layer_builder("PReLU")
def prelu(inputs, alpha_initializer=0.25, alpha_regularizer=None, channel_shared=False,
          trainable=True, scope=None):
    """Parametric ReLU max(0, x) + alpha * min(0, x), one alpha per channel (He et al. 2015).

    Args:
      inputs: Keras tensor, or None to get the unbuilt layer (activation_fn=prelu use, where
        it is named `PReLU`: variable `<conv scope>/PReLU/alpha`).
      alpha_initializer: number or Keras initializer (0.25 as in the paper and Caffe).
      alpha_regularizer: Keras regularizer (none: Caffe and the center-loss nets do not decay
        alpha).
      channel_shared: one scalar alpha instead of one per channel.
      trainable: False freezes alpha.
      scope: layer name; standalone, the variable is `<scope>/alpha`.

    Returns:
      The Keras tensor, or the layer when `inputs` is None.
    """
    return _apply(lambda name: slim_layers.PReLU(
        alpha_initializer, alpha_regularizer, channel_shared, trainable=trainable, name=name),
        inputs, scope, "prelu")


@add_arg_scope
def lrn(inputs, depth_radius=5, bias=1.0, alpha=1.0, beta=0.5, scope=None):
    """`tf.nn.lrn` as a layer (defaults are tf.nn.lrn's). Returns the Keras tensor."""
    return layer_names.build_named(lambda name: slim_layers.LocalResponseNormalization(
        depth_radius, bias, alpha, beta, name=name), inputs, scope, False)


@add_arg_scope
def depthwise_conv2d(inputs, kernel_size, depth_multiplier=1, stride=1, padding="SAME", rate=1,
                     activation_fn=tf.nn.relu, normalizer_fn=None, normalizer_params=None,
                     weights_initializer="glorot_uniform", weights_regularizer=None,
                     biases_initializer="zeros", biases_regularizer=None, trainable=True,
                     scope=None):
    """slim's depthwise-only `separable_conv2d(inputs, None, kernel_size, ...)` (MobileNets).

    One filter bank per input channel: output channel c * depth_multiplier + m convolves
    input channel c only. Then bias or normalizer, then activation, as `conv2d`. The kernel is
    `S/depthwise_kernel` [kh, kw, C, depth_multiplier] (slim's `S/depthwise_weights`).

    Args:
      inputs: Keras tensor [N, H, W, C].
      kernel_size: int or [kh, kw].
      depth_multiplier: outputs per input channel.
      stride, padding, rate, activation_fn, normalizer_fn, normalizer_params,
      weights_initializer, weights_regularizer, biases_initializer, biases_regularizer,
      trainable, scope: as in `conv2d` (MobileNets leave the depthwise kernel undecayed).

    Returns:
      The Keras tensor [N, H', W', C * depth_multiplier].
    """
    return layer_names.build_named(lambda name: SlimDepthwiseConv2D(
        kernel_size, depth_multiplier, strides=stride, padding=padding, dilation_rate=rate,
        use_bias=biases_initializer is not None, kernel_initializer=weights_initializer,
        bias_initializer=biases_initializer or "zeros", kernel_regularizer=weights_regularizer,
        bias_regularizer=biases_regularizer,
        normalizer=None if normalizer_fn is None else _sublayer(
            normalizer_fn, normalizer_params, "normalizer_fn"),
        activation=_activation(activation_fn), trainable=trainable, name=name), inputs, scope)


def subsample(inputs, factor, scope=None):
    """slim resnet_utils' subsample: identity for factor 1, else a 1x1 max pool of stride factor."""
    if factor == 1:
        return inputs
    return max_pool2d(inputs, [1, 1], stride=factor, scope=scope)


def repeat(inputs, repetitions, layer, *args, **kwargs):
    """slim's repeat: `layer` applied `repetitions` times, scoped `scope/scope_1`, `scope/scope_2`.

    E.g. `repeat(net, 2, conv2d, 64, [3, 3], scope='conv1')` gives VGG's
    `conv1/conv1_1/kernel`, `conv1/conv1_2/kernel`. Without `scope`, Keras names the layers.
    As in slim, `scope='a/b'` gives `a/b/a/b_1/...` (the layers' scopes repeat the argument).

    Returns:
      The Keras tensor after the last repetition.
    """
    scope = kwargs.pop("scope", None)
    if scope is None:
        for _ in range(repetitions):
            inputs = layer(inputs, *args, **kwargs)
        return inputs
    outer, leaf = layer_names.split_scope(scope)
    with layer_names.name_scopes(outer + (leaf,)):
        for i in range(repetitions):
            inputs = layer(inputs, *args, scope=f"{scope}_{i + 1}", **kwargs)
    return inputs


def nested_model(fn, inputs, scope, **kwargs):
    """Builds `fn(x, **kwargs)` as a functional sub-model named `scope` and applies it to `inputs`.

    For slim scopes that repeat (ResNet's `block1/unit_1/...`): layer names need only be
    unique inside each sub-model, and variable paths still nest (`block1/unit_1/conv1/kernel`),
    because Keras takes paths from the name scopes active when a layer is built. The sub-model
    passes the outer call's `training` on to its layers.

    Repeated leaf names under different scopes need no sub-model (see `tfmodels.slim.layer_names`);
    it remains the way to build one block several times.

    Args:
      fn: function of a Keras tensor returning a Keras tensor (or a structure of them).
      inputs: the Keras tensor to apply the sub-model to.
      scope: the sub-model's name scope; its last component names the sub-model
        ('block2/unit_1': a model `unit_1` under name scope `block2`).
      **kwargs: more arguments for `fn`.

    Returns:
      The sub-model's output on `inputs`.
    """
    outer, leaf = layer_names.split_scope(scope)
    sub_inputs = keras.Input(shape=inputs.shape[1:], dtype=inputs.dtype)
    with layer_names.name_scopes(outer):
        name = layer_names.claim(leaf, True, scope)
        with layer_names.nested_root(leaf):
            outputs = fn(sub_inputs, **kwargs)
    model = keras.Model(sub_inputs, outputs, name=name)
    return model(inputs)
