"""Prove a port: the ported Keras model and the legacy TF1 function give the same logits.

    model = nets.build_model("mypkg.mynet:mynet", 10, (32, 32, 3))
    porting.load_checkpoint(model, "legacy/model.ckpt-5000")
    result = porting.verify(model, "legacy/model.ckpt-5000", "legacy_mynet:mynet")
    print(result.summary())   # max |diff| and max relative diff of the logits

The legacy function runs in a separate Python process (`porting.legacy_graph`, with
`TF_USE_LEGACY_KERAS=1` when tf-keras is installed, so `tf.compat.v1.layers` code runs): TF1
graph mode is switched on process-wide and for good (`disable_v2_behavior`), and legacy
modules often do it themselves when imported, which would break this process. It is built in
inference mode under its arg scope (given, or found by slim's naming conventions:
`resnet_v1_50` -> `resnet_arg_scope`; `arg_scope_note()` says which, or that none was found),
restored from the checkpoint with a TF1 Saver (EMA
shadows with `use_ema`, as TF1 evaluation did) and fed the batch this process made; this
process runs the Keras model on the same batch and compares:

    max_abs = max |ours - legacy|,   max_rel = max_abs / max |legacy|

and fails when max_rel > tol. Numbers that names cannot show (a BatchNorm epsilon, padding,
an activation) are caught here.
"""
import dataclasses
import glob
import importlib.util
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import tensorflow as tf

from tfmodels.data import datasets, preprocessing
from tfmodels.nets import custom
from tfmodels.porting.checkpoint_map import resolve_checkpoint
from tfmodels.options import UsageError

_HINT = ("check what names cannot show: batch_norm epsilon/decay/scale (slim's defaults: "
         "1e-3, 0.999, no gamma, unless the arg scope says), padding ('SAME'/'VALID', "
         "conv2d_same), activation_fn, pooling size/stride, flatten order, dropout or "
         "is_training, or the builder's arg scope; see docs/PORTING.md")


class VerificationError(UsageError):
    """The logits differ by more than the tolerance; `.verification` holds the numbers."""

    def __init__(self, message, verification=None):
        super().__init__(message)
        self.verification = verification


@dataclasses.dataclass
class Verification:
    function: str      # the legacy module:function
    checkpoint: str
    images: str        # where the batch came from
    num_images: int
    max_abs: float     # max |ours - legacy| over the logits
    max_rel: float     # max_abs / max |legacy|
    tol: float
    prefix: str        # checkpoint prefix the legacy graph was restored under ('' if none)
    arg_scope: str = None   # 'module:function' the legacy function was built under, or None
    arg_scope_tried: tuple = ()  # names looked for in the function's module

    def arg_scope_note(self):
        """Which arg scope the legacy function was built under, in words."""
        if self.arg_scope:
            return f"{self.function} was built under arg scope {self.arg_scope}."
        if self.arg_scope_tried == ("none (as asked)",):
            return f"{self.function} was built without an arg scope (as asked)."
        return (f"{self.function} was built WITHOUT an arg scope: none found in its module "
                f"(looked for {', '.join(self.arg_scope_tried)}); pass "
                "--verify_arg_scope=module:function if it has one.")

    @property
    def ok(self):
        return self.max_rel <= self.tol

    def summary(self):
        """One line: the numbers and OK / FAILED."""
        return (f"Verified against {self.function} on {self.num_images} {self.images}: "
                f"max |logit difference| {self.max_abs:.3g}, relative {self.max_rel:.3g} "
                f"(tolerance {self.tol:.3g}): {'OK' if self.ok else 'FAILED'}")


def verify(model, checkpoint_path, function, *, images=None, use_ema=False, tol=1e-4,
           num_images=8, seed=0, dataset=None, timeout=600, arg_scope=None):
    """Compare `model`'s logits with the legacy TF1 `function` restored from the checkpoint.

    Args:
      model: the ported Keras model (outputs {'logits': ...} or logits), already loaded.
      checkpoint_path: the TF1 checkpoint prefix or directory it was ported from.
      function: 'module:function' of the legacy TF1 model function (slim's contract
        `fn(images, num_classes, is_training=False) -> logits or (logits, end_points)`),
        importable from the working directory or sys.path.
      images: None or 'random' (a seeded N(0, 1) batch), an array [N, H, W, C], a `.npy`
        file, or image files (comma-separated paths or globs; see `load_images`).
      use_ema: restore the legacy graph from ExponentialMovingAverage shadows (as porting
        with use_ema did).
      tol: the largest max_rel that passes.
      num_images, seed: size and seed of the random batch.
      dataset: for image files, normalise as this dataset's pipeline does.
      timeout: seconds the legacy process may take.
      arg_scope: 'module:function' of the arg scope to build the legacy function under,
        'none' for none, or None to find it by slim's conventions
        (`legacy_graph.find_arg_scope`: `<net>_arg_scope`, `<family>_arg_scope`, ...).

    Returns:
      The `Verification` (ok).

    Raises:
      VerificationError: max_rel > tol; the message gives the numbers and what to check.
      ValueError: bad arguments, a TF2 checkpoint, or the legacy process failed (its error).
    """
    custom.check_name(function, "verify_with")
    if arg_scope is not None and arg_scope != "none":
        custom.check_name(arg_scope, "verify_arg_scope")
    if not isinstance(tol, (int, float)) or isinstance(tol, bool) or not tol >= 0:
        raise UsageError(f"--verify_tol={tol} must be a number >= 0", "verify_tol")
    path, source_format = resolve_checkpoint(checkpoint_path)
    if source_format != "tf1":
        raise UsageError(f"--verify_with={function}: checkpoint {path!r} is a TF2 checkpoint; "
                         "the legacy function can only be restored from a TF1 (Saver) "
                         "checkpoint", "verify_with")
    image_shape = tuple(int(d) for d in model.inputs[0].shape[1:])
    batch, description = make_images(images, image_shape, num_images=num_images, seed=seed,
                                     dataset=dataset)
    outputs = model(batch, training=False)
    ours = np.asarray(outputs["logits"] if isinstance(outputs, dict) else outputs, np.float64)
    legacy, info = run_legacy(function, path, batch, ours.shape[-1], use_ema=use_ema,
                              timeout=timeout, arg_scope=arg_scope)
    if legacy.shape != ours.shape:
        raise UsageError(f"--verify_with={function} returned logits of shape {legacy.shape}; "
                         f"the ported model's are {ours.shape}", "verify_with")
    max_abs = float(np.max(np.abs(ours - legacy)))
    scale = float(np.max(np.abs(legacy)))
    result = Verification(function, path, description, len(batch), max_abs,
                          max_abs / scale if scale > 0 else max_abs, float(tol),
                          info["prefix"], info.get("arg_scope"),
                          tuple(info.get("arg_scope_tried", ())))
    if not result.ok:
        raise VerificationError(f"{result.summary()}\nThe names matched but the numbers do "
                                f"not; {_HINT}\n{result.arg_scope_note()}", result)
    return result


def make_images(images, image_shape, *, num_images=8, seed=0, dataset=None):
    """(float32 batch [N, H, W, C], description) from the `images` argument of `verify`."""
    if images is None or (isinstance(images, str) and images == "random"):
        rng = np.random.default_rng(seed)
        return (rng.normal(size=(num_images, *image_shape)).astype(np.float32),
                f"random N(0, 1) images (seed {seed})")
    if isinstance(images, np.ndarray):
        batch, description = images, "given images"
    elif isinstance(images, str) and images.endswith(".npy"):
        if not os.path.isfile(images):
            raise UsageError(f"--verify_images={images} does not exist", "verify_images")
        batch, description = np.load(images), f"images from {images}"
    elif isinstance(images, str):
        return load_images(images, image_shape, dataset=dataset)
    else:
        raise UsageError(f"--verify_images={images} must be 'random', a .npy file, image "
                         "files or an array", "verify_images")
    batch = np.asarray(batch, np.float32)
    if batch.ndim != 4 or tuple(batch.shape[1:]) != image_shape or not len(batch):
        raise UsageError(f"--verify_images: a batch of shape {batch.shape} does not fit the "
                         f"model's input [N, {', '.join(map(str, image_shape))}]",
                         "verify_images")
    return batch, description


def load_images(spec, image_shape, *, dataset=None):
    """Decode image files, resize them to the model's input (bilinear, aspect ratio not
    kept) and scale them as `dataset`'s pipeline does (`preprocessing.normalize`), or to
    [0, 1] without a dataset.

    Args:
      spec: comma-separated file paths or glob patterns (PNG, JPEG, GIF, BMP).

    Returns:
      (float32 batch [N, H, W, C], description).
    """
    paths = []
    for pattern in [p.strip() for p in spec.split(",") if p.strip()]:
        found = sorted(glob.glob(pattern))
        if not found:
            raise UsageError(f"--verify_images={spec}: {pattern!r} matches no file",
                             "verify_images")
        paths += found
    height, width, channels = image_shape
    pixels = []
    for path in paths:
        try:
            image = tf.io.decode_image(tf.io.read_file(path), channels=channels,
                                       expand_animations=False)
        except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError) as err:
            raise UsageError(f"--verify_images={spec}: cannot decode {path!r} ({err.message})",
                             "verify_images") from None
        pixels.append(tf.image.resize(tf.cast(image, tf.float32), (height, width)))
    pixels = tf.stack(pixels)
    if dataset is None:
        return (pixels / 255.0).numpy(), f"images from {spec} (scaled to [0, 1])"
    info = datasets.get_dataset_info(dataset)
    batch = preprocessing.normalize(pixels, pixel_max=info.pixel_max, mean=info.mean,
                                    std=info.std)
    return batch.numpy(), f"images from {spec} (normalised as {dataset})"


def run_legacy(function, checkpoint, images, num_classes, *, use_ema=False, timeout=600,
               arg_scope=None):
    """Run `porting.legacy_graph` in a child process; returns (logits [N, K], info)."""
    with tempfile.TemporaryDirectory(prefix="tfmodels_verify_") as scratch:
        request = {"function": function, "checkpoint": os.path.abspath(checkpoint),
                   "images": os.path.join(scratch, "images.npy"),
                   "output": os.path.join(scratch, "logits.npy"),
                   "num_classes": int(num_classes), "use_ema": bool(use_ema),
                   "arg_scope": arg_scope}
        np.save(request["images"], np.asarray(images, np.float32))
        with open(os.path.join(scratch, "request.json"), "w") as f:
            json.dump(request, f)
        # The child imports the legacy module as this process would: same working directory,
        # this process's sys.path first.
        path = [os.path.abspath(p or os.curdir) for p in sys.path]
        env = dict(os.environ, KERAS_BACKEND="tensorflow",
                   PYTHONPATH=os.pathsep.join(path + [os.environ.get("PYTHONPATH", "")]))
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        if importlib.util.find_spec("tf_keras") is not None:
            # tf.compat.v1.layers (conv2d, dense, batch_normalization) exist only with the
            # legacy Keras 2 behind tf.keras, chosen before TensorFlow is imported: the child
            # runs TF1 code only, this process keeps Keras 3.
            env["TF_USE_LEGACY_KERAS"] = "1"
        try:
            result = subprocess.run(
                [sys.executable, "-m", "tfmodels.porting.legacy_graph",
                 os.path.join(scratch, "request.json")],
                env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise UsageError(f"--verify_with={function}: the legacy graph did not finish in "
                             f"{timeout} s", "verify_with") from None
        if result.returncode != 0:
            errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
            detail = errors[-1][len("error: "):] if errors else (
                "the legacy process failed:\n" + "\n".join(result.stderr.splitlines()[-25:]))
            raise UsageError(detail)
        info = json.loads(result.stdout.strip().splitlines()[-1])
        return np.load(request["output"]).astype(np.float64), info
