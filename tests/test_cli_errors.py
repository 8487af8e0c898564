"""Bad input stops with one clear line naming the problem and exit code 2, before any actor starts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from rlvr.config import ConfigError, load_config
from rlvr.launch.cluster import check_feasible

REPO = Path(__file__).resolve().parent.parent


def run_train(tmp_path: Path, *sets: str) -> subprocess.CompletedProcess:
    (tmp_path / "keep.txt").write_text("written before the run")
    args = [sys.executable, "-m", "rlvr", "train", str(REPO / "configs" / "tiny.yaml"),
            "--set", f"run.output_dir={tmp_path}", *[a for s in sets for a in ("--set", s)]]
    env = {**os.environ, "RAY_ADDRESS": ""}
    return subprocess.run(args, capture_output=True, text=True, timeout=240, cwd=REPO, env=env)


@pytest.mark.parametrize("sets,expected", [
    (["learner.zero_stagee=2"], "unknown config key 'learner.zero_stagee'"),
    (["learner.lr=-1"], "config learner.lr: Input should be greater than 0"),
    (["rewards.functions=[{path: 'no_such_pkg.mod:fn'}]"], "reward function 'no_such_pkg.mod:fn' cannot be imported"),
    (["model.random_init=null", "model.path=/no/such/model"], "model.path '/no/such/model' does not exist"),
    (["learner.resources.num_gpus=1"], "impossible resource request: each learner actor asks for"),
    (["rollout.engine=vllm", "rollout.weight_sync=nccl", "rollout.colocate=true"],
     "use rollout.weight_sync=cuda_ipc when sharing a GPU"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, sets, expected):
    proc = run_train(tmp_path, *sets)
    assert proc.returncode == 2, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("rlvr: error: ") and expected in last, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "metrics.jsonl").exists()  # no step ran
    assert (tmp_path / "keep.txt").read_text() == "written before the run"  # nothing already written is lost


def test_missing_config_file_and_bad_override():
    with pytest.raises(ConfigError, match="config file 'nope.yaml' does not exist"):
        load_config("nope.yaml")
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        load_config(None, ["learner.lr"])
    with pytest.raises(ConfigError, match="not divisible"):
        load_config(None, ["model.random_init.hidden_size=64", "data.prompts_per_step=3"])


def test_feasibility_counts_totals_and_per_node_fit():
    cfg = load_config(None, ["model.random_init.hidden_size=64", "learner.resources.num_cpus=2"])
    check_feasible(cfg, [{"CPU": 8.0}])  # 2x2 learner + 2x1 rollout + 1 reward = 7 CPUs
    with pytest.raises(ConfigError, match="needs 7 CPU in all"):
        check_feasible(cfg, [{"CPU": 4.0}, {"CPU": 2.0}])
    pinned = load_config(None, ["model.random_init.hidden_size=64", "rewards.resources.resources={cpu_node: 1}"])
    with pytest.raises(ConfigError, match="each reward actor asks for"):
        check_feasible(pinned, [{"CPU": 8.0}])
    check_feasible(pinned, [{"CPU": 8.0}, {"CPU": 1.0, "cpu_node": 1.0}])
