"""The GRPO stage's controller loop, read top to bottom:

    sample prompts -> G rollouts each -> rewards -> group advantages -> learner update(s)
    -> push new weights to the rollout workers -> metrics -> checkpoint

With rollout.overlap the next step's prompts are sampled and scored while the learners update (BatchSource).

The loop only calls typed methods of worker groups (rollout, reward, learner); where those run (Ray actors on any
node) is decided when they are built, in `rlvr.launch`.
"""

from __future__ import annotations

import pickle
import time
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch

from rlvr.algo import advantages
from rlvr.algo.advantages import AdvantageFn
from rlvr.config import RunConfig
from rlvr.data.prompts import Example, PromptSampler, render_prompt
from rlvr.rewards.health import RewardHealth
from rlvr.rewards.service import verdict_fractions
from rlvr.rewards.types import RewardResult, Sample
from rlvr.rollout.base import Completion, Rollout, SamplingParams, derive_seed
from rlvr.trainer.curve import CURVE_METRIC, held_out_accuracy, is_curve_step
from rlvr.trainer.metrics import MetricsLogger, learner_metrics, rollout_metrics
from rlvr.trainer.reward_control import make_control
from rlvr.trainer.weight_sync import ObjectStoreSync, WeightSync
from rlvr.utils import preempt
from rlvr.utils.checkpoint import CheckpointDir, load_rng, save_rng
from rlvr.utils.errors import DataExhausted

NEXT_BATCH = "next_batch.pkl"  # with rollout.overlap: the batch sampled ahead, saved with a checkpoint


class RolloutWorkers(Protocol):
    """Everything the loop calls on the rollout side (a weight-sync transport calls the rest: `WeightSync`)."""

    def generate(self, prompt_ids: list[list[int]], params: SamplingParams) -> list[Completion]: ...
    def load_weights(self, weights_ref) -> None: ...


class RewardWorkers(Protocol):
    def score(self, samples: list[Sample]) -> list[RewardResult]: ...


class Learners(Protocol):
    def train_grpo(self, rollouts: list[Rollout]) -> dict[str, float]: ...
    def weights_ref(self): ...
    def save_checkpoint(self, directory: str, client_state: dict) -> None: ...
    def load_checkpoint(self, directory: str) -> dict: ...


@dataclass
class Workers:
    rollout: RolloutWorkers
    rewards: RewardWorkers
    learners: Learners
    weight_sync: WeightSync | None = None
    """How new weights reach the rollout workers (rlvr/launch/components.py builds it from the config);
    None: through the object store."""

    def __post_init__(self):
        if self.weight_sync is None:
            self.weight_sync = ObjectStoreSync(self.learners, self.rollout)


class PhaseTimer:
    def __init__(self):
        self.times: dict[str, float] = {}

    @contextmanager
    def __call__(self, phase: str):
        start = time.perf_counter()
        yield
        key = f"time/{phase}_s"  # accumulates: a refilled step rolls out more than once
        self.times[key] = self.times.get(key, 0.0) + time.perf_counter() - start


def sampling_params(cfg: RunConfig, step: int, draw: int = 0) -> SamplingParams:
    r = cfg.rollout
    # the seed depends only on (run seed, step, draw): a resumed run samples exactly what the uninterrupted one did
    return SamplingParams(n=r.samples_per_prompt, temperature=r.temperature, top_p=r.top_p,
                          max_new_tokens=r.max_new_tokens, stop=tuple(r.stop),
                          seed=derive_seed(cfg.run.seed, step, draw),
                          # only overlapped training reads the engine's logprobs, unless the learner recomputes them;
                          # the mismatch correction (algorithm.rollout_is) compares them with the learner's
                          logprobs=((r.overlap and r.overlap_old_logprobs == "engine")
                                    or cfg.algorithm.rollout_is != "none"))


@dataclass
class Group:
    """One prompt and its G scored completions."""

    prompt_ids: list[int]
    completions: list[Completion]
    results: list[RewardResult]
    prompt: str = ""

    @property
    def rewards(self) -> list[float]:
        return [r.score for r in self.results]


def sample_groups(cfg: RunConfig, workers: Workers, tokenizer, sampler: PromptSampler, params: SamplingParams,
                  timer: PhaseTimer, prompts: int | None = None) -> list[Group]:
    """`prompts` (default data.prompts_per_step) prompts -> G completions each -> rewards."""
    examples: list[Example] = sampler.next_batch(prompts or cfg.data.prompts_per_step)
    prompt_ids = [render_prompt(tokenizer, cfg.data, ex.prompt) for ex in examples]
    with timer("rollout"):
        completions = workers.rollout.generate(prompt_ids, params)
    samples = [Sample(examples[c.prompt_index].prompt, c.text, examples[c.prompt_index].reference)
               for c in completions]
    with timer("reward"):
        results = workers.rewards.score(samples)
    G = params.n
    return [Group(prompt_ids[i], completions[i * G:(i + 1) * G], results[i * G:(i + 1) * G], examples[i].prompt)
            for i in range(len(prompt_ids))]


def refill_informative(groups: list[Group], draw, max_draws: int) -> tuple[list[Group], int]:
    """Keep groups with mixed rewards, drawing more until the batch is full of them or max_draws is spent;
    a batch still short is topped up with zero-variance groups (advantage 0) so its size never changes."""
    keep = len(groups)
    informative = [g for g in groups if max(g.rewards) > min(g.rewards)]
    spare = [g for g in groups if max(g.rewards) == min(g.rewards)]
    draws = 0
    while len(informative) < keep and draws < max_draws:
        draws += 1
        for g in draw(draws):
            (informative if max(g.rewards) > min(g.rewards) else spare).append(g)
    return (informative + spare)[:keep], draws


@dataclass(frozen=True)
class Overlong:
    """DAPO's soft overlong punishment, added to the reward before advantages (advantages.overlong_penalty)."""

    max_len: int
    cache_len: int
    factor: float

    def __call__(self, length: int) -> float:
        return advantages.overlong_penalty(length, self.max_len, self.cache_len, self.factor)


def reward_shaping(cfg: RunConfig) -> Overlong | None:
    alg = cfg.algorithm
    if not alg.overlong_buffer:
        return None
    return Overlong(cfg.rollout.max_new_tokens, alg.overlong_buffer, alg.overlong_penalty)


def build_rollouts(groups: list[Group], estimator: AdvantageFn, shaping: Overlong | None = None,
                   control=None) -> tuple[list[Rollout], torch.Tensor]:
    """Rollouts with advantages from the (shaped) rewards; `rewards_BG` is what the advantages were computed from.
    `control`: a reward_control variant replacing those rewards (control arm)."""
    rewards_BG = torch.tensor([[res.score + (shaping(len(c.token_ids)) if shaping else 0.0)
                                for c, res in zip(g.completions, g.results)] for g in groups], dtype=torch.float32)
    if control is not None:
        rewards_BG = control(rewards_BG)
    adv_BG = estimator(rewards_BG).tolist()
    trained_BG = rewards_BG.tolist()
    rollouts = [
        Rollout(g.prompt_ids, c.token_ids, c.logprobs, trained_BG[b][i], a, group=b,
                truncated=c.finish_reason == "length")
        for b, g in enumerate(groups) for i, (c, a) in enumerate(zip(g.completions, adv_BG[b]))
    ]
    return rollouts, rewards_BG


def zero_variance_fraction(groups: list[Group]) -> float:
    return sum(max(g.rewards) == min(g.rewards) for g in groups) / len(groups)


@dataclass
class StepBatch:
    """One step's training groups and what was seen while collecting them."""

    groups: list[Group]
    on_policy: list[float]
    """Rewards of the first draw: the unbiased sample (refills select groups, so they do not count)."""
    zero_var: float
    draws: int
    times: dict[str, float]
    measured: list[tuple[str, list[float]]]
    """(prompt, rewards) of every group sampled, refills and dropped ones included: the sampler's pass-rate news."""

    @property
    def sampled(self) -> int:
        """Completions sampled for this step, refills included."""
        return sum(len(rewards) for _, rewards in self.measured)


def collect_batch(cfg: RunConfig, workers: Workers, tokenizer, sampler: PromptSampler, step: int) -> StepBatch:
    """Sample, score and (optionally) drop-and-refill one step's groups."""
    timer = PhaseTimer()
    groups = sample_groups(cfg, workers, tokenizer, sampler, sampling_params(cfg, step), timer)
    measured = [(g.prompt, g.rewards) for g in groups]
    on_policy = [r for g in groups for r in g.rewards]
    zero_var, draws = zero_variance_fraction(groups), 0
    if cfg.algorithm.drop_zero_variance_groups:
        def draw(d: int) -> list[Group]:
            more = sample_groups(cfg, workers, tokenizer, sampler, sampling_params(cfg, step, d), timer,
                                 cfg.algorithm.refill_prompts)
            measured.extend((g.prompt, g.rewards) for g in more)
            return more
        groups, draws = refill_informative(groups, draw, cfg.algorithm.max_refill_draws)
    return StepBatch(groups, on_policy, zero_var, draws, timer.times, measured)


def run_grpo(cfg: RunConfig, workers: Workers, tokenizer, sampler: PromptSampler, logger: MetricsLogger,
             start_step: int = 0, held_out: list[Example] | None = None) -> dict[str, float]:
    """`held_out`: the learning curve's slice (curve.every_steps), scored greedily before and during training."""
    ckpt = CheckpointDir(Path(cfg.run.output_dir), cfg.checkpoint.keep_last)
    curve = {}
    if held_out and start_step == 0:  # the curve's first point: the model training starts from
        curve = {f"{CURVE_METRIC}_before": held_out_accuracy(cfg, workers.rollout, workers.rewards, tokenizer,
                                                            held_out)[CURVE_METRIC]}
    batches = BatchSource(lambda step: collect_batch(cfg, workers, tokenizer, sampler, step), cfg.run.steps)
    if cfg.rollout.overlap and start_step:
        batches.resume(ckpt, start_step)
    metrics: dict[str, float] = {}
    reward_health = RewardHealth(cfg.rewards.health)
    estimator = advantages.resolve(cfg.algorithm.advantage, cfg.algorithm.scale_by_std)
    shaping = reward_shaping(cfg)
    saved = start_step  # steps done at the newest checkpoint
    try:
        for step in range(start_step, cfg.run.steps):
            timer, t0 = PhaseTimer(), time.perf_counter()
            try:
                with timer("wait_rollout"):
                    batch = batches.take(step)
            except DataExhausted:  # every prompt dropped: keep the steps trained since the last checkpoint
                if step > saved:
                    save_checkpoint(cfg, workers, ckpt, sampler, step)
                raise
            reward_health.check(step, [res for g in batch.groups for res in g.results])  # stops a broken reward
            for prompt, rewards in batch.measured:  # true rewards, also in a control arm
                sampler.observe(prompt, rewards)
            if cfg.rollout.overlap:
                batches.start(step + 1)  # sampled with the current weights while the learners update them
            control = make_control(cfg.algorithm.reward_control, cfg.run.seed, step)
            rollouts, _ = build_rollouts(batch.groups, estimator, shaping, control)
            with timer("learn"):
                workers.weight_sync.before_update()  # colocated: hand the shared GPU to the learners
                stats = workers.learners.train_grpo(rollouts)
            with timer("wait_rollout"):
                batches.settle()  # the engines must be idle before their weights change
            with timer("weight_sync"):
                workers.weight_sync.push()
            if workers.weight_sync.bytes_last is not None:
                timer.times["weight_sync/bytes"] = float(workers.weight_sync.bytes_last)
            timer.times["time/step_s"] = time.perf_counter() - t0
            metrics = step_metrics(batch, rollouts, stats, {**batch.times, **timer.times})
            if held_out and is_curve_step(cfg, step + 1):
                with timer("curve_eval"):
                    curve.update(held_out_accuracy(cfg, workers.rollout, workers.rewards, tokenizer, held_out))
            metrics, curve = {**metrics, **curve, **timer.times, **sampler.metrics()}, {}
            logger.log(step, metrics)
            if should_save(cfg, step + 1) or preempt.requested():
                save_checkpoint(cfg, workers, ckpt, sampler, step + 1, batches.ahead_batch())
                saved = step + 1
            preempt.stop_if_requested(step + 1, cfg.run.steps, cfg.run.output_dir)
    finally:
        batches.close()
        sampler.save(cfg.run.output_dir)  # also when stopped: a refreshed map's measurements are worth keeping
    return metrics


class BatchSource:
    """Each step's batch: collected when asked for, or (rollout.overlap) started one step ahead on a thread.

    Overlapped, batch k+1 is sampled while the learners train on batch k, so it comes from the weights before
    update k: one step off-policy. `settle` waits for it before the weights change, so every batch is sampled
    with one set of weights.
    """

    def __init__(self, collect, steps: int):
        self.collect, self.steps = collect, steps
        self.pool: ThreadPoolExecutor | None = None
        self.ahead: tuple[int, Future] | None = None

    def take(self, step: int) -> StepBatch:
        if self.ahead is None:
            return self.collect(step)
        ahead_step, future = self.ahead
        if ahead_step != step:
            raise RuntimeError(f"batch for step {ahead_step} was collected ahead, step {step} asked for")
        self.ahead = None
        return future.result()

    def start(self, step: int) -> None:
        if step >= self.steps:
            return
        self.pool = self.pool or ThreadPoolExecutor(1, thread_name_prefix="rlvr-rollout-ahead")
        self.ahead = (step, self.pool.submit(self.collect, step))

    def settle(self) -> None:
        if self.ahead is not None:  # re-raises a rollout or reward failure here, in the loop; the data's end is
            exc = self.ahead[1].exception()  # raised by `take` at the next step, once this one is done
            if exc is not None and not isinstance(exc, DataExhausted):
                raise exc

    def ahead_batch(self) -> StepBatch | None:
        """The finished batch of the next step (saved with a checkpoint, so a resumed run trains on it)."""
        if self.ahead is None or isinstance(self.ahead[1].exception(), DataExhausted):
            return None
        return self.ahead[1].result()

    def resume(self, ckpt: CheckpointDir, step: int) -> None:
        found = ckpt.latest()
        path = None if found is None else found[0] / NEXT_BATCH
        if path is None or not path.exists():
            print(f"[rlvr] the checkpoint holds no next batch (written without rollout.overlap): step {step} "
                  "samples with the restored weights", flush=True)
            return
        done: Future = Future()
        done.set_result(pickle.loads(path.read_bytes()))
        self.ahead = (step, done)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)


def step_metrics(batch: StepBatch, rollouts: list[Rollout], stats: dict[str, float],
                 times: dict[str, float]) -> dict[str, float]:
    lengths = [len(r.completion_ids) for r in rollouts]
    return {
        **rollout_metrics(batch.on_policy, lengths, batch.zero_var),
        "reward/trained_mean": sum(r.reward for r in rollouts) / len(rollouts),
        **verdict_fractions([res for g in batch.groups for res in g.results]),
        **learner_metrics(stats),
        **times,
        "groups/refill_draws": float(batch.draws),
        "rollouts/sampled": float(batch.sampled),
        "rollouts/trained": float(len(rollouts)),
        "response/truncated_fraction": sum(r.truncated for r in rollouts) / len(rollouts),
        "groups/trained_zero_variance_fraction": zero_variance_fraction(batch.groups),
        "throughput/tokens_per_s": sum(lengths) / max(times["time/rollout_s"], 1e-9),
    }


def should_save(cfg: RunConfig, done: int) -> bool:
    every = cfg.checkpoint.every
    return bool(every and done % every == 0) or (done == cfg.run.steps and cfg.checkpoint.save_final)


def save_checkpoint(cfg: RunConfig, workers: Workers, ckpt: CheckpointDir, sampler: PromptSampler, step: int,
                    next_batch: StepBatch | None = None):
    """Learner state, then the driver's: data-loader position, RNG and, with rollout.overlap, the next step's batch
    (sampled by weights the checkpoint no longer holds). The checkpoint counts only once committed."""
    staging = ckpt.staging(step)
    workers.learners.save_checkpoint(str(staging), {"step": step})
    save_rng(staging / "driver_rng.pt")
    if next_batch is not None:
        (staging / NEXT_BATCH).write_bytes(pickle.dumps(next_batch))
    return ckpt.commit(staging, {"step": step, "sampler": sampler.state_dict()})


def resume(cfg: RunConfig, workers: Workers, sampler: PromptSampler) -> int:
    """Restore learners, sampler and rollout weights from the newest complete checkpoint; the step to start at."""
    found = CheckpointDir(Path(cfg.run.output_dir), cfg.checkpoint.keep_last).latest()
    if found is None:
        return 0
    path, state = found
    learner_state = workers.learners.load_checkpoint(str(path))
    if learner_state.get("step") != state["step"]:
        raise RuntimeError(f"{path}: learner state is from step {learner_state.get('step')}, driver's {state['step']}")
    sampler.load_state_dict(state["sampler"])
    load_rng(path / "driver_rng.pt")
    # through the object store whatever rollout.weight_sync says, as the engines are awake and the weights must
    # reach them even before a transport's first push
    workers.weight_sync.restore(workers.learners, workers.rollout)
    print(f"[rlvr] resumed from {path} at step {state['step']}", flush=True)
    return int(state["step"])
