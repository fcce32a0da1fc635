"""The nets registry: name -> builder, arg scope, image sizes; and `build_model`.

    model = build_model("lenet", num_classes=10, input_shape=(28, 28, 1), weight_decay=5e-4)
    outputs = model(images, training=True)   # {'logits': [N, 10], 'embedding': [N, 1024]}
    regularization = tf.add_n(model.losses)  # wd * sum(w**2) / 2 over the decayed kernels

Every builder follows slim's contract `net(images, num_classes, is_training, scope=...) ->
(logits, end_points)` with `end_points['embedding']` (the features a center loss uses) and has a
matching `<net>_arg_scope(weight_decay=...)`.

Nets outside the registry are named `package.module:function` wherever a net name is taken
(`get_net`, `build_model`, config.json's `model`); see `tfmodels.nets.custom`.
"""
import dataclasses
import inspect
import numbers
from typing import Callable, Optional, Union

import keras

from tfmodels.slim import scopes
from tfmodels.nets import (cifarnet, custom, lenet, linear, mobilenet_v1, mobilenet_v2,
                           resnet_cifar, resnet_v1, resnet_v2, small_cnn, ufldl_cnn, vgg, vit)
from tfmodels.nets import alexnet, inception_v1, inception_v2, inception_v3, overfeat
from tfmodels.options import UsageError, check_int, is_int


@dataclasses.dataclass(frozen=True)
class NetSpec:
    """A registered net.

    Attributes:
      name: registry key, or `package.module:function` for a net outside the registry.
      fn: `fn(images, num_classes, is_training, **kwargs) -> (logits, end_points)`.
      arg_scope: `arg_scope(weight_decay=...) -> scope dict` to build `fn` under.
      default_image_size: the size the net was designed for (height = width); None when a
        net outside the registry does not say (its image size must then be given).
      min_image_size: smallest height/width its layout allows, or a function of the net's
        keyword arguments returning it.
      max_image_size: largest height/width, None for no limit, or a function of the net's
        keyword arguments returning either.
      description: one line for listings.
    """
    name: str
    fn: Callable
    arg_scope: Callable[..., dict]
    default_image_size: Optional[int]
    min_image_size: Union[int, Callable[..., int]] = 1
    max_image_size: Union[None, int, Callable[..., Optional[int]]] = None
    description: str = ""

    @property
    def scope(self):
        """The default name scope of the net's variables (e.g. 'LeNet'), the model's name."""
        return inspect.signature(self.fn).parameters["scope"].default

    def image_size_limits(self, **net_kwargs):
        """(min, max) height/width for these net arguments; max None means unbounded."""
        low = self.min_image_size
        if callable(low):
            low = low(**net_kwargs)
        high = self.max_image_size
        if callable(high):
            high = high(**net_kwargs)
        return low, high


_SPECS = [
    NetSpec("softmax_regression", linear.softmax_regression,
            linear.softmax_regression_arg_scope, 28,
            description="UFLDL softmax regression: one affine layer"),
    NetSpec("two_layer_net", linear.two_layer_net, linear.two_layer_net_arg_scope, 32,
            description="CS231n affine-ReLU-affine"),
    NetSpec("ufldl_cnn", ufldl_cnn.ufldl_cnn, ufldl_cnn.ufldl_cnn_arg_scope, 28,
            min_image_size=ufldl_cnn.min_image_size,
            description="UFLDL conv -> mean/max pool -> softmax"),
    NetSpec("small_cnn", small_cnn.small_cnn, small_cnn.small_cnn_arg_scope, 8,
            min_image_size=4,
            description="VGG-style 3x3 convs for small images (the digits default)"),
    NetSpec("lenet", lenet.lenet, lenet.lenet_arg_scope, 28, min_image_size=4,
            description="tf-slim's LeNet"),
    NetSpec("lenet_pp", lenet.lenet_pp, lenet.lenet_pp_arg_scope, 28,
            description="LeNets++ (Wen et al. 2016) with a 2-D PReLU embedding"),
    NetSpec("cifarnet", cifarnet.cifarnet, cifarnet.cifarnet_arg_scope, 32, min_image_size=4,
            description="tf-slim's CifarNet"),
    NetSpec("resnet20", resnet_cifar.resnet20, resnet_cifar.resnet_cifar_arg_scope, 32,
            description="He et al. CIFAR ResNet-20"),
    NetSpec("resnet56", resnet_cifar.resnet56, resnet_cifar.resnet_cifar_arg_scope, 32,
            description="He et al. CIFAR ResNet-56"),
]
# tf-slim's model zoo: VGG, ResNet v1 / v2, MobileNet v1 / v2 (slim's names and layouts).
_SPECS += [NetSpec(name, getattr(vgg, name), vgg.vgg_arg_scope, 224,
                   min_image_size=vgg.min_image_size, max_image_size=vgg.max_image_size,
                   description=f"tf-slim's {name}")
           for name in ("vgg_a", "vgg_16", "vgg_19")]
_SPECS += [NetSpec(f"resnet_{version}_{depth}", getattr(module, f"resnet_{version}_{depth}"),
                   resnet_v1.resnet_arg_scope, 224,
                   description=f"tf-slim's resnet_{version}_{depth}"
                   + (" (pre-activation)" if version == "v2" else ""))
           for version, module in (("v1", resnet_v1), ("v2", resnet_v2))
           for depth in (50, 101, 152, 200)]
_SPECS += [NetSpec(name, getattr(mobilenet_v1, name), mobilenet_v1.mobilenet_v1_arg_scope, 224,
                   max_image_size=mobilenet_v1.max_image_size,
                   description=f"tf-slim's MobileNet v1, depth multiplier {multiplier}")
           for name, multiplier in (("mobilenet_v1", "1.0"), ("mobilenet_v1_075", "0.75"),
                                    ("mobilenet_v1_050", "0.5"), ("mobilenet_v1_025", "0.25"))]
_SPECS += [NetSpec(name, getattr(mobilenet_v2, name), mobilenet_v2.mobilenet_v2_arg_scope, 224,
                   description=f"tf-slim's MobileNet v2, depth multiplier {multiplier}")
           for name, multiplier in (("mobilenet_v2", "1.0"), ("mobilenet_v2_140", "1.4"))]
_SPECS += [NetSpec(name, getattr(vit, name), vit.vit_arg_scope, 32,
                   min_image_size=vit.min_image_size,
                   description=f"{desc}; patch 2 up to 16x16 images, 4 up to 64x64, else 16")
           for name, desc in (("vit_tiny", "Vision Transformer, width 64, 4 blocks"),
                              ("vit_small", "Vision Transformer, width 192, 6 blocks"))]
# tf-slim's AlexNet, OverFeat and Inception v1-v3 (sizes without global_pool; see each module).
_SPECS += [
    NetSpec("alexnet_v2", alexnet.alexnet_v2, alexnet.alexnet_v2_arg_scope, 224,
            min_image_size=alexnet.MIN_IMAGE_SIZE, max_image_size=alexnet.max_image_size,
            description="tf-slim's AlexNet v2 (one-tower cuda-convnet2 layout, no LRN)"),
    NetSpec("overfeat", overfeat.overfeat, overfeat.overfeat_arg_scope, 231,
            min_image_size=overfeat.MIN_IMAGE_SIZE, max_image_size=overfeat.max_image_size,
            description="tf-slim's OverFeat (fast model)"),
    NetSpec("inception_v1", inception_v1.inception_v1, inception_v1.inception_v1_arg_scope,
            224, min_image_size=inception_v1.min_image_size,
            max_image_size=inception_v1.max_image_size,
            description="tf-slim's Inception v1 (GoogLeNet with batch norm)"),
    NetSpec("inception_v2", inception_v2.inception_v2, inception_v2.inception_v2_arg_scope,
            224, max_image_size=inception_v2.max_image_size,
            description="tf-slim's Inception v2 (BN-Inception, separable first layer)"),
    NetSpec("inception_v3", inception_v3.inception_v3, inception_v3.inception_v3_arg_scope,
            299, min_image_size=inception_v3.min_image_size,
            max_image_size=inception_v3.max_image_size,
            description="tf-slim's Inception v3 (AuxLogits with create_aux_logits=True)"),
]

NETS = {spec.name: spec for spec in _SPECS}


def get_net(name):
    """The `NetSpec` registered under `name`, or read from `package.module:function`.

    Raises:
      ValueError: unknown name (the message lists the valid ones), or a `module:function`
        that cannot be imported or does not follow the net contract (`nets.custom`).
    """
    if custom.is_custom(name):
        return NetSpec(name=name, **custom.load_net(name))
    try:
        return NETS[name]
    except (KeyError, TypeError):
        raise UsageError(f"unknown --model={name}; valid names: {', '.join(sorted(NETS))}, or "
                         "'package.module:function' for a net outside the registry",
                         "model") from None


def build_model(name, num_classes, input_shape, *, weight_decay=0.0, sync_batch_norm=False,
                is_training=None, **net_kwargs):
    """Builds a registered net (or a `package.module:function` one) as a Keras functional model.

    The net is built under its arg scope (with `weight_decay`) and
    `arg_scope([batch_norm], synchronized=sync_batch_norm)`.

    Args:
      name: registry key (see `NETS`) or `package.module:function` (see `nets.custom`).
      num_classes: number of classes, >= 1.
      input_shape: (height, width, channels) of one image, within the net's size limits.
      weight_decay: L2 coefficient >= 0 (slim's wd * sum(w**2) / 2, in `model.losses`).
      sync_batch_norm: batch statistics over all replicas; multi-replica training needs it
        for N replicas to match one.
      is_training: None (default) follows `model(x, training=...)`; True/False pins batch norm
        and dropout.
      **net_kwargs: more arguments of the net function (e.g. hidden_size, dropout_keep_prob).

    Returns:
      A `keras.Model` named after the net's scope, mapping images [N, H, W, C] to
      {'logits': [N, num_classes], 'embedding': [N, D]}. Under a mixed-precision policy the
      outputs come in the compute dtype.

    Raises:
      ValueError: unknown name or invalid arguments (checked before anything is built).
      TypeError: a keyword the net does not take.
    """
    spec = get_net(name)
    check_int("num_classes", num_classes, low=1)
    try:
        shape = tuple(input_shape)
    except TypeError:
        shape = None
    if (shape is None or len(shape) != 3
            or not all(is_int(d, low=1) for d in shape)):
        raise ValueError(f"input_shape={input_shape!r} must be (height, width, channels) of "
                         "positive integers")
    parameters = inspect.signature(spec.fn).parameters
    unknown = sorted(set(net_kwargs) - set(parameters) - {"images"})
    if unknown or "images" in net_kwargs:
        raise TypeError(f"{name} does not take {unknown or ['images']}; its arguments: "
                        f"{sorted(set(parameters) - {'images', 'num_classes', 'is_training'})}")
    low, high = spec.image_size_limits(**net_kwargs)
    if any(d < low or (high is not None and d > high) for d in shape[:2]):
        allowed = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(f"input_shape={shape}: {name} needs height and width {allowed}")
    if (not isinstance(weight_decay, numbers.Real) or isinstance(weight_decay, bool)
            or not 0 <= weight_decay < float("inf")):
        raise ValueError(f"weight_decay={weight_decay!r} must be a finite number >= 0")
    if is_training not in (None, True, False):
        raise ValueError(f"is_training={is_training!r} must be None, True or False")

    images = keras.Input(shape=shape, name="images")
    with scopes.arg_scope(spec.arg_scope(weight_decay=weight_decay)):
        with scopes.arg_scope([scopes.batch_norm], synchronized=bool(sync_batch_norm)):
            if custom.is_custom(name):
                logits, end_points = custom.call_net(name, spec.fn, images, num_classes,
                                                     is_training, net_kwargs)
            else:
                logits, end_points = spec.fn(images, num_classes=num_classes,
                                             is_training=is_training, **net_kwargs)
    outputs = {"logits": logits, "embedding": end_points["embedding"]}
    return keras.Model(images, outputs, name=net_kwargs.get("scope", spec.scope))
