"""Run by tests/test_curation_multinode.py in its own process (a `Cluster` needs its own `ray.init`): the data
stage on a 2-node Ray cluster simulated on this machine, one Ray Data map actor per node. Prints one JSON line:
the manifest's counts, the nodes the work ran on, and the kept documents."""

from __future__ import annotations

import json
import sys

import ray
from ray.cluster_utils import Cluster

from rlvr.config import CurateSection
from rlvr.data.curate import run_curation
from rlvr.data.records import open_source


def main(config_json: str, out_dir: str) -> None:
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "include_dashboard": False, "env_vars": {"OMP_NUM_THREADS": "1"}})
    cluster.add_node(num_cpus=1)
    ray.init(address=cluster.address, log_to_driver=False)
    cfg = CurateSection.model_validate({**json.loads(config_json), "workers": 2})
    data_dir, manifest = run_curation(cfg, out_dir)
    kept = sorted(r["text"] for _, r in open_source(str(data_dir), "data").located())
    print(json.dumps({"nodes": manifest["nodes"], "steps": manifest["steps"], "kept": kept}))
    ray.shutdown()
    cluster.shutdown()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
