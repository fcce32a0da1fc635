"""Benchmark: two workers on localhost against one process with two replicas, same global batch.

    python bench/multiworker.py [--model lenet] [--batch_size 64] [--steps 200] [--rounds 3]

Two settings of the same run (same net, data, global batch, 2 replicas):
  local:   `train.py --strategy=mirrored --virtual_devices=2`, one process, two logical CPU
           devices (MirroredStrategy: the all-reduce is a copy in memory);
  workers: `python -m tfmodels.launch --workers=2 -- train.py`, two processes with one replica
           each (MultiWorkerMirroredStrategy: collectives over gRPC on localhost).

Throughput: train.py's own `images_per_sec` (metrics.json: the run's loops after the first, which
traces), rounds interleaved (local, workers, local, ...), the median kept; `workers / local`.

All-reduce: what the step all-reduces is the gradients, one tensor per trainable variable
(`step.py`: `context.all_reduce(SUM, grads)`). Each setting also times that alone: a tf.function
running `--reduce_steps` all-reduces of tensors shaped as the net's variables, one
`strategy.run` each as in the step's loop, ms per all-reduce. The workers' figure less the
local one is what crossing processes costs per step.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _env(**extra):
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("TF_CONFIG", None)
    env.update(extra)
    return env


def _train_flags(args, model_dir):
    return [f"--model_dir={model_dir}", f"--model={args.model}", f"--batch_size={args.batch_size}",
            f"--train_steps={args.steps}", f"--steps_per_loop={args.steps_per_loop}",
            "--checkpoint_every=1000000", "--noexport", "--verbosity=warning", "--seed=1"]


def run_training(setting, args, tmp):
    """images/s of one train.py run in `setting` ('local' or 'workers')."""
    model_dir = tempfile.mkdtemp(dir=tmp)
    script = os.path.join(ROOT, "train.py")
    if setting == "local":
        command = [sys.executable, script, *_train_flags(args, model_dir),
                   "--strategy=mirrored", "--virtual_devices=2"]
    else:
        command = [sys.executable, "-m", "tfmodels.launch", "--workers=2", "--", script,
                   *_train_flags(args, model_dir)]
    proc = subprocess.run(command, cwd=ROOT, env=_env(), capture_output=True, text=True,
                          timeout=args.timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{setting} run failed:\n{proc.stderr[-3000:]}")
    with open(os.path.join(model_dir, "metrics.json")) as f:
        metrics = json.load(f)
    assert metrics["num_replicas"] == 2 and metrics["global_batch_size"] == args.batch_size
    return metrics["images_per_sec"]


def run_reduce(setting, args):
    """ms per all-reduce of the net's gradient shapes in `setting` (children of this script)."""
    child = [sys.executable, os.path.abspath(__file__), f"--child={setting}",
             f"--model={args.model}", f"--reduce_steps={args.reduce_steps}"]
    if setting == "local":
        procs = [subprocess.Popen(child, cwd=ROOT, env=_env(), stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)]
    else:
        from tfmodels import launch

        procs = [subprocess.Popen(child, cwd=ROOT, env=_env(TF_CONFIG=config),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for config in launch.tf_configs(2)]
    try:
        outputs = [p.communicate(timeout=args.timeout) for p in procs]
    finally:
        for p in procs:
            p.kill()
    for p, (_, err) in zip(procs, outputs):
        if p.returncode != 0:
            raise RuntimeError(f"{setting} all-reduce failed:\n{err[-3000:]}")
    results = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
    return max(r["ms"] for r in results), results[0]["values"]


def child(setting, model, reduce_steps):
    """In a child process: time `reduce_steps` all-reduces of the gradient shapes of `model`."""
    from tfmodels import data, distribute, nets

    strategy = (distribute.setup("mirrored", virtual_devices=2) if setting == "local"
                else distribute.setup("multi_worker"))
    info = data.get_dataset_info("digits")
    net = nets.build_model(model, info.num_classes, info.image_shape)
    shapes = [v.shape for v in net.trainable_variables]

    import tensorflow as tf

    def replica_fn():
        grads = [tf.ones(shape) for shape in shapes]
        reduced = tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM,
                                                                 grads)
        return tf.reduce_sum(reduced[0])

    @tf.function
    def reduce_loop(n):
        # As the step's loop: strategy.run per step inside one tf.function (collectives are
        # stateful: none is pruned, and each waits for the one before on its devices).
        for _ in tf.range(n):
            strategy.run(replica_fn)
        return strategy.run(replica_fn)

    reduce_loop(tf.constant(5))  # trace, connect
    times = []
    for _ in range(3):
        start = time.perf_counter()
        result = reduce_loop(tf.constant(reduce_steps))
        tf.nest.map_structure(lambda t: t.numpy(), strategy.experimental_local_results(result))
        times.append(time.perf_counter() - start)
    print(json.dumps({"ms": 1000 * min(times) / reduce_steps,
                      "values": sum(int(tf.size(v)) for v in net.trainable_variables)}))
    sys.stdout.flush()
    os._exit(0)  # no TensorFlow teardown (a collective group's shutdown can wait on the other)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="lenet")
    parser.add_argument("--batch_size", type=int, default=64, help="global batch")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--steps_per_loop", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--reduce_steps", type=int, default=200)
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--child", choices=("local", "workers"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child, args.model, args.reduce_steps)

    load = os.getloadavg()
    print(f"model {args.model}, global batch {args.batch_size}, {args.steps} steps in loops of "
          f"{args.steps_per_loop}, 2 replicas; {os.cpu_count()} CPUs, load {load[0]:.2f}")
    speeds = {"local": [], "workers": []}
    reduce_ms = {"local": [], "workers": []}
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.rounds):
            for setting in ("local", "workers"):
                speeds[setting].append(run_training(setting, args, tmp))
                ms, values = run_reduce(setting, args)
                reduce_ms[setting].append(ms)
                print(f"round {round_ + 1} {setting:8s} {speeds[setting][-1]:8.0f} images/s  "
                      f"all-reduce {reduce_ms[setting][-1]:.3f} ms", flush=True)
    ips = {k: statistics.median(v) for k, v in speeds.items()}
    ms = {k: statistics.median(v) for k, v in reduce_ms.items()}
    step_ms = {k: 1000 * args.batch_size / v for k, v in ips.items()}
    print(f"| setting | images/s | ms/step | all-reduce ms/step |")
    print(f"|---|---|---|---|")
    for k in ("local", "workers"):
        print(f"| {k} | {ips[k]:.0f} | {step_ms[k]:.2f} | {ms[k]:.3f} |")
    print(f"all-reduce of {values:,} float32 values ({values * 4 / 1e6:.2f} MB) per step")
    print(f"workers / local images/s: {ips['workers'] / ips['local']:.2f}; cross-process "
          f"all-reduce cost {ms['workers'] - ms['local']:.3f} ms/step "
          f"({(ms['workers'] - ms['local']) / step_ms['workers']:.0%} of the workers' step); "
          f"load after {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
