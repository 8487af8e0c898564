"""Reward functions by dotted path: `package.module:function` (or `package.module.function`). Imported, never eval'd.

A module shipped with `ray job submit --working-dir DIR` is importable because Ray puts DIR on the workers' path;
the service's worker processes inherit that path (see `service._worker_env`).
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import Any

from rlvr.config import ConfigError, RewardsSection


def load_reward_fn(path: str) -> Callable[..., Any]:
    """Import the callable named by `path`; raises ImportError/AttributeError/TypeError naming what is wrong."""
    module_name, sep, attr_path = path.partition(":")
    if not sep:
        module_name, _, attr_path = path.rpartition(".")
    if not module_name or not attr_path:
        raise ImportError(f"expected 'package.module:function', got {path!r}")
    obj: Any = importlib.import_module(module_name)
    for attr in attr_path.split("."):
        obj = getattr(obj, attr)
    if not callable(obj):
        raise TypeError(f"{path!r} is a {type(obj).__name__}, not a function")
    return obj


def check_reward_paths(cfg: RewardsSection) -> None:
    """Import every configured reward function and check that its kwargs fit; one-line ConfigError otherwise.

    The launcher calls this before any actor starts, so a typo costs a second instead of a cluster start-up.
    """
    for spec in cfg.functions:
        try:
            fn = load_reward_fn(spec.path)
        # Importing user code can raise anything (SyntaxError, a failing top-level statement): every kind is a
        # config error to report in one line, and nothing runs afterwards, so nothing is hidden.
        except Exception as exc:  # noqa: BLE001
            detail = str(exc).splitlines()[0] if str(exc) else ""
            raise ConfigError(
                f"reward function {spec.path!r} cannot be imported: {type(exc).__name__}: {detail}"
            ) from None
        try:
            inspect.signature(fn).bind("prompt", "completion", "reference", **spec.kwargs)
        except TypeError as exc:
            raise ConfigError(
                f"reward function {spec.path!r} does not accept (prompt, completion, reference"
                f"{''.join(f', {k}=' for k in spec.kwargs)}): {exc}"
            ) from None
        except ValueError:
            continue  # builtins without a signature: nothing to check
