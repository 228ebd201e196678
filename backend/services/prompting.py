"""How a dataset record becomes training text, and a prompt becomes model input: one format for both."""

from __future__ import annotations

RESPONSE_MARKER = "### Response:\n"


def format_prompt(instruction: str, input_text: str = "") -> str:
    prompt = f"### Instruction:\n{instruction}\n\n"
    if input_text:
        prompt += f"### Input:\n{input_text}\n\n"
    return prompt + RESPONSE_MARKER


def format_record(record: dict[str, str]) -> str:
    if "text" in record:
        return record["text"]
    return format_prompt(record["instruction"], record.get("input", "")) + record["output"]
