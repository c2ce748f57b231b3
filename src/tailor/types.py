"""The plain data that flows between tailor's parts: examples, splits and predictions.

Nothing here knows about models. An :class:`Example` carries its mapped input fields and its
target; a :class:`Prediction` carries the text a model produced *and* the label parsed from it,
so the same record serves classifiers, generators and remote APIs.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Literal

from .costs.usage import Usage

TaskKind = Literal["classification", "summarization", "translation", "qa"]
Route = Literal["prompt", "finetune"]
SplitName = Literal["train", "dev", "test"]


@dataclass(frozen=True)
class Example:
    """One example of a task.

    Attributes:
        id: Stable identifier, from the data's id column or derived from file and line.
        inputs: The mapped input fields by name (e.g. ``{"text": ...}`` or ``{"question": ..., "context": ...}``).
        target: The label (classification) or reference text(s) (generation); ``None`` when unlabelled.
        source: Where the example came from, ``file:line``, for error messages.
    """

    id: str
    inputs: Mapping[str, str]
    target: str | tuple[str, ...] | None = None
    source: str = ""

    @property
    def text(self) -> str:
        """The input fields joined into one string (a single field is returned as it is)."""
        if len(self.inputs) == 1:
            return next(iter(self.inputs.values()))
        return "\n".join(f"{k}: {v}" for k, v in self.inputs.items())

    @property
    def label(self) -> str:
        """The target as a single label; raises if the example carries references instead."""
        if not isinstance(self.target, str):
            raise TypeError(f"example {self.id} has no single label (target={self.target!r})")
        return self.target


@dataclass(frozen=True)
class Prediction:
    """What an adapted model said about one example.

    Attributes:
        id: The example's id.
        output: The raw output as text: the chosen label's name for scorers, the generated text for generators.
        label: The label parsed from the output (classification); ``None`` when the output was not a valid label.
        scores: Per-label scores when the method has them (similarities, probabilities, log-likelihoods).
        prompt: The exact prompt rendered for this example, when the method uses one.
        usage: What answering cost (calls, tokens, estimated FLOPs); None when the method can't tell.
        error: Why no answer could be had (a served model failing after every retry); such an example is counted
            as failed, never scored as a wrong answer.
    """

    id: str
    output: str
    label: str | None = None
    scores: Mapping[str, float] | None = None
    prompt: str | None = None
    usage: Usage | None = None
    error: str | None = None


@dataclass(frozen=True)
class Split:
    """An ordered, immutable set of examples."""

    name: str
    examples: tuple[Example, ...]

    def __len__(self) -> int:
        return len(self.examples)

    def __iter__(self) -> Iterator[Example]:
        return iter(self.examples)

    def labels(self) -> list[str]:
        return [ex.label for ex in self.examples]

    def texts(self) -> list[str]:
        return [ex.text for ex in self.examples]

    def ids(self) -> list[str]:
        return [ex.id for ex in self.examples]


class TestSplitAccessError(RuntimeError):
    """Raised when anything reads the test split while a method is adapting."""


# Set while a method adapts; the sealed test split refuses to open while it is.
_adapting: contextvars.ContextVar[str | None] = contextvars.ContextVar("tailor_adapting", default=None)


class adapting:
    """Context manager marking that ``method`` is adapting: the test split is sealed meanwhile."""

    def __init__(self, method: str):
        self.method = method
        self._token: contextvars.Token | None = None

    def __enter__(self) -> adapting:
        self._token = _adapting.set(self.method)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._token is not None
        _adapting.reset(self._token)


@dataclass(frozen=True)
class SealedSplit:
    """The held-out test split. Its examples can be read only when no method is adapting.

    This is the code-level guarantee that no method sees the test set while it adapts: the runner
    never hands it to ``adapt``, and even a method that found a reference to it would get
    :class:`TestSplitAccessError`.
    """

    _split: Split = field(repr=False)

    @property
    def name(self) -> str:
        return self._split.name

    def __len__(self) -> int:
        return len(self._split)

    def open(self) -> Split:
        method = _adapting.get()
        if method is not None:
            raise TestSplitAccessError(f"method {method!r} tried to read the test split while adapting")
        return self._split
