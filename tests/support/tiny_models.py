"""Tiny random-weight models of today's popular families, made here (no hub): each a folder written by
``save_pretrained``, with the bundled tokenizer (plus chat special tokens) and the family's kind of chat
template, a few hundred KB. Also the folders a user may bring that are not the happy path: a
SentencePiece-only tokenizer, bfloat16 weights, a sharded checkpoint, a pickle checkpoint (plain and
malicious), a model that needs ``trust_remote_code``, a model without a causal LM head.

    python -m tests.support.tiny_models OUT_DIR   # writes every folder, prints their names

Used by ``tests/behaviour/test_model_families.py``; imports torch and transformers (the test process
has them; the backend under test is a separate process).
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backend.runtime_paths import current_layout

SEED = 20261206
CHAT_TOKENS = ["<|im_start|>", "<|im_end|>", "<start_of_turn>", "<end_of_turn>", "<|start_header_id|>",
               "<|end_header_id|>", "<|eot_id|>", "<|user|>", "<|assistant|>", "<|system|>", "<|end|>"]

CHATML = ("{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + "
          "'<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
GEMMA = ("{{ bos_token }}{% for message in messages %}{% if message['role'] == 'system' %}"
         "{{ raise_exception('System role not supported') }}{% endif %}"
         "{% set role = 'model' if message['role'] == 'assistant' else message['role'] %}"
         "{{ '<start_of_turn>' + role + '\\n' + message['content'] | trim + '<end_of_turn>\\n' }}{% endfor %}"
         "{% if add_generation_prompt %}{{ '<start_of_turn>model\\n' }}{% endif %}")
LLAMA3 = ("{{ bos_token }}{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + "
          "'<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}{% endfor %}"
          "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}")
PHI3 = ("{% for message in messages %}{{ '<|' + message['role'] + '|>\\n' + message['content'] + '<|end|>\\n' }}"
        "{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}")

SMALL = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
         "num_key_value_heads": 2, "head_dim": 8, "max_position_embeddings": 256}


@dataclass(frozen=True)
class Family:
    model_type: str
    template: str | None  # None: the tokenizer has no chat template (the backend's default renders)
    sizes: dict[str, Any]


FAMILIES: dict[str, Family] = {
    "llama": Family("llama", LLAMA3, SMALL),
    "mistral": Family("mistral", CHATML, SMALL),
    "qwen2": Family("qwen2", CHATML, SMALL),
    "qwen3": Family("qwen3", CHATML, SMALL),
    "gemma": Family("gemma", GEMMA, SMALL),
    "gemma3_text": Family("gemma3_text", GEMMA, {**SMALL, "sliding_window": 64}),
    "phi3": Family("phi3", PHI3, {key: value for key, value in SMALL.items() if key != "head_dim"}),
    "granite": Family("granite", CHATML, {key: value for key, value in SMALL.items() if key != "head_dim"}),
    "gpt2": Family("gpt2", None, {"n_embd": 32, "n_layer": 2, "n_head": 4, "n_positions": 256, "n_inner": 64}),
    "gpt_neox": Family("gpt_neox", None, {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                                          "num_attention_heads": 4, "max_position_embeddings": 256}),
    "falcon": Family("falcon", None, {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4}),
    "opt": Family("opt", None, {"hidden_size": 32, "ffn_dim": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
                                "max_position_embeddings": 256, "word_embed_proj_dim": 32}),
}


def bundled_tokenizer(template: str | None) -> Any:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(current_layout().resources / "models" / "tiny-llama")
    tokenizer.add_special_tokens({"additional_special_tokens": CHAT_TOKENS})
    tokenizer.chat_template = template
    return tokenizer


def write_family(folder: Path, family: Family, *, dtype: str = "float32", max_shard_size: str | None = None) -> Path:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    tokenizer = bundled_tokenizer(family.template)
    config = AutoConfig.for_model(family.model_type, vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id,
                                  eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                                  **family.sizes)
    torch.manual_seed(SEED)
    model = AutoModelForCausalLM.from_config(config).to(getattr(torch, dtype))
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, **({"max_shard_size": max_shard_size} if max_shard_size else {}))
    tokenizer.save_pretrained(folder)
    return folder


def write_sentencepiece_only(folder: Path) -> Path:
    """A Llama model whose tokenizer is a SentencePiece ``tokenizer.model`` alone: no tokenizer.json."""
    import sentencepiece as spm
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    folder.mkdir(parents=True, exist_ok=True)
    corpus = folder / "corpus.txt"
    sample = current_layout().resources / "datasets" / "sample-instructions.jsonl"
    corpus.write_text(sample.read_text(encoding="utf-8"), encoding="utf-8")
    spm.SentencePieceTrainer.train(input=str(corpus), model_prefix=str(folder / "tokenizer"), vocab_size=300,
                                   model_type="bpe", character_coverage=1.0, bos_id=1, eos_id=2, unk_id=0, pad_id=3,
                                   minloglevel=2)
    corpus.unlink()
    (folder / "tokenizer.vocab").unlink()
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "LlamaTokenizer", "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
        "pad_token": "<pad>", "model_max_length": 256}), encoding="utf-8")
    config = LlamaConfig(vocab_size=300, bos_token_id=1, eos_token_id=2, pad_token_id=3, **SMALL)
    torch.manual_seed(SEED)
    LlamaForCausalLM(config).save_pretrained(folder)
    return folder


def write_pickle_checkpoint(folder: Path, *, malicious_marker: Path | None = None) -> Path:
    """A Llama model as ``pytorch_model.bin`` (a pickle). With ``malicious_marker``, the pickle holds an
    object whose unpickling would create that file: a loader that is not weights-only runs it."""
    import torch

    write_family(folder, FAMILIES["llama"])
    state = __import__("safetensors.torch", fromlist=["load_file"]).load_file(folder / "model.safetensors")
    (folder / "model.safetensors").unlink()
    if malicious_marker is not None:
        state["trap"] = _Trap(str(malicious_marker))
    torch.save(state, folder / "pytorch_model.bin")
    return folder


class _Trap:
    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[Any, ...]]:
        return (Path.touch, (Path(self.marker),))


def write_remote_code_model(folder: Path, marker: Path) -> Path:
    """A model type transformers does not know, with ``auto_map`` to code in the folder: code that would
    create ``marker`` when imported."""
    folder.mkdir(parents=True, exist_ok=True)
    code = f"from pathlib import Path\nPath({str(marker)!r}).touch()\n"
    (folder / "configuration_mylm.py").write_text(code + "from transformers import PretrainedConfig\n"
                                                  "class MyConfig(PretrainedConfig):\n    model_type = 'mylm'\n")
    (folder / "modeling_mylm.py").write_text(code)
    (folder / "config.json").write_text(json.dumps({
        "model_type": "mylm", "architectures": ["MyLM"],
        "auto_map": {"AutoConfig": "configuration_mylm.MyConfig", "AutoModelForCausalLM": "modeling_mylm.MyLM"}}))
    shutil.copy2(current_layout().resources / "models" / "tiny-llama" / "model.safetensors", folder)
    shutil.copy2(current_layout().resources / "models" / "tiny-llama" / "tokenizer.json", folder)
    return folder


def write_encoder_only(folder: Path) -> Path:
    """A DistilBERT encoder: transformers has no causal language-model head for it."""
    from transformers import DistilBertConfig, DistilBertModel

    config = DistilBertConfig(vocab_size=512, dim=32, n_layers=2, n_heads=4, hidden_dim=64, max_position_embeddings=256)
    DistilBertModel(config).save_pretrained(folder)
    bundled_tokenizer(None).save_pretrained(folder)
    return folder


CASES: dict[str, Callable[[Path], Path]] = {
    "sentencepiece-only": write_sentencepiece_only,
    "bfloat16": lambda folder: write_family(folder, FAMILIES["qwen2"], dtype="bfloat16"),
    "float16": lambda folder: write_family(folder, FAMILIES["llama"], dtype="float16"),
    "sharded": lambda folder: write_family(folder, FAMILIES["mistral"], max_shard_size="100KB"),
    "pickle": write_pickle_checkpoint,
}


def write_all(out: Path) -> dict[str, Path]:
    folders = {name: write_family(out / name, family) for name, family in FAMILIES.items()}
    folders.update({name: make(out / name) for name, make in CASES.items()})
    return folders


if __name__ == "__main__":
    for name, path in write_all(Path(sys.argv[1])).items():
        print(name, path)
