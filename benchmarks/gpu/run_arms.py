"""Issue 14's two GRPO arms side by side on one GPU, from one driver and one Ray cluster: the real arm and its
control (algorithm.reward_control), same config, same prompts, same steps. Each arm is an ordinary `rlvr train`
GRPO job (`run_grpo_job`) in its own thread with its own placement group and output directory; with
checkpoint.resume in the config, a later call continues both where their newest checkpoints are. A first SIGINT
or SIGTERM (the GPU scripts' deadline) stops both arms at their next step boundary after a checkpoint, as it does
for one `rlvr train`: the stop flag is process-wide, and only this main thread can catch the signal.

A 135M model keeps an H100 mostly idle (launch-bound), so two arms at once take about the wall time of one.

    python3 benchmarks/gpu/run_arms.py CONFIG --arm rl:OUT_RL --arm control:OUT_CTRL:algorithm.reward_control=random \
        --set model.path=... [--set ...]
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
import traceback


def main() -> int:
    from rlvr.config import load_config
    from rlvr.launch.cluster import connect
    from rlvr.launch.grpo_job import run_grpo_job
    from rlvr.utils.errors import DataExhausted
    from rlvr.utils.preempt import Preempted, stop_on_signal

    p = argparse.ArgumentParser()
    p.add_argument("config")
    p.add_argument("--arm", action="append", required=True, metavar="NAME:OUTPUT_DIR[:KEY=VALUE,...]")
    p.add_argument("--set", dest="overrides", action="append", default=[])
    p.add_argument("--sequential", action="store_true", help="one arm after the other (a fallback)")
    args = p.parse_args()
    arms = []
    for spec in args.arm:
        name, out, *extra = spec.split(":", 2)
        sets = [f"run.output_dir={out}", f"run.name={name}", *(extra[0].split(",") if extra else [])]
        arms.append((name, load_config(args.config, args.overrides + sets)))  # every arm checked before any starts
    connect(arms[0][1])
    failed: list[str] = []

    def run(name, cfg):
        t0 = time.perf_counter()
        try:
            run_grpo_job(cfg)
            print(f"[arms] {name} finished in {time.perf_counter() - t0:.0f} s", flush=True)
        except (Preempted, DataExhausted) as exc:  # a checkpoint was saved: the next call resumes it, or evaluates
            print(f"[arms] {name}: {exc}", flush=True)  # what the arm trained before its prompts ran out
        except BaseException:  # report and let the other arm go on; the exit code says it failed
            traceback.print_exc()
            failed.append(name)

    if args.sequential:
        for arm in arms:
            run(*arm)
        print(f"[arms] failed: {failed}" if failed else "[arms] all finished", flush=True)
        return 1 if failed else 0
    threads = [threading.Thread(target=run, args=arm, name=arm[0], daemon=True) for arm in arms]
    with stop_on_signal():
        for t in threads:
            t.start()
            time.sleep(20)  # stagger the engines' start-up (vLLM checks free GPU memory when it starts)
        for t in threads:
            while t.is_alive():  # join with a timeout: a bare join would hold off the signal handler
                t.join(timeout=1.0)
    print(f"[arms] failed: {failed}" if failed else "[arms] all finished", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
