#!/usr/bin/env bash
# The one script a device call runs, from the repo root on the GPU machine:
#   bash benchmarks/gpu/run_on_device.sh STAGE...     stages: install prepare sync rollout logprobs nccl
# install: the wheelhouse parts already moved to /root/wh (../shared/gpu/README.md); prepare: both models into
# /root/models (once per machine). Results and logs go to $OUT (what comes back) as <stage>.json / <stage>.log.
# Every stage has its own deadline; the benches also kill their own phases (benchmarks/gpu/phase.py).
set -uo pipefail
export PYTHONPATH=/root/site:$PWD PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1  # the machines' rule: keep off
export HF_HUB_OFFLINE=1 VLLM_NO_USAGE_STATS=1 RLVR_CACHE=/root/models/cache
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
M=/root/models
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

for s in "$@"; do
  case $s in
    install)
      nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
      stage install 300 bash .wheelhouse/install.sh ;;
    prepare)
      stage prepare 240 python3 benchmarks/gpu/prepare_models.py --out $M ;;
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
      stage rollout 560 python3 benchmarks/gpu/bench_rollout.py --model $M/qwen05b --phase-timeout 270 \
        --out "$OUT/rollout.json" ;;
    *) echo "unknown stage $s"; status=1 ;;
  esac
done
exit $status
