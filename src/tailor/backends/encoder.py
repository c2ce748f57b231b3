"""Sentence-encoder backend: embeddings from a sentence-transformers model, cached per run.

Several methods (zero-shot, few-shot, head) embed the same texts with the same frozen encoder;
the cache makes the second and later ones nearly free, so the comparison costs what it should.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from ..config import ModelSpec
from ..progress import NULL_PROGRESS, Progress
from .models import best_device, resolve_path

_CHUNK = 256


class Encoder:
    """A sentence encoder with an embedding cache keyed by text. Embeddings are L2-normalized."""

    def __init__(self, model: Any, batch_size: int = 64, cache: bool = True):
        self.model = model
        self.batch_size = batch_size
        self._cache: dict[str, np.ndarray] | None = {} if cache else None
        self._bypass = False

    @contextmanager
    def cache_disabled(self) -> Iterator[None]:
        """Within this block every text is embedded afresh (used to time inference fairly)."""
        self._bypass, before = True, self._bypass
        try:
            yield
        finally:
            self._bypass = before

    @classmethod
    def from_spec(cls, spec: ModelSpec, name_or_path: str | None = None) -> Encoder:
        from sentence_transformers import SentenceTransformer

        from .hf import library_bars_off

        path = name_or_path or resolve_path(spec.name)
        with library_bars_off():
            model = SentenceTransformer(path, device=best_device(spec.device), trust_remote_code=spec.trust_remote_code)
        if spec.max_length:
            model.max_seq_length = spec.max_length
        return cls(model, batch_size=spec.batch_size)

    @property
    def dim(self) -> int:
        return int(self.model.get_sentence_embedding_dimension())

    def embed(self, texts: Sequence[str], progress: Progress = NULL_PROGRESS, what: str = "embedding") -> np.ndarray:
        """Embeddings of ``texts`` as a float32 array (n, dim), rows L2-normalized."""
        cache = None if self._bypass else self._cache
        todo = list(dict.fromkeys(t for t in texts if cache is None or t not in cache))
        fresh: dict[str, np.ndarray] = {}
        if todo:
            with progress.bar(what, len(todo)) as bar:
                for start in range(0, len(todo), _CHUNK):
                    chunk = todo[start : start + _CHUNK]
                    vecs = self.model.encode(
                        chunk,
                        batch_size=self.batch_size,
                        convert_to_numpy=True,
                        normalize_embeddings=True,
                        show_progress_bar=False,
                    )
                    fresh.update(zip(chunk, vecs.astype(np.float32)))
                    bar.advance(len(chunk))
            if cache is not None:
                cache.update(fresh)
        lookup = cache if cache is not None else fresh
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([lookup[t] for t in texts])


def shared_encoder(spec: ModelSpec, resources: dict[str, Any]) -> Encoder:
    """The run's one frozen encoder for ``spec``, loaded on first use."""
    key = f"encoder:{spec.name}"
    if key not in resources:
        resources[key] = Encoder.from_spec(spec)
    return resources[key]
