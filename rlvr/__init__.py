"""rlvr: distributed RL post-training with verifiable rewards."""

__version__ = "0.1.0"
