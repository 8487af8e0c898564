"""Weight interpolation between a stage's start and end (L20-Edu's SFT recipe): θ = (1 − α)·θ_start + α·θ_end.

α = 1 keeps the trained weights, α = 0 the starting ones; in between trades what the stage taught against what it
may have made the model forget.
"""

from __future__ import annotations

import torch


def interpolate_state_dicts(start: dict[str, torch.Tensor], end: dict[str, torch.Tensor],
                            alpha: float) -> dict[str, torch.Tensor]:
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"interpolation alpha must be in [0, 1], got {alpha}")
    if start.keys() != end.keys():
        raise ValueError(f"state dicts differ in keys: {sorted(start.keys() ^ end.keys())[:5]}")
    out = {}
    for name, theta_end in end.items():
        theta_start = start[name].to(theta_end.device)
        if theta_start.shape != theta_end.shape:
            raise ValueError(f"{name}: shape {tuple(theta_start.shape)} at start, {tuple(theta_end.shape)} at end")
        if theta_end.is_floating_point():
            mixed = torch.lerp(theta_start.float(), theta_end.float(), alpha)  # = start + alpha * (end - start)
            out[name] = mixed.to(theta_end.dtype)
        else:
            out[name] = theta_end.clone()  # integer buffers (if any) are not weights
    return out
