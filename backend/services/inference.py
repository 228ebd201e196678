"""Text generation and adapter merging, in the server process, loading the ML stack on first use.

Both run in a worker thread (never on the event loop) behind one lock: a desktop app generates for one
user at a time, and one loaded model at a time bounds memory. The loaded (model, adapter) pair is kept
until a different one is asked for.
"""

from __future__ import annotations

import queue
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backend.errors import InvalidInput
from backend.names import path_inside
from backend.services.adapters import AdapterStore
from backend.services.models import ModelRegistry
from backend.services.prompting import format_prompt

STREAM_TOKEN_TIMEOUT_S = 60  # a streamed generation with no new token for this long has failed


@dataclass(frozen=True, kw_only=True)
class GenerationRequest:
    model: str
    adapter: str | None
    prompt: str
    input: str
    max_new_tokens: int
    temperature: float
    seed: int
    raw: bool  # use the prompt as is instead of the instruction template


class InferenceService:
    def __init__(self, models: ModelRegistry, adapters: AdapterStore, merged_folder: Path):
        self.models = models
        self.adapters = adapters
        self.merged_folder = merged_folder
        self._lock = threading.Lock()
        self._loaded_key: tuple[str, str | None] | None = None
        self._loaded: tuple[Any, Any] | None = None

    def check(self, request: GenerationRequest) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """Validate references before any heavy work (raises InvalidInput naming the field)."""
        model = self.models.get(request.model, field="model")
        adapter = self.adapters.get(request.adapter, field="adapter") if request.adapter else None
        if adapter is not None and adapter["base_model"] != model["id"]:
            raise InvalidInput(
                f"adapter {adapter['id']!r} was trained on {adapter['base_model']!r}, not {model['id']!r}",
                field="adapter", allowed=[adapter["base_model"]],
            )
        return model, adapter

    def _load(self, model: dict[str, Any], adapter: dict[str, Any] | None) -> tuple[Any, Any]:
        key = (model["id"], adapter["id"] if adapter else None)
        if self._loaded_key == key and self._loaded is not None:
            return self._loaded
        self._loaded = None
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(model["path"])
        network = AutoModelForCausalLM.from_pretrained(model["path"], dtype=torch.float32)
        if adapter is not None:
            from peft import PeftModel

            network = PeftModel.from_pretrained(network, adapter["path"])
        network.eval()
        self._loaded_key, self._loaded = key, (network, tokenizer)
        return self._loaded

    def _inputs(self, request: GenerationRequest) -> tuple[Any, Any, dict[str, Any]]:
        import torch

        model, adapter = self.check(request)
        network, tokenizer = self._load(model, adapter)
        text = request.prompt if request.raw else format_prompt(request.prompt, request.input)
        encoded = tokenizer(text, return_tensors="pt")
        torch.manual_seed(request.seed)
        options: dict[str, Any] = {
            "max_new_tokens": request.max_new_tokens,
            "pad_token_id": tokenizer.pad_token_id,
            "eos_token_id": tokenizer.eos_token_id,
        }
        if request.temperature > 0:
            options.update(do_sample=True, temperature=request.temperature)
        else:
            options.update(do_sample=False)
        return network, tokenizer, {**encoded, **options}

    def generate(self, request: GenerationRequest) -> dict[str, Any]:
        with self._lock:
            started = time.perf_counter()
            import torch

            network, tokenizer, arguments = self._inputs(request)
            prompt_tokens = arguments["input_ids"].shape[1]
            with torch.no_grad():
                output = network.generate(**arguments)
            new_tokens = output[0, prompt_tokens:]
            return {
                "text": tokenizer.decode(new_tokens, skip_special_tokens=True),
                "prompt_tokens": int(prompt_tokens),
                "new_tokens": int(new_tokens.shape[0]),
                "seconds": round(time.perf_counter() - started, 4),
                "model": request.model,
                "adapter": request.adapter,
            }

    def stream(self, request: GenerationRequest, cancel: threading.Event) -> Iterator[str]:
        """Yield decoded text pieces as they are generated.

        A helper thread holds the model lock while it loads, seeds and generates; this generator only
        reads what it produces, and holds nothing. Setting ``cancel`` (the client went away, or stopped
        reading) ends generation at the next token, and with it the lock: an abandoned stream must
        never keep the model from every later request."""
        handoff: queue.Queue[Any] = queue.Queue(maxsize=1)  # the streamer, or what failed before it
        failure: list[BaseException] = []

        def run() -> None:
            streamer = None
            try:
                with self._lock:
                    import torch
                    from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

                    class StopWhenCancelled(StoppingCriteria):
                        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
                            return torch.full((input_ids.shape[0],), cancel.is_set(), dtype=torch.bool,
                                              device=input_ids.device)

                    network, tokenizer, arguments = self._inputs(request)
                    streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True,
                                                    timeout=STREAM_TOKEN_TIMEOUT_S)
                    handoff.put(streamer)
                    with torch.no_grad():
                        network.generate(**arguments, streamer=streamer,
                                         stopping_criteria=StoppingCriteriaList([StopWhenCancelled()]))
            except BaseException as exc:  # reported to the reader, never lost in this thread
                failure.append(exc)
                if streamer is None:
                    handoff.put(exc)
                else:
                    streamer.end()  # the reader stops waiting for tokens

        threading.Thread(target=run, name="generate", daemon=True).start()
        streamer = handoff.get()
        if isinstance(streamer, BaseException):
            raise streamer
        try:
            yield from (piece for piece in streamer if piece)
        finally:
            cancel.set()  # a reader that stops early (closed, or an error) stops the generation too
        if failure:
            raise failure[0]

    def merge(self, adapter_id: str, new_model_id: str) -> dict[str, Any]:
        """Fold an adapter into its base model's weights and register the result as a new model."""
        adapter = self.adapters.get(adapter_id)
        self.models.check_new_id(new_model_id)
        base = self.models.get(adapter["base_model"])
        with self._lock:
            import torch
            from peft import PeftModel
            from transformers import AutoModelForCausalLM, AutoTokenizer

            network = AutoModelForCausalLM.from_pretrained(base["path"], dtype=torch.float32)
            merged = PeftModel.from_pretrained(network, adapter["path"]).merge_and_unload()
            target = path_inside(self.merged_folder, new_model_id)
            staging = target.with_name(target.name + ".tmp")
            shutil.rmtree(staging, ignore_errors=True)
            merged.save_pretrained(staging)
            AutoTokenizer.from_pretrained(base["path"]).save_pretrained(staging)
            shutil.rmtree(target, ignore_errors=True)
            staging.rename(target)
        return self.models.register(new_model_id, target, source="merged")
