"""The learner's core, checked against values computed here without it (issue 19: breakages no other test saw).

- the gradient DeepSpeed applies is the gradient of the global batch's mean loss (two ranks, accumulation, seq_mean:
  the ranks x accumulation factor and the global sequence count both matter);
- the clip bounds reach the loss the right way round (asymmetric clip, ratios set through the engine's logprobs);
- the KL term is trained: away from the reference its gradient pulls the policy back;
- with several mini-batches the old logprobs are recomputed (later mini-batches are off-policy);
- `train_lm` uses the loss mask, the block-diagonal attention and the restarting positions of packed rows;
- a rank's RNG states are restored with its checkpoint.

Each test drives the Ray actors and real DeepSpeed (gloo on CPU) through `LearnerGroup`, as the loops do.
"""

from __future__ import annotations

import math
import random

import pytest
import torch

from rlvr.actors.learner_group import LearnerGroup
from rlvr.launch.cluster import Placement
from rlvr.model_io import load_model
from rlvr.rollout.base import Rollout
from tests.conftest import tiny_config

pytestmark = pytest.mark.slow

SMALL = ["rollout.num_actors=1", "rewards.num_workers=1", "learner.resources.num_cpus=1",
         "rollout.resources.num_cpus=0", "rewards.resources.num_cpus=0"]


def rollouts_with(advantages: list[float], vocab: int = 60, seed: int = 0) -> list[Rollout]:
    rng = random.Random(seed)
    out = []
    for adv in advantages:
        prompt = [rng.randrange(4, vocab) for _ in range(rng.randint(3, 6))]
        completion = [rng.randrange(4, vocab) for _ in range(rng.randint(1, 7))]  # uneven lengths on purpose
        out.append(Rollout(prompt, completion, [0.0] * len(completion), advantage=adv))
    return out


class Learners:
    """A LearnerGroup with its placement, removed on exit."""

    def __init__(self, cfg, model_dir: str, total_optim_steps: int = 1, grad_accum_steps: int | None = None):
        self.placement = Placement(cfg, only=("learner",))
        self.group = LearnerGroup(cfg, model_dir, self.placement.scheduling("learner"), total_optim_steps,
                                  grad_accum_steps=grad_accum_steps)

    def __enter__(self) -> LearnerGroup:
        return self.group

    def __exit__(self, *exc) -> None:
        self.group.shutdown()
        self.placement.remove()


def reference_grad_norm(model_dir: str, rollouts: list[Rollout], loss_agg: str) -> float:
    """|grad| of the global batch's on-policy GRPO loss, one sequence at a time on a plain model (no padding,
    no DeepSpeed): the ratio exp(logp - logp.detach()) is 1, so d loss = -A * d logp, averaged as loss_agg says."""
    model = load_model(model_dir, "float32")
    tokens = sum(len(r.completion_ids) for r in rollouts)
    loss = 0.0
    for r in rollouts:
        ids = torch.tensor([r.prompt_ids + r.completion_ids])
        logp_T = torch.log_softmax(model(input_ids=ids).logits[0, :-1].float(), -1)
        logp_T = logp_T.gather(-1, ids[0, 1:, None])[len(r.prompt_ids) - 1 :, 0]
        per_token = -r.advantage * torch.exp(logp_T - logp_T.detach())
        loss = loss + (per_token.sum() / tokens if loss_agg == "token_mean" else per_token.mean() / len(rollouts))
    loss.backward()
    return math.sqrt(sum(float((p.grad ** 2).sum()) for p in model.parameters() if p.grad is not None))


@pytest.mark.parametrize("loss_agg", ["seq_mean", "token_mean"])
def test_update_is_the_gradient_of_the_global_mean_loss(ray_cluster, tiny_model_dir, tmp_path, loss_agg):
    """Two ranks, two accumulation steps each: DeepSpeed divides by both, `_loss_scale` must multiply them back and
    divide by the count of the whole batch (not the rank's); the grad norm is compared before clipping."""
    cfg = tiny_config(tiny_model_dir, tmp_path, *SMALL, "learner.num_actors=2", "learner.micro_batch_size=2",
                      "data.prompts_per_step=2", "rollout.samples_per_prompt=4", f"algorithm.loss_agg={loss_agg}",
                      "learner.grad_clip=0")
    assert cfg.grad_accum_steps == 2
    rollouts = rollouts_with([1.0, -0.5, 0.25, -1.0, 1.5, 0.75, -0.25, 0.5], seed=1)
    with Learners(cfg, tiny_model_dir) as group:
        stats = group.train_grpo(rollouts)
    expected = reference_grad_norm(tiny_model_dir, rollouts, loss_agg)
    print(f"{loss_agg}: learner grad norm {stats['grad_norm']:.6g}, reference {expected:.6g}")
    assert expected > 1e-3
    assert stats["grad_norm"] == pytest.approx(expected, rel=1e-4)


def test_asymmetric_clip_bounds_reach_the_loss(ray_cluster, tiny_model_dir, tmp_path):
    """clip_eps_low=0.1, clip_eps_high=0.3, old logprobs from the "engine" (rollout.overlap) set so that the ratio
    is 1.25 where A > 0 (inside 1 + 0.3) and 0.85 where A < 0 (outside 1 - 0.1): exactly the negative-advantage
    tokens are clipped. With the bounds swapped the positive ones would be, and the negative ones not."""
    cfg = tiny_config(tiny_model_dir, tmp_path, *SMALL, "learner.num_actors=1", "learner.micro_batch_size=4",
                      "data.prompts_per_step=2", "rollout.samples_per_prompt=4", "rollout.overlap=true",
                      "algorithm.clip_eps_low=0.1", "algorithm.clip_eps_high=0.3")
    advantages = [1.0, -1.0, 0.5, 0.25, 1.0, 0.75, 0.5, -0.5]
    rollouts = rollouts_with(advantages, seed=2)
    with Learners(cfg, tiny_model_dir) as group:
        current = group.completion_logprobs(rollouts)
        for r, lp in zip(rollouts, current):
            shift = math.log(1.25) if r.advantage > 0 else math.log(0.85)
            r.logprobs = [x - shift for x in lp]  # ratio = exp(logp - old) = exp(shift)
        stats = group.train_grpo(rollouts)
    negative = sum(len(r.completion_ids) for r in rollouts if r.advantage < 0)
    positive = sum(len(r.completion_ids) for r in rollouts if r.advantage > 0)
    assert positive != negative  # else swapped bounds would clip as many tokens
    assert stats["clip_fraction_sum"] == negative
    assert stats["log_ratio_abs_sum"] == pytest.approx(positive * math.log(1.25) - negative * math.log(0.85),
                                                       rel=1e-4)


def test_kl_term_pulls_the_policy_back_to_the_reference(ray_cluster, tiny_model_dir, tmp_path):
    """Step 1 (advantages != 0, two mini-batches) moves the policy away from the reference; then with advantages 0
    only the KL term has a gradient. Adam with betas (0, 0) makes each step lr * sign(grad), so no momentum from
    step 1 carries over: the KL must be > 0 and fall. Dropping the term leaves it unchanged, flipping its sign
    raises it, and the policy as its own reference gives KL 0. The second mini-batch of step 1 sees the weights
    after the first one's update, so its old logprobs (recomputed) differ from the current ones."""
    cfg = tiny_config(tiny_model_dir, tmp_path, *SMALL, "learner.num_actors=1", "learner.micro_batch_size=4",
                      "data.prompts_per_step=2", "rollout.samples_per_prompt=4", "algorithm.mini_batches=2",
                      "algorithm.kl_coef=1.0", "learner.betas=[0.0,0.0]", "learner.lr=3e-3", "learner.grad_clip=0")
    moving = rollouts_with([1.0, -1.0, 0.5, -0.5, 1.0, -1.0, 0.5, -0.5], seed=3)
    still = rollouts_with([0.0] * 8, seed=3)
    with Learners(cfg, tiny_model_dir, total_optim_steps=6) as group:
        first = group.train_grpo(moving)
        kl = [group.train_grpo(still)["kl_sum"] for _ in range(2)]
    print(f"step 1: kl {first['kl_sum']:.3g}, |log ratio| {first['log_ratio_abs_sum']:.3g}; then kl {kl}")
    assert first["log_ratio_abs_sum"] > 1e-3, "mini-batch 2 trained with ratio 1: old logprobs not recomputed"
    assert kl[0] > 1e-3, "the policy moved but its KL to the reference is 0"
    assert kl[1] < 0.7 * kl[0], "a step on the KL term alone did not bring the policy back"


def draw_on_rank0(group: LearnerGroup) -> list[float]:
    import ray

    return ray.get(group.actors[0].__ray_call__.remote(lambda learner: torch.rand(4).tolist()))


def test_train_lm_loss_is_per_document_nll_over_loss_tokens(ray_cluster, tiny_model_dir, tmp_path):
    """Packed rows (several documents each, partial loss masks) give the same summed NLL as each document run alone
    from position 0: ignoring the loss mask, the block-diagonal attention or the restarting positions changes it."""
    from rlvr.data.packing import Document, pack

    rng = random.Random(4)
    docs = []
    for _ in range(10):
        ids = [rng.randrange(4, 60) for _ in range(rng.randint(3, 8))]
        docs.append(Document(ids, [rng.random() < 0.6 for _ in ids]))
    rows = pack(docs, 24, pad_id=0, split_documents=False)[:2]
    assert all(len(set(r.doc_ids_L.tolist()) - {-1}) >= 2 for r in rows), "each row must hold several documents"
    packed_docs = docs[: sum(len(set(r.doc_ids_L.tolist()) - {-1}) for r in rows)]
    cfg = tiny_config(tiny_model_dir, tmp_path, *SMALL, "learner.num_actors=1", "learner.micro_batch_size=1")
    with Learners(cfg, tiny_model_dir, grad_accum_steps=len(rows)) as group:
        stats = group.train_lm(rows)
        # and a resumed rank draws what it drew after the save: its RNG states come back with the checkpoint
        group.save_checkpoint(str(tmp_path / "ckpt"), {"step": 1})
        after_save = draw_on_rank0(group)
        assert group.load_checkpoint(str(tmp_path / "ckpt"))["step"] == 1
        assert draw_on_rank0(group) == after_save
    model = load_model(tiny_model_dir, "float32")
    expected, tokens = 0.0, 0
    with torch.no_grad():
        for d in packed_docs:
            ids = torch.tensor([d.token_ids])
            nll_T = torch.nn.functional.cross_entropy(model(input_ids=ids).logits[0, :-1].float(), ids[0, 1:],
                                                      reduction="none")
            mask_T = torch.tensor(d.loss_mask[1:], dtype=torch.float32)  # a document's first token has no context
            expected += float((nll_T * mask_T).sum())
            tokens += int(mask_T.sum())
    assert stats["tokens"] == tokens
    assert stats["loss_sum"] == pytest.approx(expected, rel=1e-5)
