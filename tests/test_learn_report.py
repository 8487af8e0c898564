"""Issue 14's report script (benchmarks/gpu/learn_report.py), on CPU: the arms table counts the rollouts a run
trained on from its own metrics (rollouts/trained), so a run of 32 prompts x G per update is not reported as 16 x G."""

import json
from pathlib import Path

import pytest

from tests.gpu_scripts import load_gpu_script


@pytest.fixture(scope="module")
def report():
    return load_gpu_script("learn_report")


def write_metrics(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def step(n: int, **extra) -> dict:
    return {"step": n, "reward/mean": 0.02, "time/step_s": 10.0 + n, "groups/refill_draws": 2.0, **extra}


def test_arm_row_counts_logged_trained_and_sampled_rollouts(report, tmp_path):
    write_metrics(tmp_path / "P-gsm8k-rl-metrics.jsonl",
                  [step(i, **{"rollouts/sampled": 2560.0, "rollouts/trained": 512.0}) for i in range(3)])
    row = report.arm_rows(tmp_path, "P", per_step=256)[2]
    assert row.startswith("| rl | 3 | 7,680 (1,536) |")


def test_arm_row_of_an_older_run_falls_back_to_per_step(report, tmp_path):
    # runs before rollouts/sampled and rollouts/trained were logged: each draw as large as the first
    write_metrics(tmp_path / "P-gsm8k-rl-metrics.jsonl", [step(i) for i in range(2)])
    row = report.arm_rows(tmp_path, "P", per_step=256)[2]
    assert row.startswith("| rl | 2 | 1,536 (512) |")


def test_band_line_reports_where_the_samples_went(report, tmp_path):
    # 60 steps: 5 sampled per trained at first, 2 at the end, as an online band narrows the draws
    rows = [step(i, **{"rollouts/sampled": 256.0 * (5 if i < 30 else 2), "rollouts/trained": 256.0,
                       "data/band_prompts": 7000.0 - 100 * i, "data/dropped_unsolved": 100.0 * i,
                       "data/dropped_solved": 0.0}) for i in range(60)]
    write_metrics(tmp_path / "P-gsm8k-rl-metrics.jsonl", rows)
    line, = report.band_lines(tmp_path, "P")
    # first 50: 30 steps of 5 and 20 of 2 -> 3.8; last 50: 20 of 5 and 30 of 2 -> 3.2
    assert line == ("rl: sampled per trained rollout 3.80 (first 50 steps) / 3.20 (last 50); band at the end: "
                    "1,100 prompts, dropped 5,900 never solved and 0 always solved")
