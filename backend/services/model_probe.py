"""Can this model folder be trained here? Asked of transformers and peft in a child process.

The server never imports torch to answer a registration: it starts a *probe*, a ``multiprocessing``
spawn child of the same program (as a training worker is), which loads the folder's config and
tokenizer (``trust_remote_code=False``, always: no code from a model folder ever runs), builds the
model on the ``meta`` device (no weights are read, whatever the model's size), finds its linear layers,
wraps it in LoRA as training would, and reports:

- the model and config classes, the linear layers' names (what ``target_modules`` may name) and peft's
  default targets for the model type (``all-linear`` where peft has none);
- the tokenizer's class, whether it has a chat template, and the text that ends an assistant turn;
- what devices this machine's torch can use (:class:`backend.services.devices.DeviceFacts`).

Or it refuses, with one of the reasons in :data:`REFUSALS` and a message that names no content of the
folder's files. The child exits when done; nothing of the ML stack stays in the server.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import traceback
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from backend.services.devices import DeviceFacts
from backend.services.model_folder import UnsupportedModel

log = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 600.0
REFUSALS = {
    "needs_remote_code": "it needs trust_remote_code (code shipped in the model folder), which peft-engine never "
                         "runs; use a model that transformers supports natively",
    "unknown_model_type": "transformers {transformers} does not know its model type (it may need a newer "
                          "peft-engine, or code from the model folder, which peft-engine never runs)",
    "not_causal_lm": "a {config_class} model has no causal language-model head in transformers {transformers}; "
                     "peft-engine fine-tunes causal LMs (text generation models)",
    "peft_cannot_wrap": "peft {peft} cannot wrap it in LoRA ({error})",
    "tokenizer_missing_package": "its tokenizer needs the {package} package, which this build does not ship",
    "tokenizer_unloadable": "its tokenizer cannot be loaded with the packages this build ships ({error}); save a "
                            "tokenizer.json beside the model",
    "model_unbuildable": "transformers {transformers} cannot build it from its config ({error})",
}
MACHINE_FACTS = ("devices",)  # what depends on the machine the probe ran on, not on the folder
KNOWN_PACKAGES = ("sentencepiece", "protobuf", "tiktoken", "mistral_common", "jinja2", "blobfile")


class ProbeRefused(Exception):
    def __init__(self, reason: str, **details: str):
        super().__init__(reason)
        self.reason, self.details = reason, details


def _linear_leaf_names(model: Any) -> list[str]:
    import torch
    from transformers.pytorch_utils import Conv1D

    output = model.get_output_embeddings()
    names = set()
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear | Conv1D) and module is not output and name:
            names.add(name.rsplit(".", 1)[-1])
    return sorted(names)


def _tokenizer_facts(folder: str) -> dict[str, Any]:
    from transformers import AutoTokenizer

    from backend.services import chat

    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=False, local_files_only=True)
    except (ImportError, ModuleNotFoundError) as exc:
        text = str(exc).lower()
        package = next((name for name in KNOWN_PACKAGES if name in text), None)
        if package:
            raise ProbeRefused("tokenizer_missing_package", package=package) from exc
        raise ProbeRefused("tokenizer_unloadable", error=type(exc).__name__) from exc
    except ValueError as exc:
        if "trust_remote_code" in str(exc):
            raise ProbeRefused("needs_remote_code") from exc
        text = str(exc).lower()
        package = next((name for name in KNOWN_PACKAGES if name in text), None)
        if package:
            raise ProbeRefused("tokenizer_missing_package", package=package) from exc
        raise ProbeRefused("tokenizer_unloadable", error=type(exc).__name__) from exc
    except Exception as exc:
        raise ProbeRefused("tokenizer_unloadable", error=type(exc).__name__) from exc
    template = getattr(tokenizer, "chat_template", None)
    renderer = chat_renderer(tokenizer)
    try:
        end_of_turn: str | None = chat.end_of_turn_text(renderer)
    except Exception:  # a template that cannot render a plain exchange: the first job says so per record
        end_of_turn = None
    return {"tokenizer_class": type(tokenizer).__name__, "chat_template": bool(template),
            "end_of_turn": end_of_turn, "vocab_size": len(tokenizer)}


def chat_renderer(tokenizer: Any) -> Any:
    """``render(messages, add_generation_prompt) -> str`` with the tokenizer's own chat template, or the
    documented default when it has none; system turns are folded into the next user turn for a template
    that refuses them."""
    from backend.services import chat

    template = getattr(tokenizer, "chat_template", None) or chat.DEFAULT_CHAT_TEMPLATE

    def render(messages: list[dict[str, str]], add_generation_prompt: bool) -> str:
        try:
            text = tokenizer.apply_chat_template(messages, chat_template=template, tokenize=False,
                                                 add_generation_prompt=add_generation_prompt)
        except Exception:
            if not any(message["role"] == "system" for message in messages):
                raise
            text = tokenizer.apply_chat_template(chat.fold_system(messages), chat_template=template, tokenize=False,
                                                 add_generation_prompt=add_generation_prompt)
        return str(text)

    return render


def probe_folder(folder: str) -> dict[str, Any]:
    """The facts of a model folder; raises ProbeRefused with a reason from :data:`REFUSALS`."""
    import peft
    import torch
    import transformers
    from peft import LoraConfig, get_peft_model
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING
    from transformers import AutoConfig, AutoModelForCausalLM
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    from backend.services.devices import device_facts

    try:
        config = AutoConfig.from_pretrained(folder, trust_remote_code=False, local_files_only=True)
    except ValueError as exc:
        raise ProbeRefused("needs_remote_code" if "trust_remote_code" in str(exc) else "unknown_model_type") from exc
    except (KeyError, OSError) as exc:
        raise ProbeRefused("unknown_model_type") from exc
    if config.model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        raise ProbeRefused("not_causal_lm", config_class=type(config).__name__)
    try:
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(config, trust_remote_code=False)
    except Exception as exc:
        raise ProbeRefused("model_unbuildable", error=type(exc).__name__) from exc
    linear = _linear_leaf_names(model)
    default = TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING.get(config.model_type)
    try:
        get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=list(default) if default else "all-linear",
                                         task_type="CAUSAL_LM"))
    except Exception as exc:
        raise ProbeRefused("peft_cannot_wrap", error=f"{type(exc).__name__}") from exc
    return {
        "model_type": config.model_type, "config_class": type(config).__name__, "model_class": type(model).__name__,
        "linear_modules": linear, "default_target_modules": list(default) if default else "all-linear",
        **_tokenizer_facts(folder),
        "transformers": transformers.__version__, "peft": peft.__version__,
        "devices": device_facts().to_dict(),
    }


def portable(facts: dict[str, Any]) -> dict[str, Any]:
    """The facts that hold on any machine (what is cached per folder, and shipped for the bundled model)."""
    return {key: value for key, value in facts.items() if key not in MACHINE_FACTS}


def probe_main(folder: str | None, conn: Connection) -> None:
    """Entry point of the probe process: facts (or only the device facts when ``folder`` is None)."""
    from backend.bootstrap import prepare_process

    prepare_process()
    versions = ml_versions()
    try:
        if folder is None:
            from backend.services.devices import device_facts

            conn.send({"ok": True, "devices": device_facts().to_dict()})
        else:
            conn.send({"ok": True, "facts": probe_folder(folder)})
    except ProbeRefused as exc:
        conn.send({"ok": False, "reason": exc.reason, "details": exc.details, "versions": versions,
                   "traceback": traceback.format_exc()})
    except Exception as exc:
        conn.send({"ok": False, "reason": "model_unbuildable", "details": {"error": type(exc).__name__},
                   "versions": versions, "traceback": traceback.format_exc()})
    finally:
        conn.close()
    os._exit(0)  # skip torch's interpreter teardown: everything is sent


def ml_versions() -> dict[str, str]:
    from importlib import metadata

    found = {}
    for name in ("transformers", "peft"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "?"
    return found


def refusal_message(reason: str, details: dict[str, str], versions: dict[str, str]) -> str:
    template = REFUSALS.get(reason, REFUSALS["model_unbuildable"])
    values = {"transformers": versions.get("transformers", "?"), "peft": versions.get("peft", "?"),
              "error": "error", "package": "a package", "config_class": "this", **details}
    return template.format(**values)


class ProbeFailed(UnsupportedModel):
    """The probe process ended without an answer (killed, out of memory)."""


class ModelProber:
    """Runs probes, one at a time, each in a fresh child process."""

    def __init__(self, timeout_s: float = PROBE_TIMEOUT_S, versions: dict[str, str] | None = None):
        self.timeout_s = timeout_s
        self.versions = versions or {}
        self._context = multiprocessing.get_context("spawn")
        self._devices: DeviceFacts | None = None
        self._devices_lock = threading.Lock()

    def _run(self, folder: str | None) -> dict[str, Any]:
        receiver, sender = self._context.Pipe(duplex=False)
        process = self._context.Process(target=probe_main, args=(folder, sender), name="peft-model-probe",
                                        daemon=True)
        process.start()
        sender.close()
        try:
            if not receiver.poll(self.timeout_s):
                raise ProbeFailed(f"the model probe gave no answer within {self.timeout_s:.0f} s", field="path")
            answer: dict[str, Any] = receiver.recv()
        except EOFError as exc:
            process.join(5)
            raise ProbeFailed(f"the model probe exited with code {process.exitcode} before answering (out of "
                              "memory?); see the log", field="path") from exc
        finally:
            receiver.close()
            process.join(10)
            if process.is_alive():
                process.kill()
                process.join(5)
        return answer

    def probe(self, folder: Path, shown: str) -> dict[str, Any]:
        answer = self._run(str(folder))
        if answer["ok"]:
            facts: dict[str, Any] = answer["facts"]
            self.versions = {"transformers": facts["transformers"], "peft": facts["peft"]}
            self._devices = self._devices or DeviceFacts.from_dict(facts["devices"])
            return facts
        log.info("model probe of %s refused it (%s):\n%s", folder, answer["reason"], answer.get("traceback", ""))
        self.versions = answer.get("versions") or self.versions
        raise UnsupportedModel(f"{shown[:300]!r} cannot be trained: "
                               f"{refusal_message(answer['reason'], answer['details'], self.versions)}",
                               field="path")

    def devices(self) -> DeviceFacts:
        """What devices this machine's torch can use; asked once per server (a probe imports torch)."""
        with self._devices_lock:
            if self._devices is None:
                answer = self._run(None)
                if not answer["ok"]:
                    raise ProbeFailed("could not ask torch which devices this machine has; see the log")
                self._devices = DeviceFacts.from_dict(answer["devices"])
            return self._devices
