"""The GPU matrix's arithmetic (benchmarks/gpu/bench_grpo_matrix.py), on CPU: which steps count as steady state,
the issue's MFU formula, and the row it writes (ratio = TRL s/step over rlvr s/step)."""

import json

import pytest

from tests.gpu_scripts import load_gpu_script


@pytest.fixture(scope="module")
def matrix():
    return load_gpu_script("bench_grpo_matrix")


def test_steady_state_leaves_out_the_first_and_the_overlapped_last_step(matrix):
    # W2's rlvr steps on the H200: compile-heavy first step, short last step (nothing generated beside its update)
    steps = [13.16, 6.85, 6.19, 2.26]
    assert matrix.median_after(steps, 1, 1) == pytest.approx((6.85 + 6.19) / 2)
    assert matrix.median_after(steps, 1, 0) == 6.19
    assert matrix.median_after([None, 3.0, None, 1.0], 1, 1) == 3.0
    assert matrix.median_after([5.0], 1, 1) is None


def test_resummarize_writes_the_issue_row(matrix, tmp_path, monkeypatch):
    params, samples = 100_000_000, 4
    side = lambda step_s, learn_s: {"step_s": step_s, "rollout_s": [1.0] * len(step_s), "learn_s": learn_s,  # noqa: E731
                                     "generated_tokens": [400] * len(step_s), "trained_tokens": [1000] * len(step_s)}
    report = {"device": "TestGPU", "workloads": {"W9": {
        "spec": {"prompts": 2, "G": 2}, "params": params,
        "sides": {"rlvr": side([9.0, 2.0, 2.0, 0.5], [1.0, 0.5, 0.5, 0.5]),
                  "trl": side([9.0, 6.0, 6.0, 6.0], [2.0, 1.0, 1.0, 1.0])}}}}
    out = tmp_path / "w9.json"
    out.write_text(json.dumps(report))
    rows = tmp_path / "matrix.json"
    monkeypatch.setattr("sys.argv", ["bench_grpo_matrix.py", "--out", str(tmp_path / "unused.json"), "--matrix",
                                     str(rows), "--resummarize", str(out)])
    assert matrix.main() == 0
    [row] = json.loads(rows.read_text())
    assert row["workload"] == "W9" and row["device"] == "TestGPU"
    assert row["rlvr_s_per_step"] == 2.0 and row["trl_s_per_step"] == 6.0
    assert row["ratio"] == pytest.approx(3.0)
    assert row["learner_mfu"] == pytest.approx(6 * params * 1000 / 0.5 / 989e12)
    summary = json.loads(out.read_text())["workloads"]["W9"]["summary"]
    assert summary["rlvr"]["completions_per_s"] == pytest.approx(samples / 2.0)
