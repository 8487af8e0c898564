"""Joining or starting a Ray cluster, and placing every actor of a run with one placement group.

Resource requests are checked against the cluster before anything is created, so an impossible request (a GPU on a
CPU-only cluster, a custom resource no node has) is one clear error instead of actors pending forever.
"""

from __future__ import annotations

import math
import os
import secrets
from dataclasses import dataclass

import ray
from ray.util.placement_group import placement_group, remove_placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from rlvr.config import ConfigError, CurateSection, ResourceSpec, RunConfig
from rlvr.launch.actor_env import actor_env
from rlvr.launch.layout import SearchTooLarge, assign_bundles, check_tensor_parallel


@dataclass(frozen=True)
class Role:
    name: str
    count: int
    spec: ResourceSpec


def roles(cfg: RunConfig, only: tuple[str, ...] | None = None) -> list[Role]:
    """`only`: the roles a stage needs (pretraining and SFT need learners alone)."""
    all_roles = [
        Role("learner", cfg.learner.num_actors, cfg.learner.resources),
        Role("rollout", cfg.rollout.num_actors, cfg.rollout.resources),
        Role("reward", cfg.rewards.num_workers, cfg.rewards.resources),
    ]
    return [r for r in all_roles if only is None or r.name in only]


def bundle(spec: ResourceSpec) -> dict[str, float]:
    b = {"CPU": spec.num_cpus, "GPU": spec.num_gpus, **spec.resources}
    b = {k: v for k, v in b.items() if v > 0}
    return b or {"CPU": 0.01}  # Ray rejects empty bundles


def connect(cfg: RunConfig) -> None:
    """Join cluster.address or RAY_ADDRESS if given (as `ray job submit` does), else start a local cluster."""
    if ray.is_initialized():
        return
    address = cfg.cluster.address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=True)
        return
    # A laptop run oversubscribes its cores on purpose: actors mostly wait on one another.
    needed = sum(r.count * r.spec.num_cpus for r in roles(cfg))
    num_cpus = cfg.cluster.num_cpus or max(os.cpu_count() or 1, math.ceil(needed))
    # address="local": the documented "else start a local cluster", even while a `ray start` or
    # cluster_utils.Cluster of another process runs on this machine (a bare ray.init() joins the newest)
    ray.init(address="local", num_cpus=num_cpus, log_to_driver=True)


def check_curate_workers(curate: CurateSection) -> None:
    """A fixed pool of `curate.workers` map actors (1 CPU each) starts whole before any work (rlvr.data.curate):
    more than the cluster's CPUs would wait out Ray Data's start-up limit, so refuse it now, in one line."""
    if not curate.workers:
        return
    cpus = sum(n["Resources"].get("CPU", 0.0) for n in ray.nodes() if n.get("Alive"))
    if curate.workers > cpus:
        raise ConfigError(f"curate.workers={curate.workers} asks for {curate.workers} map actors of 1 CPU each, but the "
                          f"cluster has {cpus:g} CPUs (set curate.workers <= {int(cpus)}, or null to scale with the "
                          "cluster)")


def check_feasible(cfg: RunConfig, nodes: list[dict[str, float]], only: tuple[str, ...] | None = None) -> None:
    """Raise ConfigError when the roles cannot all be placed on these nodes (each a dict of total resources)."""
    total: dict[str, float] = {}
    for node in nodes:
        for k, v in node.items():
            total[k] = total.get(k, 0.0) + v
    if only is None or "rollout" in only:
        check_tensor_parallel(cfg, nodes)
    demand: dict[str, float] = {}
    for role in roles(cfg, only):
        b = bundle(role.spec)
        for k, v in b.items():
            demand[k] = demand.get(k, 0.0) + v * role.count
        if not any(all(node.get(k, 0.0) >= v for k, v in b.items()) for node in nodes):
            raise ConfigError(
                f"impossible resource request: each {role.name} actor asks for {_fmt(b)}, "
                f"but no node has that (cluster nodes: {'; '.join(_fmt(n) for n in nodes)})"
            )
    for k, v in demand.items():
        if v > total.get(k, 0.0) + 1e-9:
            raise ConfigError(
                f"impossible resource request: the run needs {v:g} {k} in all "
                f"({', '.join(f'{r.count} {r.name}' for r in roles(cfg, only))}), the cluster has {total.get(k, 0.0):g}"
            )
    check_packing(cfg, nodes, only)  # totals fit: do the bundles fit the nodes together?


def _fmt(res: dict[str, float]) -> str:
    keep = {k: v for k, v in res.items() if k in ("CPU", "GPU") or not k.startswith(("node:", "memory", "object_"))}
    return ", ".join(f"{k}={v:g}" for k, v in sorted(keep.items())) or "nothing"


def check_packing(cfg: RunConfig, nodes: list[dict[str, float]], only: tuple[str, ...] | None = None) -> list[int] | None:
    """The node index of each bundle, in `Placement`'s bundle order (None: too many to decide); ConfigError when
    they cannot all be placed."""
    rs = roles(cfg, only)
    bundles = [bundle(r.spec) for r in rs for _ in range(r.count)]
    strategy = cfg.cluster.placement_strategy
    try:
        where = assign_bundles(bundles, nodes, strategy)
    except SearchTooLarge:
        return None  # undecided: Ray places it or times out with cluster.actor_timeout_s
    if where is None:
        wanted = " + ".join(f"{r.count} {r.name} x {{{_fmt(bundle(r.spec))}}}" for r in rs)
        raise ConfigError(f"impossible layout: {wanted} cannot all be placed at once ({strategy}) on the cluster's "
                          f"nodes ({'; '.join(_fmt(n) for n in nodes)})")
    return where


def alive_nodes() -> list[dict[str, float]]:
    return [n["Resources"] for n in ray.nodes() if n.get("Alive")]


class Placement:
    """One placement group for the whole run; `scheduling(role)` gives the Ray options for each of its actors."""

    def __init__(self, cfg: RunConfig, only: tuple[str, ...] | None = None):
        check_feasible(cfg, alive_nodes(), only)
        self.roles = roles(cfg, only)
        # actor names show in the dashboard and let tools find a run's actors; the suffix keeps two runs with the
        # same run.name (in one Ray namespace) apart
        self.run_id = f"rlvr-{cfg.run.name}-{secrets.token_hex(3)}"
        bundles = [bundle(r.spec) for r in self.roles for _ in range(r.count)]
        self.pg = placement_group(bundles, strategy=cfg.cluster.placement_strategy, name=f"rlvr-{cfg.run.name}")
        ready, _ = ray.wait([self.pg.ready()], timeout=cfg.cluster.actor_timeout_s)
        if not ready:
            remove_placement_group(self.pg)
            raise ConfigError(
                f"the placement group ({len(bundles)} bundles, {cfg.cluster.placement_strategy}) could not be "
                f"placed within {cfg.cluster.actor_timeout_s:.0f} s: the cluster is busy or too small"
            )

    def scheduling(self, role_name: str) -> list[dict]:
        index, out = 0, []
        for role in self.roles:
            for k in range(role.count):
                if role.name == role_name:
                    out.append({
                        "name": f"{self.run_id}/{role.name}-{k}",
                        "num_cpus": role.spec.num_cpus,
                        "num_gpus": role.spec.num_gpus,
                        "resources": dict(role.spec.resources),
                        "scheduling_strategy": PlacementGroupSchedulingStrategy(
                            self.pg, placement_group_bundle_index=index
                        ),
                        "runtime_env": {"env_vars": actor_env(role.spec)},
                    })
                index += 1
        return out

    def remove(self) -> None:
        remove_placement_group(self.pg)
