"""Environment for every actor of a run, so the driver's progress display is not buried in library chatter.

Actor output goes to the driver's terminal (Ray's log_to_driver). Without this, each actor adds progress bars from
model loading, transformers' and torch's deprecation notices and DeepSpeed's accelerator guess: dozens of lines
around a few steps' progress. Only known noise is silenced: errors, tracebacks and other warnings still show.
`RLVR_VERBOSE_ACTORS=1` in the driver's environment turns all of it back on.
"""

from __future__ import annotations

import builtins
import os
import re
import warnings

from rlvr.config import ResourceSpec

# PYTHONWARNINGS entries: the message's start, literally (no commas). These come from library code we call.
KNOWN_DEPRECATIONS = (
    "ignore:`past_key_values` is deprecated:FutureWarning",  # transformers 5.x, our KV-cached sampling loop
    "ignore:`torch.distributed.all_gather_into_tensor` is deprecated:FutureWarning",  # DeepSpeed's ZeRO gather
    "ignore:`torch.distributed.reduce_scatter_tensor` is deprecated:FutureWarning",
)


def actor_env(spec: ResourceSpec) -> dict[str, str]:
    """Variables for an actor with these resources (Ray merges them into the job's own env_vars)."""
    if os.environ.get("RLVR_VERBOSE_ACTORS") == "1":
        return {}
    warnings = [w for w in (os.environ.get("PYTHONWARNINGS"), *KNOWN_DEPRECATIONS) if w]
    env = {
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",  # "Loading weights" bars, one per actor per load
        "TRANSFORMERS_VERBOSITY": "error",  # deprecation notices logged once per process
        "PYTHONWARNINGS": ",".join(warnings),
    }
    if spec.num_gpus == 0:
        # what DeepSpeed's autodetection picks anyway on a CPU actor, without its "Setting accelerator to CPU"
        env["DS_ACCELERATOR"] = "cpu"
    return env


def quiet_driver() -> None:
    """The same for the driver's own process (model materialisation, the stage evaluation between stages): set
    before transformers is imported, which reads these variables once."""
    if os.environ.get("RLVR_VERBOSE_ACTORS") == "1":
        return
    for entry in KNOWN_DEPRECATIONS:
        action, message, category = entry.split(":")
        warnings.filterwarnings(action, message=re.escape(message), category=getattr(builtins, category))
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
