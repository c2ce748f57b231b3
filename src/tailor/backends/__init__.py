"""Model backends: how tailor loads and runs a model, one registry row per model kind.

:data:`BACKENDS` maps a model kind (``model.kind`` in a task file, or what ``auto`` reads from the model's folder)
to the module object that loads it (a :class:`BackendKind`). Values are ``module:attribute`` strings so that
importing tailor loads no heavy library; adding a backend is adding a file and a row here. What a loaded backend
offers is the contract of :mod:`tailor.backends.protocol`.
"""

from __future__ import annotations

import importlib
from typing import Any, Literal, Protocol

from ..config.task import ModelSpec
from .protocol import Capabilities

BACKENDS: dict[str, str] = {
    "encoder": "tailor.backends.local.encoder:KIND",
    "causal": "tailor.backends.local.lm:KIND",
    "seq2seq": "tailor.backends.local.lm:KIND",
    "scripted": "tailor.testing.scripted:KIND",
    "endpoint": "tailor.backends.served.endpoint:KIND",
}


class BackendKind(Protocol):
    """How one kind of model is loaded, and what it can do before it is loaded."""

    role: Literal["generative", "encoder"]

    def capabilities(self, spec: ModelSpec) -> Capabilities:
        """What a backend of this kind for ``spec`` can do, known without loading the weights."""
        ...

    def load(self, spec: ModelSpec) -> Any:
        """The loaded backend (a GenerativeBackend or an EncoderBackend)."""
        ...


def backend_kind(kind: str) -> BackendKind:
    from ..errors import TailorError

    if kind not in BACKENDS:
        raise TailorError(f"no backend for model kind {kind!r}; kinds: {', '.join(BACKENDS)}")
    module, attr = BACKENDS[kind].split(":")
    return getattr(importlib.import_module(module), attr)
