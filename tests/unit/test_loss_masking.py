"""With ``train_on = "completions"``, the tokens that are not the answer contribute nothing to the
gradient: the loss's gradient at every masked position is exactly zero, and at the answer's it is not.
A real tiny model and tokenizer (the bundled ones), the real encoding the worker uses."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from backend.runtime_paths import current_layout  # noqa: E402
from backend.services import chat  # noqa: E402
from backend.services.model_probe import chat_renderer  # noqa: E402
from backend.services.training import encode_examples  # noqa: E402

ANSWERS = [("4.", "6."), (" cold.",), ("cba",)]
PROMPTS = ["What is 2 plus 2", "The opposite of hot", "Reverse the word"]
RECORDS = [
    {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 2 plus 2?"},
                  {"role": "assistant", "content": "4."}, {"role": "user", "content": "And 3 plus 3?"},
                  {"role": "assistant", "content": "6."}]},
    {"prompt": "The opposite of hot is", "completion": " cold."},
    {"instruction": "Reverse the word", "input": "abc", "output": "cba"},
]


@pytest.fixture(scope="module")
def model_and_tokenizer():  # type: ignore[no-untyped-def]
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = current_layout().resources / "models" / "tiny-llama"
    return AutoModelForCausalLM.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)


@pytest.mark.parametrize(("record", "answers", "prompt"), list(zip(RECORDS, ANSWERS, PROMPTS, strict=True)),
                         ids=["messages", "prompt_completion", "alpaca"])
def test_masked_tokens_contribute_nothing_to_the_gradient(model_and_tokenizer, record: dict,  # type: ignore[no-untyped-def]
                                                          answers: tuple[str, ...], prompt: str) -> None:
    model, tokenizer = model_and_tokenizer
    (encoded,), empty = encode_examples([chat.to_example(record)], tokenizer, chat_renderer(tokenizer),
                                        max_length=256, train_on="completions")
    assert empty == 0 and 0 < encoded.trained_tokens < len(encoded.input_ids)
    trained = tokenizer.decode([i for i, label in zip(encoded.input_ids, encoded.labels, strict=True)
                                if label != chat.IGNORE])
    assert all(answer in trained for answer in answers) and prompt not in trained, trained
    input_ids = torch.tensor([encoded.input_ids])
    labels = torch.tensor([encoded.labels])
    output = model(input_ids=input_ids, labels=labels)
    output.logits.retain_grad()
    output.loss.backward()
    gradient = output.logits.grad[0]  # position t predicts token t + 1
    predicts_masked = labels[0, 1:] == chat.IGNORE
    assert torch.count_nonzero(gradient[:-1][predicts_masked]) == 0, "a masked token moved the loss"
    assert torch.count_nonzero(gradient[:-1][~predicts_masked]) > 0
    assert torch.count_nonzero(gradient[-1]) == 0, "the last position predicts nothing"

    # The same loss, computed by hand over the answer's tokens only.
    logits, targets = output.logits[0, :-1].detach(), input_ids[0, 1:]
    by_hand = torch.nn.functional.cross_entropy(logits[~predicts_masked], targets[~predicts_masked])
    assert torch.allclose(output.loss.detach(), by_hand, atol=1e-6)


def test_every_token_trains_when_asked(model_and_tokenizer) -> None:  # type: ignore[no-untyped-def]
    _, tokenizer = model_and_tokenizer
    (encoded,), _ = encode_examples([chat.to_example(RECORDS[0])], tokenizer, chat_renderer(tokenizer),
                                    max_length=256, train_on="all")
    assert encoded.trained_tokens == len(encoded.input_ids) - 1, "all but the BOS"
