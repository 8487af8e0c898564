"""Run by tests/test_multinode.py in its own process (a `Cluster` needs its own `ray.init`, which the test session's
cluster would collide with): a 2-node Ray cluster on this machine, a CPU node (the head) and a "GPU" node marked
by a custom resource; a short run whose config pins learners to the GPU node and reward workers to the CPU node.
Prints one JSON line: where each of the run's actors was, by role, and the steps logged."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import ray
from ray.cluster_utils import Cluster

from rlvr.config import load_config
from rlvr.launch.grpo_job import run_grpo_job


def actor_nodes() -> dict[str, str]:
    """Name -> node id of every live named actor of this job (from the GCS actor table)."""
    table = ray._private.state.state.actor_table(None)
    return {a["Name"]: a["Address"]["NodeID"] for a in table.values() if a["Name"] and a["State"] == "ALIVE"}


def main(model_dir: str, out_dir: str) -> None:
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 2, "resources": {"cpu_node": 2}, "include_dashboard": False,
        "env_vars": {"OMP_NUM_THREADS": "1"}})
    gpu_node = cluster.add_node(num_cpus=3, resources={"gpu_node": 2})
    ray.init(address=cluster.address, log_to_driver=False)
    cfg = load_config(None, [
        f"model.path={model_dir}", f"run.output_dir={out_dir}", "run.steps=2", "cluster.actor_timeout_s=300",
        "learner.resources={num_cpus: 1, resources: {gpu_node: 1}}",
        "rewards.resources={num_cpus: 0.5, resources: {cpu_node: 1}}",
        "rollout.resources={num_cpus: 0.5}", "logging.progress_bar=false",
    ])
    seen: dict[str, str] = {}
    run_grpo_job(cfg, on_step=lambda step: seen.update(actor_nodes()))
    rows = (Path(out_dir) / "metrics.jsonl").read_text().splitlines()
    by_role: dict[str, list[str]] = {}
    for name, node in sorted(seen.items()):
        role = name.rsplit("/", 1)[-1].split("-")[0]
        by_role.setdefault(role, []).append("gpu_node" if node == gpu_node.node_id else
                                            "head" if node == cluster.head_node.node_id else node)
    print(json.dumps({"roles": by_role, "steps": [json.loads(r)["step"] for r in rows]}), flush=True)
    ray.shutdown()
    cluster.shutdown()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
