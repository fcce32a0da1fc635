"""One GPU check that answers everything at once: tests, training throughput, input pipeline.

    python bench/gpu.py --output_dir=/tmp/gpu                # <= 7.5 minutes on one H100
    python bench/gpu.py --output_dir=/tmp/gpu --quick        # same code, tiny sizes, CPU ok

Writes `results.json` (every record) and `results.md` (the tables) to `--output_dir` and prints
the tables. Sections, each in its own subprocess with its own time box, so that a failing or
hanging section is recorded and the next one still runs:

- `device`: TensorFlow's build (CUDA, cuDNN), the GPUs (name, compute capability), nvidia-smi,
  the card's peak FLOP/s (bench/gpu_device.py);
- `gpu_tests`: `pytest -m gpu tests/test_gpu.py` (2 logical GPUs == 1, float16 loss scaling,
  XLA, mixed-precision softmax / center loss, batches prefetched to the device);
- `throughput/<net>`: ours vs a minimal loop vs `model.fit` at float32 / bfloat16 / float16,
  XLA off / on: images/s and the fraction of the card's peak (bench/gpu_throughput.py);
- `input_pipeline`: JPEG decode + resize + crop images/s with every core, against the GPU's
  ResNet-50 training images/s (bench/gpu_input.py).

`--budget_s` bounds the whole run: a section starts only with time left, and gets at most its
box or what is left; a section left out is recorded as skipped with the reason. Nothing here
needs a network.
"""
import argparse
import datetime
import json
import os
import signal
import subprocess
import sys
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
sys.path.insert(0, BENCH)

import gpu_report  # noqa: E402

# (section, time box in seconds: full run, --quick), in the order they run.
SECTIONS = [
    ("device", 30, 90),
    ("gpu_tests", 150, 120),
    ("throughput/resnet_v1_50", 170, 150),
    ("input_pipeline", 35, 60),
    ("throughput/resnet20", 45, 90),
    ("throughput/lenet_pp", 40, 90),
]
MIN_SECTION_S = 15  # a section is not started with less time left than this
TEARDOWN_S = 8      # a child's own deadline comes this long before it is killed


def _command(section, records, deadline, quick):
    python = sys.executable
    if section == "device":
        return [python, os.path.join(BENCH, "gpu_device.py"), "--out", records]
    if section == "gpu_tests":
        # -n 0: one process (setup.cfg asks pytest-xdist for two): the tests share one GPU.
        return [python, "-m", "pytest", "-n", "0", "-m", "gpu", "-v", "--tb=short", "-p",
                "no:cacheprovider", os.path.join("tests", "test_gpu.py")]
    quick_flag = ["--quick"] if quick else []
    if section == "input_pipeline":
        return [python, os.path.join(BENCH, "gpu_input.py"), "--out", records, "--deadline",
                str(deadline), *quick_flag]
    model = section.split("/", 1)[1]
    return [python, os.path.join(BENCH, "gpu_throughput.py"), model, "--out", records,
            "--deadline", str(deadline), *quick_flag]


def run_section(section, box_s, output_dir, quick):
    """Run one section in a subprocess (its own process group) for at most `box_s` seconds."""
    records = os.path.join(output_dir, "sections", section.replace("/", "_") + ".jsonl")
    os.makedirs(os.path.dirname(records), exist_ok=True)
    if os.path.exists(records):
        os.remove(records)
    started = time.time()
    command = _command(section, records, started + box_s - TEARDOWN_S, quick)
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="2",
               PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])))
    if section == "gpu_tests":
        env["TF_FORCE_GPU_ALLOW_GROWTH"] = "true"  # pytest and its subprocesses share the GPU
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    timed_out = False
    try:
        log, _ = proc.communicate(timeout=box_s)
    except subprocess.TimeoutExpired:
        timed_out = True
        os.killpg(proc.pid, signal.SIGKILL)  # the section's own subprocesses too
        log, _ = proc.communicate()
    result = {"seconds": round(time.time() - started, 1), "box_s": box_s,
              "returncode": proc.returncode, "log_tail": (log or "")[-6000:],
              "records": _read_records(records)}
    if section == "gpu_tests":
        result["tests"] = gpu_report.parse_pytest(log or "")
    result.update(gpu_report.section_status(section, result, timed_out))
    return result


def _read_records(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def _git_commit():
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                             text=True, timeout=10)
        return out.stdout.strip() or None
    except (OSError, subprocess.TimeoutExpired):
        return None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output_dir", required=True, help="where results.json/.md go")
    parser.add_argument("--quick", action="store_true",
                        help="the same sections at tiny sizes (runs on a CPU in ~2 minutes)")
    parser.add_argument("--budget_s", type=float, default=None,
                        help="seconds for the whole run (default 450, --quick 400)")
    parser.add_argument("--sections", nargs="+", default=[s for s, _, _ in SECTIONS],
                        choices=[s for s, _, _ in SECTIONS], help="run only these")
    args = parser.parse_args(argv)
    budget = args.budget_s if args.budget_s is not None else (400.0 if args.quick else 450.0)
    if not budget > 0:
        parser.error(f"--budget_s={args.budget_s} must be > 0")
    os.makedirs(args.output_dir, exist_ok=True)

    started = time.time()
    results = {"script": "bench/gpu.py", "quick": args.quick, "budget_s": budget,
               "started": datetime.datetime.now(datetime.timezone.utc).isoformat(),
               "commit": _git_commit(), "sections": {}}
    for section, full_box, quick_box in SECTIONS:
        if section not in args.sections:
            continue
        left = budget - (time.time() - started)
        if left < MIN_SECTION_S:
            results["sections"][section] = {
                "status": "skipped", "reason": f"budget: {left:.0f} s of {budget:.0f} s left"}
            print(f"[gpu.py] {section}: skipped (budget)", file=sys.stderr, flush=True)
            continue
        box = min(quick_box if args.quick else full_box, left)
        print(f"[gpu.py] {section}: running (at most {box:.0f} s)", file=sys.stderr, flush=True)
        results["sections"][section] = outcome = run_section(section, box, args.output_dir,
                                                             args.quick)
        print(f"[gpu.py] {section}: {outcome['status']} in {outcome['seconds']} s"
              + (f" ({outcome['reason']})" if outcome.get("reason") else ""),
              file=sys.stderr, flush=True)
    results["elapsed_s"] = round(time.time() - started, 1)
    results["summary"] = gpu_report.summary(results)
    with open(os.path.join(args.output_dir, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    markdown = gpu_report.markdown(results)
    with open(os.path.join(args.output_dir, "results.md"), "w") as f:
        f.write(markdown)
    print(markdown)
    bad = [s for s, r in results["sections"].items() if r["status"] in ("failed", "timeout")]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
