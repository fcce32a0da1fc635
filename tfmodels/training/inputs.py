"""What a run feeds its net: the image size and preprocessing, resolved against the dataset and
checked against the net before any work (`TrainConfig.resolve` calls `resolve_input`).

    resolve_input("vgg_16", info_of_oxford_flowers102)   # ((224, 224, 3), 'vgg')
    resolve_input("lenet", digits_info, image_size=28)    # ((28, 28, 1), None)
    parse_image_size("240x320")                            # (240, 320): train.py's --image_size
"""
from tfmodels import nets
from tfmodels.data import preprocessing as data_preprocessing
from tfmodels.data.pipeline import check_image_size, check_preprocessing
from tfmodels.options import UsageError


def parse_image_size(text):
    """`--image_size` as TrainConfig takes it: '' or None -> None, 'N' -> N, 'HxW' -> (H, W).

    Raises:
      ValueError: naming --image_size, unless N or HxW of positive integers.
    """
    if text is None or not str(text).strip():
        return None
    parts = str(text).strip().lower().split("x")
    if len(parts) in (1, 2) and all(p.isdigit() and int(p) > 0 for p in parts):
        sides = tuple(int(p) for p in parts)
        return sides[0] if len(sides) == 1 else sides
    raise UsageError(f"--image_size={text!r} must be N (square) or HxW, positive integers, "
                     "e.g. --image_size=224 or --image_size=240x320")


def resolve_input(model, info, image_size=None, preprocessing=None):
    """The image shape and preprocessing `model` gets on dataset `info`, checked against the net.

    Size: `image_size` when given; else, for a dataset of varying image size, the net's
    `default_image_size`; else the dataset's fixed size (never resized unless asked).
    Preprocessing: `preprocessing` when given; else, for a dataset of varying image size, the
    net's default (`data.preprocessing.default_preprocessing`, e.g. 'vgg' for vgg_16 and
    resnet_v1_50); else None, the dataset's own normalisation. Nets outside the registry have no
    default preprocessing: on such datasets they need `preprocessing`.

    Returns:
      ((height, width, channels), preprocessing name or None).

    Raises:
      ValueError: the net cannot take that size (the message names --model, the size, what the
        net takes and the --image_size to pass), or no size / preprocessing can be chosen.
    """
    spec = nets.get_net(model)
    size = check_image_size(image_size)
    if size is None and info.variable_size:
        if spec.default_image_size is None:
            raise UsageError(f"dataset {info.name!r} has images of varying size and "
                             f"--model={model} gives no default_image_size; pass "
                             "--image_size=HxW")
        size = (spec.default_image_size,) * 2
    if preprocessing is None and info.variable_size:
        if model not in data_preprocessing.NET_PREPROCESSING:
            raise UsageError(
                f"dataset {info.name!r} has images of varying size, which need a per-net "
                f"preprocessing, and --model={model} has no default one; pass --preprocessing="
                f"{'|'.join(sorted(data_preprocessing.PREPROCESSING_FNS))}")
        preprocessing = data_preprocessing.default_preprocessing(model)
    check_preprocessing(preprocessing, info)
    found = size or tuple(info.image_shape[:2])
    low, high = spec.image_size_limits()
    if any(d < low or (high is not None and d > high) for d in found):
        takes = f">= {low}" if high is None else f"in [{low}, {high}]"
        default = spec.default_image_size
        fits = default is not None and low <= default and (high is None or default <= high)
        suggest = default if fits else low
        what = (f"--image_size={_size_text(found)}" if size is not None else
                f"the {_size_text(found)} images of dataset {info.name!r}")
        raise UsageError(f"--model={model} cannot take {what}: {model} takes height and width "
                         f"{takes}; pass --image_size={suggest} to resize the images to "
                         f"{suggest}x{suggest}")
    return (*found, info.channels), preprocessing


def _size_text(size):
    return f"{size[0]}x{size[1]}"
