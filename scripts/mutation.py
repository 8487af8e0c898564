"""Mutation check of the core (issue 19); a separate command, not part of CI. Results: docs/testing.md.

    python scripts/mutation.py core [--jobs 2] [--out FILE.json]   # mutmut over the pure core ([tool.mutmut])
    python scripts/mutation.py report FILE.json                   # the table again, after editing EQUIVALENT
    python scripts/mutation.py listed [--only NAME ...]           # the scripted learner-level breakages

Both work on a copy of the tree (git's tracked and untracked files) in a temporary directory, so the worktree is
never modified. `core` needs the `mutation` extra (`pip install -e '.[mutation]'`). It prints, per module, the
mutants of the functions that count, how many the selected tests killed, and each survivor's diff; survivors
listed in EQUIVALENT (a mutant that cannot change behaviour) are left out of the kill rate. `listed` applies each
breakage of LISTED, runs the test named for it, and expects that test to fail.

Mutants are matched by text, not by line number or mutmut's numbering, so the lists survive edits elsewhere; a
LISTED edit whose text has moved to another file is found there (and reported), so file moves do not break it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# files of [tool.mutmut] only_mutate where only some functions are the pure core (the rest is setup code that
# the fast tests do not run)
FOCUS = {"rlvr.learner.deepspeed_setup": ("lr_lambda",)}


@dataclass(frozen=True)
class Edit:
    file: str
    original: str
    replacement: str


@dataclass(frozen=True)
class Listed:
    name: str
    edits: tuple[Edit, ...]
    test: str
    """pytest node id (or file) expected to fail on the breakage."""
    equivalent: str = ""
    """Why the breakage cannot change behaviour here (then it is expected to survive)."""


LC = "tests/test_learner_core.py"
BK = "tests/test_breakages.py"
LISTED: list[Listed] = [
    Listed("kl term dropped from the loss", (Edit(
        "rlvr/algo/grpo.py", "loss_BT = loss_BT + cfg.kl_coef * kl_BT", "loss_BT = loss_BT + 0.0 * kl_BT"),),
        f"{LC}::test_kl_term_pulls_the_policy_back_to_the_reference"),
    Listed("kl sign flipped", (Edit(
        "rlvr/algo/grpo.py", "loss_BT = loss_BT + cfg.kl_coef * kl_BT", "loss_BT = loss_BT - cfg.kl_coef * kl_BT"),),
        f"{LC}::test_kl_term_pulls_the_policy_back_to_the_reference"),
    Listed("policy as its own KL reference", (Edit(
        "rlvr/learner/learner.py", "self._logprobs(self.ref_model, rollouts)",
        "self._logprobs(self.engine.module, rollouts)"),),
        f"{LC}::test_kl_term_pulls_the_policy_back_to_the_reference"),
    Listed("clip bounds swapped where the learner builds its loss config", (Edit(
        "rlvr/algo/losses.py", "(alg.clip_eps_low, alg.clip_eps_high,", "(alg.clip_eps_high, alg.clip_eps_low,"),),
        f"{LC}::test_asymmetric_clip_bounds_reach_the_loss"),
    Listed("loss scale without the ranks x accumulation factor", (Edit(
        "rlvr/learner/learner.py", "return max(total.item(), 1.0) / (self.world_size * self.grad_accum_steps)",
        "return max(total.item(), 1.0)"),),
        f"{LC}::test_update_is_the_gradient_of_the_global_mean_loss[seq_mean]"),
    Listed("seq_mean normalised by the rank's own count", (Edit(
        "rlvr/learner/learner.py", "dist.all_reduce(total)  # every rank must divide by the same global count",
        "total = total * 1  # every rank must divide by the same global count"),),
        f"{LC}::test_update_is_the_gradient_of_the_global_mean_loss[seq_mean]"),
    Listed("token_mean normalised by the rank's count x ranks", (Edit(
        "rlvr/learner/learner.py", "dist.all_reduce(total)  # every rank must divide by the same global count",
        "total = total * self.world_size  # every rank must divide by the same global count"),),
        f"{LC}::test_update_is_the_gradient_of_the_global_mean_loss[token_mean]"),
    Listed("mini_batches > 1 without recomputing old logprobs", (Edit(
        "rlvr/learner/learner.py", "if self.cfg.algorithm.mini_batches > 1:", "if False:"),),
        f"{LC}::test_kl_term_pulls_the_policy_back_to_the_reference"),
    Listed("train_lm ignores the loss mask", (Edit(
        "rlvr/learner/learner.py", "masked = (nll_BT * mb.loss_mask_BT).sum()", "masked = nll_BT.sum()"),),
        f"{LC}::test_train_lm_loss_is_per_document_nll_over_loss_tokens"),
    Listed("train_lm ignores the attention bias", (Edit(
        "rlvr/learner/learner.py", "attention_mask=mb.attn_bias_B1LL.clamp(min=torch.finfo(dtype).min).to(dtype),",
        "attention_mask=None,"),),
        f"{LC}::test_train_lm_loss_is_per_document_nll_over_loss_tokens",
        "transformers 5 rebuilds the block-diagonal mask from position ids that restart per document when no "
        "mask is passed (same NLL to the last digit on the tiny Llama)"),
    Listed("train_lm ignores the position ids", (Edit(
        "rlvr/learner/learner.py", "position_ids=mb.position_ids_BL,", "position_ids=None,"),),
        f"{LC}::test_train_lm_loss_is_per_document_nll_over_loss_tokens",
        "RoPE scores depend only on i - j, and the block-diagonal mask keeps every pair inside one document, "
        "where restarted and running positions differ by a constant (a model with absolute positions would differ)"),
    Listed("train_lm ignores both the attention bias and the position ids", (
        Edit("rlvr/learner/learner.py", "position_ids=mb.position_ids_BL,", "position_ids=None,"),
        Edit("rlvr/learner/learner.py",
             "attention_mask=mb.attn_bias_B1LL.clamp(min=torch.finfo(dtype).min).to(dtype),",
             "attention_mask=None,")),
        f"{LC}::test_train_lm_loss_is_per_document_nll_over_loss_tokens"),
    Listed("learner RNG not restored on resume", (Edit(
        "rlvr/learner/learner.py", 'load_rng(Path(directory) / f"rng_rank{self.rank}.pt")', "pass"),),
        f"{LC}::test_train_lm_loss_is_per_document_nll_over_loss_tokens"),
    Listed("driver RNG not restored on resume", (Edit(
        "rlvr/trainer/grpo_loop.py", 'load_rng(path / "driver_rng.pt")', "pass"),),
        f"{BK}::test_resume_restores_the_driver_rng"),
    Listed("TensorBoard not purged on resume", (Edit(
        "rlvr/trainer/metrics.py", "purge_step=start_step or None)", "purge_step=None)"),),
        f"{BK}::test_tensorboard_resume_hides_what_the_interrupted_run_wrote_after_the_checkpoint"),
    Listed("reward soft deadline removed", (Edit(
        "rlvr/rewards/worker.py", "with deadline(limits.soft_timeout_s):", "with deadline(1e6):"),),
        f"{BK}::test_soft_deadline_ends_a_slow_check_inside_the_worker"),
    Listed("LR warm-up off by one", (Edit(
        "rlvr/learner/deepspeed_setup.py", "return (step + 1) / warmup", "return step / warmup"),),
        f"{BK}::test_lr_schedule_values"),
    Listed("cosine schedule decays linearly", (Edit(
        "rlvr/learner/deepspeed_setup.py", 'return 1.0 - progress if schedule == "linear" else', 'return 1.0 - progress if True else'),),
        f"{BK}::test_lr_schedule_values"),
    Listed("drop_zero_variance_groups ignored", (Edit(
        "rlvr/trainer/grpo_loop.py", "if cfg.algorithm.drop_zero_variance_groups:", "if False:"),),
        f"{BK}::test_drop_zero_variance_groups_refills_the_batch_in_collect_batch"),
    Listed("preflight ignores preflight_prompts", (Edit(
        "rlvr/launch/train_cli.py", "chosen = examples[: cfg.algorithm.preflight_prompts]", "chosen = examples[:1]"),),
        f"{BK}::test_preflight_reports_pass_rate_and_mixed_groups"),
    Listed("top_p ignored by the transformers engine", (Edit(
        "rlvr/rollout/hf_engine.py", "if params.top_p < 1.0:", "if False:"),),
        f"{BK}::test_top_p_samples_only_inside_the_nucleus"),
    Listed("tokens after EOS not trimmed", (Edit(
        "rlvr/rollout/hf_engine.py", "toks = toks[: toks.index(eos) + 1]", "toks = toks"),),
        f"{BK}::test_eos_ends_a_completion_and_is_kept_rows_after_it_trimmed"),
    Listed("stop strings not cut", (Edit(
        "rlvr/rollout/hf_engine.py", "toks, text, stopped = cut_at_stop(self.tokenizer, toks, params.stop)",
        "text, stopped = self.tokenizer.decode(toks, skip_special_tokens=True), False"),),
        f"{BK}::test_stop_string_cuts_tokens_and_text"),
    Listed("sampling seeds overlap (the old sums)", (
        Edit("rlvr/actors/rollout_group.py", "derive_seed(seed, i) for i", "seed + i for i"),
        Edit("rlvr/trainer/grpo_loop.py", "seed=derive_seed(cfg.run.seed, step, draw),",
             "seed=cfg.run.seed * 1_000_003 + step * 1_000 + draw,")),
        "tests/test_grpo_loop_pure.py::test_worker_seeds_never_overlap_across_steps_draws_workers_and_run_seeds"),
]

# Survivors of `core` that cannot change behaviour: (module.function, original line, mutated line, why). Lines
# are compared with surrounding whitespace stripped. See docs/testing.md for the reasoning behind each.
EQUIVALENT: list[tuple[str, str, str, str]] = [
    (f"rlvr.algo.grpo.{f}", o, o.replace(a, b, 1), why)
    for f, o, a, b, why in [
        ("group_advantages", "centred_BG = rewards_BG - rewards_BG.mean(dim=-1, keepdim=True)", "dim=-1", "dim=+1",
         "rewards_BG is 2-D (groups x samples): axis +1 is axis -1"),
        ("group_advantages", "std_B1 = rewards_BG.std(dim=-1, keepdim=True) if rewards_BG.shape[-1] > 1 else "
         "torch.zeros_like(centred_BG)", "dim=-1", "dim=+1", "rewards_BG is 2-D: axis +1 is axis -1"),
        ("group_advantages", "std_B1 = rewards_BG.std(dim=-1, keepdim=True) if rewards_BG.shape[-1] > 1 else "
         "torch.zeros_like(centred_BG)", "shape[-1]", "shape[+1]", "rewards_BG is 2-D: shape[1] is shape[-1]"),
        ("clipped_policy_loss", "adv_B1 = adv_B.unsqueeze(-1)", "(-1)", "(+1)",
         "adv_B is 1-D: unsqueeze(1) is unsqueeze(-1)"),
        ("_seq_mean", "per_seq_B = (loss_BT * mask_BT).sum(-1) / mask_BT.sum(-1).clamp(min=1)", ".sum(-1) /",
         ".sum(+1) /", "loss_BT and mask_BT are 2-D: sum(1) is sum(-1)"),
        ("_seq_mean", "per_seq_B = (loss_BT * mask_BT).sum(-1) / mask_BT.sum(-1).clamp(min=1)", "mask_BT.sum(-1)",
         "mask_BT.sum(+1)", "mask_BT is 2-D: sum(1) is sum(-1)"),
        ("aggregate", "return AGGREGATIONS[mode].reduce(loss_BT, mask_BT.to(loss_BT.dtype), normalizer)",
         "mask_BT.to(loss_BT.dtype)", "mask_BT.to(None)",
         "Tensor.to(None) returns the mask as is; mask x float loss promotes to float and a bool/int mask's row "
         "sums are the same counts"),
    ]
] + [
    (f"rlvr.{f}", o, m, why) for f, o, m, why in [
        ("learner.batch.collate", "ids_BL = torch.full((B, L), pad_id, dtype=torch.long)",
         "ids_BL = torch.full((B, L), pad_id, dtype=None)", "torch.full infers int64 from the int fill value"),
        ("learner.batch.collate", "ids_BL = torch.full((B, L), pad_id, dtype=torch.long)", "ids_BL = torch.full((B, L), pad_id, )",
         "torch.full infers int64 from the int fill value"),
        ("learner.batch.collate", "adv_B = torch.tensor([r.advantage for r in rollouts], dtype=torch.float32)",
         "adv_B = torch.tensor([r.advantage for r in rollouts], dtype=None)",
         "Python floats become float32, torch's default dtype (never changed in rlvr)"),
        ("learner.batch.collate", "adv_B = torch.tensor([r.advantage for r in rollouts], dtype=torch.float32)",
         "adv_B = torch.tensor([r.advantage for r in rollouts], )", "float32 is torch's default dtype"),
        ("learner.batch._rollout_logprobs", "lp_BT = torch.zeros((len(rollouts), T), dtype=torch.float32)",
         "lp_BT = torch.zeros((len(rollouts), T), dtype=None)", "float32 is torch's default dtype"),
        ("learner.batch._rollout_logprobs", "lp_BT = torch.zeros((len(rollouts), T), dtype=torch.float32)",
         "lp_BT = torch.zeros((len(rollouts), T), )", "float32 is torch's default dtype"),
        ("utils.batching.shard_minibatches", "for mini in chunks(items, max(1, len(items) // mini_batches)):",
         "for mini in chunks(items, max(2, len(items) // mini_batches)):",
         "a valid config (samples divisible by ranks x micro-batch x mini-batches) has len // mini_batches >= "
         "ranks: with 2+ ranks max(1, x) == max(2, x); with one rank every split gives the same single shard"),
    ]
] + [
    (f"rlvr.rewards.extract.{f}", o, m, why) for f, o, m, why in [
        ("format_number", "den //= 2", "den /= 2",
         "den holds only factors 2 and 5 here: float division stays exact below 2**53, and above it the original "
         "also ends in num/den (a decimal exact to 15 places needs den | 10**15)"),
        ("format_number", "den //= 5", "den /= 5", "as for den //= 2"),
        ("format_number", 'text = f"{float(value):.15f}".rstrip("0")  # terminating decimal: exact within 15 places '
         'for GSM8K magnitudes', 'text = f"{float(value):.15f}".rstrip("XX0XX")  # terminating decimal: exact within '
         '15 places for GSM8K magnitudes', "a formatted float has no 'X' to strip"),
        ("extract_gsm8k_gold", 'return _normalized(tail.strip().split("\\n", 1)[0])',
         'return _normalized(tail.strip().split("\\n", )[0])', "only the first piece is used: maxsplit does not change it"),
        ("extract_gsm8k_gold", 'return _normalized(tail.strip().split("\\n", 1)[0])',
         'return _normalized(tail.strip().split("\\n", 2)[0])', "only the first piece is used: maxsplit does not change it"),
        ("number_from_latex", "return format_number(Fraction(int(num), int(den)) * (-1 if sign else 1))",
         "return format_number(Fraction(int(num), int(den)) / (-1 if sign else 1))",
         "dividing by -1 or 1 is multiplying by it"),
    ]
] + [
    ("rlvr.rewards.math._verify",
     'def _verify(gold_latex: str, boxed: str | None, shown: str | None, full_text: str = "") -> RewardResult:',
     'def _verify(gold_latex: str, boxed: str | None, shown: str | None, full_text: str = "XXXX") -> RewardResult:',
     "the default is never used: the one caller without full_text passes a box, and then full_text is not read"),
]


# -- shared ------------------------------------------------------------------------------------------------------

def copy_tree() -> Path:
    """Tracked and untracked (not ignored) files of the worktree, in a fresh temporary directory."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, check=True,
                           capture_output=True, text=True).stdout.split("\0")
    dest = Path(tempfile.mkdtemp(prefix="rlvr-mutation-"))
    for name in filter(None, files):
        src = REPO / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


def env_for(tree: Path) -> dict[str, str]:
    # the copy's rlvr, also in Ray workers (they inherit PYTHONPATH), not the editable install's
    return {**os.environ, "PYTHONPATH": str(tree), "RAY_ADDRESS": "", "TOKENIZERS_PARALLELISM": "false"}


# -- listed ------------------------------------------------------------------------------------------------------

def locate(tree: Path, edit: Edit) -> Path:
    """The file holding edit.original exactly once: the named one, or (after a move) the only one in rlvr/."""
    named = tree / edit.file
    if named.is_file() and named.read_text().count(edit.original) == 1:
        return named
    hits = [p for p in (tree / "rlvr").rglob("*.py") if edit.original in p.read_text()]
    if len(hits) != 1 or hits[0].read_text().count(edit.original) != 1:
        raise SystemExit(f"mutation: error: {edit.original!r} is in {len(hits)} files under rlvr/ (expected once); "
                         f"update LISTED in {Path(__file__).name}")
    print(f"  (moved: {edit.file} -> {hits[0].relative_to(tree)})")
    return hits[0]


def pytest(tree: Path, tests: list[str], timeout: float) -> tuple[int, str]:
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests]
    try:
        proc = subprocess.run(cmd, cwd=tree, env=env_for(tree), capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return -1, "timed out"
    tail = [line for line in proc.stdout.splitlines() if line.startswith("E ") or " passed" in line
            or " failed" in line or "error" in line.lower()]
    return proc.returncode, " | ".join(tail[:2] + tail[-1:])[:300]


def run_listed(only: list[str], timeout: float, baseline: bool) -> int:
    chosen = [m for m in LISTED if not only or any(o.lower() in m.name.lower() for o in only)]
    tree = copy_tree()
    try:
        if baseline:
            tests = sorted({m.test for m in chosen})
            rc, tail = pytest(tree, tests, timeout * 3)
            print(f"baseline (unmutated, {len(tests)} tests): {'passed' if rc == 0 else 'FAILED'}  {tail}")
            if rc != 0:
                return 1
        survived = 0
        for m in chosen:
            saved = {}
            try:
                for e in m.edits:
                    path = locate(tree, e)
                    saved.setdefault(path, path.read_text())
                    path.write_text(path.read_text().replace(e.original, e.replacement))
                rc, tail = pytest(tree, [m.test], timeout)
            finally:
                for path, text in saved.items():
                    path.write_text(text)
            verdict = "killed" if rc == 1 else "SURVIVED" if rc == 0 else f"error (pytest exit {rc})"
            if m.equivalent and rc == 0:
                verdict, tail = "equivalent", f"survived as expected: {m.equivalent}"
            survived += rc != 1 and verdict != "equivalent"
            print(f"{verdict:9s} {m.name}  <- {m.test}\n          {tail}", flush=True)
        expected = sum(bool(m.equivalent) for m in chosen)
        print(f"\n{len(chosen) - survived - expected}/{len(chosen) - expected} listed breakages killed "
              f"({expected} equivalent)")
        return int(survived > 0)
    finally:
        shutil.rmtree(tree, ignore_errors=True)


# -- core (mutmut) -------------------------------------------------------------------------------------------------

def split_key(key: str) -> tuple[str, str]:
    """mutmut's 'pkg.mod.x_func__mutmut_3' or 'pkg.mod.xǁClassǁmethod__mutmut_3' -> (module, function)."""
    head = key.rsplit("__mutmut_", 1)[0]
    module, _, mangled = head.rpartition(".")
    if mangled.startswith("xǁ"):
        return module, ".".join(part for part in mangled[2:].split("ǁ") if part)
    return module, mangled[2:]


def mutant_diff(tree: Path, mutmut: str, key: str) -> tuple[str, str]:
    out = subprocess.run([mutmut, "show", key], cwd=tree, env=env_for(tree), capture_output=True, text=True).stdout
    minus = [line[1:].strip() for line in out.splitlines() if line.startswith("-") and not line.startswith("---")]
    plus = [line[1:].strip() for line in out.splitlines() if line.startswith("+") and not line.startswith("+++")]
    return " / ".join(minus), " / ".join(plus)


def run_core(jobs: int, out: Path | None, patterns: list[str]) -> int:
    from mutmut.stats import status_by_exit_code

    mutmut = str(Path(sys.executable).with_name("mutmut"))
    tree = copy_tree()
    try:
        proc = subprocess.run([mutmut, "run", "--max-children", str(jobs), *patterns], cwd=tree, env=env_for(tree),
                              capture_output=True, text=True)
        if proc.returncode != 0:
            print(proc.stdout[-3000:], proc.stderr[-3000:])
            return proc.returncode
        statuses: dict[str, str] = {}
        for meta in (tree / "mutants").rglob("*.py.meta"):
            for key, code in json.loads(meta.read_text())["exit_code_by_key"].items():
                statuses[key] = status_by_exit_code[code]
        counts: dict[str, dict[str, int]] = {}
        survivors = []
        for key, status in sorted(statuses.items()):
            module, function = split_key(key)
            if status == "not checked" or (module in FOCUS and function not in FOCUS[module]):
                continue  # not run (a pattern left it out), or not part of the pure core
            row = counts.setdefault(module, {"mutants": 0, "killed": 0})
            row["mutants"] += 1
            if status in ("killed", "timeout", "segfault", "caught by type check"):
                row["killed"] += 1
                continue
            original, mutated = mutant_diff(tree, mutmut, key)
            survivors.append({"key": key, "status": status, "function": f"{module}.{function}",
                              "original": original, "mutated": mutated})
        data = {"counts": counts, "survivors": survivors}
        if out is not None:
            out.write_text(json.dumps(data, indent=1))
        report(data)
        return 0
    finally:
        shutil.rmtree(tree, ignore_errors=True)


def report(data: dict) -> None:
    """Kill rate per module, leaving out the survivors listed in EQUIVALENT; then the other survivors."""
    equivalent = {(f, o, m) for f, o, m, _ in EQUIVALENT}
    print("| module | mutants | killed | equivalent | survived | kill rate (non-equivalent) |")
    print("|---|---:|---:|---:|---:|---:|")
    total = {"mutants": 0, "killed": 0, "equivalent": 0, "survived": 0}
    left = []
    for module, row in sorted(data["counts"].items()):
        mine = [s for s in data["survivors"] if s["function"].startswith(module + ".")]
        eq = sum((s["function"], s["original"], s["mutated"]) in equivalent for s in mine)
        left += [s for s in mine if (s["function"], s["original"], s["mutated"]) not in equivalent]
        live = row["mutants"] - eq
        print(f"| {module} | {row['mutants']} | {row['killed']} | {eq} | {len(mine) - eq} | "
              f"{row['killed'] / max(live, 1):.1%} |")
        for k, v in (("mutants", row["mutants"]), ("killed", row["killed"]), ("equivalent", eq),
                     ("survived", len(mine) - eq)):
            total[k] += v
    live = total["mutants"] - total["equivalent"]
    print(f"| **all** | {total['mutants']} | {total['killed']} | {total['equivalent']} | {total['survived']} | "
          f"{total['killed'] / max(live, 1):.1%} |")
    print("\nsurvivors (not listed as equivalent):")
    for s in left:
        print(f"  {s['function']} [{s['status']}]\n    - {s['original']}\n    + {s['mutated']}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    core = sub.add_parser("core", help="mutmut over the pure core ([tool.mutmut] in pyproject.toml)")
    core.add_argument("--jobs", type=int, default=2)
    core.add_argument("--out", type=Path, help="also write the table and survivors as JSON here")
    core.add_argument("patterns", nargs="*", help="mutmut mutant name globs, e.g. 'rlvr.algo.grpo*'")
    rep = sub.add_parser("report", help="the table again from a saved `core --out` file (after editing EQUIVALENT)")
    rep.add_argument("file", type=Path)
    listed = sub.add_parser("listed", help="the scripted learner-level breakages (LISTED)")
    listed.add_argument("--only", nargs="*", default=[], help="substrings of breakage names")
    listed.add_argument("--timeout", type=float, default=600, help="seconds per test run")
    listed.add_argument("--no-baseline", action="store_true", help="skip the unmutated run of the tests")
    args = parser.parse_args()
    if args.command == "core":
        return run_core(args.jobs, args.out, args.patterns)
    if args.command == "report":
        report(json.loads(args.file.read_text()))
        return 0
    return run_listed(args.only, args.timeout, not args.no_baseline)


if __name__ == "__main__":
    sys.exit(main())
