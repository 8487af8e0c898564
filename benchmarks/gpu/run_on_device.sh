#!/usr/bin/env bash
# The one script a device call runs, from the repo root on the GPU machine:
#   bash benchmarks/gpu/run_on_device.sh STAGE...
# Phase 1 (benchmarks of pieces):  install prepare sync rollout logprobs nccl
# Phase 2 (whole runs):            install prepare_smollm2 pytest eval_base grpo_bench sft eval_sft grpo eval_grpo
# Phase 3 (overlap, learner):      learner grpo_sides format_grpo   (SIDES=... picks grpo_sides' runs)
# Issue 20 (one H100):             install prepare matrix   (WORKLOADS=W2, then W3, then W1: one call each)
#                                   learner_compile (learner.compile on and off, the learner alone)
# Issues 15, 17:                    install prepare_smollm2 tis_grpo | cggr (= cggr_sft cggr_eval)
# Issue 16 (one H100):              install prepare lora (LORA_MODEL=qwen05b) lora_grpo (LORA_SYNC=adapter, merged)
#                                   largest (LARGEST_VARIANT=full, qlora; LARGEST_SIZES=qwen1_5b,qwen3b,...)
# Learner alone, bare image:        learner_packed   (no install stage needed: plain torch + transformers)
# Rollout time of a GRPO step:     probe  (PROBE_ARGS=... passes options); log ratio at equal weights: probe_ratio
# Two GPUs (nvidia-h200-x2):        install prepare_smollm2 pytest_nccl grpo_nccl (and the nccl bench above)
# Issue 14 (one H100, resumable):   prepare_smollm2 learn_sft learn_passrate [learn_rft] learn_arms learn_eval
#   learn_start = the base model's test beside learn_sft
# A whole lease as one run:          detach STAGES... (in the first call; it follows them), then follow (each call
#   after): the stages go on between calls, with no restart per call (FOLLOW_S: how long a call waits, 540 s)
#   with issue 17's GRPO arms beside: LEARN_CGGR=1 learn_arms, LEARN_EVAL="base sft rl control entropy random"
# install: the wheelhouse parts already moved to /root/wh (../shared/gpu/README.md); prepare: both models into
# /root/models (once per machine); the GSM8K files come carried in .gpudata/ (benchmarks/gpu/prepare_gsm8k.py).
# Results go to $OUT (what comes back; at most 8 files a call), runs and eval files to /root/runs (kept while the
# machine is). Every stage has its own deadline; the benches also kill their own phases (benchmarks/gpu/phase.py).
set -uo pipefail
export PYTHONPATH=/root/site:$PWD PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1  # the machines' rule: keep off
export HF_HUB_OFFLINE=1 VLLM_NO_USAGE_STATS=1 RLVR_CACHE=/root/models/cache RAY_DISABLE_USAGE_STATS=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
M=${M:-/root/models}
R=${R:-/root/runs}; mkdir -p $R/eval
EVAL=${EVAL:-"python3 -m rlvr eval --task gsm8k --engine vllm --data .gpudata/gsm8k/test_instr.jsonl --num-fewshot 0 \
  --chat-template --max-new-tokens 512"}
status=0

stage() {  # stage NAME SECONDS CMD...: run with a deadline, log to $OUT/NAME.log, remember failures
  local name=$1 secs=$2; shift 2
  echo "=== $name ($(date -u +%FT%TZ), limit ${secs}s) ==="
  local t0=$SECONDS
  timeout -k 10 "$secs" "$@" 2>&1 | tee "$OUT/$name.log"
  local rc=${PIPESTATUS[0]}
  echo "=== $name rc=$rc in $((SECONDS - t0))s ==="
  [ "$rc" = 0 ] || status=1
}

quiet() {  # quiet NAME SECONDS CMD...: like stage, but the log only goes to stdout (a call may return 8 files)
  local name=$1 secs=$2; shift 2
  echo "=== $name ($(date -u +%FT%TZ), limit ${secs}s) ==="
  local t0=$SECONDS
  timeout -k 20 $secs "$@"  # unquoted: SECS may carry options ("-s INT 400")
  local rc=$?
  echo "=== $name rc=$rc in $((SECONDS - t0))s; GPU memory used: $(nvidia-smi --query-gpu=memory.used \
    --format=csv,noheader 2>/dev/null) ==="
  [ "$rc" = 0 ] || status=1
  return $rc
}

need_pytest() {  # the image has no pytest: it travels as a wheel in .gpudata/whl
  python3 -c "import pytest" 2>/dev/null || { python3 -m pip install -q --no-index --no-deps --target /root/pyt \
    .gpudata/whl/*.whl && export PYTHONPATH=$PYTHONPATH:/root/pyt; }
}

need_bnb() {  # QLoRA needs bitsandbytes, which the image lacks: its wheel travels in .whl/ (or was moved to
  # /root/whl by an earlier call: at 41 MB it does not fit one call beside the last wheelhouse part). pip download
  # --no-deps --only-binary=:all: --python-version 3.12 --platform manylinux_2_24_x86_64 bitsandbytes
  local whl; whl=$(ls .whl/bitsandbytes-*.whl /root/whl/bitsandbytes-*.whl 2>/dev/null | head -1)
  [ -n "$whl" ] || return 0
  export PYTHONPATH=$PYTHONPATH:/root/bnb
  python3 -c "import bitsandbytes" 2>/dev/null \
    || python3 -m pip install -q --no-index --no-deps --target /root/bnb "$whl"
}

latest_export() {  # latest_export RUN_DIR: the hf/ export of the newest complete checkpoint
  python3 -c "import sys; from pathlib import Path; from rlvr.utils.checkpoint import CheckpointDir
found = CheckpointDir(Path(sys.argv[1]), 1).latest(); print(found[0] / 'hf' if found else 'none')" "$1"
}

evaluate() {  # evaluate NAME MODEL: greedy GSM8K test -> $R/eval/NAME.jsonl, copied to $OUT
  quiet "eval_$1" ${EVAL_S:-240} $EVAL --model "$2" --out $R/eval/$1.jsonl \
    && cp $R/eval/$1.jsonl $R/eval/$1.summary.json "$OUT/"
}

evaluate_together() {  # evaluate_together NAME=MODEL...: greedy GSM8K test of several models at once (small engines
  # side by side on the one GPU) -> $R/eval/NAME.jsonl, summaries copied to $OUT; a NAME already scored is skipped
  local spec name model pids=""
  for spec in "$@"; do
    name=${spec%%=*}; model=${spec#*=}
    [ -f $R/eval/$name.summary.json ] && continue
    [ "$model" = none ] && { echo "evaluate_together: no model for $name"; continue; }
    echo "=== eval $name: $model ($(date -u +%T)) ==="
    timeout -k 20 ${EVAL_S:-420} $EVAL --model "$model" --out $R/eval/$name.jsonl \
      --gpu-memory-utilization 0.15 --kv-cache-gb 6 > $R/eval/$name.log 2>&1 &
    pids="$pids $!"; sleep 10
  done
  for pid in $pids; do wait $pid || status=1; done
  for spec in "$@"; do
    name=${spec%%=*}
    tail -n 3 $R/eval/$name.log 2>/dev/null
    [ -f $R/eval/$name.summary.json ] && cp $R/eval/$name.summary.json "$OUT/"
  done
}

compare() {  # compare A B: paired test of B against A
  [ -f $R/eval/$1.jsonl ] && [ -f $R/eval/$2.jsonl ] || { echo "compare $1 $2: missing results"; return; }
  python3 -m rlvr eval --compare $R/eval/$1.jsonl $R/eval/$2.jsonl --out "$OUT/cmp_$2_vs_$1.json"
}

D=$R/detached  # a run that outlives its call: `detach STAGES...` starts it, `follow` (in later calls) watches it
if [ "${1:-}" = detach ]; then
  # The device tool ends a call's processes when it returns, except those in a process session of their own. So
  # STAGES run here under setsid and go on through the next calls (each a `follow`) until the machine goes back:
  # one GRPO run for a whole lease, with no restart (vLLM's start, a checkpoint, the curve's first point) per call.
  # Their results go to $D/out; their output to $D/log; their exit status to $D/rc once they end.
  shift
  if [ -f $D/pid ] && [ ! -f $D/rc ] && kill -0 "$(cat $D/pid)" 2>/dev/null; then
    echo "detach: the run detached before (pid $(cat $D/pid)) is still going: follow it"; exit 1
  fi
  rm -rf $D; mkdir -p $D/out
  setsid bash -c 'OUT=$1/out bash "$2" "${@:3}" > "$1/log" 2>&1 < /dev/null; echo $? > "$1/rc"' _ $D "$0" "$@" \
    < /dev/null > /dev/null 2>&1 &
  echo $! > $D/pid
  echo "=== detached ($(date -u +%FT%TZ), pid $!): $* ==="
  set -- follow
fi
[ -f /root/site/.installed ] || [ "${1:-}" = install ] || [ "${1:-}" = follow ] || [ "${1:-}" = learner_packed ] || [ -n "${RLVR_NO_SITE:-}" ] || { echo "bare machine: no /root/site/.installed"; exit 3; }
for s in "$@"; do
  case $s in
    install)
      nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
      stage install 300 bash .wheelhouse/install.sh ;;
    prepare)
      stage prepare 240 python3 benchmarks/gpu/prepare_models.py --out $M ;;
    prepare_smollm2)
      quiet prepare_smollm2 240 python3 benchmarks/gpu/prepare_models.py --out $M --only smollm2 ;;
    sync)
      stage sync 400 python3 benchmarks/gpu/bench_weight_sync.py --phases ipc --model $M/qwen05b \
        --phase-timeout 380 --out "$OUT/sync.json" ;;
    logprobs)
      stage logprobs 300 python3 benchmarks/gpu/bench_weight_sync.py --phases logprobs --logprob-model $M/smollm2 \
        --phase-timeout 280 --out "$OUT/logprobs.json" ;;
    nccl)
      stage nccl 420 python3 benchmarks/gpu/bench_weight_sync.py --phases nccl --model $M/qwen05b \
        --phase-timeout 400 --out "$OUT/nccl.json" ;;
    rollout)
      stage rollout 490 python3 benchmarks/gpu/bench_rollout.py --model $M/qwen05b --phase-timeout 470 \
        --out "$OUT/rollout.json" ;;
    probe)
      stage probe ${PROBE_S:-420} python3 benchmarks/gpu/probe_rollout.py --model $M/smollm2 \
        --phase-timeout ${PROBE_PHASE_S:-300} ${PROBE_ARGS:-} --out "$OUT/probe.json" ;;
    probe_ratio)
      # equal weights, equal logprobs? plain transformers, then inside rlvr's Learner (DeepSpeed bf16)
      stage probe_bf16 120 python3 benchmarks/gpu/probe_bf16_ratio.py --out "$OUT/bf16_ratio.json"
      stage probe_learner 200 python3 benchmarks/gpu/probe_learner_ratio.py --out "$OUT/learner_ratio.json" ;;
    learner_packed)
      # the learner's update alone (plain torch, no wheelhouse needed): packed vs padded on a W2-shaped batch
      stage probe_packed 60 python3 benchmarks/gpu/probe_packed.py
      stage learner_packed 240 python3 benchmarks/gpu/bench_packed_learner.py --out "$OUT/learner_packed.json" ;;
    matrix)
      # issue 20: rlvr and TRL side by side on WORKLOADS (W1,W2,W3), rows merged into $R/matrix.json across calls
      W=${WORKLOADS:-W2}
      quiet matrix_${W//,/_} ${MATRIX_S:-570} python3 benchmarks/gpu/bench_grpo_matrix.py --models $M \
        --workloads $W --steps ${MATRIX_STEPS:-5} --drop 1 --side-timeout ${SIDE_S:-270} --metrics-dir "$OUT" \
        --matrix $R/matrix.json --out "$OUT/matrix_${W//,/_}.json" ${MATRIX_ARGS:-}
      cp $R/matrix.json "$OUT/grpo-matrix.json" ;;
    tis_grpo)
      # issue 15 (staged 2026-12-06, not run yet): the format-reward GRPO run with vLLM rollouts, colocated (vLLM
      # asleep while the learner trains), TIS on: the mismatch (mean/max |log ratio|, share over the cap) per step
      quiet tis_grpo "-s INT ${TIS_S:-420}" python3 -m rlvr train configs/gpu_smollm2_gsm8k_format_grpo.yaml \
        --set run.output_dir=$R/tis_grpo --set model.path=$M/smollm2 --set rollout.colocate=true \
        --set rollout.overlap=false --set algorithm.rollout_is=truncate ${TIS_SET:-}
      cp $R/tis_grpo/metrics.jsonl "$OUT/tis_grpo_metrics.jsonl" ;;
    lora)
      # issue 16: the learner update full vs LoRA vs QLoRA (time, peak memory) on LORA_MODEL (smollm2, qwen05b)
      need_bnb
      stage lora_learner_${LORA_MODEL:-smollm2} 330 python3 benchmarks/gpu/bench_learner.py \
        --model $M/${LORA_MODEL:-smollm2} --phase-timeout 100 \
        --variants ${LORA_VARIANTS:-zero2_micro16,lora_r16_micro16,qlora_r16_micro16} \
        --out "$OUT/lora_learner_${LORA_MODEL:-smollm2}.json" ;;
    lora_grpo)
      # issue 16: GRPO with LoRA r=16 on the format-reward preset. LORA_SYNC=adapter (default): only the adapter
      # through the object store, vLLM applies it per request (enable_lora); merged: whole merged weights by CUDA
      # IPC. Not overlapped, so the learner computes its own old logprobs and algorithm.rollout_is=log records the
      # engine/learner mismatch at equal weights (no effect on the loss): an adapter vLLM failed to apply would
      # show as a mismatch growing with the updates.
      sync=${LORA_SYNC:-adapter} transport=cuda_ipc
      [ $sync = adapter ] && transport=object_store
      quiet lora_grpo_$sync "-s INT ${LORA_S:-300}" python3 -m rlvr train configs/gpu_smollm2_gsm8k_format_grpo.yaml \
        --set run.output_dir=$R/lora_grpo_$sync --set model.path=$M/smollm2 --set learner.lora.r=16 \
        --set learner.lora.sync=$sync --set rollout.weight_sync=$transport --set algorithm.rollout_is=log \
        --set rollout.overlap=false \
        --set learner.lr=${LORA_LR:-1e-4} --set run.steps=${LORA_STEPS:-40} ${LORA_SET:-}
      cp $R/lora_grpo_$sync/metrics.jsonl "$OUT/lora_grpo_${sync}_metrics.jsonl" ;;
    largest)
      # issue 16: the largest Qwen2.5-shaped model GRPO trains on this GPU with vLLM colocated, LARGEST_VARIANT
      # (full, qlora) over LARGEST_SIZES, smallest first (LARGEST_ARGS=--descending: largest first); results merged
      # into $R/largest.json across calls
      need_bnb
      quiet largest_${LARGEST_VARIANT:-full} ${LARGEST_S:-570} python3 benchmarks/gpu/bench_largest.py --models $M \
        --variant ${LARGEST_VARIANT:-full} --sizes ${LARGEST_SIZES:-qwen1_5b,qwen3b} \
        --timeout ${LARGEST_ATTEMPT_S:-280} --steps ${LARGEST_STEPS:-3} --out $R/largest.json --workdir $R/largest \
        --drop-models ${LARGEST_ARGS:-}
      cp $R/largest.json "$OUT/largest.json"
      for f in $R/largest/*.log; do tail -c 20000 $f > "$OUT/$(basename $f)"; done ;;
    cggr|cggr_sft|cggr_eval)
      # issue 17: SFT of SmolLM2 on GSM8K train keeping every token, the 20% of highest entropy, or a random 20%
      # (one after another, so their step times are comparable); then the greedy GSM8K test of the three at once
      # (small engines side by side); paired tests against "all" and random. CGGR_FROM_LEARN=1: the arms use
      # learn_sft's data and steps, and learn_sft itself is the "all" arm (trained and scored once, for both issues)
      arms=${CGGR_ARMS:-all entropy random} data=.gpudata/gsm8k/sft_train.jsonl ref=cggr_all
      if [ -n "${CGGR_FROM_LEARN:-}" ]; then arms=${CGGR_ARMS:-entropy random} data=$R/learn/sft_train.jsonl ref=learn_sft; fi
      for sel in $arms; do
        [ $s = cggr_eval ] && break
        keep=0.2; [ "$sel" = all ] && keep=1.0
        [ "$(latest_export $R/cggr_$sel/sft)" = none ] && quiet cggr_sft_$sel 240 python3 -m rlvr train \
          configs/gpu_smollm2_gsm8k_sft.yaml --set run.output_dir=$R/cggr_$sel --set model.path=$M/smollm2 \
          --set learner.token_selection.strategy=$sel --set learner.token_selection.keep_fraction=$keep \
          --set sft.path=$data --set sft.steps=${CGGR_STEPS:-100}
        cp $R/cggr_$sel/sft/metrics.jsonl "$OUT/cggr_${sel}_sft_metrics.jsonl"
      done
      [ $s = cggr_sft ] && continue
      evals=""
      for sel in $arms; do evals="$evals cggr_$sel=$(latest_export $R/cggr_$sel/sft)"; done
      evaluate_together $evals
      compare $ref cggr_entropy; compare $ref cggr_random; compare cggr_random cggr_entropy ;;
    learner)
      stage learner 300 python3 benchmarks/gpu/bench_learner.py --model $M/smollm2 --phase-timeout 140 \
        --out "$OUT/learner.json" ;;
    learner_compile)
      # issue 20: the packed update with and without learner.compile (each decoder layer torch.compiled), W3's
      # shape on the Qwen2.5-0.5B shape (needs prepare); the compiled variant's warm-up updates pay the compilation
      stage learner_compile ${COMPILE_S:-420} python3 benchmarks/gpu/bench_learner.py \
        --model $M/${COMPILE_MODEL:-qwen05b} \
        --shape ${COMPILE_SHAPE:-w3} --variants packed16k,packed16k_compiled --warmup 2 --steps 3 --phase-timeout 200 \
        --out "$OUT/learner_compile.json" ;;
    grpo_sides)
      quiet grpo_sides 590 python3 benchmarks/gpu/bench_grpo_vs_trl.py --model $M/smollm2 --budget-s ${SIDES_S:-570} \
        --sides "${SIDES:-rlvr:overlap,trl:16,rlvr:colocate}" --out "$OUT/grpo_sides.json" \
        --metrics-copy "$OUT/grpo_sides_rlvr.jsonl" ;;
    format_grpo)
      quiet format_grpo "-s INT ${FORMAT_S:-330}" python3 -m rlvr train configs/gpu_smollm2_gsm8k_format_grpo.yaml \
        --set run.output_dir=$R/format_grpo --set model.path=$M/smollm2 ${FORMAT_SET:-}
      cp $R/format_grpo/metrics.jsonl "$OUT/format_grpo_metrics.jsonl" ;;
    pytest)
      need_pytest
      # the vLLM engine's tests, and no host sync in the packed learner's micro-batch loop (issue 20; a process of
      # its own, whose first process group is the test's NCCL one)
      stage pytest_gpu ${PYTEST_S:-240} python3 -m pytest -m gpu tests/test_vllm_engine.py -v -p no:cacheprovider
      stage pytest_host_sync 180 python3 -m pytest -m gpu tests/test_host_sync.py -v -p no:cacheprovider ;;
    pytest_nccl)
      # 2 GPUs: a learner actor broadcasts to a vLLM actor by NCCL, then their logprobs must match
      need_pytest
      stage pytest_nccl ${PYTEST_S:-300} python3 -m pytest -m gpu tests/test_weight_sync_nccl.py -v -s \
        -p no:cacheprovider ;;
    eval_base)
      evaluate base $M/smollm2 ;;
    grpo_bench)
      quiet grpo_bench 580 python3 benchmarks/gpu/bench_grpo_vs_trl.py --model $M/smollm2 --budget-s 550 \
        --out "$OUT/grpo_bench.json" --metrics-copy "$OUT/grpo_bench_rlvr_metrics.jsonl" ;;
    sft)
      quiet sft 330 python3 -m rlvr train configs/gpu_smollm2_gsm8k_sft.yaml --set run.output_dir=$R/gpu_gsm8k \
        --set model.path=$M/smollm2
      cp $R/gpu_gsm8k/sft/metrics.jsonl "$OUT/sft_metrics.jsonl" ;;
    eval_sft)
      evaluate sft "$(latest_export $R/gpu_gsm8k/sft)"
      compare base sft ;;
    grpo)
      # SIGINT at the deadline acts as a first Ctrl-C: the step in flight ends, a checkpoint is saved, the run stops
      quiet grpo "-s INT ${GRPO_S:-400}" python3 -m rlvr train configs/gpu_smollm2_gsm8k_grpo.yaml \
        --set run.output_dir=$R/gpu_gsm8k_grpo --set "model.path=$(latest_export $R/gpu_gsm8k/sft)"
      cp $R/gpu_gsm8k_grpo/metrics.jsonl "$OUT/grpo_metrics.jsonl"
      cp $R/gpu_gsm8k_grpo/preflight.json "$OUT/grpo_preflight.json" ;;
    grpo_nccl)
      # 2 GPUs: learner and vLLM on one each, weights by NCCL broadcast; SIGINT at the deadline as for grpo
      quiet grpo_nccl "-s INT ${GRPO_NCCL_S:-420}" python3 -m rlvr train configs/gpu_smollm2_grpo_nccl.yaml \
        --set run.output_dir=$R/gpu_grpo_nccl --set model.path=$M/smollm2
      cp $R/gpu_grpo_nccl/metrics.jsonl "$OUT/grpo_nccl_metrics.jsonl" ;;
    eval_grpo)
      evaluate grpo "$(latest_export $R/gpu_gsm8k_grpo)"
      compare sft grpo
      compare base grpo ;;
    learn_sft)
      # issue 14: SFT on GSM8K train less its last 500 items (the learning curve's held-out slice); once per machine
      L=$R/learn; mkdir -p $L
      n=$(wc -l < .gpudata/gsm8k/train.jsonl); head -n $((n - 500)) .gpudata/gsm8k/sft_train.jsonl > $L/sft_train.jsonl
      if [ "$(latest_export $L/sft)" = none ]; then
        quiet learn_sft 420 python3 -m rlvr train configs/gpu_smollm2_gsm8k_sft.yaml --set run.output_dir=$L \
          --set model.path=$M/smollm2 --set sft.path=$L/sft_train.jsonl ${SFT_ARGS:-}
        cp $L/sft/metrics.jsonl "$OUT/learn_sft_metrics.jsonl"
      fi
      echo "learn_sft export: $(latest_export $L/sft)" ;;
    learn_start)
      # issue 14's start in one stage: the base model's GSM8K test beside the SFT (the one GPU holds both)
      LEARN_EVAL=base bash "$0" learn_eval > $R/learn_base_eval.log 2>&1 & base=$!
      bash "$0" learn_sft || status=1
      wait $base || status=1
      tail -n 4 $R/learn_base_eval.log ;;
    learn_passrate)
      # K samples for each of the first passrate.prompts train prompts with the SFT model; appends, so resumable
      quiet learn_passrate "-s INT ${PASSRATE_S:-360}" python3 -m rlvr passrate configs/gpu_smollm2_gsm8k_rl.yaml \
        --set "model.path=$(latest_export $R/learn/sft)" --set run.output_dir=$R/learn/passrate_run \
        --out $R/learn/passrate.jsonl --set rollout.gpu_memory_utilization=0.6 --set rollout.kv_cache_gb=24 \
        ${PASSRATE_SET:-}
      cp $R/learn/passrate.summary.json "$OUT/learn_passrate_summary.json" ;;
    learn_rft)
      # optional: one expert-iteration round from the SFT model (configs/gpu_smollm2_gsm8k_rft.yaml)
      quiet learn_rft ${RFT_S:-540} python3 -m rlvr train configs/gpu_smollm2_gsm8k_rft.yaml \
        --set run.output_dir=$R/learn/rft_run --set "model.path=$(latest_export $R/learn/sft)" ${RFT_SET:-}
      cp $R/learn/rft_run/rft/rft_rounds.json "$OUT/learn_rft_rounds.json" ;;
    learn_arms)
      # GRPO on the pass-rate band and its random-reward control, side by side on the GPU; SIGINT at the deadline,
      # checkpoint.resume continues both in the next call. START: the model both start from (default: SFT);
      # ARMS_ARGS: more options ("--set run.steps=20", "--sequential").
      # LEARN_CGGR=1 adds issue 17's arms beside them: the loss on the 20% highest-entropy or a random 20% of the
      # completion tokens (rl is their "all" arm); then ARMS_ARGS must fit four arms on the GPU (kv_cache_gb etc.).
      # LEARN_ONLY=rl (or control): that arm alone, with the whole GPU's share (the other in another lease)
      START=${START:-$(latest_export $R/learn/sft)} arms="rl control" gpus=0.25
      sel="learner.token_selection.keep_fraction=0.2,learner.token_selection.strategy"
      declare -A arm_spec=([rl]="rl:$R/learn/rl" [control]="control:$R/learn/control:algorithm.reward_control=random"
                           [entropy]="entropy:$R/learn/entropy:$sel=entropy" [random]="random:$R/learn/random:$sel=random")
      [ -n "${LEARN_CGGR:-}" ] && arms="rl control entropy random" gpus=0.12
      [ -n "${LEARN_ONLY:-}" ] && arms=$LEARN_ONLY gpus=0.5
      specs=""
      for a in $arms; do specs="$specs --arm ${arm_spec[$a]:?learn_arms: no arm named $a}"; done
      quiet learn_arms "-s INT ${ARMS_S:-540}" python3 benchmarks/gpu/run_arms.py configs/gpu_smollm2_gsm8k_rl.yaml \
        $specs --set "model.path=$START" --set data.passrate_filter.path=$R/learn/passrate.jsonl \
        --set learner.resources.num_gpus=$gpus --set rollout.resources.num_gpus=$gpus ${ARMS_ARGS:-}
      for a in $arms; do
        cp $R/learn/$a/metrics.jsonl "$OUT/learn_${a}_metrics.jsonl"
        [ -f $R/learn/$a/learning_curve.png ] && cp $R/learn/$a/learning_curve.png "$OUT/learn_${a}_curve.png"
        # online_band's measurements: a pass-rate map of the train prompts for a later run (detached: in the archive)
        [ -f $R/learn/$a/passrate_refreshed.jsonl ] && [ "$OUT" = "$D/out" ] \
          && cp $R/learn/$a/passrate_refreshed.jsonl "$OUT/learn_${a}_passrate_refreshed.jsonl"
      done ;;
    learn_eval)
      # greedy GSM8K test for base, start (SFT), GRPO and control (LEARN_EVAL picks), engines at once; paired tests
      evals=""
      for name in ${LEARN_EVAL:-base sft rl control}; do
        case $name in base) model=$M/smollm2 ;; *) model=$(latest_export $R/learn/$name) ;; esac
        evals="$evals learn_$name=$model"
      done
      evaluate_together $evals
      compare learn_sft learn_rl; compare learn_sft learn_control; compare learn_base learn_sft
      compare learn_control learn_rl
      case " ${LEARN_EVAL:-} " in *" entropy "*)  # issue 17's GRPO arms (LEARN_CGGR=1), rl being "all"
        compare learn_rl learn_entropy; compare learn_rl learn_random; compare learn_random learn_entropy ;; esac ;;
    follow)
      # wait up to FOLLOW_S seconds for the detached run to end; print its new output (FOLLOW_GREP: only the lines
      # matching); bring back its new result files, or all of them in one archive once it has ended (FOLLOW_ARCHIVE=1:
      # the archive also while it runs, for the lease's last call: the machine goes back with whatever it holds)
      [ -f $D/pid ] || { echo "follow: no run was detached on this machine"; status=1; continue; }
      end=$((SECONDS + ${FOLLOW_S:-540}))
      while [ ! -f $D/rc ] && [ $SECONDS -lt $end ] && kill -0 "$(cat $D/pid)" 2>/dev/null; do sleep 2; done
      seen=$(cat $D/seen 2>/dev/null || echo 0); total=$(wc -l < $D/log)
      tail -n +$((seen + 1)) $D/log | head -n $((total - seen)) | grep -E "${FOLLOW_GREP:-.}" | tail -n 150
      echo $total > $D/seen
      running=; [ ! -f $D/rc ] && kill -0 "$(cat $D/pid)" 2>/dev/null && running=1
      if [ -z "$running" ] || [ -n "${FOLLOW_ARCHIVE:-}" ]; then
        tar -czf "$OUT/detached_out.tar.gz" -C $D out log
      else
        [ -f $D/stamp ] && new=$(find $D/out -type f -newer $D/stamp) || new=$(find $D/out -type f)
        touch $D/stamp
        [ -n "$new" ] && ls -t $new | head -n 7 | xargs -r cp -t "$OUT"
      fi
      if [ -n "$running" ]; then echo "=== detached run still going ($(date -u +%T)) ==="
      elif [ -f $D/rc ]; then echo "=== detached run ended: rc=$(cat $D/rc) ==="; [ "$(cat $D/rc)" = 0 ] || status=1
      else echo "=== detached run gone without an exit status ==="; status=1
      fi ;;
    *) echo "unknown stage $s"; status=1 ;;
  esac
done
exit $status
