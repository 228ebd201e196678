"""What a model folder holds, read without torch and without running anything from it.

The server reads only what it must, each file through :mod:`backend.safe_io` with a limit:
``config.json`` (1 MiB), the safetensors headers (their own 100 MiB limit) and a sharded index. From
them come the model type, the weights' format, dtype, size and parameter count (so a model too big for
the memory available is refused before anything loads it), the tokenizer files present, and a
fingerprint that changes when any of those files does (what the probe's cached facts are keyed by).

Whatever makes a folder unusable before it is known to be a model folder (it does not exist, is not a
folder, cannot be read, has no ``config.json``, or one that is too big, not JSON or names no model type)
gets one message, :data:`NOT_A_MODEL_FOLDER`, and nothing from the files is echoed: an answer must not
tell a client what another file holds, or whether some path exists.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import struct
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from backend.errors import Conflict, NotFound, PayloadTooLarge
from backend.safe_io import NotARegularFile, read_bounded, regular_file_size

CONFIG_LIMIT = 1 << 20
INDEX_LIMIT = 16 << 20
SAFETENSORS_HEADER_LIMIT = 100 << 20  # safetensors' own limit

SAFETENSORS = "model.safetensors"
SAFETENSORS_INDEX = "model.safetensors.index.json"
PICKLE = "pytorch_model.bin"
PICKLE_INDEX = "pytorch_model.bin.index.json"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "merges.txt", "vocab.txt",
                   "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja", "tekken.json")
FINGERPRINTED = ("config.json", "generation_config.json", *TOKENIZER_FILES)

NOT_A_MODEL_FOLDER = ("{path!r} is not a model folder: pick the folder that save_pretrained wrote (it holds "
                      "config.json, the weights and the tokenizer)")

# bytes per element of each safetensors dtype
DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1,
               "F8_E4M3": 1, "F8_E5M2": 1, "U16": 2, "U32": 4, "U64": 8}
DTYPE_NAMES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16", "F8_E4M3": "float8_e4m3fn",
               "F8_E5M2": "float8_e5m2"}
TORCH_DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2, "float64": 8}

WeightFormat = Literal["safetensors", "sharded-safetensors", "pickle", "sharded-pickle"]


class NotAModelFolder(NotFound):
    """No model folder at the path, whatever the reason (404: nothing there this server can use)."""

    code = "not_a_model_folder"

    def __init__(self, path: str):
        super().__init__(NOT_A_MODEL_FOLDER.format(path=path[:300]), field="path")


class UnsupportedModel(Conflict):
    """A model folder that cannot be trained here; the message says why and what to do."""

    code = "unsupported_model"


@dataclass(frozen=True, kw_only=True)
class FolderSummary:
    path: Path
    model_type: str
    weight_format: WeightFormat
    weight_files: tuple[str, ...]
    weight_bytes: int  # on disk
    parameters: int | None  # from the safetensors headers (None for pickle checkpoints)
    weights_dtype: str | None  # the dtype holding most parameters, as torch names it
    tokenizer_files: tuple[str, ...]
    fingerprint: str

    def load_bytes(self, dtype: str) -> int:
        """Bytes the weights take once loaded in ``dtype`` (the file size when the count is unknown)."""
        if self.parameters is None:
            return self.weight_bytes
        return self.parameters * TORCH_DTYPE_BYTES.get(dtype, 4)

    def to_dict(self) -> dict[str, Any]:
        return {"model_type": self.model_type, "weight_format": self.weight_format,
                "weight_files": list(self.weight_files), "weight_bytes": self.weight_bytes,
                "parameters": self.parameters, "weights_dtype": self.weights_dtype,
                "tokenizer_files": list(self.tokenizer_files)}


def read_json(path: Path, limit: int, what: str) -> Any:
    data = read_bounded(path, limit, what)
    return json.loads(data.decode("utf-8"))


def read_config(folder: Path, shown: str) -> dict[str, Any]:
    try:
        config = read_json(folder / "config.json", CONFIG_LIMIT, "config")
    except (OSError, ValueError, NotARegularFile, PayloadTooLarge) as exc:  # UnicodeDecodeError is a ValueError
        raise NotAModelFolder(shown) from exc
    if not isinstance(config, dict) or not isinstance(config.get("model_type"), str) or not config["model_type"]:
        raise NotAModelFolder(shown)
    return config


def safetensors_header(path: Path) -> dict[str, Any]:
    """The JSON header of a safetensors file: tensor names → dtype, shape, offsets (the data is not read)."""
    size = regular_file_size(path)
    descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    with os.fdopen(descriptor, "rb") as handle:
        prefix = handle.read(8)
        if len(prefix) != 8:
            raise ValueError("shorter than a safetensors header")
        (length,) = struct.unpack("<Q", prefix)
        if length > min(SAFETENSORS_HEADER_LIMIT, size - 8):
            raise ValueError("safetensors header larger than the file or its limit")
        header = json.loads(handle.read(length).decode("utf-8"))
    if not isinstance(header, dict):
        raise ValueError("safetensors header is not an object")
    return header


def tensor_counts(headers: list[dict[str, Any]]) -> tuple[int, str | None]:
    """(parameters, the dtype holding most of them) over safetensors headers."""
    per_dtype: Counter[str] = Counter()
    for header in headers:
        for name, entry in header.items():
            if name == "__metadata__" or not isinstance(entry, dict):
                continue
            shape = entry.get("shape", [])
            if not isinstance(shape, list) or not all(isinstance(n, int) and n >= 0 for n in shape):
                raise ValueError("a tensor with an invalid shape")
            per_dtype[str(entry.get("dtype"))] += math.prod(shape)
    if not per_dtype:
        return 0, None
    commonest = per_dtype.most_common(1)[0][0]
    return sum(per_dtype.values()), DTYPE_NAMES.get(commonest, commonest.lower())


def weights_of(folder: Path) -> tuple[WeightFormat, tuple[str, ...], int | None, str | None]:
    """The weight files transformers would load (safetensors first, as it does), with the parameter count
    and dtype where the format says so without unpickling anything."""
    index = folder / SAFETENSORS_INDEX
    if (folder / SAFETENSORS).is_file():
        header = safetensors_header(folder / SAFETENSORS)
        return "safetensors", (SAFETENSORS,), *tensor_counts([header])
    if index.is_file():
        files = _index_files(index)
        headers = [safetensors_header(folder / name) for name in files]
        return "sharded-safetensors", files, *tensor_counts(headers)
    if (folder / PICKLE).is_file():
        return "pickle", (PICKLE,), None, None
    if (folder / PICKLE_INDEX).is_file():
        return "sharded-pickle", _index_files(folder / PICKLE_INDEX), None, None
    raise UnsupportedModel(f"{str(folder)[:300]!r} holds no weights: peft-engine loads {SAFETENSORS}, a sharded "
                           f"{SAFETENSORS_INDEX}, or {PICKLE} (read with torch's weights-only loader)", field="path")


def _index_files(index: Path) -> tuple[str, ...]:
    data = read_json(index, INDEX_LIMIT, "weight index")
    weight_map = data.get("weight_map") if isinstance(data, dict) else None
    if not isinstance(weight_map, dict) or not weight_map:
        raise ValueError("the weight index has no weight_map")
    files = sorted({str(name) for name in weight_map.values()})
    if any("/" in name or "\\" in name or name.startswith(".") for name in files):
        raise ValueError("the weight index names a file outside the folder")
    return tuple(files)


def fingerprint(folder: Path, names: tuple[str, ...]) -> str:
    digest = hashlib.sha256()
    for name in sorted(set(names)):
        try:
            status = (folder / name).stat()
        except OSError:
            continue
        digest.update(f"{name}\0{status.st_size}\0{status.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:32]


def inspect_folder(folder: Path, shown: str | None = None) -> FolderSummary:
    """Everything the server learns of a model folder before any ML code sees it. ``shown``: how the
    folder is named in messages (what the client sent)."""
    shown = shown if shown is not None else str(folder)
    try:
        is_folder = folder.is_dir()
    except (OSError, ValueError):
        is_folder = False
    if not is_folder:
        raise NotAModelFolder(shown)
    config = read_config(folder, shown)
    try:
        weight_format, files, parameters, dtype = weights_of(folder)
        weight_bytes = sum(regular_file_size(folder / name) for name in files)
    except UnsupportedModel:
        raise
    except (OSError, ValueError, NotARegularFile, PayloadTooLarge) as exc:
        raise UnsupportedModel(f"the weights in {shown[:300]!r} cannot be read: they are incomplete or damaged "
                               "(save the model again with save_pretrained)", field="path") from exc
    tokenizer = tuple(name for name in TOKENIZER_FILES if (folder / name).is_file())
    if not any(name in tokenizer for name in ("tokenizer.json", "tokenizer.model", "vocab.json", "vocab.txt",
                                               "tekken.json")):
        raise UnsupportedModel(f"{shown[:300]!r} holds no tokenizer (tokenizer.json, tokenizer.model or vocab.json): "
                               "save the tokenizer beside the model with tokenizer.save_pretrained", field="path")
    if dtype is None and isinstance(config.get("torch_dtype", config.get("dtype")), str):
        dtype = str(config.get("torch_dtype", config.get("dtype")))
    return FolderSummary(path=folder, model_type=config["model_type"], weight_format=weight_format,
                         weight_files=files, weight_bytes=weight_bytes, parameters=parameters, weights_dtype=dtype,
                         tokenizer_files=tokenizer, fingerprint=fingerprint(folder, (*FINGERPRINTED, *files)))


UNSAFE_PICKLE = ("its {file} is a pickle that holds more than weights; peft-engine loads pickles only with torch's "
                 "weights-only loader, which refuses it (nothing in it ran): convert the checkpoint to safetensors")


def unsafe_pickle(exc: BaseException) -> bool:
    """Whether loading failed because torch's weights-only unpickler refused a checkpoint."""
    current: BaseException | None = exc
    while current is not None:
        if type(current).__name__ == "UnpicklingError" or "Weights only load failed" in str(current):
            return True
        current = current.__cause__ or current.__context__
    return False
