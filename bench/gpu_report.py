"""What bench/gpu.py makes of its sections: statuses, a summary and the Markdown tables."""
import re

from loops import DEVICE_BATCH, ONE_DEVICE

_TEST_LINE = re.compile(r"^(tests/\S+::\S+) (PASSED|FAILED|SKIPPED|ERROR|XFAIL|XPASS)"
                        r"(?: \((.*)\))?")
_SUMMARY_LINE = re.compile(r"^(FAILED|ERROR) (tests/\S+::\S+)(?: - (.*))?$")
_SKIP_LINE = re.compile(r"^SKIPPED \[\d+\] \S+: (.*)$")


def parse_pytest(log):
    """Per-test outcomes from `pytest -v` output (complete or cut short).

    Returns:
      {"counts": {outcome: n}, "tests": [{"name", "outcome", "detail"}], "skip_reasons": [...]}.
    """
    tests, details, skip_reasons = {}, {}, set()
    for line in log.splitlines():
        match = _TEST_LINE.match(line.strip())
        if match:
            tests[match.group(1)] = (match.group(2).lower(), match.group(3))
        match = _SUMMARY_LINE.match(line.strip())
        if match:
            details[match.group(2)] = match.group(3)
        match = _SKIP_LINE.match(line.strip())
        if match:
            skip_reasons.add(match.group(1))
    counts = {}
    for outcome, _ in tests.values():
        counts[outcome] = counts.get(outcome, 0) + 1
    return {"counts": counts,
            "tests": [{"name": name, "outcome": outcome, "detail": details.get(name, reason)}
                      for name, (outcome, reason) in tests.items()],
            "skip_reasons": sorted(skip_reasons)}


def section_status(section, result, timed_out):
    """{"status": ok | failed | timeout | skipped, "reason": ...} of a finished section."""
    last_line = (result["log_tail"].strip().splitlines() or [""])[-1][:300]
    if timed_out:
        return {"status": "timeout", "reason": f"killed at its {result['box_s']:.0f} s box"}
    if section == "gpu_tests":
        counts = result["tests"]["counts"]
        bad = [t["name"] for t in result["tests"]["tests"] if t["outcome"] in ("failed", "error")]
        if bad:
            return {"status": "failed", "reason": f"{len(bad)} failed: {', '.join(bad)}"}
        if not counts:
            return {"status": "failed", "reason": f"no test ran (exit {result['returncode']}): "
                                                  f"{last_line}"}
        if set(counts) == {"skipped"}:
            reasons = result["tests"]["skip_reasons"] or sorted(
                {t["detail"] or "?" for t in result["tests"]["tests"]})
            return {"status": "skipped", "reason": "; ".join(reasons)}
        return {"status": "ok", "reason": _counts(counts)}
    records = result["records"]
    failed = [r for r in records if r.get("status") == "failed"]
    if result["returncode"] != 0:
        return {"status": "failed", "reason": f"exit {result['returncode']}: {last_line}"}
    if failed:
        return {"status": "failed", "reason": f"{len(failed)} failed, first: "
                                              f"{failed[0].get('error', '?')[:300]}"}
    if section == "device":
        gpus = records[0]["gpus"] if records else []
        return {"status": "ok", "reason": None if gpus else "no GPU visible to TensorFlow"}
    done = [r for r in records if r.get("status") == "ok"]
    skipped = [r for r in records if r.get("status") == "skipped"]
    if not done:
        return {"status": "skipped", "reason": "; ".join(r.get("reason", "?") for r in skipped)
                or "nothing measured"}
    return {"status": "ok", "reason": f"{len(skipped)} variant(s) skipped" if skipped else None}


def _counts(counts):
    return ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items()))


def _records(results, prefix, kind):
    out = []
    for section, result in results["sections"].items():
        if section.startswith(prefix):
            out += [r for r in result.get("records", []) if r.get("kind") == kind]
    return out


def summary(results):
    """Headline figures: the device, ResNet-50's best training images/s (any loop fed by an
    input pipeline, and ours), and the input pipeline's headroom over ours."""
    device = next(iter(_records(results, "device", "device")), {})
    measured = [r for r in _records(results, "throughput/resnet_v1_50", "variant")
                if r.get("status") == "ok" and r["loop"] != DEVICE_BATCH]
    best = max(measured, key=lambda r: r["images_per_sec"], default=None)
    ours = max((r for r in measured if r["loop"] in ("ours", ONE_DEVICE)),
               key=lambda r: r["images_per_sec"], default=None)
    inputs = [r for r in _records(results, "input_pipeline", "input") if r.get("status") == "ok"]
    best_input = max(inputs, key=lambda r: r["images_per_sec"], default=None)
    out = {"gpus": [g.get("name") for g in device.get("gpus", [])], "card": device.get("card"),
           "best_training": _pick(best), "best_ours": _pick(ours),
           "best_input": best_input and {k: best_input[k] for k in
                                         ("variant", "images_per_sec", "cores")}}
    if best_input and ours:
        out["input_over_ours"] = best_input["images_per_sec"] / ours["images_per_sec"]
        out["cores_to_feed_ours"] = (best_input["cores"] * ours["images_per_sec"]
                                     / best_input["images_per_sec"])
    return out


def _pick(record):
    if record is None:
        return None
    return {k: record.get(k) for k in ("model", "precision", "xla", "loop", "images_per_sec",
                                       "peak_fraction")}


def _fmt(value, digits=3):
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.{digits}g}"
    return str(value)


def _table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def markdown(results):
    """results.json as Markdown: device, sections, throughput, tests, input."""
    out = [f"# GPU check ({'quick, ' if results['quick'] else ''}"
           f"{results['elapsed_s']:.0f} s of a {results['budget_s']:.0f} s budget)", ""]
    device = next(iter(_records(results, "device", "device")), None)
    if device:
        gpus = ", ".join(f"{g['name']} (compute capability {g['compute_capability']})"
                         for g in device["gpus"]) or "none visible to TensorFlow"
        out += [f"GPUs: {gpus}; card in the peak table: {device['card'] or '—'}; TF32 "
                f"{'on' if device['tf32'] else 'off'}. TensorFlow {device['tensorflow']} "
                f"(CUDA {device['cuda_build']}, cuDNN {device['cudnn_build']}), Keras "
                f"{device['keras']}, {device['cpu_count']} CPU cores. nvidia-smi: "
                f"{device['nvidia_smi']}", ""]
    out += ["## Sections", "", _table(["section", "status", "seconds", "reason"], [
        (name, r["status"], r.get("seconds"), r.get("reason") or "")
        for name, r in results["sections"].items()]), ""]
    throughput = [r for r in _records(results, "throughput/", "variant")]
    if throughput:
        minimal = {(r["model"], r["precision"], r["xla"]): r["images_per_sec"]
                   for r in throughput if r.get("status") == "ok" and r["loop"] == "minimal"}
        rows = []
        for r in throughput:
            if r.get("status") == "ok":
                base = minimal.get((r["model"], r["precision"], r["xla"]))
                rows.append((r["model"], r["batch"], r["precision"], r["xla"], r["loop"],
                             r["images_per_sec"], r["ms_per_step"], r["first_call_s"],
                             r["tflops"], r["peak_fraction"] and 100 * r["peak_fraction"],
                             base and r["images_per_sec"] / base))
            else:
                rows.append((r["model"], r["batch"], r["precision"], r["xla"],
                             r.get("loops", ""), r["status"], "", "", "", "",
                             (r.get("reason") or r.get("error") or "")[:120]))
        models = _records(results, "throughput/", "model")
        out += ["## Training throughput (synthetic batch, one device)", "",
                "; ".join(f"{m['model']} {m['image']}: {m['train_gflops_per_image']:.3g} "
                          "training GFLOPs/image" for m in models), "",
                _table(["model", "batch", "precision", "XLA", "loop", "images/s", "ms/step",
                        "first call s", "TFLOP/s", "% of peak", "vs minimal"], rows), ""]
    tests = results["sections"].get("gpu_tests", {}).get("tests")
    if tests and tests["tests"]:
        out += ["## GPU tests", "", _table(["test", "outcome", "detail"], [
            (t["name"].split("::", 1)[1], t["outcome"], (t["detail"] or "")[:200])
            for t in tests["tests"]]), ""]
    inputs = _records(results, "input_pipeline", "input")
    if inputs:
        summary_ = results.get("summary", {})
        ours = summary_.get("best_ours") or {}
        training = ours.get("images_per_sec")
        out += ["## Input pipeline (JPEG) vs training", "",
                f"Against our best training rate in throughput/resnet_v1_50: "
                f"{_fmt(training)} images/s ({ours.get('model', '—')}, "
                f"{ours.get('precision', '—')}, XLA {_fmt(ours.get('xla'))}).", "", _table(
            ["variant", "status", "images/s", "cores", "vs our training", "how"],
            [(r["variant"], r["status"], r.get("images_per_sec"), r.get("cores"),
              r.get("images_per_sec") and training and r["images_per_sec"] / training,
              (r.get("preprocessing") if r["status"] == "ok"
               else r.get("reason") or r.get("error", "")[:120]))
             for r in inputs]), ""]
        if summary_.get("cores_to_feed_ours"):
            out += [f"Cores the best variant needs to keep up with that rate: "
                    f"{summary_['cores_to_feed_ours']:.1f}.", ""]
    return "\n".join(out)
