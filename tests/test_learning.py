"""Issue 14's learning tools: the pass-rate map and its filters, the rft stage, control-arm rewards, the learning
curve, and the presets of the GSM8K experiment."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from rlvr.config import ConfigError, PassRateFilter, load_config
from rlvr.data.passrate import (band_filter, build_filter, edge_filter, histogram, passrate_record, prompt_id,
                                read_map)
from rlvr.data.prompts import Example
from rlvr.trainer.reward_control import make_control

REPO = Path(__file__).resolve().parent.parent
TINY = REPO / "configs" / "pipeline_tiny.yaml"


def keyed_reward(prompt, completion, reference):
    """By the prompt's id: a quarter always right, a quarter always wrong, the rest right when the completion's
    length is odd (sampled, so those prompts' pass rates fall in between)."""
    digit = int(prompt_id(prompt)[-1], 16)
    if digit < 4:
        return 1.0
    if digit < 8:
        return 0.0
    return float(len(completion) % 2)


# ---- pass-rate map and filters (pure) --------------------------------------------------------------------------


def examples(n: int) -> list[Example]:
    return [Example(f"question {i}?", str(i)) for i in range(n)]


def test_band_and_edge_filters_keep_the_band_by_prompt_text():
    exs = examples(6)
    rates = {prompt_id(ex.prompt): p for ex, p in zip(exs, [0.0, 0.25, 0.5, 0.75, 1.0, 0.5])}
    del rates[prompt_id(exs[5].prompt)]  # not measured
    band = band_filter(rates)(list(reversed(exs)))  # keyed by text, not position
    assert [ex.reference for ex in band] == ["3", "2", "1"]
    assert [ex.reference for ex in band_filter(rates, keep_unmeasured=True)(exs)] == ["1", "2", "3", "5"]
    assert [ex.reference for ex in band_filter(rates, above=-1, below=0.6)(exs)] == ["0", "1", "2"]
    # edge: 1 + round(3 * 4p(1-p)) copies: p=0.25 -> 3, p=0.5 -> 4
    assert [ex.reference for ex in edge_filter(rates, repeats=3)(exs)] == ["1"] * 3 + ["2"] * 4 + ["3"] * 3


def test_map_file_round_trip_histogram_and_bad_lines(tmp_path):
    recs = [passrate_record(f"q{i}", rewards) for i, rewards in
            enumerate([[0, 0, 0, 0], [1, 0, 0, 0], [1, 1, 0, 1], [1, 1, 1, 1], [0, 0, 0, 0]])]
    path = tmp_path / "map.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    assert read_map(path) == {prompt_id(f"q{i}"): p for i, p in enumerate([0, 0.25, 0.75, 1.0, 0])}
    h = histogram(recs)
    assert h["by_correct"] == {"0": 2, "1": 1, "2": 0, "3": 1, "4": 1}
    assert (h["never_solved"], h["mixed"], h["always_solved"]) == (0.4, 0.4, 0.2)
    kept = build_filter(PassRateFilter(path=str(path)))([Example(f"q{i}", "") for i in range(5)])
    assert [ex.prompt for ex in kept] == ["q1", "q2"]
    path.write_text(json.dumps(recs[0]) + "\n{\"id\": 3}\n")
    with pytest.raises(ConfigError, match=r"map.jsonl:2: not a pass-rate line"):
        read_map(path)
    with pytest.raises(ConfigError, match="passrate_filter.above .0.5. must be below"):
        load_config(TINY, ["data.passrate_filter={path: x, above: 0.5, below: 0.5}"])


# ---- control rewards (pure) -------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["shuffle", "random"])
def test_control_rewards_keep_the_mean_and_lose_the_correctness(mode):
    """Rewards equal to correctness (corr 1) become rewards with the same mean and ~0 correlation."""
    gen = torch.Generator().manual_seed(0)
    correct_BG = (torch.rand(256, 8, generator=gen) < torch.rand(256, 1, generator=gen)).float()
    real, controlled = [], []
    for step in range(40):
        batch_BG = correct_BG[torch.randperm(256, generator=gen)[:16]]
        out_BG = make_control(mode, seed=3, step=step)(batch_BG)
        assert out_BG.shape == batch_BG.shape
        if mode == "shuffle":  # the same multiset, so exactly the same mean
            assert torch.equal(out_BG.flatten().sort().values, batch_BG.flatten().sort().values)
        real.append(batch_BG.flatten())
        controlled.append(out_BG.flatten())
    real_N, ctrl_N = torch.cat(real), torch.cat(controlled)
    assert abs(ctrl_N.mean() - real_N.mean()) < 0.02
    corr = torch.corrcoef(torch.stack([real_N, ctrl_N]))[0, 1]
    assert abs(corr) < 0.05, f"controlled rewards still correlate with correctness: {corr:.3f}"
    # a resumed run draws the same control rewards for a step
    assert torch.equal(make_control(mode, 3, 7)(correct_BG[:16]), make_control(mode, 3, 7)(correct_BG[:16]))
    assert make_control("none", 3, 7) is None


def test_control_rewards_reach_the_advantages():
    from rlvr.rewards.types import RewardResult, Verdict
    from rlvr.rollout.base import Completion
    from rlvr.trainer.grpo_loop import Group, build_rollouts

    def group(rewards):
        comps = [Completion(0, [1], [0.0], "x", "stop") for _ in rewards]
        return Group([0], comps, [RewardResult(r, Verdict.CORRECT) for r in rewards])

    groups = [group([1.0, 1.0, 1.0, 1.0]), group([0.0, 0.0, 0.0, 0.0])]  # no signal in either group
    plain, _ = build_rollouts(groups, scale_by_std=False)
    assert all(r.advantage == 0 for r in plain)
    shuffled, rewards_BG = build_rollouts(groups, False, make_control("shuffle", 0, 0))
    assert rewards_BG.sum() == 4 and any(r.advantage != 0 for r in shuffled)
    assert [r.reward for r in shuffled] == rewards_BG.flatten().tolist()


# ---- presets ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["gpu_smollm2_gsm8k_rl.yaml", "gpu_smollm2_gsm8k_rft.yaml"])
def test_experiment_presets_load(name):
    cfg = load_config(REPO / "configs" / name)
    if name.endswith("_rl.yaml"):  # nanochat-style on-policy GRPO
        a = cfg.algorithm
        assert (a.kl_coef, a.scale_by_std, a.loss_agg, cfg.rollout.samples_per_prompt) == (0.0, False, "token_mean", 16)
        assert cfg.learner.lr_schedule in ("cosine", "linear") and cfg.curve.every_steps > 0
        assert cfg.data.passrate_filter is not None


def test_curve_needs_held_out_data_and_splits_it_off(tmp_path):
    from rlvr.launch.train_cli import training_examples

    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"question": f"q{i}", "answer": str(i)}) + "\n" for i in range(10)))
    cfg = load_config(TINY, ["data.source=jsonl", f"data.path={data}", "curve.every_steps=2", "curve.num_examples=3"])
    train, held = training_examples(cfg)
    assert [e.prompt for e in held] == ["q7", "q8", "q9"] and [e.prompt for e in train] == [f"q{i}" for i in range(7)]
    with pytest.raises(ConfigError, match="curve.num_examples=10 would leave no training prompts"):
        training_examples(load_config(TINY, ["data.source=jsonl", f"data.path={data}", "curve.every_steps=2",
                                             "curve.num_examples=10"]))
    with pytest.raises(ConfigError, match="needs held-out data"):
        training_examples(load_config(TINY, ["data.source=add_digits", "curve.every_steps=2"]))
