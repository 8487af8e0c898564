"""A run directory belongs to one run, and checkpoints are verified before they are resumed from.

Reusing a run directory without resume is refused (one line, exit 2, nothing written); run.overwrite moves the old
run aside; rotation and resume ignore another run's checkpoints; a damaged newest checkpoint (truncated file, empty
driver_state.json) is named, moved aside, and the previous intact one is used."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rlvr.cli import main as rlvr_main
from rlvr.utils.checkpoint import CheckpointDir, CheckpointError
from rlvr.utils.run_dir import RUN_ID_FILE, claim, read_run_id

REPO = Path(__file__).resolve().parent.parent
TINY = REPO / "configs" / "tiny.yaml"


def old_run(out: Path) -> None:
    """What a finished run leaves: its id, two logged steps and a checkpoint."""
    claim(out, resume=False, overwrite=False)
    (out / "metrics.jsonl").write_text('{"step": 0}\n{"step": 1}\n')
    save(CheckpointDir(out, keep_last=2), 2, b"old weights")


def save(ckpts: CheckpointDir, step: int, weights: bytes) -> Path:
    staging = ckpts.staging(step)
    (staging / "model.safetensors").write_bytes(weights)
    return ckpts.commit(staging, {"step": step})


def test_reusing_a_run_dir_without_resume_is_refused_with_one_line(tmp_path, capsys):
    old_run(tmp_path)
    before = (tmp_path / "metrics.jsonl").read_text()
    code = rlvr_main(["train", str(TINY), "--set", f"run.output_dir={tmp_path}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith("rlvr: error: run.output_dir") and "checkpoint.resume=true" in err[0], err
    assert "run.overwrite=true" in err[0]
    assert (tmp_path / "metrics.jsonl").read_text() == before  # not truncated
    assert [p.name for p in CheckpointDir(tmp_path, 2).complete()] == ["step_000002"]


def test_resume_and_overwrite_together_are_refused(tmp_path, capsys):
    assert rlvr_main(["train", str(TINY), "--set", f"run.output_dir={tmp_path}", "--resume", "--overwrite"]) == 2
    assert "contradict" in capsys.readouterr().err


def test_overwrite_moves_the_old_run_aside_and_starts_a_new_one(tmp_path):
    out = tmp_path / "run"
    old_run(out)
    old_id = read_run_id(out)
    new_id = claim(out, resume=False, overwrite=True)
    aside = [p for p in tmp_path.iterdir() if p.name.startswith("run.old-")]
    assert len(aside) == 1, list(tmp_path.iterdir())
    assert (aside[0] / "metrics.jsonl").read_text() == '{"step": 0}\n{"step": 1}\n'  # kept, not deleted
    assert read_run_id(aside[0]) == old_id and new_id != old_id
    assert sorted(p.name for p in out.iterdir()) == [RUN_ID_FILE]
    assert claim(out, resume=True, overwrite=False) == new_id  # resuming keeps the run's id


def test_rotation_and_resume_ignore_another_runs_checkpoints(tmp_path):
    """Another run's step_000010 (say, copied in) sorts after ours: rotation must not delete ours because of it,
    and resume must not load it."""
    old_run(tmp_path)
    foreign = tmp_path / "checkpoints" / "step_000010"
    (tmp_path / "checkpoints" / "step_000002").rename(foreign)
    (tmp_path / RUN_ID_FILE).write_text("ourrun\n")
    ckpts = CheckpointDir(tmp_path, keep_last=1)
    save(ckpts, 1, b"ours")
    assert [p.name for p in ckpts.complete()] == ["step_000001"]
    path, state = ckpts.latest()
    assert path.name == "step_000001" and state["run_id"] == "ourrun"
    save(ckpts, 2, b"ours 2")  # rotation drops our step 1, never the foreign step 10
    assert foreign.is_dir() and [p.name for p in ckpts.complete()] == ["step_000002"]


@pytest.mark.parametrize("damage,named", [
    (lambda p: (p / "model.safetensors").write_bytes(b"trunc"), "model.safetensors has 5 bytes"),
    (lambda p: (p / "model.safetensors").write_bytes(b"weights at 5"), "model.safetensors does not match"),
    (lambda p: (p / "model.safetensors").unlink(), "model.safetensors is missing"),
    (lambda p: (p / "driver_state.json").write_text(""), "driver_state.json is empty or not valid JSON"),
    (lambda p: (p / "manifest.json").write_text("{"), "manifest.json is empty or not valid JSON"),
])
def test_damaged_newest_checkpoint_is_named_and_the_previous_one_used(tmp_path, capsys, damage, named):
    claim(tmp_path, resume=False, overwrite=False)
    ckpts = CheckpointDir(tmp_path, keep_last=2)
    save(ckpts, 3, b"weights at 3")
    newest = save(ckpts, 4, b"weights at 4")
    damage(newest)
    path, state = CheckpointDir(tmp_path, keep_last=2).latest()
    assert path.name == "step_000003" and state["step"] == 3
    lines = [ln for ln in capsys.readouterr().out.splitlines() if "damaged" in ln]
    assert len(lines) == 1 and "step_000004" in lines[0] and named in lines[0], lines
    assert (newest.parent / "step_000004.damaged").is_dir()  # moved aside, not deleted


def test_no_intact_checkpoint_is_one_clear_error(tmp_path, capsys):
    claim(tmp_path, resume=False, overwrite=False)
    ckpts = CheckpointDir(tmp_path, keep_last=2)
    (save(ckpts, 1, b"w") / "driver_state.json").write_text("")
    with pytest.raises(CheckpointError, match="no intact checkpoint"):
        ckpts.latest()
    code = rlvr_main(["train", str(TINY), "--set", f"run.output_dir={tmp_path}", "--resume"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("rlvr: error: no intact checkpoint"), err


def test_manifest_lists_every_file_with_its_sha256(tmp_path):
    claim(tmp_path, resume=False, overwrite=False)
    path = save(CheckpointDir(tmp_path, keep_last=2), 1, b"abc")
    files = json.loads((path / "manifest.json").read_text())["files"]
    assert sorted(files) == ["driver_state.json", "model.safetensors"]
    assert files["model.safetensors"]["sha256"] == \
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"  # sha256("abc")
