"""Screenshots of a live rlvr run for docs/: the Ray dashboard's jobs and actors views, rlvr's metrics graphed by
Prometheus (scraping Ray's metrics export) and by TensorBoard. Everything listens on 127.0.0.1 only.

    apt-get install -y chromium prometheus
    .venv/bin/python scripts/screenshots.py [--out docs] [--steps 150]

The head is started with RAY_AUTH_MODE=disabled: headless Chromium cannot send Ray's auth token (a header or the
`ray-authentication-token` cookie) from the command line, and the head is reachable from loopback only.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from rlvr.learner.deepspeed_setup import free_port  # noqa: E402
from tests.ray_head import VENV_BIN, ray_head, wait_for_http  # noqa: E402

PANELS = ("ray_rlvr_reward_mean", "ray_rlvr_learner_entropy", "ray_rlvr_throughput_tokens_per_s",
          "ray_rlvr_time_rollout_s")


def chromium_shot(url: str, png: Path, profile: Path, size: str = "1400,900", settle_ms: int = 15000) -> None:
    """One headless page load; the virtual time budget lets the page's scripts fetch and draw before the shot."""
    subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--hide-scrollbars", f"--user-data-dir={profile}", f"--window-size={size}",
                    f"--virtual-time-budget={settle_ms}", f"--screenshot={png}", url],
                   check=True, timeout=180, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    print(f"saved {png} ({png.stat().st_size // 1024} KiB)", flush=True)


def wait_for_steps(metrics: Path, steps: int, deadline_s: float) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if metrics.is_file() and len(metrics.read_text().splitlines()) >= steps:
            return
        time.sleep(1.0)
    raise TimeoutError(f"{metrics} did not reach {steps} steps in {deadline_s:.0f} s")


def start_prometheus(tmp: Path, metrics_url: str) -> tuple[subprocess.Popen, str]:
    target = urllib.parse.urlparse(metrics_url).netloc
    config = tmp / "prometheus.yml"
    config.write_text(f"global: {{scrape_interval: 2s}}\nscrape_configs:\n"
                      f"  - job_name: ray\n    static_configs: [{{targets: ['{target}']}}]\n")
    port = free_port()
    proc = subprocess.Popen(["prometheus", f"--config.file={config}", f"--storage.tsdb.path={tmp / 'tsdb'}",
                             f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return proc, f"http://127.0.0.1:{port}"


def prometheus_graph_url(base: str) -> str:
    query = {}
    for i, expr in enumerate(PANELS):
        query.update({f"g{i}.expr": expr, f"g{i}.tab": "0", f"g{i}.range_input": "2m"})
    return f"{base}/graph?{urllib.parse.urlencode(query)}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", default=str(REPO / "docs"))
    p.add_argument("--steps", type=int, default=150)
    args = p.parse_args()
    out, tmp = Path(args.out), Path(tempfile.mkdtemp(prefix="rlvr-shots-"))
    out.mkdir(parents=True, exist_ok=True)
    run_dir = tmp / "run"
    env = {"RAY_AUTH_MODE": "disabled", "RAY_metrics_report_interval_ms": "2000"}
    procs: list[subprocess.Popen] = []
    with ray_head(tmp / "ray", env=env) as head:
        try:
            subprocess.run([sys.executable, "-m", "rlvr", "submit", "configs/tiny.yaml", "--no-wait",
                            "--address", head.dashboard, "--python", sys.executable,
                            "--set", f"run.steps={args.steps}", "--set", f"run.output_dir={run_dir}",
                            "--set", "logging.tensorboard=true"],
                           check=True, cwd=REPO, env={**os.environ, **env})
            prom, prom_url = start_prometheus(tmp, head.metrics_url)
            procs.append(prom)
            tb_port = free_port()
            procs.append(subprocess.Popen([str(VENV_BIN / "tensorboard"), f"--logdir={run_dir / 'tensorboard'}",
                                           "--host=127.0.0.1", f"--port={tb_port}"],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            wait_for_http(f"{prom_url}/-/ready", 60)
            wait_for_steps(run_dir / "metrics.jsonl", args.steps // 2, 600)
            profile = tmp / "chromium"
            chromium_shot(f"{head.dashboard}/#/jobs", out / "ray_dashboard_jobs.png", profile)
            chromium_shot(f"{head.dashboard}/#/actors", out / "ray_dashboard_actors.png", profile)
            # tall enough for every panel: a shorter window scrolls to the last one and leaves the top blank
            chromium_shot(prometheus_graph_url(prom_url), out / "prometheus_rlvr_metrics.png", profile,
                          size="1400,2800")
            wait_for_http(f"http://127.0.0.1:{tb_port}", 60)
            # forceSVG: headless Chromium has no WebGL, TensorBoard's default renderer, and would draw empty charts
            tags = urllib.parse.quote("reward/mean|learner/(entropy|pg_loss)|throughput|time/(rollout|learn)")
            chromium_shot(f"http://127.0.0.1:{tb_port}/?forceSVG=true&tagFilter={tags}#timeseries",
                          out / "tensorboard_rlvr_metrics.png", profile, size="1600,1450")
            print(json.dumps({"run_dir": str(run_dir)}))
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait(timeout=30)


if __name__ == "__main__":
    main()
