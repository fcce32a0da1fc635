"""The device a GPU check runs on: what it is, what it can do at best, and a net's FLOPs.

    info = describe()                      # TF build, GPUs (name, compute capability), nvidia-smi
    peak = peak_flops(info["card"], "bfloat16")          # dense FLOP/s, or None
    flops = training_flops("resnet_v1_50", (224, 224, 3), 1000)   # per image

Peak dense (no structured sparsity) tensor-core FLOP/s per NVIDIA's datasheets (TFLOP/s):

| card | bfloat16 / float16 | TF32 | float32 (no tensor cores) |
|---|---|---|---|
| H100 SXM5 | 989.4 | 494.7 | 66.9 |
| H100 PCIe | 756.5 | 378 | 51.2 |
| H200 (same compute as H100 SXM5) | 989.4 | 494.7 | 66.9 |
| A100 (SXM4 and PCIe) | 312 | 156 | 19.5 |

A float32 run is compared with the TF32 peak when TensorFlow runs float32 matmuls and
convolutions in TF32 (its default from compute capability 8.0), else with the float32 peak.
FLOPs count a multiply-add as 2 and come from `tf.profiler`'s float_ops of the forward pass at
batch 1 (slim's resnet_v1_50 at 224: 6.99 GFLOPs, i.e. 3.5 G multiply-adds; torchvision's
layout with strides on the first unit of a block: 4.1 G); training is taken as 3x the forward
pass (backward ~ 2x forward), the usual approximation.
"""
import os
import re
import shutil
import subprocess

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

# (card, pattern on TensorFlow's device name, TFLOP/s by precision); first match wins.
CARDS = [
    ("H200", r"H200", {"bfloat16": 989.4, "float16": 989.4, "tf32": 494.7, "float32": 66.9}),
    ("H100 PCIe", r"H100.*PCIe", {"bfloat16": 756.5, "float16": 756.5, "tf32": 378.0,
                                  "float32": 51.2}),
    ("H100 SXM5", r"H100(?!.*NVL)", {"bfloat16": 989.4, "float16": 989.4, "tf32": 494.7,
                                     "float32": 66.9}),
    ("A100", r"A100", {"bfloat16": 312.0, "float16": 312.0, "tf32": 156.0, "float32": 19.5}),
]


def match_card(device_name):
    """(card, {precision: TFLOP/s}) for a known GPU name, else (None, None)."""
    for card, pattern, peaks in CARDS:
        if re.search(pattern, device_name or "", re.IGNORECASE):
            return card, peaks
    return None, None


def peak_flops(card, precision, tf32=True):
    """Peak dense FLOP/s of `card` (a name from CARDS) at `precision` ('float32', 'bfloat16',
    'float16'), float32 counted as TF32 when `tf32`; None for an unknown card."""
    peaks = next((p for name, _, p in CARDS if name == card), None)
    if peaks is None:
        return None
    key = "tf32" if precision in ("float32", "none") and tf32 else precision
    key = "float32" if key == "none" else key
    return peaks[key] * 1e12


def describe():
    """The machine as TensorFlow sees it (initialises no GPU memory).

    Returns:
      dict: tensorflow and keras versions, TF build info (CUDA, cuDNN), cpu_count, gpus
      [{name, compute_capability}], card (a CARDS name or None), tf32 (bool), nvidia_smi
      (its one-line-per-GPU query, or why there is none).
    """
    import keras
    import tensorflow as tf

    build = dict(tf.sysconfig.get_build_info())
    gpus = []
    for device in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(device)
        capability = details.get("compute_capability")
        gpus.append({"device": device.name, "name": details.get("device_name"),
                     "compute_capability": ".".join(map(str, capability)) if capability
                     else None})
    card = match_card(gpus[0]["name"])[0] if gpus else None
    capability = float(gpus[0]["compute_capability"] or 0) if gpus else 0.0
    return {
        "tensorflow": tf.__version__, "keras": keras.__version__,
        "cuda_build": build.get("cuda_version"), "cudnn_build": build.get("cudnn_version"),
        "is_cuda_build": build.get("is_cuda_build"), "cpu_count": os.cpu_count(),
        "gpus": gpus, "card": card,
        "tf32": bool(gpus) and capability >= 8.0
        and tf.config.experimental.tensor_float_32_execution_enabled(),
        "nvidia_smi": _nvidia_smi(),
    }


def _nvidia_smi():
    if not shutil.which("nvidia-smi"):
        return "nvidia-smi not found"
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total,driver_version,clocks.max.sm,"
             "power.limit", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"nvidia-smi failed: {err}"
    return (out.stdout or out.stderr).strip()


def forward_flops(model_name, image_shape, num_classes):
    """FLOPs (a multiply-add = 2) of one forward pass of a registered net on one image."""
    import tensorflow as tf
    from tensorflow.python.profiler import model_analyzer, option_builder

    from tfmodels import nets

    model = nets.build_model(model_name, num_classes, tuple(image_shape))
    forward = tf.function(lambda x: model(x, training=False)["logits"])
    graph = forward.get_concrete_function(
        tf.TensorSpec([1, *image_shape], tf.float32)).graph
    options = option_builder.ProfileOptionBuilder(
        option_builder.ProfileOptionBuilder.float_operation()).with_empty_output().build()
    return int(model_analyzer.profile(graph, options=options).total_float_ops)


def training_flops(model_name, image_shape, num_classes):
    """FLOPs per image of a training step: 3x the forward pass (see the module docstring)."""
    return 3 * forward_flops(model_name, image_shape, num_classes)


def main(argv=None):
    import argparse
    import json

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="JSON-lines file to append the record to")
    args = parser.parse_args(argv)
    with open(args.out, "a") as f:
        f.write(json.dumps(dict(describe(), kind="device")) + "\n")


if __name__ == "__main__":
    import sys

    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    main()
