"""GGUF files as models: checked, dequantized once to an ordinary Hugging Face folder, and cached by content.

A GGUF file (llama.cpp's format) holds a model's weights, usually quantized, with its configuration, tokenizer and
chat template. transformers reads one (through the ``gguf`` package) and dequantizes it to an ordinary model, which
takes about half a minute for a 135M-parameter model on 2 cores. Doing that at every load would make a GGUF slower
to use than a folder, and a dequantized model held only in memory can't be handed to anything else (vLLM, a
``torchrun`` worker, ``PeftModel.from_pretrained``). So a GGUF is dequantized once into a safetensors folder under
the tailor cache, named by the file's SHA-256: every later load of the same bytes, under any name, is a folder load.

The folder is written under a temporary name and renamed into place when complete, under a file lock, so a kill
mid-write leaves no entry that a later load could take for finished. Before anything is read, the file is checked:
its magic bytes, that its tensors lie inside the file (a truncated download), an architecture transformers can
build, and quantization types the ``gguf`` package can dequantize; each failure is an error naming the file.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ...errors import TailorError
from ..files import file_sha256, writable_cache

GGUF_MAGIC = b"GGUF"
# Written last into a converted folder; a folder without it is never used (and is rebuilt).
MARKER = "tailor-gguf.json"
# Bump when what a converted folder holds changes, so old entries are rebuilt rather than trusted.
CONVERSION_VERSION = 1


@dataclass(frozen=True)
class GgufInfo:
    """What a checked GGUF file holds.

    Attributes:
        path: The file.
        architecture: ``general.architecture`` (e.g. ``llama``).
        name: ``general.name`` when present.
        tensor_types: The tensors' storage types (e.g. ``Q4_1``, ``F32``), sorted.
        tensors: How many tensors it holds.
    """

    path: Path
    architecture: str
    name: str | None
    tensor_types: tuple[str, ...]
    tensors: int


def gguf_file_in(path: Path) -> Path | None:
    """The GGUF file ``path`` names: ``path`` itself when it ends in ``.gguf`` or starts with GGUF's magic bytes, the
    one ``.gguf`` file of a folder that holds no ``config.json``, else None.

    Raises:
        TailorError: the folder holds several GGUF files (which one is meant can't be guessed).
    """
    if path.is_file():
        return path if path.suffix.lower() == ".gguf" or _starts_with_magic(path) else None
    if not path.is_dir() or (path / "config.json").is_file():
        return None
    found = sorted(p for p in path.iterdir() if p.suffix.lower() == ".gguf" and p.is_file())
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise TailorError(f"model.name: {path} holds {len(found)} GGUF files ({names}); name the one to use")
    return found[0] if found else None


def _starts_with_magic(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            return f.read(4) == GGUF_MAGIC
    except OSError:
        return False


def check_gguf(path: Path) -> GgufInfo:
    """Read ``path``'s header and tensor table and check that tailor can dequantize and build it.

    Raises:
        TailorError: naming the file: it is not a GGUF file, it is truncated or corrupt, its architecture is not
            one transformers builds from GGUF, or a tensor's quantization type can't be dequantized.
    """
    with path.open("rb") as f:
        head = f.read(4)
    if head != GGUF_MAGIC:
        raise TailorError(
            f"model.name: {path} is not a GGUF file: it starts with {head!r}, not the magic bytes b'GGUF' "
            "(a model is a GGUF file, a Hugging Face folder or a hub id)"
        )
    from gguf import GGUFReader

    try:
        reader = GGUFReader(str(path))
    except Exception as exc:  # the reader's own errors (struct, value, index) all mean a damaged header
        raise TailorError(
            f"model.name: {path} is a truncated or corrupt GGUF file (its header can't be read: {exc})"
        ) from None
    size = path.stat().st_size
    end = max((t.data_offset + int(t.n_bytes) for t in reader.tensors), default=0)
    if end > size or not reader.tensors:
        what = f"its tensors end at byte {end:,} but the file has {size:,}" if reader.tensors else "it has no tensors"
        raise TailorError(f"model.name: {path} is a truncated or corrupt GGUF file ({what}); download it again")
    architecture = _field_text(reader, "general.architecture")
    if architecture is None:
        raise TailorError(f"model.name: {path} is a corrupt GGUF file: it has no general.architecture field")
    supported = supported_architectures()
    if architecture not in supported:
        raise TailorError(
            f"model.name: {path} is a GGUF model of architecture {architecture!r}, which transformers can't build "
            f"from GGUF; supported: {', '.join(sorted(supported))}"
        )
    types = sorted({t.tensor_type.name for t in reader.tensors})
    bad = [name for name in types if not _can_dequantize(name)]
    if bad:
        raise TailorError(
            f"model.name: {path} stores tensors as {', '.join(bad)}, which the gguf package can't dequantize; "
            f"supported: {', '.join(dequantizable_types())}"
        )
    return GgufInfo(path, architecture, _field_text(reader, "general.name"), tuple(types), len(reader.tensors))


def _field_text(reader, key: str) -> str | None:
    field = reader.fields.get(key)
    if field is None or not field.data:
        return None
    return bytes(field.parts[field.data[0]]).decode("utf-8", errors="replace")


# Entries of transformers' GGUF table that are not architectures, and encoder-decoders (tailor converts causal LMs)
_NOT_CAUSAL = {"general", "tokenizer", "t5", "umt5", "t5encoder"}


def supported_architectures() -> set[str]:
    """GGUF architectures of causal LMs that transformers builds a model from (its own table, so the set grows with
    transformers)."""
    from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES

    # transformers names a few differently from llama.cpp (qwen2_moe for qwen2moe, ...): both spellings are accepted
    names = set(GGUF_SUPPORTED_ARCHITECTURES) | {a.replace("_", "") for a in GGUF_SUPPORTED_ARCHITECTURES}
    return names - _NOT_CAUSAL


def _can_dequantize(type_name: str) -> bool:
    """Whether the gguf package dequantizes ``type_name``: tried on one zero block of that type (the package has no
    public list of what it implements)."""
    import numpy as np
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType
    from gguf.quants import dequantize

    qtype = GGMLQuantizationType[type_name]
    _, type_size = GGML_QUANT_SIZES[qtype]
    try:
        dequantize(np.zeros(type_size, dtype=np.uint8), qtype)
    except NotImplementedError:
        return False
    return True


def dequantizable_types() -> list[str]:
    from gguf import GGML_QUANT_SIZES

    return sorted(q.name for q in GGML_QUANT_SIZES if _can_dequantize(q.name))


def converted_folder(path: Path, cache: Path, announce: Callable[[str], None] | None = None) -> Path:
    """The Hugging Face folder (safetensors, float32, tokenizer and chat template) dequantized from the GGUF file
    ``path``: under ``cache/gguf/``, named by the file's SHA-256; converted now if it isn't there yet (``announce``
    is told so first: it takes a while).

    Raises:
        TailorError: the file fails :func:`check_gguf`, or the conversion fails (naming the file).
    """
    sha = file_sha256(path)
    final = cache / "gguf" / sha[:32]
    if _complete(final, sha):
        return final
    info = check_gguf(path)
    from filelock import FileLock

    writable_cache(final.parent, f"model.name: the model dequantized from {path.name}")
    with FileLock(str(final) + ".lock"):
        if _complete(final, sha):  # another process converted it while this one waited
            return final
        if final.exists():  # an entry without its marker: never trusted
            shutil.rmtree(final)
        partial = final.with_name(f"{final.name}.partial-{os.getpid()}")
        shutil.rmtree(partial, ignore_errors=True)
        if announce is not None:
            announce(f"dequantizing {path.name} to a transformers model, once (cached in {final})")
        try:
            _convert(info, partial)
            (partial / MARKER).write_text(json.dumps(_marker(info, sha), indent=2) + "\n")
            os.replace(partial, final)
        finally:
            shutil.rmtree(partial, ignore_errors=True)
    return final


def _complete(folder: Path, sha: str) -> bool:
    try:
        marker = json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return False
    return marker.get("sha256") == sha and marker.get("conversion") == CONVERSION_VERSION


def _marker(info: GgufInfo, sha: str) -> dict:
    import transformers

    return {
        "conversion": CONVERSION_VERSION,
        "sha256": sha,
        "source_file": info.path.name,
        "architecture": info.architecture,
        "name": info.name,
        "tensor_types": list(info.tensor_types),
        "transformers": transformers.__version__,
    }


@contextmanager
def _dequantize_bar_off() -> Iterator[None]:
    """transformers 5.x draws its GGUF dequantization bar with a bare tqdm that its own progress-bar switch does not
    reach, so it prints 272 updates into a log; tailor already says "dequantizing … once". A disabled tqdm replaces it
    for the block (the module attribute only; nothing else changes)."""
    from functools import partial

    from tqdm.auto import tqdm
    from transformers import modeling_gguf_pytorch_utils as gguf_utils

    was = gguf_utils.tqdm
    gguf_utils.tqdm = partial(tqdm, disable=True)
    try:
        yield
    finally:
        gguf_utils.tqdm = was


def _convert(info: GgufInfo, out: Path) -> None:
    """Dequantize ``info.path`` with transformers and save an ordinary model folder to ``out``.

    transformers marks a model loaded from GGUF as quantized and refuses to save it; the weights it holds are already
    plain float32 tensors, so they go into a model built from the same configuration without the quantization entry.
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from .hf import library_bars_off, transformers_quiet

    folder, name = str(info.path.parent), info.path.name
    try:
        with library_bars_off(), transformers_quiet(), _dequantize_bar_off():
            tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
            loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
            config = AutoConfig.from_pretrained(folder, gguf_file=name)
            if hasattr(config, "quantization_config"):
                del config.quantization_config
            model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
            model.load_state_dict(loaded.state_dict(), strict=True)
            model.generation_config = loaded.generation_config
            model.save_pretrained(out)
            tokenizer.save_pretrained(out)
    except Exception as exc:
        raise TailorError(
            f"model.name: converting the GGUF file {info.path} to a transformers model failed: {exc}"
        ) from None
