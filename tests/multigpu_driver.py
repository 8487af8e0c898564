"""Run by tests/test_multigpu_layout.py in its own process (a `Cluster` needs its own `ray.init`): a Ray cluster
simulated on this machine with GPU-shaped nodes (a CPU head and two nodes that *declare* 4 GPUs each; Ray assigns
GPU ids and CUDA_VISIBLE_DEVICES for them though none exist). For each GPU layout of docs/multigpu.md, the run's
placement group is made from the config exactly as `rlvr train` makes it (`Placement`), and a light probe actor
takes each actor's scheduling options and reports where it landed. No learner or vLLM starts. Then `rlvr train`
with a layout the cluster cannot hold. Prints one JSON line."""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
from pathlib import Path

import ray
from ray.cluster_utils import Cluster

from rlvr.config import load_config
from rlvr.launch.cluster import Placement

NCCL_PRESET = "configs/gpu_smollm2_grpo_nccl.yaml"
LAYOUTS = {  # overrides of the 2-GPU NCCL preset, as docs/multigpu.md runs them
    "learner1_vllm1": [],
    "dp4_tp2": ["learner.num_actors=4", "learner.micro_batch_size=16", "rollout.tensor_parallel_size=2",
                "rollout.resources.num_gpus=2"],
    "w3_8gpu": ["learner.num_actors=4", "learner.micro_batch_size=16", "rollout.num_actors=4"],
}


class Probe:
    """Stands in for a learner or rollout actor: reports what Ray gave it."""

    def where(self) -> dict:
        ctx = ray.get_runtime_context()
        pg = ray.util.get_current_placement_group()
        return {"node": ctx.get_node_id(), "gpus": sorted(str(g) for g in ray.get_gpu_ids()),
                "cuda_visible": os.environ.get("CUDA_VISIBLE_DEVICES", ""),
                # vLLM picks its Ray executor for TP>1 when this is set (rlvr.rollout.worker.vllm_engine_options)
                "in_placement_group": pg is not None}


def probe_layout(cfg) -> dict:
    placement = Placement(cfg)
    try:
        table = ray.util.placement_group_table(placement.pg)
        bundle_node = table["bundles_to_node_id"]
        remote = ray.remote(Probe)
        out: dict = {"roles": {}}
        for role in ("learner", "rollout", "reward"):
            opts = placement.scheduling(role)
            actors = [remote.options(**o).remote() for o in opts]
            reports = ray.get([a.where.remote() for a in actors], timeout=300)
            for o, rep in zip(opts, reports):
                index = o["scheduling_strategy"].placement_group_bundle_index
                rep.update(bundle=index, bundle_node=bundle_node[index])
            out["roles"][role] = reports
            for a in actors:
                ray.kill(a)
        return out
    finally:
        placement.remove()


def cli_on_cluster(args: list[str]) -> dict:
    """`rlvr train ARGS` in this process (it joins the running cluster); what it printed, and whether it created
    any actor or placement group."""
    from rlvr.cli import main

    def counts():
        return (len(ray._private.state.state.actor_table(None)), len(ray.util.placement_group_table()))

    before = counts()
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        rc = main(["train", *args])
    return {"rc": rc, "stderr": err.getvalue(), "created": [a - b for a, b in zip(counts(), before)]}


def main(model_dir: str, out_dir: str) -> None:
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 2, "num_gpus": 0, "include_dashboard": False, "env_vars": {"OMP_NUM_THREADS": "1"}})
    gpu_nodes = [cluster.add_node(num_cpus=4, num_gpus=4) for _ in range(2)]
    ray.init(address=cluster.address, log_to_driver=False)
    cluster.wait_for_nodes()
    common = [f"model.path={model_dir}", "cluster.actor_timeout_s=300", "learner.resources.num_cpus=0.5",
              "rollout.resources.num_cpus=0.5", "rewards.resources.num_cpus=0.5"]
    result: dict = {"head": cluster.head_node.node_id, "gpu_nodes": [n.node_id for n in gpu_nodes], "layouts": {}}
    for name, sets in LAYOUTS.items():
        result["layouts"][name] = probe_layout(load_config(NCCL_PRESET, common + sets))
    # 9 whole GPUs on 8; a TP=8 engine on nodes of 4; TP=3 for 8 heads: each refused before any actor starts
    from rlvr.config import ModelSection, RandomInit
    from rlvr.model_io import resolve_model_path

    heads8 = resolve_model_path(ModelSection(random_init=RandomInit(hidden_size=32, num_layers=1, num_heads=8)),
                                Path(out_dir) / "heads8", seed=0)
    base = [NCCL_PRESET, *[f"--set={s}" for s in common], f"--set=model.path={heads8}", "--set=data.source=copy_digits", "--set=data.path=null",
            "--set=data.chat_template=false", "--set=model.dtype=float32", "--set=data.prompt_template='{prompt}'",
            "--set=rollout.max_new_tokens=16"]
    result["cli"] = {
        "too_many_gpus": cli_on_cluster([*base, f"--set=run.output_dir={out_dir}/a", "--set=learner.num_actors=8",
                                         "--set=learner.micro_batch_size=8", "--set=rollout.num_actors=1"]),
        "tp_beyond_node": cli_on_cluster([*base, f"--set=run.output_dir={out_dir}/b",
                                          "--set=rollout.tensor_parallel_size=8", "--set=rollout.resources.num_gpus=8"]),
        "heads": cli_on_cluster([*base, f"--set=run.output_dir={out_dir}/c",
                                 "--set=rollout.tensor_parallel_size=3", "--set=rollout.resources.num_gpus=3"]),
    }
    print(json.dumps(result), flush=True)
    ray.shutdown()
    cluster.shutdown()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
