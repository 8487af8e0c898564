"""Pretraining/SFT steps on the DeepSpeed learners: two ranks equal one rank (the loss is normalised by the global
count of loss tokens, however unevenly they fall on the ranks), and the interpolated export is exact."""

from __future__ import annotations

import random

import pytest
import torch

from rlvr.actors.learner_group import LearnerGroup
from rlvr.data.packing import Document, pack
from rlvr.launch.cluster import Placement
from rlvr.model_io import load_model
from tests.conftest import tiny_config

pytestmark = pytest.mark.slow


def make_rows(n_docs: int, vocab: int, seq_len: int):
    rng = random.Random(0)
    docs = []
    for _ in range(n_docs):
        ids = [rng.randrange(4, vocab) for _ in range(rng.randint(3, 12))]
        docs.append(Document(ids, [rng.random() < 0.6 for _ in ids]))  # uneven loss tokens per row
    return pack(docs, seq_len, pad_id=0, split_documents=False)


def train_once(cfg, model_dir: str, rows, export_dir=None):
    import ray

    placement = Placement(cfg, only=("learner",))
    accum = len(rows) // (cfg.learner.num_actors * cfg.learner.micro_batch_size)
    group = LearnerGroup(cfg, model_dir, placement.scheduling("learner"), 1, grad_accum_steps=accum)
    try:
        stats = group.train_lm(rows)
        if export_dir is not None:
            group.save_checkpoint(str(export_dir), {"step": 1})
            group.export_interpolated(str(export_dir), 0.25)
        return stats, ray.get(group.weights_ref())
    finally:
        group.shutdown()
        placement.remove()


def test_lm_two_ranks_equal_one_rank_and_interpolated_export(ray_cluster, tiny_model_dir, tmp_path):
    common = ["learner.micro_batch_size=2", "learner.lr=1e-2", "learner.resources.num_cpus=1"]
    one = tiny_config(tiny_model_dir, tmp_path / "one", "learner.num_actors=1", *common)
    two = tiny_config(tiny_model_dir, tmp_path / "two", "learner.num_actors=2", *common)
    rows = make_rows(40, vocab=60, seq_len=24)[:8]
    s1, w1 = train_once(one, tiny_model_dir, rows)
    s2, w2 = train_once(two, tiny_model_dir, rows, export_dir=tmp_path / "ckpt")
    assert s1["tokens"] == s2["tokens"] > 0 and abs(s1["loss_sum"] - s2["loss_sum"]) < 1e-3
    w0 = load_model(tiny_model_dir).state_dict()
    moved = max((w1[k] - w0[k]).abs().max().item() for k in w0)
    diff = max((w1[k] - w2[k]).abs().max().item() for k in w1)
    print(f"max |w_1rank - w_2ranks| = {diff:.2e}, max update = {moved:.2e}")
    assert moved > 1e-3 and diff < 1e-5
    exported = load_model(str(tmp_path / "ckpt" / "hf")).state_dict()
    for k in w0:
        assert torch.allclose(exported[k], 0.75 * w0[k] + 0.25 * w2[k], atol=1e-6), k
