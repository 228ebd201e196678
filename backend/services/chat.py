"""Dataset records and prompts as a model sees them: shapes, the chat template, and which tokens train.

A dataset record has one of five shapes (:func:`record_shape`):

- ``text``: ``{"text"}``, trained on every token;
- ``prompt_completion``: ``{"prompt", "completion"}``, plain text, trained on the completion;
- ``alpaca``: ``{"instruction", "output", "input"?}``, a user turn and the assistant's answer;
- ``messages``: OpenAI chat, ``{"messages": [{"role", "content"}, ...]}`` with system, user, assistant
  (and tool) turns, trained on every assistant turn;
- ``sharegpt``: ``{"conversations": [{"from", "value"}, ...]}`` (human / gpt / system), as messages.

Conversations (alpaca, messages, sharegpt) are rendered with the model's own chat template (Jinja, as
transformers runs it, sandboxed); a model without one gets :data:`DEFAULT_CHAT_TEMPLATE`. A rendered
example is a list of segments, each trained or not (:func:`segments`), tokenized segment by segment, so
that the loss mask is exact whatever the tokenizer (:func:`encode`): with ``train_on = "completions"``
only the assistant's (or the completion's) tokens carry labels, every other one is ``-100``.

Nothing here imports torch or transformers: the renderer and the tokenizer are passed in, so every
rule is tested with fakes (``tests/unit/test_chat.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

Shape = Literal["text", "prompt_completion", "alpaca", "messages", "sharegpt"]
SHAPES: tuple[Shape, ...] = ("text", "prompt_completion", "alpaca", "messages", "sharegpt")
ROLES = ("system", "user", "assistant", "tool")
SHAREGPT_ROLES = {"system": "system", "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                  "tool": "tool", "function_call": "assistant", "observation": "tool"}
ALLOWED_SHAPES = ("one of {'text'}, {'prompt', 'completion'}, {'instruction', 'output', 'input'?}, "
                  "{'messages': [{'role', 'content'}]} or {'conversations': [{'from', 'value'}]}")
IGNORE = -100  # a label that contributes nothing to the loss
SHAPE_KEYS: tuple[tuple[Shape, tuple[str, ...]], ...] = (
    ("messages", ("messages",)), ("sharegpt", ("conversations",)), ("text", ("text",)),
    ("prompt_completion", ("prompt", "completion")), ("alpaca", ("instruction", "output")))

# For a model whose tokenizer has no chat template: the instruction format this backend used before
# chat templates, extended to system and multi-turn conversations. Documented in the protocol.
DEFAULT_CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'system' -%}{{ message['content'] + '\\n\\n' }}"
    "{%- elif message['role'] == 'user' -%}{{ '### Instruction:\\n' + message['content'] + '\\n\\n' }}"
    "{%- elif message['role'] == 'assistant' -%}"
    "{{ '### Response:\\n' + message['content'] + (eos_token or '') + '\\n\\n' }}"
    "{%- else -%}{{ '### ' + message['role'] | capitalize + ':\\n' + message['content'] + '\\n\\n' }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '### Response:\\n' }}{%- endif -%}"
)

Message = dict[str, str]
Render = Callable[[list[Message], bool], str]  # (messages, add_generation_prompt) -> text


@dataclass(frozen=True)
class Example:
    """One training example: plain text, a prompt and its completion, or a conversation."""

    shape: Shape
    text: str = ""
    prompt: str = ""
    completion: str = ""
    messages: tuple[Message, ...] = ()


class RecordError(ValueError):
    """A record that cannot be an example; the message says what is wrong."""


def _non_empty_string(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise RecordError(f"field {name!r} must be a string, got {type(value).__name__}")
    if not value.strip():
        raise RecordError(f"field {name!r} must not be empty")
    return value


def _turns(items: Any, name: str, role_key: str, content_key: str, roles: Mapping[str, str]) -> tuple[Message, ...]:
    if not isinstance(items, list) or not items:
        raise RecordError(f"field {name!r} must be a non-empty list of turns")
    messages = []
    for position, item in enumerate(items, start=1):
        if not isinstance(item, dict):
            raise RecordError(f"{name}[{position}] must be an object with {role_key!r} and {content_key!r}")
        role = item.get(role_key)
        if not isinstance(role, str) or role not in roles:
            raise RecordError(f"{name}[{position}].{role_key} must be one of {', '.join(sorted(roles))}")
        content = item.get(content_key)
        if not isinstance(content, str):
            raise RecordError(f"{name}[{position}].{content_key} must be a string")
        messages.append({"role": roles[role], "content": content})
    if not any(message["role"] == "assistant" and message["content"].strip() for message in messages):
        raise RecordError(f"{name!r} has no assistant turn with content: nothing to learn from")
    return tuple(messages)


def record_shape(value: Any) -> Shape:
    """The shape of a record; RecordError saying what is wrong when it has none."""
    if not isinstance(value, dict):
        raise RecordError(f"expected a JSON object, got {type(value).__name__}")
    present: list[Shape] = [shape for shape, keys in SHAPE_KEYS if all(key in value for key in keys)]
    if len(present) > 1:
        raise RecordError(f"the record mixes shapes ({', '.join(present)}): records need {ALLOWED_SHAPES}")
    if not present:
        if "instruction" in value or "output" in value:
            missing = [key for key in ("instruction", "output") if key not in value]
            raise RecordError(f"missing field(s) {', '.join(repr(m) for m in missing)}: records need {ALLOWED_SHAPES}")
        if "prompt" in value or "completion" in value:
            missing = [key for key in ("prompt", "completion") if key not in value]
            raise RecordError(f"missing field(s) {', '.join(repr(m) for m in missing)}: records need {ALLOWED_SHAPES}")
        raise RecordError(f"unknown record shape: records need {ALLOWED_SHAPES}")
    return present[0]


def to_example(value: Any) -> Example:
    """A validated example from a record (RecordError when it is not one)."""
    shape = record_shape(value)
    if shape == "text":
        return Example(shape, text=_non_empty_string(value["text"], "text"))
    if shape == "prompt_completion":
        prompt = value["prompt"]
        if not isinstance(prompt, str):
            raise RecordError(f"field 'prompt' must be a string, got {type(prompt).__name__}")
        return Example(shape, prompt=prompt, completion=_non_empty_string(value["completion"], "completion"))
    if shape == "alpaca":
        instruction = _non_empty_string(value["instruction"], "instruction")
        output = _non_empty_string(value["output"], "output")
        extra = value.get("input", "")
        if not isinstance(extra, str):
            raise RecordError(f"field 'input' must be a string, got {type(extra).__name__}")
        user = instruction + (f"\n\n{extra}" if extra.strip() else "")
        return Example(shape, messages=({"role": "user", "content": user}, {"role": "assistant", "content": output}))
    if shape == "messages":
        return Example(shape, messages=_turns(value["messages"], "messages", "role", "content",
                                              {role: role for role in ROLES}))
    return Example(shape, messages=_turns(value["conversations"], "conversations", "from", "value", SHAREGPT_ROLES))


def read_examples(path: Path) -> list[Example]:
    """Every record of a stored (validated) dataset as an example: what the training worker reads."""
    import json

    with path.open(encoding="utf-8") as handle:
        return [to_example(json.loads(line)) for line in handle if line.strip()]


def user_prompt(prompt: str, extra: str = "") -> list[Message]:
    """A plain prompt (and its optional input) as the one user turn of a conversation."""
    return [{"role": "user", "content": prompt + (f"\n\n{extra}" if extra.strip() else "")}]


def fold_system(messages: Sequence[Message]) -> list[Message]:
    """System turns folded into the next user turn, for templates that refuse a system role (Gemma's)."""
    folded: list[Message] = []
    pending: list[str] = []
    for message in messages:
        if message["role"] == "system":
            pending.append(message["content"])
            continue
        if pending and message["role"] == "user":
            message = {**message, "content": "\n\n".join([*pending, message["content"]])}
            pending = []
        folded.append(message)
    if pending:
        folded.insert(0, {"role": "user", "content": "\n\n".join(pending)})
    return folded


def segments(example: Example, render: Render, *, eos_token: str | None) -> list[tuple[str, bool]]:
    """The example's text as (piece, trained) segments, in order. For a conversation each assistant turn
    is the difference between the rendering up to it with the generation prompt and the rendering that
    includes it; the template decides everything else (role markers, end-of-turn tokens, a BOS)."""
    if example.shape == "text":
        return [(example.text + (eos_token or ""), True)]
    if example.shape == "prompt_completion":
        return [(example.prompt, False), (example.completion + (eos_token or ""), True)]
    messages = list(example.messages)
    pieces: list[tuple[str, bool]] = []
    done = ""
    for index, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        prompt = render(messages[:index], True)
        full = render(messages[: index + 1], False)
        if not prompt.startswith(done) or not full.startswith(prompt):
            return _last_turn_only(messages, render)
        pieces += [(prompt[len(done):], False), (full[len(prompt):], True)]
        done = full
    whole = render(messages, False)
    if not whole.startswith(done):
        return _last_turn_only(messages, render)
    if whole[len(done):]:
        pieces.append((whole[len(done):], False))
    return [(text, trained) for text, trained in pieces if text]


def _last_turn_only(messages: list[Message], render: Render) -> list[tuple[str, bool]]:
    """For a template that renders earlier turns differently once later ones follow (some drop earlier
    reasoning): train on the last assistant turn, with everything before it as the prompt."""
    last = max(index for index, message in enumerate(messages) if message["role"] == "assistant")
    prompt = render(messages[:last], True)
    full = render(messages[: last + 1], False)
    if not full.startswith(prompt):
        raise RecordError("the model's chat template does not render this conversation as its prompt followed "
                          "by the answer, so the answer's tokens cannot be told apart")
    return [(prompt, False), (full[len(prompt):], True)]


@dataclass(frozen=True)
class Encoded:
    input_ids: list[int]
    labels: list[int]

    @property
    def trained_tokens(self) -> int:
        return sum(1 for label in self.labels if label != IGNORE)


def encode(pieces: Sequence[tuple[str, bool]], tokenize: Callable[[str], list[int]], *, bos_id: int | None,
           bos_token: str | None, max_length: int, train_on: str) -> Encoded:
    """Token ids and labels for segments: each segment tokenized on its own (no special tokens added), a
    BOS first when the tokenizer adds one and the text does not start with it, cut at ``max_length``.
    ``train_on = "all"`` trains every token but the BOS."""
    ids: list[int] = []
    labels: list[int] = []
    starts_with_bos = bool(bos_token) and bool(pieces) and pieces[0][0].startswith(bos_token or "")
    if bos_id is not None and not starts_with_bos:
        ids.append(bos_id)
        labels.append(IGNORE)
    for text, trained in pieces:
        piece = tokenize(text)
        ids += piece
        labels += piece if (trained or train_on == "all") else [IGNORE] * len(piece)
    return Encoded(ids[:max_length], labels[:max_length])


def end_of_turn_text(render: Render) -> str:
    """What the template writes right after an assistant turn's content (``<|im_end|>\\n``, ``<end_of_turn>``,
    an EOS): the text generation should stop at."""
    marker = "Zq9xW"
    text = render([{"role": "user", "content": "hi"}, {"role": "assistant", "content": marker}], False)
    return text[text.rfind(marker) + len(marker):] if marker in text else ""
