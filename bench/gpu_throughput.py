"""Training throughput of one net on one device: ours vs a minimal loop vs `model.fit`.

    python bench/gpu_throughput.py resnet_v1_50 --out=DIR/x.jsonl --deadline=<unix time>

Runs the net's plan (precision x XLA x loops, most informative first; bench/loops.py builds
the loops) until the deadline, skipping a variant when the time left is shorter than the last
one took, and appends one JSON record per loop (images/s, ms/step, first-call seconds, TFLOP/s
and the fraction of the card's peak) or per failed / skipped variant to `--out` as it goes, so
that a run killed at its time limit keeps what it measured. `--quick` runs the same code at
tiny sizes (a small net stands in for ResNet-50).
"""
import argparse
import gc
import json
import os
import sys
import time
import traceback

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from loops import DEVICE_BATCH, LOOPS, ONE_DEVICE  # noqa: E402

# section model -> (net, image shape, global batch, classes, steps per call, timed calls)
SIZES = {
    "resnet_v1_50": ("resnet_v1_50", (224, 224, 3), 256, 1000, 10, 3),
    "resnet20": ("resnet20", (32, 32, 3), 512, 10, 50, 3),
    "lenet_pp": ("lenet_pp", (28, 28, 1), 512, 10, 50, 3),
}
QUICK_SIZES = {
    "resnet_v1_50": ("two_layer_net", (8, 8, 1), 8, 10, 2, 2),
    "resnet20": ("resnet20", (8, 8, 3), 4, 10, 2, 2),
    "lenet_pp": ("lenet_pp", (28, 28, 1), 4, 10, 2, 2),
}
OURS_MINIMAL = ("ours", "minimal")
# (precision, XLA, loops), most informative first.
PLANS = {
    "resnet_v1_50": [("bfloat16", False, OURS_MINIMAL),
                     ("bfloat16", True, OURS_MINIMAL),
                     ("bfloat16", False, (ONE_DEVICE, DEVICE_BATCH)),
                     ("float16", False, OURS_MINIMAL),
                     ("float32", False, OURS_MINIMAL),
                     ("bfloat16", False, ("model.fit",)),
                     ("bfloat16", True, ("model.fit",)),
                     ("float16", True, OURS_MINIMAL),
                     ("float32", True, OURS_MINIMAL)],
    "small": [("float32", False, LOOPS),
              ("bfloat16", False, OURS_MINIMAL),
              ("bfloat16", True, OURS_MINIMAL),
              ("float32", False, (ONE_DEVICE, DEVICE_BATCH)),
              ("float16", False, OURS_MINIMAL),
              ("float32", True, LOOPS)],
    # --quick: every loop, precision and XLA setting at least once.
    "quick": [("float32", False, LOOPS + (ONE_DEVICE, DEVICE_BATCH)),
              ("bfloat16", True, LOOPS),
              ("float16", False, OURS_MINIMAL)],
    "quick_small": [("float32", False, OURS_MINIMAL)],
}


def plan_for(model, quick):
    if quick:
        return PLANS["quick" if model == "resnet_v1_50" else "quick_small"]
    return PLANS["resnet_v1_50" if model == "resnet_v1_50" else "small"]


def run(model, out_path, deadline, quick=False):
    """Measure `model`'s plan until `deadline` (time.time()); records go to `out_path`."""
    import keras

    import gpu_device
    from timing import time_calls

    net, shape, batch, classes, steps, repeats = (QUICK_SIZES if quick else SIZES)[model]
    info = gpu_device.describe()
    flops = gpu_device.training_flops(net, shape, classes)
    _write(out_path, {"kind": "model", "model": net, "image": "x".join(map(str, shape)),
                      "batch": batch, "classes": classes, "steps_per_call": steps,
                      "train_gflops_per_image": flops / 1e9, "card": info["card"],
                      "tf32": info["tf32"], "device": "GPU" if info["gpus"] else "CPU"})
    last_seconds = 0.0
    for precision, xla, loops in plan_for(model, quick):
        variant = {"kind": "variant", "model": net, "precision": precision, "xla": xla,
                   "batch": batch}
        left = deadline - time.time()
        if left < last_seconds * 1.1:
            _write(out_path, dict(variant, status="skipped",
                                  reason=f"time box: {left:.0f} s left, the last variant took "
                                         f"{last_seconds:.0f} s"))
            continue
        started = time.time()
        try:
            fns = _build(net, shape, batch, steps, classes, precision, xla, loops)
            first = {}
            for name, fn in fns.items():  # the first call traces and compiles
                t = time.perf_counter()
                _block(fn())
                first[name] = time.perf_counter() - t
            seconds = time_calls(fns, repeats=repeats, number=1, warmup=1, statistic="min")
            peak = gpu_device.peak_flops(info["card"], precision, info["tf32"])
            for name, per_call in seconds.items():
                images = steps * batch / per_call
                _write(out_path, dict(
                    variant, status="ok", loop=name, images_per_sec=images,
                    ms_per_step=1e3 * per_call / steps, first_call_s=first[name],
                    tflops=images * flops / 1e12,
                    peak_fraction=images * flops / peak if peak else None))
        except Exception as err:  # noqa: BLE001 - recorded; the next variant may still work
            _write(out_path, dict(variant, status="failed", loops=list(loops),
                                  error=f"{type(err).__name__}: {err}"[:2000],
                                  traceback=traceback.format_exc()[-3000:]))
        finally:
            fns = None
            gc.collect()
            keras.backend.clear_session()
        last_seconds = time.time() - started


def _build(net, shape, batch, steps, classes, precision, xla, loops):
    from loops import build_loops

    return build_loops(net, shape, batch, steps, num_classes=classes,
                       mixed_precision=precision, jit_compile=xla, loops=loops)


def _block(out):
    if hasattr(out, "numpy"):
        out.numpy()


def _write(path, record):
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", choices=sorted(SIZES))
    parser.add_argument("--out", required=True, help="JSON-lines file to append records to")
    parser.add_argument("--deadline", type=float, required=True, help="unix time to stop by")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    run(args.model, args.out, args.deadline, args.quick)


if __name__ == "__main__":
    main()
