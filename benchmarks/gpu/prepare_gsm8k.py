"""GSM8K files the GPU runs read, written into a git-ignored folder that a device call carries (`.gpudata/`):
the device gets only the repository, not ../shared, and data is never committed.

    python benchmarks/gpu/prepare_gsm8k.py            # reads ../shared/data/gsm8k, writes .gpudata/gsm8k/

- train.jsonl: GSM8K train, unchanged (GRPO prompts; the reward reads the gold after '####').
- sft_train.jsonl: GSM8K train as chats for SFT: user = the GRPO prompt (PROMPT_TEMPLATE), assistant = the
  reference solution with its `<<48/2=24>>` calculator annotations removed, ending `#### N`.
- test_instr.jsonl: GSM8K test with the instruction appended to each question, so that `rlvr eval --num-fewshot 0
  --chat-template` builds exactly the user message GRPO and SFT train on (the eval wraps it in
  "Question: ...\\nAnswer:"; PROMPT_TEMPLATE does the same).
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

INSTRUCTION = "Give the final answer after ####."
PROMPT_TEMPLATE = "Question: {prompt}\n" + INSTRUCTION + "\nAnswer:"
"""data.prompt_template of the GPU GRPO presets; equals the eval's prompt for a test_instr.jsonl question."""
CALC = re.compile(r"<<[^<>]*>>")


def eval_question(question: str) -> str:
    return f"{question}\n{INSTRUCTION}"


def clean_solution(answer: str) -> str:
    return CALC.sub("", answer)


def read(path: Path) -> list[dict]:
    with path.open() as f:
        return [json.loads(line) for line in f if line.strip()]


def write(path: Path, rows: list[dict]) -> None:
    with path.open("w") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def main() -> None:
    repo = Path(__file__).resolve().parents[2]
    ap = argparse.ArgumentParser()
    ap.add_argument("--src", default=str(repo.parent / "shared" / "data" / "gsm8k"))
    ap.add_argument("--out", default=str(repo / ".gpudata" / "gsm8k"))
    args = ap.parse_args()
    src, out = Path(args.src), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    train, test = read(src / "train.jsonl"), read(src / "test.jsonl")
    write(out / "train.jsonl", train)
    write(out / "sft_train.jsonl", [
        {"messages": [{"role": "user", "content": PROMPT_TEMPLATE.format(prompt=r["question"])},
                      {"role": "assistant", "content": clean_solution(r["answer"])}]}
        for r in train
    ])
    write(out / "test_instr.jsonl", [{**r, "question": eval_question(r["question"])} for r in test])
    # the eval builds "Question: {question}\nAnswer:" zero-shot; it must equal the training prompt
    assert f"Question: {eval_question('Q')}\nAnswer:" == PROMPT_TEMPLATE.format(prompt="Q")
    print(json.dumps({"train": len(train), "test": len(test), "out": str(out)}))


if __name__ == "__main__":
    main()
