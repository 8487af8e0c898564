"""Bad inputs found before any actor starts (rlvr/launch/input_checks.py): one `rlvr: error:` line naming the file
and line or the key, exit code 2. The CLI runs in-process with Ray's `connect` made a tripwire: a check that came
after the cluster start would trip it instead of printing its line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import rlvr.launch.cluster
from rlvr.cli import main as rlvr_main
from rlvr.config import ConfigError, load_config
from rlvr.eval.tasks import shared_data_dir
from rlvr.launch.submit import check_submit_inputs

REPO = Path(__file__).resolve().parent.parent
TINY = str(REPO / "configs" / "tiny.yaml")
PIPELINE = str(REPO / "configs" / "pipeline_tiny.yaml")


class ActorsStarted(AssertionError):
    pass


@pytest.fixture
def no_cluster(monkeypatch):
    def connect(cfg):
        raise ActorsStarted("rlvr.launch.cluster.connect was called: the check did not come before the actors")

    monkeypatch.setattr(rlvr.launch.cluster, "connect", connect)


def one_error_line(capsys, argv: list[str]) -> str:
    rc = rlvr_main(argv)
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert rc == 2, err
    # one error line, the last; before it at most the model's materialisation progress (transformers' shard bar)
    assert lines[-1].startswith("rlvr: error: ") and err.count("rlvr: error: ") == 1, err
    assert "Traceback" not in err
    return lines[-1]


def write_jsonl(path: Path, lines: list[str]) -> str:
    path.write_text("".join(line + "\n" for line in lines))
    return str(path)


GOOD = json.dumps({"question": "copy 3:", "answer": "3"})


def train(tmp_path: Path, *sets: str, config: str = TINY) -> list[str]:
    args = ["train", config, "--set", f"run.output_dir={tmp_path / 'run'}"]
    for s in sets:
        args += ["--set", s]
    return args


def test_malformed_jsonl_line_names_file_and_line(tmp_path, capsys, no_cluster):
    data = write_jsonl(tmp_path / "train.jsonl", [GOOD, "", '{"question": "copy 4:", "answer": 4', GOOD])
    line = one_error_line(capsys, train(tmp_path, "data.source=jsonl", f"data.path={data}"))
    assert f"data.path {data}:3: not valid JSON" in line


def test_jsonl_line_that_is_not_an_object(tmp_path, capsys, no_cluster):
    data = write_jsonl(tmp_path / "train.jsonl", [GOOD, "[1, 2]"])
    line = one_error_line(capsys, train(tmp_path, "data.source=jsonl", f"data.path={data}"))
    assert f"data.path {data}:2: expected a JSON object, got list" in line


def test_empty_dataset(tmp_path, capsys, no_cluster):
    data = write_jsonl(tmp_path / "train.jsonl", ["", "  "])
    line = one_error_line(capsys, train(tmp_path, "data.source=jsonl", f"data.path={data}"))
    assert f"data.path '{data}' has no examples" in line


def test_output_dir_naming_a_file(tmp_path, capsys, no_cluster):
    (tmp_path / "run").write_text("not a directory")
    line = one_error_line(capsys, train(tmp_path))
    assert f"run.output_dir '{tmp_path / 'run'}' is an existing file, not a directory" in line
    line = one_error_line(capsys, train(tmp_path / "run" / "sub"))
    assert f"lies under '{tmp_path / 'run'}', which is an existing file" in line


@pytest.mark.parametrize("template,expected", [
    ("Q: {question}\nA:", "has an unknown field {question}: the only field is {prompt}"),
    ("{prompt} {0}", "has an unknown field {0}"),
    ("{prompt", "is not a format string"),
    ("no field at all", "has no {prompt} field"),
])
def test_prompt_template_fields(tmp_path, capsys, no_cluster, template, expected):
    line = one_error_line(capsys, train(tmp_path, f"data.prompt_template={json.dumps(template)}"))
    assert "data.prompt_template" in line and expected in line


def test_max_new_tokens_beyond_model_positions(tmp_path, capsys, no_cluster):
    # tiny.yaml: a random model with the default 256 positions; "copy N:" prompts are 7 characters = 7 tokens
    line = one_error_line(capsys, train(tmp_path, "rollout.max_new_tokens=250"))
    assert ("rollout.max_new_tokens=250 plus the longest prompt (7 tokens, example 0) is 257 tokens, beyond the "
            "model's 256 positions") in line


def test_max_new_tokens_within_positions_passes_the_check(tmp_path):
    from rlvr.launch.input_checks import check_grpo_inputs, check_model_fits
    from rlvr.model_io import load_tokenizer, resolve_model_path

    cfg = load_config(TINY, [f"run.output_dir={tmp_path}", "rollout.max_new_tokens=249"])
    examples = check_grpo_inputs(cfg)
    model = resolve_model_path(cfg.model, tmp_path, 0)
    check_model_fits(cfg, model, load_tokenizer(model), examples)  # 7 + 249 = 256: fits exactly


def test_pipeline_checks_its_grpo_stage_before_the_first_stage(tmp_path, capsys, no_cluster):
    # the GRPO stage comes third: its template error must not wait for pretraining and SFT
    line = one_error_line(capsys, train(tmp_path, "data.prompt_template='{question}'", config=PIPELINE))
    assert line.startswith("rlvr: error: stage 'grpo': data.prompt_template '{question}' has an unknown field")
    assert not (tmp_path / "run" / "pretrain").exists()
    line = one_error_line(capsys, train(tmp_path, "rollout.max_new_tokens=200", config=PIPELINE))
    assert "stage 'grpo': rollout.max_new_tokens=200 is 200 tokens, beyond the model's 128 positions" in line


def test_eval_malformed_jsonl_names_file_and_line(tmp_path, capsys, tiny_model_dir):
    data = write_jsonl(tmp_path / "test.jsonl", [json.dumps({"question": "q", "answer": "#### 1"}), "{oops"])
    line = one_error_line(capsys, ["eval", "--model", tiny_model_dir, "--data", data, "--num-fewshot", "0",
                                   "--out", str(tmp_path / "out.jsonl")])
    assert f"--data {data}:2: not valid JSON" in line
    assert not (tmp_path / "out.jsonl").exists()


def test_submit_imports_reward_paths_from_the_working_dir_before_upload(tmp_path, capsys):
    work = tmp_path / "proj"
    (work / "configs").mkdir(parents=True)
    (work / "configs" / "tiny.yaml").write_text(Path(TINY).read_text())
    (work / "my_rewards.py").write_text("def brevity(prompt, completion, reference):\n    return 1.0\n")
    (work / "broken_rewards.py").write_text("import no_such_module_here\n")
    cfg = load_config(work / "configs" / "tiny.yaml", ["rewards.functions=[{path: 'my_rewards:brevity'}]"])
    with pytest.raises(ConfigError, match="reward function 'my_rewards:brevity' cannot be imported"):
        check_submit_inputs(cfg, tmp_path)  # not importable from elsewhere ...
    check_submit_inputs(cfg, work)  # ... but from the working directory, as the job will import it
    # through the CLI: refused with one line before anything is uploaded (port 9 never answers)
    line = one_error_line(capsys, ["submit", str(work / "configs" / "tiny.yaml"), "--working-dir", str(work),
                                   "--address", "http://127.0.0.1:9",
                                   "--set", "rewards.functions=[{path: 'broken_rewards:fn'}]"])
    assert ("reward function 'broken_rewards:fn' cannot be imported: ModuleNotFoundError: "
            "No module named 'no_such_module_here'") in line


@pytest.mark.parametrize("preset", sorted(p.name for p in (REPO / "configs").glob("*.yaml")) + ["default"])
def test_shipped_presets_pass_the_checks(tmp_path, preset):
    from rlvr.launch.input_checks import check_grpo_inputs, check_pipeline_inputs
    from rlvr.launch.pipeline import plan
    from rlvr.launch.train_cli import default_preset

    path = default_preset() if preset == "default" else REPO / "configs" / preset
    cfg = load_config(path, [f"run.output_dir={tmp_path}"])
    if cfg.data.path and not Path(cfg.data.path).is_file():  # the GPU presets' copy of GSM8K: use the shared one
        gsm8k = shared_data_dir() / "gsm8k" / "train.jsonl"
        if not gsm8k.is_file():
            pytest.skip(f"no GSM8K at {gsm8k} (shared/ beside the repository, or RLVR_DATA_DIR)")
        assert cfg.data.source == "gsm8k", cfg.data
        cfg = load_config(path, [f"run.output_dir={tmp_path}", f"data.path={gsm8k}"])
    if cfg.stages:
        check_pipeline_inputs(plan(cfg))
    else:
        check_grpo_inputs(cfg)
