"""Placement across nodes from the config, on a 2-node Ray cluster simulated on this machine: learners land on the
node with the `gpu_node` resource, reward workers on the `cpu_node` (head) node, and training completes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# starts Ray clusters: one pytest-xdist worker runs all such files (tests/conftest.py)
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("cluster")]


def test_roles_land_on_the_nodes_the_config_names(tiny_model_dir, tmp_path):
    env = {**os.environ, "RAY_ADDRESS": ""}
    proc = subprocess.run([sys.executable, "-m", "tests.multinode_driver", tiny_model_dir, str(tmp_path)],
                          capture_output=True, text=True, timeout=600, cwd=REPO, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["steps"] == [0, 1]
    assert result["roles"]["learner"] == ["gpu_node", "gpu_node"]
    assert result["roles"]["reward"] == ["head"]
    assert len(result["roles"]["rollout"]) == 2
