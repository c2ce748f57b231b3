"""Sentence-encoder backend: embeddings from a sentence-transformers model, cached per run.

Several methods (zero-shot, few-shot, head) embed the same texts with the same frozen encoder;
the cache makes the second and later ones nearly free, so the comparison costs what it should.
Whatever the cache saves, :meth:`Encoder.usage_of` counts what a text costs to embed (see
:mod:`tailor.costs.usage`): its tokens, truncated as the model truncates them, through the transformer.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar, Literal

import numpy as np

from ...config.task import ModelSpec
from ...costs.usage import Usage, params_per_token, query_usage
from ...progress import NULL_PROGRESS, Progress
from ..models import best_device, resolve_path
from ..protocol import Capabilities

_CHUNK = 256


class Encoder:
    """A sentence encoder with an embedding cache keyed by text. Embeddings are L2-normalized.

    Implements :class:`~tailor.backends.protocol.EncoderBackend`.

    Attributes:
        name: The model's name as the task file gives it.
        model: The sentence-transformers model.
        batch_size: Texts per forward pass.
    """

    def __init__(self, model: Any, batch_size: int = 64, cache: bool = True, name: str = ""):
        self.name = name
        self.model = model
        self.batch_size = batch_size
        self._cache: dict[str, np.ndarray] | None = {} if cache else None
        self._bypass = False
        self._per_token: int | None = None
        self.truncated = 0
        """Texts cut to the model's ``max_seq_length`` so far (counted with their usage; the runner reads it)."""

    @contextmanager
    def cache_disabled(self) -> Iterator[None]:
        """Within this block every text is embedded afresh (used to time inference fairly)."""
        self._bypass, before = True, self._bypass
        try:
            yield
        finally:
            self._bypass = before

    @contextmanager
    def private_cache(self) -> Iterator[None]:
        """Within this block embeddings are cached in a cache of the block's own, neither reading nor filling the
        run's: a search that embeds the same texts many times pays for each once, and for none another trial paid
        for."""
        saved = self._cache, self._bypass
        self._cache, self._bypass = {}, False
        try:
            yield
        finally:
            self._cache, self._bypass = saved

    @classmethod
    def from_spec(cls, spec: ModelSpec, name_or_path: str | None = None) -> Encoder:
        from sentence_transformers import SentenceTransformer

        from .hf import library_bars_off

        path = name_or_path or resolve_path(spec.name)
        with library_bars_off():
            model = SentenceTransformer(path, device=best_device(spec.device), trust_remote_code=spec.trust_remote_code)
        if spec.max_length:
            model.max_seq_length = spec.max_length
        return cls(model, batch_size=spec.batch_size, name=spec.name)

    @property
    def dim(self) -> int:
        return int(self.model.get_sentence_embedding_dimension())

    @property
    def parameters(self) -> int:
        """Every parameter of the model (the input embedding table included)."""
        return sum(p.numel() for p in self.model.parameters())

    @property
    def params_per_token(self) -> int:
        """Parameters a token meets: the transformer's, without its input embedding table (see
        :mod:`tailor.costs.usage`).

        Computed once: training changes the weights' values, never their number.
        """
        if self._per_token is None:
            first = self.model[0]
            self._per_token = params_per_token(getattr(first, "auto_model", self.model))
        return self._per_token

    def token_counts(self, texts: Sequence[str]) -> list[int]:
        """Tokens of each text as the model reads it: special tokens added, truncated to its ``max_seq_length``.

        A text longer than that is counted in :attr:`truncated`: the model reads only its start.
        """
        if not texts:
            return []
        limit = self.model.max_seq_length
        # One token over the limit is enough to tell a text was cut, without keeping a huge input's every token.
        enc = self.model.tokenizer(list(texts), truncation=True, max_length=limit + 1, verbose=False)
        counts = [len(ids) for ids in enc["input_ids"]]
        self.truncated += sum(n > limit for n in counts)
        return [min(n, limit) for n in counts]

    def usage_of(self, texts: Sequence[str]) -> list[Usage]:
        """What embedding each text costs: one query, its tokens, each through a forward pass."""
        n = self.params_per_token
        return [query_usage(n, tokens) for tokens in self.token_counts(texts)]

    def embed(
        self, texts: Sequence[str], progress: Progress | None = NULL_PROGRESS, what: str = "embedding"
    ) -> np.ndarray:
        """Embeddings of ``texts`` as a float32 array (n, dim), rows L2-normalized."""
        progress = progress or NULL_PROGRESS
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


class EncoderKind:
    """The ``encoder`` model kind: a sentence-transformers model (see :data:`tailor.backends.BACKENDS`)."""

    role: ClassVar[Literal["encoder"]] = "encoder"

    def capabilities(self, spec: ModelSpec) -> Capabilities:
        # An encoder embeds; it neither scores nor generates. Its tokenizer is local, so inputs are counted here.
        return Capabilities(local_tokenizer=True, context_length=spec.max_length)

    def load(self, spec: ModelSpec) -> Encoder:
        return Encoder.from_spec(spec)


KIND = EncoderKind()
