"""Generate the bundled sample dataset and the tiny causal LM (model + tokenizer), deterministically.

No model hub is reachable from where this project builds and tests, so the model every build ships
(and every test trains) is made here: a Llama-architecture config with tiny sizes, random weights from a
fixed seed, and a byte-level BPE tokenizer trained with `tokenizers` on the sample corpus. The backend
loads it with the real `from_pretrained` on a local folder, exactly as it would load a real model.

    python scripts/make_resources.py                  # rewrite backend/resources/{datasets,models}
    python scripts/make_resources.py --out DIR        # write elsewhere (the determinism test does)
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

RESOURCES = Path(__file__).resolve().parent.parent / "backend" / "resources"
DATASET_NAME = "sample-instructions.jsonl"
MODEL_NAME = "tiny-llama"
SEED = 20261128
SPECIAL_TOKENS = ["<unk>", "<s>", "</s>", "<pad>"]

_WORDS = [
    "river", "window", "garden", "silver", "planet", "candle", "forest", "engine", "pencil", "market",
    "harbor", "ladder", "violin", "desert", "rocket", "meadow", "bridge", "castle", "mirror", "thunder",
]
_OPPOSITES = [
    ("hot", "cold"), ("up", "down"), ("early", "late"), ("light", "dark"), ("open", "closed"),
    ("fast", "slow"), ("full", "empty"), ("wet", "dry"), ("loud", "quiet"), ("old", "new"),
]
_CAPITALS = [
    ("France", "Paris"), ("Japan", "Tokyo"), ("Italy", "Rome"), ("Spain", "Madrid"), ("Egypt", "Cairo"),
    ("Canada", "Ottawa"), ("Kenya", "Nairobi"), ("Peru", "Lima"), ("Norway", "Oslo"), ("Chile", "Santiago"),
]


def sample_records(count: int = 320, seed: int = SEED) -> list[dict[str, str]]:
    """Instruction / input / output records: small, varied and exactly reproducible."""
    rng = random.Random(seed)
    records: list[dict[str, str]] = []
    makers = [
        lambda: _arithmetic(rng),
        lambda: _reverse(rng),
        lambda: _opposite(rng),
        lambda: _capital(rng),
        lambda: _count_letters(rng),
        lambda: _uppercase(rng),
    ]
    for index in range(count):
        records.append(makers[index % len(makers)]())
    return records


def _arithmetic(rng: random.Random) -> dict[str, str]:
    a, b = rng.randint(1, 50), rng.randint(1, 50)
    return {"instruction": f"What is {a} plus {b}?", "input": "", "output": f"{a} plus {b} is {a + b}."}


def _reverse(rng: random.Random) -> dict[str, str]:
    word = rng.choice(_WORDS)
    return {"instruction": "Reverse the letters of the word.", "input": word, "output": word[::-1]}


def _opposite(rng: random.Random) -> dict[str, str]:
    word, opposite = rng.choice(_OPPOSITES)
    if rng.random() < 0.5:
        word, opposite = opposite, word
    return {"instruction": f"Give the opposite of '{word}'.", "input": "", "output": opposite}


def _capital(rng: random.Random) -> dict[str, str]:
    country, capital = rng.choice(_CAPITALS)
    return {"instruction": f"What is the capital of {country}?", "input": "",
            "output": f"The capital of {country} is {capital}."}


def _count_letters(rng: random.Random) -> dict[str, str]:
    word = rng.choice(_WORDS)
    return {"instruction": "How many letters does this word have?", "input": word,
            "output": f"'{word}' has {len(word)} letters."}


def _uppercase(rng: random.Random) -> dict[str, str]:
    words = " ".join(rng.sample(_WORDS, 3))
    return {"instruction": "Write the text in capital letters.", "input": words, "output": words.upper()}


def write_dataset(path: Path, records: list[dict[str, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="\n") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n")


def corpus_lines(records: list[dict[str, str]]) -> list[str]:
    return [" ".join(value for value in record.values() if value) for record in records]


def write_tiny_model(folder: Path, records: list[dict[str, str]]) -> None:
    # Heavy imports stay here: the dataset part of this script runs without them.
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=512,
        min_frequency=1,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(corpus_lines(records), trainer=trainer)
    bpe.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", bpe.token_to_id("<s>"))]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, unk_token="<unk>", bos_token="<s>", eos_token="</s>", pad_token="<pad>",
        model_max_length=256,
    )

    config = LlamaConfig(
        vocab_size=bpe.get_vocab_size(),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=256,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(SEED)
    model = LlamaForCausalLM(config)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def write_model_facts(folder: Path, target: Path) -> None:
    """What the model probe finds in the bundled model, without this machine's devices: the server uses it
    instead of probing the bundled model in every fresh data dir (a test compares it with a live probe)."""
    sys.path.insert(0, str(RESOURCES.parent.parent))
    from backend.services.model_probe import portable, probe_folder

    target.write_text(json.dumps(portable(probe_folder(str(folder))), indent=2, sort_keys=True) + "\n",
                      encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=RESOURCES, help="resources folder to write into")
    parser.add_argument("--dataset-only", action="store_true", help="skip the model (no torch needed)")
    args = parser.parse_args(argv)
    records = sample_records()
    write_dataset(args.out / "datasets" / DATASET_NAME, records)
    if not args.dataset_only:
        write_tiny_model(args.out / "models" / MODEL_NAME, records)
        write_model_facts(args.out / "models" / MODEL_NAME, args.out / "models" / f"{MODEL_NAME}.facts.json")
    print(f"wrote {len(records)} records and the {MODEL_NAME} model under {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
