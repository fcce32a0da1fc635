"""bench/gpu.py, the one prepared GPU check, kept from rotting: `--quick` runs every section on
the CPU, and the report's pieces (card table, pytest parsing, statuses) are checked directly."""
import json
import os
import subprocess
import sys

import pytest

from tests import scripts

sys.path.insert(0, os.path.join(scripts.ROOT, "bench"))

import gpu  # noqa: E402
import gpu_device  # noqa: E402
import gpu_report  # noqa: E402


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("gpu_quick")
    # A CPU run wherever the suite runs: on a GPU machine the real check is `bench/gpu.py`.
    proc = subprocess.run(
        [sys.executable, os.path.join(scripts.ROOT, "bench", "gpu.py"),
         f"--output_dir={output_dir}", "--quick"],
        cwd=scripts.ROOT, env=scripts.script_env(CUDA_VISIBLE_DEVICES=""), capture_output=True,
        text=True, timeout=900)
    with open(output_dir / "results.json") as f:
        return proc, json.load(f), (output_dir / "results.md").read_text()


@pytest.mark.subprocess
def test_quick_run_covers_every_section(quick_run):
    proc, results, markdown = quick_run
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert list(results["sections"]) == [name for name, _, _ in gpu.SECTIONS]
    for name, section in results["sections"].items():
        assert section["status"] in ("ok", "skipped"), \
            f"{name}: {section['status']} ({section.get('reason')})\n{section.get('log_tail')}"
        if section["status"] == "skipped":
            assert section["reason"], name
    assert results["sections"]["gpu_tests"]["status"] == "skipped"
    assert "no GPU" in results["sections"]["gpu_tests"]["reason"]
    assert results["sections"]["gpu_tests"]["tests"]["counts"]["skipped"] >= 10
    assert markdown.strip() in proc.stdout  # printed at the end
    for name in results["sections"]:
        assert f"| {name} |" in markdown


@pytest.mark.subprocess
def test_quick_run_measures_every_loop_precision_and_xla_setting(quick_run):
    _, results, markdown = quick_run
    measured = [r for name, s in results["sections"].items() if name.startswith("throughput/")
                for r in s["records"] if r.get("kind") == "variant"]
    assert measured and all(r["status"] == "ok" for r in measured), measured
    assert {r["loop"] for r in measured} == {"ours", "minimal", "model.fit", "ours, one_device",
                                             "minimal, batch on device"}
    assert {r["precision"] for r in measured} == {"float32", "bfloat16", "float16"}
    assert {r["xla"] for r in measured} == {False, True}
    for r in measured:
        assert r["images_per_sec"] > 0 and r["first_call_s"] > 0
        assert r["ms_per_step"] == pytest.approx(1e3 * r["batch"] / r["images_per_sec"])
        assert r["peak_fraction"] is None  # a CPU has no entry in the peak table
    models = [r for s in results["sections"].values() for r in s.get("records", [])
              if r.get("kind") == "model"]
    assert all(m["train_gflops_per_image"] > 0 for m in models) and len(models) == 3
    inputs = [r for r in results["sections"]["input_pipeline"]["records"]
              if r["status"] == "ok"]
    assert len(inputs) >= 2 and all(r["images_per_sec"] > 0 for r in inputs)
    assert results["summary"]["cores_to_feed_ours"] > 0
    assert "## Training throughput" in markdown and "## Input pipeline" in markdown


@pytest.mark.parametrize("name, card", [
    ("NVIDIA H100 80GB HBM3", "H100 SXM5"), ("NVIDIA H100 PCIe", "H100 PCIe"),
    ("NVIDIA H200", "H200"), ("NVIDIA A100-SXM4-80GB", "A100"), ("NVIDIA A100 80GB PCIe", "A100"),
    ("NVIDIA H100 NVL", None), ("Tesla T4", None), (None, None)])
def test_cards_are_matched_by_name(name, card):
    assert gpu_device.match_card(name)[0] == card


def test_peak_flops_by_precision():
    assert gpu_device.peak_flops("H100 SXM5", "bfloat16") == pytest.approx(989.4e12)
    assert gpu_device.peak_flops("H100 PCIe", "float16") == pytest.approx(756.5e12)
    assert gpu_device.peak_flops("A100", "float32", tf32=True) == pytest.approx(156e12)
    assert gpu_device.peak_flops("A100", "float32", tf32=False) == pytest.approx(19.5e12)
    assert gpu_device.peak_flops(None, "bfloat16") is None


def test_resnet50_forward_flops_equal_the_closed_form():
    """slim's resnet_v1_50 at 224: sum over convolutions of 2 * H_out * W_out * k*k*C_in*C_out.

    Strides sit on the last unit of blocks 1-3 (slim's v1 layout); the logits are a 1x1 conv.
    """
    units = [(64, 256, 3), (128, 512, 4), (256, 1024, 6), (512, 2048, 3)]
    macs = 112 * 112 * 7 * 7 * 3 * 64  # conv1
    size, depth_in = 56, 64
    for block, (bottleneck, depth, count) in enumerate(units):
        for unit in range(count):
            stride = 2 if unit == count - 1 and block < 3 else 1
            out = size // stride
            if unit == 0:
                macs += out * out * depth_in * depth  # projection shortcut
            macs += size * size * depth_in * bottleneck         # 1x1
            macs += out * out * 9 * bottleneck * bottleneck     # 3x3, strided
            macs += out * out * bottleneck * depth              # 1x1
            size, depth_in = out, depth
    macs += 2048 * 1000
    flops = gpu_device.forward_flops("resnet_v1_50", (224, 224, 3), 1000)
    assert flops == pytest.approx(2 * macs, rel=0.01)  # + batch norm, pooling, adds: < 1%


def test_pytest_outcomes_and_statuses():
    log = "\n".join([
        "tests/test_gpu.py::test_a[1] PASSED [ 50%]",
        "tests/test_gpu.py::test_b FAILED [100%]",
        "=== short test summary info ===",
        "FAILED tests/test_gpu.py::test_b - AssertionError: 3e-05 > 1e-05",
    ])
    parsed = gpu_report.parse_pytest(log)
    assert parsed["counts"] == {"passed": 1, "failed": 1}
    assert parsed["tests"][1]["detail"] == "AssertionError: 3e-05 > 1e-05"
    result = {"tests": parsed, "log_tail": log, "returncode": 1, "records": [], "box_s": 150}
    assert gpu_report.section_status("gpu_tests", result, False)["status"] == "failed"
    assert gpu_report.section_status("gpu_tests", result, True)["status"] == "timeout"
    skipped = gpu_report.parse_pytest("tests/test_gpu.py::test_a SKIPPED [100%]\n"
                                      "SKIPPED [1] tests/test_gpu.py:51: no GPU visible")
    result = dict(result, tests=skipped, returncode=0)
    assert gpu_report.section_status("gpu_tests", result, False) == {
        "status": "skipped", "reason": "no GPU visible"}
    measured = {"records": [{"kind": "variant", "status": "failed", "error": "OOM"}],
                "returncode": 0, "log_tail": "", "box_s": 30}
    assert gpu_report.section_status("throughput/x", measured, False)["status"] == "failed"
