"""Imports point one way: every `rlvr` import (module level or inside a function) goes to the same package or to
a lower layer, and no module imports itself through others. Read from the source with `ast`, nothing imported."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "rlvr"

LAYERS = [
    {"rlvr.config"},                        # typed config
    {"rlvr.utils"},                         # neutral helpers (batching, checkpoint and run dirs, RNG, errors)
    {"rlvr.data"},                          # records, prompts, chats, packing
    {"rlvr.model_io", "rlvr.rewards", "rlvr.algo"},  # models on disk; verifiable rewards; pure RL maths and losses
    {"rlvr.rollout"},                       # generation engines and the weight-sync wire protocol
    {"rlvr.learner", "rlvr.eval"},          # one DeepSpeed learner rank; evaluation
    {"rlvr.trainer"},                       # controller loops, metrics, the weight-sync object
    {"rlvr.actors"},                        # Ray wiring: worker groups, waiting on actors
    {"rlvr.launch"},                        # entry points that build components and run stages
    {"rlvr.cli"},
    {"rlvr.__main__"},
]

KNOWN_CYCLES: set[frozenset[str]] = set()


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def rlvr_imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "rlvr":
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.split(".")[0] == "rlvr")
    return out


def graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in ROOT.rglob("*.py")}
    edges = {}
    for name, path in modules.items():
        # `from rlvr.trainer import grpo` names a module: resolve to the longest known module
        edges[name] = {max((m for m in modules if t == m or t.startswith(m + ".")), key=len, default=t)
                       for t in rlvr_imports(path)} - {name}
    return edges


def layer_of(module: str) -> int:
    package = ".".join(module.split(".")[:2])
    found = [i for i, layer in enumerate(LAYERS) if package in layer]
    assert found, f"{module}: its package {package} is in no layer of tests/test_layers.py (add it)"
    return found[0]


def test_every_import_goes_down_or_within_its_package():
    upward = []
    for src, targets in graph().items():
        for dst in targets:
            same_package = src.split(".")[:2] == dst.split(".")[:2]
            if not same_package and layer_of(dst) >= layer_of(src):
                upward.append(f"{src} -> {dst}")
    assert not upward, "imports that do not point down a layer:\n" + "\n".join(sorted(upward))


def test_no_import_cycles():
    edges = graph()
    cycles, state = [], {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                cycle = stack[stack.index(nxt):] + [nxt] if nxt in stack else [node, nxt]
                if frozenset(cycle) not in KNOWN_CYCLES:
                    cycles.append(" -> ".join(cycle))
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for start in sorted(edges):
        if start not in state:
            visit(start, [start])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)
