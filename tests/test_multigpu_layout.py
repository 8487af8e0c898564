"""GPU layouts without GPUs (docs/multigpu.md): the NCCL broadcast ranks with tensor-parallel engines, the exact
packing check and the config rules, as pure functions; then, on a Ray cluster simulated with GPU-shaped nodes
(tests/multigpu_driver.py, one cluster for the module), where each actor of each layout lands, and `rlvr train`
refusing layouts the cluster cannot hold with one line before any actor or placement group exists."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rlvr.config import ConfigError, load_config
from rlvr.launch.cluster import check_feasible
from rlvr.launch.cluster import check_packing
from rlvr.launch.layout import SearchTooLarge, assign_bundles, broadcast_layout, check_tensor_parallel_model
from rlvr.rollout.worker import vllm_engine_options

# the `simulated` Ray cluster: one pytest-xdist worker runs all such files (tests/conftest.py)
pytestmark = pytest.mark.xdist_group("cluster")

REPO = Path(__file__).resolve().parent.parent
NCCL_PRESET = REPO / "configs/gpu_smollm2_grpo_nccl.yaml"
TP2 = ["rollout.tensor_parallel_size=2", "rollout.resources.num_gpus=2"]


def nccl_cfg(*sets: str):
    return load_config(NCCL_PRESET, list(sets))


def gpu_nodes(*gpus: int, cpus: float = 8.0) -> list[dict[str, float]]:
    return [{"CPU": cpus, "GPU": float(g)} for g in gpus]


# -- the NCCL rank layout -----------------------------------------------------------------------------------------


def test_broadcast_ranks_give_every_tensor_parallel_worker_its_own_rank():
    cfg = nccl_cfg("rollout.num_actors=2", *TP2)
    layout = [(r.rank, r.role, r.actor, r.tp_rank) for r in broadcast_layout(cfg)]
    assert layout == [(0, "learner", 0, 0), (1, "rollout", 0, 0), (2, "rollout", 0, 1),
                      (3, "rollout", 1, 0), (4, "rollout", 1, 1)]


def test_tensor_parallel_engines_use_their_own_processes():
    assert vllm_engine_options(nccl_cfg(*TP2).rollout)["distributed_executor_backend"] == "mp"
    assert "distributed_executor_backend" not in vllm_engine_options(nccl_cfg().rollout)


# -- config rules and the cluster check ---------------------------------------------------------------------------


@pytest.mark.parametrize("sets, needle", [
    (["rollout.tensor_parallel_size=2"], "set rollout.resources.num_gpus=2"),
    (["rollout.tensor_parallel_size=2", "rollout.resources.num_gpus=1"], "set rollout.resources.num_gpus=2"),
    (["rollout.engine=hf", "rollout.weight_sync=object_store", "rollout.tensor_parallel_size=2",
      "rollout.resources.num_gpus=2"], "needs rollout.engine=vllm"),
])
def test_tensor_parallel_config_errors(sets, needle):
    with pytest.raises(ConfigError, match=needle):
        nccl_cfg(*sets)


@pytest.mark.parametrize("heads, ok", [(9, False), (14, True)])  # SmolLM2-135M's heads; Qwen2.5-0.5B's
def test_tensor_parallel_must_divide_the_heads(tmp_path, heads, ok):
    (tmp_path / "config.json").write_text(json.dumps({"num_attention_heads": heads}))
    cfg = nccl_cfg(*TP2)
    if ok:
        check_tensor_parallel_model(cfg, str(tmp_path))
    else:
        with pytest.raises(ConfigError, match="tensor_parallel_size=2 does not divide the model's 9 attention heads"):
            check_tensor_parallel_model(cfg, str(tmp_path))
    check_tensor_parallel_model(nccl_cfg(), str(tmp_path))  # TP=1: any model


def test_four_learners_do_not_fit_two_gpus():
    cfg = nccl_cfg("learner.num_actors=4", "learner.micro_batch_size=16")
    with pytest.raises(ConfigError, match=r"needs 5 GPU in all .*the cluster has 2"):
        check_feasible(cfg, gpu_nodes(2))
    check_feasible(cfg, gpu_nodes(4, 4))


def test_tensor_parallel_needs_its_gpus_on_one_node():
    cfg = nccl_cfg(*TP2)
    with pytest.raises(ConfigError, match=r"tensor_parallel_size=2 needs 2 GPUs on one node .* at most 1 GPUs"):
        check_feasible(cfg, gpu_nodes(1, 1, 1, 1))
    check_feasible(cfg, gpu_nodes(2, 1))


def test_bundles_that_fit_alone_but_not_together_are_refused():
    """Totals fit (4 GPUs for 4) and each engine fits the 3-GPU node, but two 2-GPU engines never fit 3 + 1."""
    cfg = nccl_cfg("rollout.num_actors=2", *TP2, "learner.resources.num_gpus=0", "learner.backend=gloo",
                   "rollout.weight_sync=object_store")
    with pytest.raises(ConfigError, match=r"impossible layout: .*2 rollout x \{CPU=1, GPU=2\}"):
        check_feasible(cfg, gpu_nodes(3, 1))
    assert sorted(check_packing(cfg, gpu_nodes(2, 2))[1:3]) == [0, 1]


def test_assign_bundles_strategies():
    one = {"GPU": 1.0}
    assert assign_bundles([one] * 4, gpu_nodes(2, 2)) is not None
    assert assign_bundles([one] * 5, gpu_nodes(2, 2)) is None
    assert assign_bundles([one] * 3, gpu_nodes(2, 2), "STRICT_PACK") is None
    assert assign_bundles([one] * 2, gpu_nodes(2, 2), "STRICT_PACK") == [0, 0]
    assert sorted(assign_bundles([one] * 2, gpu_nodes(1, 1), "STRICT_SPREAD")) == [0, 1]
    assert assign_bundles([one] * 3, gpu_nodes(4, 4), "STRICT_SPREAD") is None
    # exact, not greedy: first-fit decreasing puts 5+4 on one node and then has no room for the last 2
    sizes = [5, 4, 4, 3, 2, 2]
    where = assign_bundles([{"GPU": float(g)} for g in sizes], gpu_nodes(10, 10))
    assert where is not None and all(sum(g for g, n in zip(sizes, where) if n == k) <= 10 for k in (0, 1))
    # 8 learners and 8 engines of 1 GPU on 4 nodes of 4: the W3-at-16-GPUs shape resolves quickly
    assert assign_bundles([one] * 16 + [{"CPU": 1.0}], gpu_nodes(4, 4, 4, 4)) is not None
    # the search has a bound: past it the layout is left to Ray (check_packing does not refuse it)
    with pytest.raises(SearchTooLarge):
        assign_bundles([{"GPU": float(g)} for g in sizes], gpu_nodes(10, 10), max_steps=3)


# -- on a simulated GPU cluster -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def simulated(tiny_model_dir, tmp_path_factory) -> dict:
    env = {**os.environ, "RAY_ADDRESS": ""}
    out = tmp_path_factory.mktemp("multigpu")
    proc = subprocess.run([sys.executable, "-m", "tests.multigpu_driver", tiny_model_dir, str(out)],
                          capture_output=True, text=True, timeout=600, cwd=REPO, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def gpu_slots(reports: list[dict]) -> list[tuple[str, str]]:
    return [(r["node"], g) for r in reports for g in r["gpus"]]


def check_common(sim: dict, layout: dict) -> None:
    actors = [r for role in layout["roles"].values() for r in role]
    for r in actors:  # every probe is where its bundle was placed
        assert r["node"] == r["bundle_node"] and r["in_placement_group"]
    for role in ("learner", "rollout"):
        for r in layout["roles"][role]:
            assert r["node"] in sim["gpu_nodes"]
            assert sorted(r["cuda_visible"].split(",")) == r["gpus"]
    slots = gpu_slots(layout["roles"]["learner"] + layout["roles"]["rollout"])
    assert len(slots) == len(set(slots)), "two actors share a GPU: NCCL refuses that"
    assert all(not r["gpus"] for r in layout["roles"]["reward"])


@pytest.mark.slow
def test_learner_and_vllm_on_separate_gpus(simulated):
    layout = simulated["layouts"]["learner1_vllm1"]
    check_common(simulated, layout)
    assert [len(r["gpus"]) for r in layout["roles"]["learner"] + layout["roles"]["rollout"]] == [1, 1]


@pytest.mark.slow
def test_four_learners_and_a_tensor_parallel_engine(simulated):
    layout = simulated["layouts"]["dp4_tp2"]
    check_common(simulated, layout)
    assert [len(r["gpus"]) for r in layout["roles"]["learner"]] == [1, 1, 1, 1]
    (engine,) = layout["roles"]["rollout"]
    assert len(engine["gpus"]) == 2  # both TP workers' GPUs, on the engine's one node


@pytest.mark.slow
def test_eight_gpus_of_two_nodes_all_used(simulated):
    layout = simulated["layouts"]["w3_8gpu"]
    check_common(simulated, layout)
    slots = gpu_slots(layout["roles"]["learner"] + layout["roles"]["rollout"])
    assert len(set(slots)) == 8 and {n for n, _ in slots} == set(simulated["gpu_nodes"])


@pytest.mark.slow
@pytest.mark.parametrize("case, needle", [
    ("too_many_gpus", "the run needs 9 GPU in all"),
    ("tp_beyond_node", "tensor_parallel_size=8 needs 8 GPUs on one node"),
    ("heads", "tensor_parallel_size=3 does not divide the model's 8 attention heads"),
])
def test_impossible_layout_is_one_line_before_any_actor(simulated, case, needle):
    res = simulated["cli"][case]
    assert res["rc"] == 2
    lines = res["stderr"].strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rlvr: error: ") and needle in lines[0], res["stderr"]
    assert res["created"] == [0, 0]  # no actor, no placement group
