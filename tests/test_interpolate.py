"""Weight interpolation θ = (1−α)·θ_start + α·θ_end, as a pure function and through the config."""

from __future__ import annotations

import pytest
import torch

from rlvr.algo.interpolate import interpolate_state_dicts
from rlvr.config import ConfigError, load_config

START = {"w": torch.tensor([0.0, 2.0, -4.0]), "b": torch.tensor([1.0]), "steps": torch.tensor([3])}
END = {"w": torch.tensor([4.0, 2.0, 4.0]), "b": torch.tensor([-1.0]), "steps": torch.tensor([7])}


def test_hand_computed_quarter():
    out = interpolate_state_dicts(START, END, 0.25)
    assert torch.equal(out["w"], torch.tensor([1.0, 2.0, -2.0]))
    assert torch.equal(out["b"], torch.tensor([0.5]))
    assert torch.equal(out["steps"], torch.tensor([7]))  # integer buffers are not weights: the end's is kept


@pytest.mark.parametrize("alpha,expected", [(0.0, START), (1.0, END)])
def test_endpoints(alpha, expected):
    out = interpolate_state_dicts(START, END, alpha)
    assert all(torch.equal(out[k], expected[k]) for k in ("w", "b"))


def test_keeps_dtype_of_the_trained_weights():
    out = interpolate_state_dicts({"w": torch.zeros(2)}, {"w": torch.ones(2, dtype=torch.bfloat16)}, 0.5)
    assert out["w"].dtype == torch.bfloat16 and out["w"].tolist() == [0.5, 0.5]


@pytest.mark.parametrize("start,end,alpha,match", [
    ({"w": torch.zeros(2)}, {"v": torch.zeros(2)}, 0.5, "keys"),
    ({"w": torch.zeros(2)}, {"w": torch.zeros(3)}, 0.5, "shape"),
    ({"w": torch.zeros(2)}, {"w": torch.zeros(2)}, 1.5, "alpha"),
])
def test_mismatches_are_errors(start, end, alpha, match):
    with pytest.raises(ValueError, match=match):
        interpolate_state_dicts(start, end, alpha)


def test_config_bounds():
    base = ["model.path=x"]
    assert load_config(None, base + ["sft.interpolate_alpha=0.6"]).sft.interpolate_alpha == 0.6
    with pytest.raises(ConfigError, match="sft.interpolate_alpha"):
        load_config(None, base + ["sft.interpolate_alpha=1.5"])
