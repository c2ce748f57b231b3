"""Model backends: how tailor loads and runs a base model. Heavy libraries are imported lazily.

:data:`SHARED` maps a model kind to the loader of the run's one shared, frozen copy of the base
model. The runner loads it before any method starts, so no method's adapt time includes it.
"""

from __future__ import annotations

import importlib
from typing import Any

from ..config import ModelSpec

SHARED: dict[str, str] = {
    "encoder": "tailor.backends.encoder:shared_encoder",
    "causal": "tailor.backends.lm:shared_lm",
    "seq2seq": "tailor.backends.lm:shared_lm",
}


def load_shared(kind: str, spec: ModelSpec, resources: dict[str, Any]) -> Any | None:
    """Load the shared base model for ``kind`` into ``resources`` (None when the kind has no shared model)."""
    if kind not in SHARED:
        return None
    module, func = SHARED[kind].split(":")
    return getattr(importlib.import_module(module), func)(spec, resources)
