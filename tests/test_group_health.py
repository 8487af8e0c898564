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
