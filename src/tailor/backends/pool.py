"""The run's models: each distinct model loaded once, shared by every method that names it.

Methods never load a frozen model themselves; they ask the pool for the backend of their ``model:``. The runner
loads every model the methods need before the first method starts, so no method's adapt time includes loading.
Fine-tuning methods load their own copy to train (they must not change the shared one).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from ..config.task import ModelSpec
from . import backend_kind
from .models import count_parameters, model_kind
from .protocol import Capabilities, EncoderBackend, GenerativeBackend


def model_key(spec: ModelSpec) -> str:
    """Two specs name the same loaded model when every key of theirs is equal."""
    return json.dumps(spec.model_dump(mode="json"), sort_keys=True)


class ModelPool:
    """Loaded backends by model spec, loaded on first use.

    Attributes:
        load_seconds: Seconds each model took to load, by model name.
    """

    def __init__(self) -> None:
        self._backends: dict[str, GenerativeBackend | EncoderBackend] = {}
        self._roles: dict[str, str] = {}  # each loaded backend's role, as its kind declares it
        self._kinds: dict[str, str] = {}
        self._params: dict[str, int | None] = {}
        self.load_seconds: dict[str, float] = {}

    def kind(self, spec: ModelSpec) -> str:
        """The model's kind (``auto`` read from its configuration once)."""
        key = model_key(spec)
        if key not in self._kinds:
            self._kinds[key] = model_kind(spec)
        return self._kinds[key]

    def capabilities(self, spec: ModelSpec) -> Capabilities:
        """What the model's backend can do: a loaded generative backend's own (a served model's probes, a fake's
        script), else what its kind knows without loading it."""
        key = model_key(spec)
        backend = self._backends.get(key)
        if backend is not None and self._roles[key] == "generative":
            return backend.capabilities
        return backend_kind(self.kind(spec)).capabilities(spec)

    def parameters(self, spec: ModelSpec) -> int | None:
        """The model's parameter count: the loaded backend's, or counted from its configuration without weights."""
        key = model_key(spec)
        if key in self._backends and self._backends[key].parameters is not None:
            return int(self._backends[key].parameters)
        if key not in self._params:
            self._params[key] = count_parameters(spec, self.kind(spec))
        return self._params[key]

    def get(self, spec: ModelSpec) -> Any:
        """The backend of ``spec`` (a :class:`GenerativeBackend` or an :class:`EncoderBackend`, as its kind's role
        says), loaded on first use."""
        key = model_key(spec)
        if key not in self._backends:
            t0 = time.perf_counter()
            kind = backend_kind(self.kind(spec))
            self._backends[key], self._roles[key] = kind.load(spec), kind.role
            self.load_seconds[spec.name] = time.perf_counter() - t0
        return self._backends[key]

    def put(self, spec: ModelSpec, backend: GenerativeBackend | EncoderBackend) -> None:
        """Use ``backend`` for ``spec`` (e.g. a scripted fake in tests) instead of loading one."""
        key = model_key(spec)
        self._backends[key], self._roles[key] = backend, backend_kind(self.kind(spec)).role

    def loaded(self) -> bool:
        return bool(self._backends)

    @contextmanager
    def cache_disabled(self) -> Iterator[None]:
        """Bypass every encoder's embedding cache for the block (costs are timed cold). A generative backend keeps
        no cache of its own to bypass: a served model's response cache is the user's choice (``endpoint.cache``)."""
        with ExitStack() as stack:
            for key, backend in self._backends.items():
                if self._roles[key] == "encoder":
                    stack.enter_context(backend.cache_disabled())
            yield
