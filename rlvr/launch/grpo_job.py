"""A GRPO stage as a job: everything checked on the driver, then the rollout, reward and learner actors built and
the controller loop (`rlvr.trainer.grpo_loop`) run; the actors are removed however the loop ends."""

from __future__ import annotations

from pathlib import Path

import yaml

from rlvr.config import RunConfig
from rlvr.data.prompts import Example, PromptSampler, load_examples
from rlvr.launch.components import build_weight_sync, check_loss
from rlvr.launch.input_checks import check_grpo_inputs, check_model_fits
from rlvr.launch.layout import check_tensor_parallel_model
from rlvr.learner.lora import check_lora
from rlvr.model_io import load_tokenizer, resolve_model_path


def training_examples(cfg: RunConfig, filtered: bool = True,
                      examples: list[Example] | None = None) -> tuple[list[Example], list[Example]]:
    """(training prompts, the learning curve's held-out slice): the data (after data.filters; `examples` if
    already loaded), less the slice (curve.every_steps), kept by the pass-rate filter (data.passrate_filter) unless
    `filtered` is False (measuring a pass-rate map)."""
    from rlvr.data.passrate import apply_filter
    from rlvr.trainer.curve import split_held_out

    loaded = examples if examples is not None else load_examples(cfg.data, cfg.run.seed)
    train, held_out = split_held_out(cfg, loaded)
    return (apply_filter(cfg.data.passrate_filter, train) if filtered else train), held_out


def preflight(cfg: RunConfig):
    """Everything that can be checked before any actor starts; returns (model_path, tokenizer, examples,
    held_out)."""
    from rlvr.utils.checkpoint import CheckpointDir
    from rlvr.utils.run_dir import claim

    examples, held_out = training_examples(cfg, examples=check_grpo_inputs(cfg))
    check_loss(cfg)
    check_lora(cfg)
    out = Path(cfg.run.output_dir)
    claim(out, cfg.checkpoint.resume, cfg.run.overwrite)
    if cfg.checkpoint.resume:  # verified now, before any actor starts (resume finds the result again)
        CheckpointDir(out, cfg.checkpoint.keep_last).latest()
    model_path = resolve_model_path(cfg.model, out, cfg.run.seed)
    tokenizer = load_tokenizer(model_path)
    check_model_fits(cfg, model_path, tokenizer, examples)
    check_tensor_parallel_model(cfg, model_path)
    (out / "config.yaml").write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
    return model_path, tokenizer, examples, held_out


def run_preflight(cfg: RunConfig, workers, tokenizer, examples) -> dict:
    """pass@G and the share of groups with mixed rewards on training prompts, before the first step."""
    import json

    from rlvr.data.prompts import render_prompt
    from rlvr.trainer.group_health import preflight
    from rlvr.trainer.grpo_loop import sampling_params

    chosen = examples[: cfg.algorithm.preflight_prompts]
    report = preflight(
        workers.rollout, [ex.prompt for ex in chosen], [ex.reference for ex in chosen],
        lambda samples: [r.score for r in workers.rewards.score(samples)], cfg.rollout.samples_per_prompt,
        encode=lambda p: render_prompt(tokenizer, cfg.data, p), params=sampling_params(cfg, step=-1),
    )
    (Path(cfg.run.output_dir) / "preflight.json").write_text(json.dumps(report, indent=2))
    print(f"[rlvr] preflight on {report['prompts']} prompts: pass@{report['G']}={report['pass_at_G']:.3f} "
          f"mixed groups={report['mixed_fraction']:.3f} mean reward={report['mean_reward']:.3f}", flush=True)
    return report


def prompt_sampler(cfg: RunConfig, examples: list[Example]) -> PromptSampler:
    from rlvr.data.passrate_refresh import RefreshingSampler

    band, online = cfg.data.passrate_filter, cfg.data.online_band
    if band is not None and band.refresh:
        return RefreshingSampler(examples, cfg.run.seed, band.path, band.above, band.below, band.refresh_patience)
    if online is not None:
        return RefreshingSampler(examples, cfg.run.seed, None, online.above, online.below, online.patience,
                                 "data.online_band", online.signal_patience)
    return PromptSampler(examples, cfg.run.seed)


def run_grpo_job(cfg: RunConfig, on_step=None) -> dict[str, float]:
    """`on_step(step)`: called after each step's metrics are logged (tests use it to inject faults)."""
    from rlvr.actors.learner_group import LearnerGroup
    from rlvr.actors.reward_pool import RewardPool
    from rlvr.actors.rollout_group import RolloutGroup
    from rlvr.launch.cluster import Placement, connect
    from rlvr.trainer.grpo_loop import Workers, resume, run_grpo
    from rlvr.trainer.metrics import MetricsLogger
    from rlvr.utils.preempt import stop_on_signal

    model_path, tokenizer, examples, held_out = preflight(cfg)
    connect(cfg)
    placement = Placement(cfg)  # raises on an impossible resource request, before any actor exists
    workers = None
    try:
        optim_steps = cfg.run.steps * cfg.algorithm.mini_batches
        rollout = RolloutGroup(cfg, model_path, placement.scheduling("rollout"))
        learners = LearnerGroup(cfg, model_path, placement.scheduling("learner"), optim_steps)
        workers = Workers(
            rollout=rollout,
            # completions are cut at the rollout's stop strings before extraction
            rewards=RewardPool(cfg.rewards, placement.scheduling("reward"),
                               service_kwargs={"stop": list(cfg.rollout.stop)}),
            learners=learners,
            weight_sync=build_weight_sync(cfg, rollout, learners),
        )
        workers.weight_sync.setup()  # NCCL forms its group here, once; it lives as long as the actors
        sampler = prompt_sampler(cfg, examples)
        start = resume(cfg, workers, sampler) if cfg.checkpoint.resume else 0
        if cfg.algorithm.preflight_prompts and start == 0:
            run_preflight(cfg, workers, tokenizer, examples)
        logger = MetricsLogger(cfg, Path(cfg.run.output_dir), start, on_step)
        try:
            with stop_on_signal():
                result = run_grpo(cfg, workers, tokenizer, sampler, logger, start, held_out)
        finally:
            logger.close()
        if held_out and cfg.curve.plot:
            from rlvr.trainer.curve import plot_curve

            out = Path(cfg.run.output_dir)
            plot_curve(out / "metrics.jsonl", out / "learning_curve.png", cfg.run.name)
        return result
    finally:
        if workers is not None:
            workers.rollout.shutdown()
            workers.rewards.close()
            workers.learners.shutdown()
        placement.remove()
