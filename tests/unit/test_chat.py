"""Record shapes, rendering with a chat template, and which tokens train: pure rules, with fakes for the
template and the tokenizer."""

from __future__ import annotations

import pytest

from backend.services import chat
from backend.services.chat import IGNORE, Example, RecordError, encode, segments, to_example


def chatml(messages: list[dict[str, str]], add_generation_prompt: bool) -> str:
    text = "".join(f"<|{m['role']}|>{m['content']}<|end|>" for m in messages)
    return text + ("<|assistant|>" if add_generation_prompt else "")


def drops_history(messages: list[dict[str, str]], add_generation_prompt: bool) -> str:
    """A template that renders an assistant turn in full only after the last user turn, and earlier ones
    shortened (as reasoning templates drop earlier thoughts): the rendering up to an earlier answer is no
    prefix of the whole conversation."""
    last_user = max((i for i, m in enumerate(messages) if m["role"] == "user"), default=-1)
    text = "".join(f"<{m['role']}>{m['content'] if m['role'] != 'assistant' or i > last_user else '...'}"
                   for i, m in enumerate(messages))
    return text + ("<assistant>" if add_generation_prompt else "")


CONVERSATION = Example("messages", messages=(
    {"role": "system", "content": "S"}, {"role": "user", "content": "Q1"}, {"role": "assistant", "content": "A1"},
    {"role": "user", "content": "Q2"}, {"role": "assistant", "content": "A2"}))


def test_every_assistant_turn_trains_and_nothing_else() -> None:
    pieces = segments(CONVERSATION, chatml, eos_token="</s>")
    assert "".join(text for text, _ in pieces) == chatml(list(CONVERSATION.messages), False)
    assert [text for text, trained in pieces if trained] == ["A1<|end|>", "A2<|end|>"]
    assert [text for text, trained in pieces if not trained] == [
        "<|system|>S<|end|><|user|>Q1<|end|><|assistant|>", "<|user|>Q2<|end|><|assistant|>"]


def test_a_template_that_rewrites_history_trains_the_last_turn_only() -> None:
    pieces = segments(CONVERSATION, drops_history, eos_token=None)
    assert [text for text, trained in pieces if trained] == ["A2"]
    assert "".join(text for text, _ in pieces) == drops_history(list(CONVERSATION.messages), False)


@pytest.mark.parametrize(("record", "shape", "trained"), [
    ({"text": "hello"}, "text", ["hello</s>"]),
    ({"prompt": "2+2=", "completion": "4"}, "prompt_completion", ["4</s>"]),
    ({"instruction": "Do", "input": "x", "output": "done"}, "alpaca", ["done<|end|>"]),
    ({"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "yo"}]}, "sharegpt", ["yo<|end|>"]),
])
def test_each_shape_trains_on_its_answer(record: dict, shape: str, trained: list[str]) -> None:
    example = to_example(record)
    assert example.shape == shape
    assert [text for text, is_trained in segments(example, chatml, eos_token="</s>") if is_trained] == trained


def test_alpaca_input_joins_the_instruction() -> None:
    example = to_example({"instruction": "Reverse", "input": "abc", "output": "cba"})
    assert example.messages[0] == {"role": "user", "content": "Reverse\n\nabc"}


def test_encode_masks_untrained_segments_adds_bos_once_and_cuts() -> None:
    def tokenize(text: str) -> list[int]:
        return [ord(c) for c in text]

    pieces = [("ab", False), ("cd", True)]
    encoded = encode(pieces, tokenize, bos_id=1, bos_token="<s>", max_length=10, train_on="completions")
    assert encoded.input_ids == [1, 97, 98, 99, 100]
    assert encoded.labels == [IGNORE, IGNORE, IGNORE, 99, 100] and encoded.trained_tokens == 2
    everything = encode(pieces, tokenize, bos_id=1, bos_token="<s>", max_length=10, train_on="all")
    assert everything.labels == [IGNORE, 97, 98, 99, 100]
    with_bos_text = encode([("<s>ab", False), ("c", True)], tokenize, bos_id=1, bos_token="<s>", max_length=10,
                           train_on="completions")
    assert with_bos_text.input_ids[0] == ord("<"), "a template that writes the BOS gets no second one"
    cut = encode(pieces, tokenize, bos_id=None, bos_token=None, max_length=2, train_on="completions")
    assert cut.trained_tokens == 0, "an answer past max_length leaves nothing to learn from"


def test_system_turns_fold_into_the_next_user_turn() -> None:
    folded = chat.fold_system([{"role": "system", "content": "S"}, {"role": "user", "content": "Q"},
                               {"role": "assistant", "content": "A"}])
    assert folded == [{"role": "user", "content": "S\n\nQ"}, {"role": "assistant", "content": "A"}]


def test_the_end_of_turn_text_is_what_follows_an_answer() -> None:
    assert chat.end_of_turn_text(chatml) == "<|end|>"


@pytest.mark.parametrize("record", [
    {"messages": [{"role": "user", "content": "only a question"}]},
    {"messages": "not a list"},
    {"conversations": [{"from": "alien", "value": "x"}]},
    {"prompt": 1, "completion": "x"},
    {"text": "a", "prompt": "b", "completion": "c"},
    {},
])
def test_unusable_records_say_why(record: dict) -> None:
    with pytest.raises(RecordError):
        to_example(record)


def test_the_default_template_renders_with_jinja() -> None:
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    template = ImmutableSandboxedEnvironment().from_string(chat.DEFAULT_CHAT_TEMPLATE)
    text = template.render(messages=list(CONVERSATION.messages), add_generation_prompt=False, eos_token="</s>")
    assert text == ("S\n\n### Instruction:\nQ1\n\n### Response:\nA1</s>\n\n### Instruction:\nQ2\n\n"
                    "### Response:\nA2</s>\n\n")
