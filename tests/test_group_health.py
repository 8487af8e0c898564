"""Zero-variance groups, informative-group selection and the refill loop, on hand-built reward arrays."""

import numpy as np
import pytest

from rlvr.trainer.group_health import (
    collect_informative_groups,
    mixed_group_mask,
    mixed_probability,
    select_informative_groups,
    zero_variance_fraction,
)

REWARDS_BG = np.array(
    [
        [1.0, 1.0, 1.0, 1.0],  # all solved: no gradient
        [0.0, 1.0, 0.0, 0.0],  # mixed
        [0.0, 0.0, 0.0, 0.0],  # all failed: no gradient
        [0.5, 0.5, 0.5, 0.5 + 1e-9],  # equal up to rounding: no gradient
        [0.2, 0.0, 0.2, 0.2],  # partial credit, mixed
    ]
)


def test_mask_and_fraction():
    assert mixed_group_mask(REWARDS_BG).tolist() == [False, True, False, False, True]
    assert zero_variance_fraction(REWARDS_BG) == pytest.approx(3 / 5)
    assert zero_variance_fraction(np.zeros((0, 4))) == 0.0
    assert zero_variance_fraction([[1.0]]) == 1.0  # a group of one never has a signal
    with pytest.raises(ValueError):
        mixed_group_mask([1.0, 0.0])


def test_select_keeps_batch_order_and_caps():
    assert select_informative_groups(REWARDS_BG, keep=5).tolist() == [1, 4]
    assert select_informative_groups(REWARDS_BG, keep=1).tolist() == [1]
    assert select_informative_groups(REWARDS_BG, keep=0).tolist() == []
    with pytest.raises(ValueError):
        select_informative_groups(REWARDS_BG, keep=-1)


def test_collect_refills_until_full():
    batches = iter(
        [
            (["a", "b", "c"], [[0, 0], [0, 1], [1, 1]]),  # one informative group
            (["d", "e", "f"], [[1, 1], [1, 1], [1, 1]]),  # none
            (["g", "h", "i"], [[1, 0], [0, 1], [1, 0]]),  # three, but only two are needed
        ]
    )
    kept, stats = collect_informative_groups(lambda: next(batches), keep=3, max_draws=10)
    assert kept == ["b", "g", "h"]
    assert stats == {"draws": 3, "groups_seen": 9, "zero_variance_fraction": pytest.approx(5 / 9)}


def test_collect_stops_at_max_draws():
    kept, stats = collect_informative_groups(lambda: (["x", "y"], [[0, 0], [0, 1]]), keep=5, max_draws=2)
    assert kept == ["y", "y"]
    assert stats["draws"] == 2 and stats["zero_variance_fraction"] == 0.5
    with pytest.raises(ValueError):
        collect_informative_groups(lambda: (["x"], [[0, 1], [1, 0]]), keep=1, max_draws=1)


def test_mixed_probability_by_hand():
    # 4 samples, 1 solved; groups of 2 drawn without replacement: mixed iff the solved one is drawn = 3/6.
    assert mixed_probability(4, 1, 2) == pytest.approx(0.5)
    # groups of 4 from 4: the observed group itself.
    assert mixed_probability(4, 1, 4) == 1.0
    assert mixed_probability(4, 0, 2) == 0.0 and mixed_probability(4, 4, 3) == 0.0
    # 8 samples, 4 solved, g=2: 1 - 2 * C(4,2)/C(8,2) = 1 - 12/28.
    assert mixed_probability(8, 4, 2) == pytest.approx(16 / 28)


# --- preflight on a real (tiny, random) model through the transformers engine --------------------------------


@pytest.fixture(scope="module")
def tiny_engine():
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from rlvr.model_io import build_char_tokenizer
    from rlvr.rollout.hf_engine import HFEngine

    tok = build_char_tokenizer()
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                      intermediate_size=64, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                      pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    return HFEngine(LlamaForCausalLM(cfg), tok, batch_size=32)


PROMPTS = ["1+1=", "2+3=", "4+4=", "9+0=", "7+1=", "5+5="]
REFS = ["2", "5", "8", "9", "8", "10"]


def test_preflight_matches_its_rewards(tiny_engine):
    from rlvr.rollout.base import SamplingParams
    from rlvr.trainer.group_health import preflight

    seen = []

    def has_digit(samples):  # a reward a random model earns sometimes: any digit in the completion
        seen.extend(samples)
        return [float(any(ch.isdigit() for ch in s.completion)) for s in samples]

    encode = lambda text: tiny_engine.tokenizer(text)["input_ids"]  # noqa: E731
    params = SamplingParams(temperature=1.0, max_new_tokens=1, seed=3)
    report = preflight(tiny_engine, PROMPTS, REFS, has_digit, G=4, encode=encode, params=params)

    assert len(seen) == 24 and [s.reference for s in seen[:5]] == ["2"] * 4 + ["5"]
    rewards_BG = np.array(has_digit(seen[:24])).reshape(6, 4)
    counts = rewards_BG.sum(axis=1)
    assert report["pass_at_G"] == pytest.approx(np.mean(counts > 0))
    assert report["pass_at_1"] == pytest.approx(rewards_BG.mean())
    assert report["mixed_fraction"] == pytest.approx(np.mean((counts > 0) & (counts < 4)))
    assert report["all_solved_fraction"] + report["all_failed_fraction"] + report["mixed_fraction"] == pytest.approx(1)
    # At G the estimate by group size is the observed mixed share; smaller groups are mixed less often.
    assert report["mixed_fraction_by_G"][4] == pytest.approx(report["mixed_fraction"])
    assert report["mixed_fraction_by_G"][2] <= report["mixed_fraction"] + 1e-12
    assert 0 < report["mixed_fraction"] < 1, "the test needs a mix of outcomes to check anything"


def test_preflight_constant_reward_has_no_signal(tiny_engine):
    from rlvr.rollout.base import SamplingParams
    from rlvr.trainer.group_health import preflight

    encode = lambda text: tiny_engine.tokenizer(text)["input_ids"]  # noqa: E731
    report = preflight(tiny_engine, PROMPTS[:2], REFS[:2], lambda s: [1.0] * len(s), G=2, encode=encode,
                       params=SamplingParams(temperature=1.0, max_new_tokens=2, seed=0))
    assert report["pass_at_G"] == 1.0 and report["all_solved_fraction"] == 1.0 and report["mixed_fraction"] == 0.0
    with pytest.raises(ValueError):
        preflight(tiny_engine, PROMPTS[:2], REFS[:2], lambda s: [1.0] * len(s), G=1, encode=encode)
