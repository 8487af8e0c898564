"""Adversarial inputs through the real service (worker process, signals, kills): every one gets `timeout` or `error`
within the limit, and the service goes on serving the next batch with bounded memory."""

from __future__ import annotations

import textwrap
import time

import pytest

from rlvr.config import RewardFunction, RewardsSection
from rlvr.rewards.service import RewardService
from rlvr.rewards.types import Sample, Verdict

TIMEOUT_S = 1.5
SLACK_S = 0.3  # pipe round trip and the kill itself, on a loaded 2-core machine
GOOD = Sample("q", "The answer is 72.", "#### 72")

ADVERSARIAL = {
    "tower_of_powers": Sample("q", "\\boxed{9^{9^{9^{9}}}}", "5"),
    "tower_of_powers_latex_gold": Sample("q", "\\boxed{9^{9^{9^{9}}}}", "\\sqrt{2}"),
    "nested_braces": Sample("q", "\\boxed{" + "{" * 10_000 + "1" + "}" * 10_000 + "}", "\\frac{1}{2}"),
    "one_megabyte_number": Sample("q", "9" * 1_000_000, "9"),
    "unclosed_boxes": Sample("q", "\\boxed{" * 140_000, "\\sqrt{2}"),
    "nul_bytes": Sample("q", "The answer is 7\x002.", "#### 72"),
    "invalid_utf8": Sample("q", b"The answer is \xff\xfe72.".decode("utf-8", "surrogateescape"), "#### 72"),
    "endless_sympy": Sample("q", "\\boxed{\\int_0^1 e^{x^{x^{x}}} \\, dx}", "1"),
    "bytes_completion": Sample("q", b"The answer is 72.", "#### 72"),  # type: ignore[arg-type]
}

USER_FUNCTIONS = '''
import os, signal, time

def ignores_alarm(prompt, completion, reference):
    # Stands for C code that never returns to the interpreter: the soft deadline cannot reach it.
    signal.signal(signal.SIGALRM, signal.SIG_IGN)
    time.sleep(60)
    return 1.0

def swallows_everything(prompt, completion, reference):
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            time.sleep(60)
        except BaseException:
            pass
    return 1.0

def crashes(prompt, completion, reference):
    os._exit(3)

def segfaults(prompt, completion, reference):
    os.kill(os.getpid(), signal.SIGSEGV)

def allocates(prompt, completion, reference):
    return float(len(bytearray(8 << 30)))
'''


@pytest.fixture(scope="module")
def service():
    with RewardService(RewardsSection(timeout_s=TIMEOUT_S), max_completion_chars=2_000_000) as svc:
        yield svc


@pytest.fixture(scope="module")
def user_module(tmp_path_factory):
    root = tmp_path_factory.mktemp("user_rewards")
    (root / "adversarial_rewards.py").write_text(textwrap.dedent(USER_FUNCTIONS))
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(root))  # the worker inherits sys.path, as it would a Ray job's working dir
        yield "adversarial_rewards"


def _worker_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


@pytest.mark.parametrize("name", list(ADVERSARIAL))
def test_adversarial_input_gets_timeout_or_error_in_time(service, name):
    started = time.monotonic()
    bad, good = service.score([ADVERSARIAL[name], GOOD])
    assert bad.verdict in (Verdict.TIMEOUT, Verdict.ERROR), (bad.verdict, bad.reason)
    assert bad.reason and bad.elapsed_s <= TIMEOUT_S + SLACK_S, (bad.elapsed_s, bad.reason)
    assert good.verdict == Verdict.CORRECT, good.reason  # the same batch goes on after the bad sample
    assert time.monotonic() - started < 2 * TIMEOUT_S + 5.0  # a replaced worker starts in about a second


def test_one_megabyte_under_a_raised_limit_gets_a_verdict_in_time(service):
    # Length alone is not a failure: under a raised limit a long completion is read in linear time, and one that
    # makes math-verify scan a megabyte of LaTeX gets whatever verdict the limit allows.
    prose, soup = service.score([
        Sample("q", "The cat sat on the mat. " * 44_000 + "\\boxed{5}", "5"),
        Sample("q", "$x^{2}$ and " * 80_000, "\\sqrt{2}"),
    ])
    assert prose.verdict == Verdict.CORRECT and prose.elapsed_s < TIMEOUT_S
    assert soup.verdict in (Verdict.INCORRECT, Verdict.TIMEOUT) and soup.elapsed_s <= TIMEOUT_S + SLACK_S


def test_one_megabyte_and_bad_bytes_are_errors_with_a_reason():
    with RewardService(RewardsSection(timeout_s=TIMEOUT_S)) as svc:  # default limit on completion length
        results = svc.score([Sample("q", "9" * 1_000_000, "9"), ADVERSARIAL["nul_bytes"], ADVERSARIAL["invalid_utf8"]])
    assert [r.verdict for r in results] == [Verdict.ERROR] * 3
    assert "over the limit" in results[0].reason
    assert "NUL" in results[1].reason and "UTF-8" in results[2].reason


def test_mixed_batch_then_next_batch_with_bounded_memory(service):
    batch = [GOOD] * 20 + list(ADVERSARIAL.values()) + [GOOD] * 20
    results = service.score(batch)
    assert all(r.verdict == Verdict.CORRECT for r in results[:20] + results[-20:])
    assert all(r.verdict in (Verdict.TIMEOUT, Verdict.ERROR) for r in results[20:-20])
    assert _worker_rss_mb(service.worker_pid()) < 1024  # the recycle threshold; a fresh worker is ~100 MB
    assert [r.verdict for r in service.score([GOOD] * 5)] == [Verdict.CORRECT] * 5


@pytest.mark.parametrize(
    "fn,verdict,reason",
    [
        ("ignores_alarm", Verdict.TIMEOUT, "hard limit"),
        ("swallows_everything", Verdict.TIMEOUT, "hard limit"),
        ("crashes", Verdict.ERROR, "exit code 3"),
        ("segfaults", Verdict.ERROR, "SIGSEGV"),
        ("allocates", Verdict.ERROR, "MemoryError"),
    ],
)
def test_stuck_or_crashing_worker_is_replaced(user_module, fn, verdict, reason):
    cfg = RewardsSection(
        functions=[RewardFunction(path="rlvr.rewards.math:math_reward"), RewardFunction(path=f"{user_module}:{fn}")],
        timeout_s=1.0,
    )
    with RewardService(cfg) as svc:
        first_pid = svc.worker_pid()
        results = svc.score([GOOD, GOOD])  # the second sample is scored by the replacement worker
        for r in results:
            assert r.verdict == verdict and reason in r.reason, r.reason
            assert r.elapsed_s <= cfg.timeout_s + SLACK_S
            assert r.components[f"{user_module}:{fn}"] == 0.0
        if fn != "allocates":  # MemoryError is caught in the worker, which lives on
            assert svc.worker_pid() != first_pid and svc.restarts == 2
