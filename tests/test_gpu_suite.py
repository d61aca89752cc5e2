"""``benchmarks/gpu_suite.py --device cpu --quick``: the GPU suite's code runs end to end at tiny
sizes on the CPU, and its JSON holds every stage with figures (a CI stand-in for the GPU run)."""

from __future__ import annotations

import json
import subprocess
import sys

from helpers import needs_motion

from helpers import REPO


@needs_motion
def test_quick_suite_on_cpu_records_every_stage(tmp_path):
    res = subprocess.run([sys.executable, "benchmarks/gpu_suite.py", "--device", "cpu", "--quick", "--out", str(tmp_path)],
                         cwd=REPO, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    report = json.loads((tmp_path / "gpu_suite.json").read_text())
    stages = report["stages"]
    assert list(stages) == ["cuda_tests", "physics", "train_e2e", "learning"]
    assert all(s["status"] == "ok" for s in stages.values()), {k: s.get("error") for k, s in stages.items()}
    assert stages["cuda_tests"]["result"]["skipped"] >= 1               # CUDA tests exist and skip on a CPU
    point = stages["physics"]["result"]["points"][0]
    assert point["worlds"] == 4 and point["env_steps_s"] > 0
    fk = stages["physics"]["result"]["fk"]
    assert fk["step_ms_torch_fk"] > 0 and fk["step_ms_warp_kinematics"] > 0 and fk["max_gap"] < 1e-3
    row = stages["train_e2e"]["result"]["rows"][0]
    assert row["envs"] == 4 and row["env_steps_s"] > 0
    assert set(row["split_s"]) == {"physics", "env_work", "inference", "ppo_update_and_rest"}
    assert all(v > 0 for v in row["split_s"].values())
    learning = stages["learning"]["result"]
    assert len(learning["curve"]) >= 2 and learning["curve"][-1]["frames"] > learning["curve"][0]["frames"]
    # 4 eval steps: too short for the layup criterion (no success rate), long enough for E_b
    assert "success_rate" in learning["eval"] and learning["eval"]["e_b_mm"] > 0
    md = (tmp_path / "gpu_suite.md").read_text()
    assert "### train_e2e: ok" in md and "env-steps/s" in md
    assert "### physics: ok" in res.stdout                              # printed when the stage ended
