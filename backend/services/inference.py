"""Text generation and adapter merging, in the server process, loading the ML stack on first use.

Each runs in a thread of its own, never on the event loop, once :class:`backend.services.admission.Admission`
lets it have the model: a desktop app generates for one user at a time, and one loaded model bounds
memory. The loaded (model, adapter, device) is kept until another one is asked for.

- A prompt, or chat ``messages``, is rendered with the model's own chat template (the documented
  default when it has none), exactly as training renders a conversation; generation stops at the
  template's end of turn as well as at the model's end-of-sequence tokens. ``raw`` sends a prompt as is.
- The device is CUDA, then MPS, then the CPU (or the one asked for); bfloat16 where the device has it.
- A model too big for the memory available is refused before it is loaded (507), never by an
  out-of-memory kill of the server.
- Setting ``cancel`` (the client left, or a streamed reader stalled) stops generation at the next token,
  and with it the hold on the model.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from backend import faults
from backend.errors import Conflict, InsufficientMemory
from backend.safe_io import check_tree_unlinked
from backend.services import chat
from backend.services.adapters import AdapterStore
from backend.services.admission import TokenChannel
from backend.services.data_dir import DataDir
from backend.services.model_folder import TORCH_DTYPE_BYTES, UNSAFE_PICKLE, UnsupportedModel, unsafe_pickle
from backend.services.models import ModelRegistry

log = logging.getLogger(__name__)

GENERATION_MEMORY_FACTOR = 1.15
MEMORY_MARGIN_BYTES = 128 << 20


@dataclass(frozen=True, kw_only=True)
class GenerationRequest:
    model: str
    adapter: str | None
    prompt: str | None
    input: str
    messages: tuple[chat.Message, ...] | None
    raw: bool  # send the prompt as is, without the chat template
    max_new_tokens: int
    temperature: float
    seed: int
    device: str


def resolve_generation(body: Mapping[str, Any], defaults: Mapping[str, Any]) -> GenerationRequest:
    """A request with every default filled, from ``defaults.json``'s ``generation`` table: the one place."""

    def pick(name: str) -> Any:
        return defaults[name] if body.get(name) is None else body[name]

    messages = body.get("messages")
    return GenerationRequest(
        model=body["model"], adapter=body.get("adapter"), prompt=body.get("prompt"), input=body.get("input") or "",
        messages=tuple({"role": m["role"], "content": m["content"]} for m in messages) if messages else None,
        raw=bool(body.get("raw")), max_new_tokens=pick("max_new_tokens"), temperature=pick("temperature"),
        seed=body.get("seed") or 0, device=pick("device"),
    )


@dataclass
class LoadedModel:
    key: tuple[str, str | None, str]
    network: Any
    tokenizer: Any
    render: chat.Render
    stop_ids: list[int]
    device: str
    dtype: str


def available_memory(device: str) -> int:
    if device == "cuda":
        import torch

        return int(torch.cuda.mem_get_info()[0])
    import psutil

    return int(psutil.virtual_memory().available)


def stop_token_ids(tokenizer: Any, network: Any, render: chat.Render) -> list[int]:
    """The end-of-sequence tokens, and the special token that ends an assistant turn in the template."""
    ids: list[int] = []
    configured = getattr(getattr(network, "generation_config", None), "eos_token_id", None)
    for value in (tokenizer.eos_token_id, configured):
        ids += value if isinstance(value, list) else [value] if isinstance(value, int) else []
    try:
        text = chat.end_of_turn_text(render).strip()
    except Exception:
        text = ""
    if text:
        first = tokenizer(text, add_special_tokens=False).input_ids[:1]
        special = set(tokenizer.all_special_ids) | set(getattr(tokenizer, "added_tokens_decoder", {}) or {})
        if first and first[0] in special:
            ids.append(first[0])
    return list(dict.fromkeys(ids))


class InferenceService:
    def __init__(self, models: ModelRegistry, adapters: AdapterStore, data_dir: DataDir):
        self.models = models
        self.adapters = adapters
        self.data_dir = data_dir
        self._lock = threading.Lock()  # the loaded model: one user of it at a time
        self._loaded: LoadedModel | None = None

    def check(self, request: GenerationRequest) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """Validate references before any heavy work (404 or 409 naming the field)."""
        model = self.models.get(request.model, field="model")
        adapter = self.adapters.get(request.adapter, field="adapter") if request.adapter else None
        if adapter is not None and adapter["base_model"] != model["id"]:
            raise Conflict(
                f"adapter {adapter['id']!r} was trained on {adapter['base_model']!r}, not {model['id']!r}",
                field="adapter", allowed=[adapter["base_model"]],
            )
        return model, adapter

    def _unload(self) -> None:
        if self._loaded is not None:
            self._loaded = None
            import gc

            gc.collect()

    def _load(self, model: dict[str, Any], adapter: dict[str, Any] | None, requested_device: str) -> LoadedModel:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from backend.services.devices import choose_device, choose_dtype, device_facts
        from backend.services.model_probe import chat_renderer

        facts = device_facts()
        device = choose_device(requested_device, facts)
        key = (model["id"], adapter["id"] if adapter else None, device)
        if self._loaded is not None and self._loaded.key == key:
            return self._loaded
        self._unload()
        dtype = choose_dtype("auto", device, facts)
        summary = self.models.summary(model)
        needed = int(summary.load_bytes(dtype) * GENERATION_MEMORY_FACTOR) + MEMORY_MARGIN_BYTES
        available = available_memory(device)
        if needed > available:
            raise InsufficientMemory(
                f"model {model['id']} needs about {needed / 2**30:.1f} GiB in {dtype} on {device} and "
                f"{available / 2**30:.1f} GiB is available: free memory, or use a smaller model")
        folder = self.models.folder(model)
        tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=False, local_files_only=True)
        try:
            network = AutoModelForCausalLM.from_pretrained(folder, dtype=getattr(torch, dtype),
                                                           trust_remote_code=False, local_files_only=True)
        except Exception as exc:
            if unsafe_pickle(exc):
                raise UnsupportedModel(f"model {model['id']!r} cannot be loaded: "
                                       + UNSAFE_PICKLE.format(file=summary.weight_files[0]), field="model") from exc
            raise
        if adapter is not None:
            from peft import PeftModel

            network = PeftModel.from_pretrained(network, self.adapters.folder(adapter))
        network.to(device)
        network.eval()
        render = chat_renderer(tokenizer)
        self._loaded = LoadedModel(key, network, tokenizer, render, stop_token_ids(tokenizer, network, render), device,
                                   dtype)
        return self._loaded

    @staticmethod
    def _prompt_ids(loaded: LoadedModel, request: GenerationRequest) -> list[int]:
        tokenizer = loaded.tokenizer
        if request.raw:
            return list(tokenizer(request.prompt or "").input_ids)
        messages = list(request.messages) if request.messages else chat.user_prompt(request.prompt or "", request.input)
        text = loaded.render(messages, True)
        bos = tokenizer.bos_token_id
        adds_bos = bos is not None and tokenizer("a").input_ids[:1] == [bos]
        encoded = chat.encode([(text, False)], lambda piece: list(tokenizer(piece, add_special_tokens=False).input_ids),
                              bos_id=bos if adds_bos else None, bos_token=tokenizer.bos_token,
                              max_length=1 << 30, train_on="completions")
        return encoded.input_ids

    def run(self, request: GenerationRequest, cancel: threading.Event,
            channel: TokenChannel | None = None) -> dict[str, Any]:
        """Generate (in the calling thread), stopping at the next token once ``cancel`` is set; with
        ``channel``, each piece of text goes there as it is decoded."""
        model, adapter = self.check(request)
        with self._lock:
            import torch
            from transformers import StoppingCriteria, StoppingCriteriaList, TextStreamer

            started = time.perf_counter()
            loaded = self._load(model, adapter, request.device)

            class StopWhenCancelled(StoppingCriteria):  # type: ignore[misc]  # transformers is Any to mypy here
                def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
                    return torch.full((input_ids.shape[0],), cancel.is_set(), dtype=torch.bool,
                                      device=input_ids.device)

            class ToChannel(TextStreamer):  # type: ignore[misc]  # transformers is Any to mypy here
                def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
                    if text and channel is not None:
                        channel.put(text)

            ids = self._prompt_ids(loaded, request)
            input_ids = torch.tensor([ids], dtype=torch.long, device=loaded.device)
            torch.manual_seed(request.seed)
            options: dict[str, Any] = {
                "max_new_tokens": request.max_new_tokens, "eos_token_id": loaded.stop_ids or None,
                "pad_token_id": loaded.tokenizer.pad_token_id or (loaded.stop_ids or [0])[0]}
            if request.temperature > 0:
                options.update(do_sample=True, temperature=request.temperature)
            else:
                options.update(do_sample=False, temperature=None, top_p=None, top_k=None)
            streamer = ToChannel(loaded.tokenizer, skip_prompt=True, skip_special_tokens=True) if channel else None
            with torch.no_grad():
                output = loaded.network.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
                                                 stopping_criteria=StoppingCriteriaList([StopWhenCancelled()]),
                                                 streamer=streamer, **options)
            new_tokens = output[0, len(ids):]
            return {
                "text": loaded.tokenizer.decode(new_tokens, skip_special_tokens=True),
                "prompt_tokens": len(ids),
                "new_tokens": int(new_tokens.shape[0]),
                "seconds": round(time.perf_counter() - started, 4),
                "model": request.model,
                "adapter": request.adapter,
                "device": loaded.device,
                "dtype": loaded.dtype,
                "stopped": "cancelled" if cancel.is_set() else "done",
            }

    def merge(self, adapter_id: str, new_model_id: str) -> dict[str, Any]:
        """Fold an adapter into its base model's weights and register the result as a new model."""
        adapter = self.adapters.get(adapter_id)
        self.models.check_new_id(new_model_id)
        base = self.models.get(adapter["base_model"])
        base_facts = self.models.facts(base)
        with self._lock:
            import torch
            from peft import PeftModel
            from transformers import AutoModelForCausalLM, AutoTokenizer

            self._unload()
            summary = self.models.summary(base)
            dtype = summary.weights_dtype if summary.weights_dtype in TORCH_DTYPE_BYTES else "float32"
            needed = int(summary.load_bytes(dtype) * GENERATION_MEMORY_FACTOR) + MEMORY_MARGIN_BYTES
            if needed > available_memory("cpu"):
                raise InsufficientMemory(f"merging into {base['id']} needs about {needed / 2**30:.1f} GiB in {dtype}; "
                                         "free memory and retry")
            folder = self.models.folder(base)
            network = AutoModelForCausalLM.from_pretrained(folder, dtype=getattr(torch, dtype), trust_remote_code=False,
                                                           local_files_only=True)
            merged = PeftModel.from_pretrained(network, self.adapters.folder(adapter)).merge_and_unload()
            target = self.data_dir.path("models", new_model_id)
            staging = self.data_dir.path("models", f"{new_model_id}.tmp")
            shutil.rmtree(staging, ignore_errors=True)
            merged.save_pretrained(staging)
            tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=False, local_files_only=True)
            tokenizer.save_pretrained(staging)
            faults.check("merge-stall")
            check_tree_unlinked(self.data_dir.root, staging)
            shutil.rmtree(target, ignore_errors=True)
            staging.rename(target)
        return self.models.register_merged(new_model_id, target, base_facts)

