"""The `rlvr` console script as a new user meets it: plain `rlvr` prints usage (the 4-minute default pipeline is
`rlvr train`), a reward module in the current directory imports as it does with `python -m rlvr`, and
`rlvr eval --help` says what `--task` and `--engine` choose."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from rlvr.cli import main as rlvr_main
from rlvr.eval.cli import build_parser
from tests.test_input_checks import no_cluster  # noqa: F401 - the fixture: Ray's connect made a tripwire

REPO = Path(__file__).resolve().parent.parent


def test_plain_rlvr_prints_usage_and_starts_nothing(capsys, no_cluster):  # noqa: F811
    assert rlvr_main([]) == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: rlvr {train,eval,submit,passrate,data}") and "rlvr train [CONFIG]" in err
    assert rlvr_main(["--help"]) == 0
    assert capsys.readouterr().out.startswith("usage: rlvr")


def test_console_script_imports_a_reward_module_from_the_working_dir(tmp_path):
    script = Path(sys.executable).with_name("rlvr")  # sys.path[0] is its bin/, not the working directory
    assert script.is_file(), f"no console script at {script}: install with pip install -e '.[dev]'"
    (tmp_path / "my_rewards.py").write_text("def brevity(prompt, completion, reference):\n    return 1.0\n")
    # the reward check comes first; the data check after it stops the run before anything starts
    proc = subprocess.run(
        [str(script), "train", str(REPO / "configs" / "tiny.yaml"), "--set", f"run.output_dir={tmp_path / 'run'}",
         "--set", "rewards.functions=[{path: 'my_rewards:brevity'}]",
         "--set", "data.source=jsonl", "--set", f"data.path={tmp_path / 'missing.jsonl'}"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO), "RAY_ADDRESS": ""},
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines()[-1] == f"rlvr: error: data.path '{tmp_path / 'missing.jsonl'}' does not exist"


def test_eval_help_describes_task_and_engine():
    actions = {a.dest: a for a in build_parser()._actions}
    assert "gsm8k:" in actions["task"].help and "math500:" in actions["task"].help
    assert "hf:" in actions["engine"].help and "vllm:" in actions["engine"].help
