"""The reward service (worker process) and the reward pool (real Ray actors): user functions by dotted path, sync and
async, composed with weights; a raising function gives `error`, a slow one `timeout`, and the next batch is served."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from rlvr.config import ConfigError, RewardFunction, RewardsSection
from rlvr.rewards.format import format_reward
from rlvr.rewards.loader import check_reward_paths, load_reward_fn
from rlvr.rewards.service import RewardService, component_names, verdict_fractions
from rlvr.rewards.types import RewardResult, Sample, Verdict
from rlvr.rewards.worker import RewardFn, coerce, compose

MATH = "rlvr.rewards.math:math_reward"
FORMAT = "rlvr.rewards.format:format_reward"
USER_MODULE = "my_rewards"
USER_FUNCTIONS = '''
import asyncio, time
from rlvr.rewards.types import RewardResult, Verdict

def broken(prompt, completion, reference):
    raise ValueError("boom from a user reward")

async def short_answer(prompt, completion, reference, max_chars=40):
    await asyncio.sleep(0.01)  # a real await, so the event loop runs
    ok = len(completion) <= max_chars
    return RewardResult(float(ok), Verdict.CORRECT if ok else Verdict.INCORRECT, reason=f"{len(completion)} chars")

def constant(prompt, completion, reference, value=0.25):
    return value

def slow(prompt, completion, reference):
    if "slow" in completion:
        time.sleep(60)
    return 1.0

def not_a_number(prompt, completion, reference):
    return "yes"

def nan(prompt, completion, reference):
    return float("nan")
'''

RIGHT = Sample("What is 9*2?", "<think>9 times 2</think> The answer is 18.", "#### 18")
WRONG = Sample("What is 9*2?", "<think>hmm</think> The answer is 17.", "#### 18")
SLOW = Sample("q", "slow <think>x</think> 18", "#### 18")


@pytest.fixture(scope="module")
def user_dir(tmp_path_factory):
    """A user's reward module in its own directory, as shipped with `ray job submit --working-dir`."""
    root = tmp_path_factory.mktemp("working_dir")
    (root / f"{USER_MODULE}.py").write_text(textwrap.dedent(USER_FUNCTIONS))
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(root))
        yield root


def rewards(*functions: tuple, timeout_s: float = 2.0, num_workers: int = 1) -> RewardsSection:
    specs = [RewardFunction(path=p, weight=w, kwargs=k) for p, w, k in functions]
    return RewardsSection(functions=specs, timeout_s=timeout_s, num_workers=num_workers)


# --------------------------------------------------------------------------------------------------------------
# Pure pieces


def test_verdict_fractions():
    results = [RewardResult(1.0, Verdict.CORRECT)] * 2 + [RewardResult(0.0, Verdict.TIMEOUT)] * 2
    assert verdict_fractions(results) == {
        "reward/verdict_correct": 0.5,
        "reward/verdict_incorrect": 0.0,
        "reward/verdict_no_answer": 0.0,
        "reward/verdict_timeout": 0.5,
        "reward/verdict_error": 0.0,
    }
    assert set(verdict_fractions([]).values()) == {0.0}


def test_compose_weights_and_primary_verdict():
    a, b = RewardFn("a", format_reward, 1.0), RewardFn("b", format_reward, 0.5)
    out = compose([(a, RewardResult(1.0, Verdict.CORRECT, "18", "ok")), (b, RewardResult(0.0, Verdict.INCORRECT))])
    assert (out.score, out.verdict, out.extracted, out.components) == (1.0, Verdict.CORRECT, "18", {"a": 1.0, "b": 0.0})
    # a failed later function wins the verdict: the sample was not fully scored
    out = compose([(a, RewardResult(1.0, Verdict.CORRECT)), (b, RewardResult(0.0, Verdict.ERROR, reason="boom"))])
    assert out.verdict == Verdict.ERROR and "b: boom" in out.reason and out.score == 1.0


def test_coerce_user_return_values():
    assert coerce(0.7, "f").verdict == Verdict.CORRECT
    assert coerce(0, "f").verdict == Verdict.INCORRECT
    assert coerce("yes", "f").verdict == Verdict.ERROR
    assert coerce(float("inf"), "f").verdict == Verdict.ERROR


def test_component_names_disambiguate_repeats():
    cfg = rewards((MATH, 1.0, {}), (FORMAT, 0.1, {}), (MATH, 1.0, {"stop": []}))
    assert component_names(cfg) == [MATH, FORMAT, f"{MATH}#2"]


@pytest.mark.parametrize(
    "completion,tags,must_start,score",
    [
        ("<think>a</think> 18", ["think"], False, 1.0),
        ("18", ["think"], False, 0.0),
        ("<think>a</think><think>b</think>", ["think"], False, 0.0),
        ("</think>a<think>", ["think"], False, 0.0),
        ("<think>a</think><answer>18</answer>", ["think", "answer"], False, 1.0),
        ("<answer>18</answer><think>a</think>", ["think", "answer"], False, 0.0),
        ("x <think>a</think>", ["think"], True, 0.0),
        ("<think>a</think>", ["think"], True, 1.0),
    ],
)
def test_format_reward(completion, tags, must_start, score):
    result = format_reward("", completion, "", tags=tags, must_start=must_start)
    assert result.score == score and result.reason


# --------------------------------------------------------------------------------------------------------------
# Loader


def test_load_reward_fn_both_spellings(user_dir):
    assert load_reward_fn(MATH) is load_reward_fn("rlvr.rewards.math.math_reward")
    assert load_reward_fn(f"{USER_MODULE}:constant")("", "", "") == 0.25


@pytest.mark.parametrize(
    "path,kwargs,message",
    [
        ("foo.bar:baz", {}, "reward function 'foo.bar:baz' cannot be imported: ModuleNotFoundError: No module named 'foo'"),
        ("rlvr.rewards.math:nope", {}, "cannot be imported: AttributeError"),
        ("rlvr.rewards.math:DEFAULT_STOP", {}, "cannot be imported: TypeError"),
        (FORMAT, {"tagz": ["think"]}, "does not accept (prompt, completion, reference, tagz=)"),
    ],
)
def test_check_reward_paths_one_line(path, kwargs, message):
    with pytest.raises(ConfigError) as err:
        check_reward_paths(rewards((path, 1.0, kwargs)))
    assert message in str(err.value) and "\n" not in str(err.value)


def test_check_reward_paths_accepts_defaults_and_kwargs(user_dir):
    check_reward_paths(RewardsSection())
    check_reward_paths(rewards((FORMAT, 0.1, {"tags": ["think"]}), (f"{USER_MODULE}:short_answer", 1.0, {"max_chars": 5})))


# --------------------------------------------------------------------------------------------------------------
# Service (worker process, no Ray)


def test_service_composes_sync_async_and_weights(user_dir):
    cfg = rewards((MATH, 1.0, {}), (FORMAT, 0.5, {}), (f"{USER_MODULE}:short_answer", 2.0, {"max_chars": 40}),
                  (f"{USER_MODULE}:constant", 4.0, {"value": 0.25}))
    assert (len(RIGHT.completion), len(WRONG.completion)) == (42, 36)
    with RewardService(cfg) as svc:
        right, wrong = svc.score([RIGHT, WRONG])
    assert right.components == {MATH: 1.0, FORMAT: 1.0, f"{USER_MODULE}:short_answer": 0.0, f"{USER_MODULE}:constant": 0.25}
    assert right.score == pytest.approx(1.0 + 0.5 + 0.0 + 1.0) and right.verdict == Verdict.CORRECT
    assert right.extracted == "18"
    assert wrong.score == pytest.approx(0.0 + 0.5 + 2.0 + 1.0) and wrong.verdict == Verdict.INCORRECT
    assert f"{USER_MODULE}:short_answer: 36 chars" in wrong.reason  # the async function's own reason


def test_service_raising_function_is_an_error_with_a_logged_traceback(user_dir, capfd):
    with RewardService(rewards((MATH, 1.0, {}), (f"{USER_MODULE}:broken", 1.0, {}))) as svc:
        results = svc.score([RIGHT, WRONG])
        pid = svc.worker_pid()
        assert [r.verdict for r in svc.score([RIGHT])] == [Verdict.ERROR]  # still serving, same worker
        assert svc.worker_pid() == pid
    for r in results:
        assert r.verdict == Verdict.ERROR and "ValueError: boom from a user reward" in r.reason
        assert "my_rewards.py" in r.reason  # where it was raised
    assert [r.components[MATH] for r in results] == [1.0, 0.0]  # the primary function still scored
    logged = capfd.readouterr().err  # the worker process writes to the inherited stderr
    assert "Traceback" in logged and 'raise ValueError("boom from a user reward")' in logged


@pytest.mark.parametrize("fn,reason", [("not_a_number", "returned str"), ("nan", "non-finite")])
def test_service_bad_return_values_are_errors(user_dir, fn, reason):
    with RewardService(rewards((f"{USER_MODULE}:{fn}", 1.0, {}))) as svc:
        (result,) = svc.score([RIGHT])
    assert result.verdict == Verdict.ERROR and reason in result.reason


def test_service_slow_function_times_out_and_next_batch_is_served(user_dir):
    with RewardService(rewards((MATH, 1.0, {}), (f"{USER_MODULE}:slow", 1.0, {}), timeout_s=1.0)) as svc:
        first = svc.score([RIGHT, SLOW, WRONG])
        second = svc.score([RIGHT, WRONG])
    assert [r.verdict for r in first] == [Verdict.CORRECT, Verdict.TIMEOUT, Verdict.INCORRECT]
    assert first[1].elapsed_s <= 1.0 + 0.3 and "limit" in first[1].reason
    assert first[1].components[f"{USER_MODULE}:slow"] == 0.0
    assert [r.verdict for r in second] == [Verdict.CORRECT, Verdict.INCORRECT]


def test_service_cuts_at_configured_stop_strings():
    with RewardService(RewardsSection(), stop=["STOP"]) as svc:
        (result,) = svc.score([Sample("q", "The answer is 18. STOP The answer is 17.", "#### 18")])
    assert result.verdict == Verdict.CORRECT


def test_worker_that_cannot_import_its_functions_fails_loudly():
    with pytest.raises(RuntimeError, match="ModuleNotFoundError"):
        RewardService(rewards(("no_such_module_xyz:fn", 1.0, {})))


# --------------------------------------------------------------------------------------------------------------
# Pool (real Ray actors)


def _on_path(directory) -> dict:
    return {"env_vars": {"PYTHONPATH": str(directory), "OMP_NUM_THREADS": "1"}}


@pytest.fixture(scope="module")
def pool(ray_cluster, user_dir):
    from rlvr.actors.reward_pool import RewardPool

    cfg = rewards((MATH, 1.0, {}), (FORMAT, 0.5, {}), (f"{USER_MODULE}:slow", 1.0, {}), timeout_s=1.5, num_workers=2)
    check_reward_paths(cfg)  # what the launcher does before starting actors
    # Local directories can only be shipped per job (test_pool_in_a_job_with_working_dir does that); here the
    # actors find the user module on their PYTHONPATH.
    scheduling = [{"num_cpus": 1, "runtime_env": _on_path(user_dir)} for _ in range(cfg.num_workers)]
    pool = RewardPool(cfg, scheduling)
    yield pool
    pool.close()


def test_pool_scores_in_order_across_actors(pool):
    samples = [Sample("q", f"<think>x</think> The answer is {n}.", f"#### {n if n % 3 else n + 1}") for n in range(30)]
    results = pool.score(samples)
    assert [r.extracted for r in results] == [str(n) for n in range(30)]
    assert [r.verdict == Verdict.CORRECT for r in results] == [n % 3 != 0 for n in range(30)]
    assert all(r.score in (1.5 + 1.0, 0.5 + 1.0) for r in results)
    assert len(set(pool.worker_pids())) == 2


def test_pool_slow_sample_times_out_and_pool_keeps_serving(pool):
    results = pool.score([RIGHT, SLOW, WRONG, RIGHT])
    assert [r.verdict for r in results] == [Verdict.CORRECT, Verdict.TIMEOUT, Verdict.INCORRECT, Verdict.CORRECT]
    fractions = verdict_fractions(results)
    assert fractions["reward/verdict_correct"] == 0.5 and fractions["reward/verdict_timeout"] == 0.25
    assert [r.verdict for r in pool.score([RIGHT, WRONG])] == [Verdict.CORRECT, Verdict.INCORRECT]


def test_pool_recreates_a_killed_actor_and_redoes_its_shard(pool, ray_cluster):
    ray_cluster.kill(pool.actors[0])
    results = pool.score([RIGHT, WRONG, RIGHT, WRONG])
    assert [r.verdict for r in results] == [Verdict.CORRECT, Verdict.INCORRECT] * 2
    assert pool.recreated == 1


def test_pool_raising_function_gives_error_verdict(ray_cluster, user_dir):
    from rlvr.actors.reward_pool import RewardPool

    cfg = rewards((MATH, 1.0, {}), (f"{USER_MODULE}:broken", 1.0, {}), num_workers=1)
    pool = RewardPool(cfg, [{"num_cpus": 1, "runtime_env": _on_path(user_dir)}])
    try:
        results = pool.score([RIGHT, WRONG])
    finally:
        pool.close()
    assert [r.verdict for r in results] == [Verdict.ERROR, Verdict.ERROR]
    assert all("boom from a user reward" in r.reason for r in results)


JOB_DRIVER = """
import json, ray
from rlvr.actors.reward_pool import RewardPool
from rlvr.config import RewardFunction, RewardsSection
from rlvr.rewards.loader import check_reward_paths
from rlvr.rewards.types import Sample

ray.init(address=ADDRESS, runtime_env={"working_dir": "."})  # what `ray job submit --working-dir .` sets up
cfg = RewardsSection(functions=[RewardFunction(path="my_rewards:short_answer", kwargs={"max_chars": 5})])
check_reward_paths(cfg)
pool = RewardPool(cfg)
print("VERDICTS", json.dumps([r.verdict.value for r in pool.score([Sample("q", "short", ""), Sample("q", "longer", "")])]))
pool.close()
"""


def test_pool_in_a_job_with_working_dir(ray_cluster, user_dir):
    # A second driver, started in the user's directory like a submitted job's entrypoint, joins the cluster with
    # a job-level working_dir: the reward actors, and their worker processes, import the user's module from it.
    script = user_dir / "driver.py"
    address = ray_cluster.get_runtime_context().gcs_address
    script.write_text(JOB_DRIVER.replace("ADDRESS", repr(address)))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, str(script)], cwd=user_dir, env=env, capture_output=True, text=True,
                          timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    assert 'VERDICTS ["correct", "incorrect"]' in done.stdout, done.stdout[-2000:]


def test_service_recycles_a_worker_that_grew_too_large():
    with RewardService(RewardsSection(), recycle_rss_mb=1) as svc:  # every worker is over 1 MB
        first = svc.worker_pid()
        assert svc.score([RIGHT])[0].verdict == Verdict.CORRECT
        assert svc.restarts == 1 and svc.worker_pid() != first
        assert svc.score([WRONG])[0].verdict == Verdict.INCORRECT
