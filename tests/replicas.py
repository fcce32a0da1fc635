"""Run test scenarios under a distribution strategy over N logical CPU devices.

TensorFlow lets one process host a MirroredStrategy over one device count only (a second count
reuses collective keys and fails), and logical devices must be configured before the runtime
starts. So every replica count gets one subprocess, which runs every registered scenario that
asks for that count and saves what each returns; tests then compare counts with each other and
with NumPy.

    @replicas.scenario(1, 2, 4)
    def center_steps(strategy):          # runs in the subprocess, once per count
        ...
        return {"centers": centers.numpy()}

    def test_centers(replica_runner):    # runs in pytest
        one = replica_runner.run(center_steps, 1)
        four = replica_runner.run(center_steps, 4)

Count 1 uses `OneDeviceStrategy` (the single-device reference); N > 1 uses `MirroredStrategy`
over `/cpu:0 .. /cpu:N-1`. Scenarios must not run TensorFlow ops at import time.

`Runner(workdir, device="gpu")` runs them on the first GPU instead: count 1 on the whole GPU,
N > 1 on N logical GPUs carved from it (`GPU_MEMORY_MB` each), with TF32 off so that float32
means float32; one subprocess per (count, scenario), since a GPU run selects the scenarios of
one test module, not every module pytest collected.

Under pytest-xdist every worker has its own `Runner` over one shared folder: the first worker
that needs a count launches its subprocess, holding a lock on that count's folder; the others
wait on the lock and read the same results.
"""
import argparse
import fcntl
import importlib
import os
import pathlib
import subprocess
import sys
import traceback

ROOT = pathlib.Path(__file__).resolve().parent.parent
DEVICES = ("cpu", "gpu")
GPU_MEMORY_MB = 4096  # per logical GPU: the scenarios' nets and batches are small
_REGISTRY = {}  # scenario key -> replica counts it wants


def scenario(*counts):
    """Register `fn(strategy) -> dict[str, np.ndarray]` to run with each of `counts` replicas."""
    if not counts or any(not isinstance(n, int) or n < 1 for n in counts):
        raise ValueError(f"scenario counts must be positive ints, got {counts}")

    def register(fn):
        fn.scenario_key = f"{fn.__module__}:{fn.__qualname__}"
        _REGISTRY[fn.scenario_key] = tuple(counts)
        return fn

    return register


def _file_stem(key):
    return key.replace(":", "__").replace(".", "_")


class Runner:
    """Launches one subprocess per replica count, lazily, and serves the saved results."""

    def __init__(self, workdir, timeout=1200, device="cpu"):
        if device not in DEVICES:
            raise ValueError(f"device={device!r} is not one of {DEVICES}")
        self.workdir = pathlib.Path(workdir)
        self.timeout = timeout
        self.device = device
        self._logs = {}

    def run(self, fn, num_replicas):
        import numpy as np
        import pytest

        key = getattr(fn, "scenario_key", None)
        if key is None or num_replicas not in _REGISTRY.get(key, ()):
            raise ValueError(
                f"{getattr(fn, '__name__', fn)} is not registered for {num_replicas} replicas; "
                f"decorate it with @replicas.scenario(..., {num_replicas}, ...)")
        launch = num_replicas if self.device == "cpu" else (num_replicas, key)
        if launch not in self._logs:
            keys = ([k for k, counts in _REGISTRY.items() if num_replicas in counts]
                    if self.device == "cpu" else [key])
            self._logs[launch] = self._launch_once(num_replicas, keys)
        out = self._out(num_replicas)
        err = out / (_file_stem(key) + ".err")
        if err.exists():
            pytest.fail(f"scenario {key} failed with {num_replicas} replicas:\n{err.read_text()}")
        result = out / (_file_stem(key) + ".npz")
        if not result.exists():
            pytest.fail(f"scenario {key} left no result with {num_replicas} replicas; "
                        f"subprocess output:\n{self._logs[launch]}")
        with np.load(result, allow_pickle=False) as data:
            return {name: data[name] for name in data.files}

    def _out(self, num_replicas):
        return self.workdir / (str(num_replicas) if self.device == "cpu"
                               else f"{self.device}-{num_replicas}")

    def _launch_once(self, num_replicas, keys):
        """`_launch`, unless another process sharing the folder already did: its log."""
        out = self._out(num_replicas)
        out.mkdir(parents=True, exist_ok=True)
        with open(out / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
            log = out / "launch.log"
            if log.exists():
                return log.read_text()
            text = self._launch(num_replicas, keys)
            log.write_text(text)
            return text

    def _launch(self, num_replicas, keys):
        out = self._out(num_replicas)
        env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="2")
        env.pop("TF_FORCE_GPU_ALLOW_GROWTH", None)  # logical GPUs have fixed memory limits
        proc = subprocess.run(
            [sys.executable, "-m", "tests.replicas", "--replicas", str(num_replicas),
             "--device", self.device, "--out", str(out), *keys],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=self.timeout)
        return f"exit code {proc.returncode}\n{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}"


def make_strategy(num_replicas, device="cpu"):
    """Split the CPU (or the first GPU) into `num_replicas` logical devices and return a
    strategy over them (`OneDeviceStrategy` for one)."""
    import tensorflow as tf

    if device == "gpu":
        return _gpu_strategy(num_replicas)
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(num_replicas)])
    if num_replicas == 1:
        return tf.distribute.OneDeviceStrategy("/cpu:0")
    return tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(num_replicas)])


def _gpu_strategy(num_replicas):
    import tensorflow as tf

    from tfmodels import distribute

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        raise RuntimeError("device='gpu' but TensorFlow sees no GPU")
    tf.config.set_visible_devices(gpus[:1], "GPU")  # carve the first GPU only
    if num_replicas > 1:
        distribute.configure_devices(num_replicas, gpu_memory_mb=GPU_MEMORY_MB)
    # TF32 (on by default from Ampere) rounds float32 matmuls and convolutions to 10 mantissa
    # bits, which no split of the batch reproduces.
    tf.config.experimental.enable_tensor_float_32_execution(False)
    if num_replicas == 1:
        return tf.distribute.OneDeviceStrategy("/gpu:0")
    # TensorFlow falls back from NCCL to reduction on one device for logical GPUs.
    return tf.distribute.MirroredStrategy([f"/gpu:{i}" for i in range(num_replicas)])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", type=int, required=True)
    parser.add_argument("--device", choices=DEVICES, default="cpu")
    parser.add_argument("--out", type=pathlib.Path, required=True)
    parser.add_argument("scenarios", nargs="*")
    args = parser.parse_args(argv)

    import numpy as np

    strategy = make_strategy(args.replicas, args.device)
    for key in args.scenarios:
        stem = args.out / _file_stem(key)
        try:
            module_name, qualname = key.split(":")
            fn = importlib.import_module(module_name)
            for part in qualname.split("."):
                fn = getattr(fn, part)
            result = fn(strategy)
            np.savez(str(stem) + ".npz", **{k: np.asarray(v) for k, v in result.items()})
        except Exception:  # reported to the test that asked for this scenario
            stem.with_suffix(".err").write_text(traceback.format_exc())
        fn = result = None
    # Every result is on disk: end here, without running TensorFlow's destructors. Destroying
    # a tf.data iterator (a MultiDeviceIterator's buffer, an autotune thread) can block for good
    # after all results were written, in gc or at the interpreter's shutdown; a test would then
    # wait for the runner's timeout.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
