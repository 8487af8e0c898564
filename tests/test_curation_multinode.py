"""The data stage keeps the same documents on one node and on a 2-node Ray cluster (decisions are made in input
order on the driver, so placement cannot change them)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rlvr.config import CurateSection
from tests.test_curation import DATA, corpus, needs_data

REPO = Path(__file__).resolve().parent.parent
# starts Ray clusters: one pytest-xdist worker runs all such files (tests/conftest.py)
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("cluster")]


@needs_data
def test_one_node_and_two_nodes_keep_the_same_documents(ray_cluster, tmp_path):
    from rlvr.data.curate import run_curation
    from rlvr.data.records import open_source

    path, _ = corpus(tmp_path)
    spec = {"sources": [{"path": str(path)}], "min_chars": 5, "batch_size": 8, "shards": 2,
            "decontaminate": {"eval_sets": [{"path": str(DATA / "gsm8k" / "test.jsonl")}]}}
    data_dir, one = run_curation(CurateSection.model_validate(spec), str(tmp_path / "one"))
    kept_one = sorted(r["text"] for _, r in open_source(str(data_dir), "data").located())
    env = {**os.environ, "RAY_ADDRESS": ""}
    proc = subprocess.run([sys.executable, "-m", "tests.curation_multinode_driver", json.dumps(spec),
                           str(tmp_path / "two")], capture_output=True, text=True, timeout=600, cwd=REPO, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    two = json.loads(proc.stdout.strip().splitlines()[-1])
    assert two["nodes"] == 2  # the map work really ran on both nodes
    assert two["steps"] == one["steps"] and two["kept"] == kept_one
    assert sum(s["in"] - s["out"] for s in one["steps"]) > 0
