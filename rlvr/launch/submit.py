"""`rlvr submit CONFIG [--set key=value ...]`: check the config and the working directory, submit the run as a Ray job,
then follow its logs (the same as `ray job submit --working-dir . -- python -m rlvr train CONFIG`).

Checked before anything is uploaded, so a mistake costs seconds rather than a queued job that fails:
- the config loads (the same validation `rlvr train` does) and lies inside the working directory;
- every reward function imports from the working directory, as the job will import it, and the prompt template
  names no unknown field;
- the working directory, as Ray will upload it (respecting .gitignore and .rayignore), fits Ray's upload limit.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import sys
import time
from pathlib import Path

from rlvr.config import ConfigError, RunConfig, load_config
from rlvr.launch.input_checks import check_prompt_template
from rlvr.launch.pipeline import plan
from rlvr.rewards.loader import check_reward_paths

TERMINAL_OK = "SUCCEEDED"
AGENT_WAIT_S = 120.0


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="rlvr submit", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", help="preset YAML inside the working directory")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value (repeatable), passed on to `rlvr train`")
    p.add_argument("--address", default=None,
                   help="Ray dashboard address, e.g. http://HEAD:8265 (default: RAY_ADDRESS, else 127.0.0.1:8265)")
    p.add_argument("--working-dir", default=".", help="uploaded to the cluster; the job runs in it (default: .)")
    p.add_argument("--submission-id", default=None, help="job id (default: chosen by Ray)")
    p.add_argument("--python", default="python", help="the cluster's Python that has rlvr's dependencies")
    p.add_argument("--no-wait", action="store_true", help="submit and return; follow with `ray job logs -f ID`")
    return p.parse_args(argv)


def upload_size(working_dir: Path) -> tuple[int, dict[str, int]]:
    """Bytes Ray would upload from `working_dir`, and per top-level entry. Uses Ray's own directory walk and
    excludes (.gitignore, .rayignore, the default `.git`/`.venv`/`__pycache__`, and the variables that change
    them), so what is counted is what will be uploaded. Private Ray helpers: the public API only uploads."""
    from ray._private.ray_constants import get_runtime_env_default_excludes
    from ray._private.runtime_env.packaging import _dir_travel, _get_excludes

    include_gitignore = os.environ.get("RAY_RUNTIME_ENV_IGNORE_GITIGNORE", "0") != "1"
    per_entry: dict[str, int] = {}

    def add(path: Path) -> None:
        if path.is_file() and not path.is_symlink():
            top = path.relative_to(working_dir).parts[0]
            per_entry[top] = per_entry.get(top, 0) + path.stat().st_size

    excludes = [_get_excludes(working_dir, get_runtime_env_default_excludes())]
    _dir_travel(working_dir, excludes, add, include_gitignore=include_gitignore)
    return sum(per_entry.values()), per_entry


def check_working_dir(working_dir: Path, config: Path) -> int:
    from ray._private.runtime_env.packaging import GCS_STORAGE_MAX_SIZE

    if not working_dir.is_dir():
        raise ConfigError(f"--working-dir {str(working_dir)!r} is not a directory")
    if not config.resolve().is_relative_to(working_dir.resolve()):
        raise ConfigError(f"config {str(config)!r} is outside the working directory {str(working_dir)!r}: "
                          "the job would not find it; move it in or pass --working-dir")
    total, per_entry = upload_size(working_dir)
    # the limit applies to the zip; unzipped bytes are an upper bound, so this never lets a too-large upload pass
    if total >= GCS_STORAGE_MAX_SIZE:
        biggest = sorted(per_entry.items(), key=lambda kv: -kv[1])[:3]
        shown = ", ".join(f"{name} ({size / 2**20:.0f} MiB)" for name, size in biggest)
        raise ConfigError(f"working directory {str(working_dir)!r} is {total / 2**20:.0f} MiB to upload, over Ray's "
                          f"{GCS_STORAGE_MAX_SIZE / 2**20:.0f} MiB limit; largest: {shown}. "
                          "List what the job does not need in .gitignore or .rayignore")
    return total


def use_token_auth_if_available() -> None:
    """Ray 2.60 heads started with `ray start --head` require a token, but a client only sends it when told to
    (RAY_AUTH_MODE=token); do that when a token exists (RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token)
    and the user has not chosen a mode. Ray's own helper is used because Ray caches the mode once it is imported:
    setting the variable alone is too late in this process."""
    if os.environ.get("RAY_AUTH_MODE"):
        return
    from ray._private.authentication.authentication_token_setup import maybe_enable_token_auth_if_token_available

    maybe_enable_token_auth_if_token_available(warn_if_disabled=False)


def entrypoint(python: str, config: Path, working_dir: Path, overrides: list[str]) -> str:
    rel = config.resolve().relative_to(working_dir.resolve())
    args = [python, "-m", "rlvr", "train", rel.as_posix()]
    for item in overrides:
        args += ["--set", item]
    return shlex.join(args)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    config, working_dir = Path(args.config), Path(args.working_dir)
    cfg = load_config(config, args.overrides)  # every config error, before anything is uploaded
    size = check_working_dir(working_dir, config)
    check_submit_inputs(cfg, working_dir)
    use_token_auth_if_available()
    from ray.job_submission import JobSubmissionClient

    address = args.address or os.environ.get("RAY_ADDRESS") or "http://127.0.0.1:8265"
    client = JobSubmissionClient(address)
    job = dict(entrypoint=entrypoint(args.python, config, working_dir, args.overrides),
               runtime_env={"working_dir": str(working_dir)}, submission_id=args.submission_id,
               metadata={"rlvr_run": cfg.run.name})
    job_id = submit_when_ready(client, job, deadline_s=AGENT_WAIT_S)
    print(f"[rlvr] submitted {job_id} ({size / 2**20:.1f} MiB working dir) to {address}; "
          f"logs: ray job logs -f {job_id}; stop: ray job stop {job_id}", flush=True)
    if args.no_wait:
        return 0
    return follow(client, job_id)


def submit_when_ready(client, job: dict, deadline_s: float) -> str:
    """A head that has just started answers HTTP before its job agent is up ("No available agent"): retry that,
    and only that, until the deadline."""
    end = time.monotonic() + deadline_s
    while True:
        try:
            return client.submit_job(**job)
        except RuntimeError as exc:
            if "No available agent" not in str(exc) or time.monotonic() > end:
                raise
        time.sleep(2.0)


def follow(client, job_id: str) -> int:
    """Print the job's logs as they come, then its final status; 0 only if it succeeded."""

    async def tail() -> None:
        async for chunk in client.tail_job_logs(job_id):
            sys.stdout.write(chunk)
            sys.stdout.flush()

    asyncio.run(tail())
    info = client.get_job_info(job_id)
    status = str(getattr(info.status, "value", info.status))
    print(f"[rlvr] job {job_id} {status}" + (f": {info.message}" if info.message else ""), flush=True)
    return 0 if status == TERMINAL_OK else 1


def check_submit_inputs(cfg: RunConfig, working_dir: Path) -> None:
    """What `rlvr submit` can check before uploading: every GRPO stage's reward paths import as the job will
    import them (Ray runs the job in the uploaded working directory, on its path) and its prompt template. Data
    and output paths are the cluster's, so they are checked there, when the job starts."""
    grpo = [s.cfg for s in plan(cfg) if s.kind == "grpo"] if cfg.stages else [cfg]
    root = str(working_dir.resolve())
    sys.path.insert(0, root)
    try:
        for stage_cfg in grpo:
            check_reward_paths(stage_cfg.rewards)
            check_prompt_template(stage_cfg.data)
    finally:
        sys.path.remove(root)
