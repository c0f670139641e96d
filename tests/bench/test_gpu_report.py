"""bench/gpu/report.py turns one call's result JSONs into the table and the target ratios (the last step of
the device call, so it must not fail on what the runs write)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPORT = Path(__file__).resolve().parents[2] / "bench" / "gpu" / "report.py"


def run_json(framework, variant, trained, real, peak):
    window = {"tok_s_trained": trained, "tok_s_real": real, "tok_s_total": real * 1.01, "padding_fraction": 0.01,
              "s_per_step": 0.2, "steps": 100}
    return {"framework": framework, "variant": variant, "versions": {"torch": "2.11.0"},
            "meter": {"window": window, "peak_mem_allocated_gib": peak, "peak_mem_reserved_gib": peak + 1,
                      "final_loss": 7.0, "steps_total": 110, "attn_implementation": "sdpa"}}


def test_report_prints_the_ratios_against_the_targets(tmp_path):
    runs = [("tunesmith", "full", 75000, 114000, 30.0), ("llamafactory", "neat_packing", 29000, 43500, 35.2),
            ("llamafactory", "full", 7800, 11700, 22.3), ("tunesmith", "lora", 40000, 60000, 25.0),
            ("llamafactory", "lora", 5300, 8000, 17.1)]
    for framework, variant, *numbers in runs:
        (tmp_path / f"{framework}_{variant}.json").write_text(json.dumps(run_json(framework, variant, *numbers)))
    (tmp_path / "matmul.json").write_text(json.dumps({"peak_tflops_measured": 745.4, "shapes": {}}))
    (tmp_path / "ts_broken.json").write_text(json.dumps({"framework": "tunesmith", "variant": "x", "meter": None}))
    out = subprocess.run([sys.executable, str(REPORT), str(tmp_path)], capture_output=True, text=True,
                         check=True).stdout
    assert "MFU peak: 745.4 TFLOP/s" in out
    assert "| tunesmith/full / llamafactory/neat_packing trained tok/s | 2.59x | >= 2.5x | yes |" in out
    assert "| tunesmith/full / llamafactory/full trained tok/s | 9.62x | >= 9.0x | yes |" in out
    assert "| tunesmith/lora / llamafactory/lora trained tok/s | 7.55x | >= 8.0x | no |" in out
    mfu = 6 * 494_032_768 * 114000 / 745.4e12  # 45.3 %
    assert f"| tunesmith/full MFU | {mfu:.1%} | >= 45% | yes |" in out
    assert "| tunesmith/full / llamafactory/neat_packing peak allocated | 30.0 / 35.2 GiB | <= | yes |" in out
    assert "| tunesmith/lora / llamafactory/lora peak allocated | 25.0 / 17.1 GiB | <= | no |" in out
