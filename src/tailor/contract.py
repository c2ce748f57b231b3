"""The one contract every adaptation method implements, prompt route and fine-tune route alike.

A method is a class with a name, a route, an options model, what it needs, and four verbs::

    check(options, train, ctx)            # fail fast on options that can't work with this data
    variants(options) -> {name: options}  # hand-written alternatives to score side by side
    adapt(options, train, dev, ctx) -> Adapted
    load(options, path, ctx) -> Adapted   # the options and context as the folder's adapted.json gives them

An :class:`Adapted` model predicts, saves itself, says how many parameters were trained and how many inputs it cut
to fit the model, and reports on its adapting once (:class:`AdaptReport`: what it cost, what it used, what it wants
stored with the trial). The runner measures the rest of the cost (wall time, inference time, size on disk) the same
way for every method, so the numbers are comparable. Nothing here assumes an encoder: a causal LM behind a prompt,
a LoRA adapter or a remote API all fit.

Everything the runner, the planner or a prompt search reads from a method or an adapted model is declared here,
with its meaning; none of it is looked up by name with a default.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from .backends.pool import ModelPool
from .backends.protocol import Capabilities
from .config.task import ModelSpec
from .costs.usage import NO_USAGE, Usage
from .progress import NULL_PROGRESS, Progress
from .types import Example, Prediction, Route, Split, TaskKind


class MethodOptions(BaseModel):
    """Options every method accepts. Each method extends this with its own, one level deep."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    train_per_class: int | None = Field(None, ge=1)
    """Classification: train on at most this many examples per class (a seeded sample); default: all of train."""
    train_size: int | None = Field(None, ge=1)
    """Train on this many training examples (a seeded sample, any task kind); default: all of train. Not with
    train_per_class."""
    seed: int | None = None
    """Seed for this method's random choices; default: the task's seed."""


@dataclass(frozen=True)
class TaskInfo:
    """What a method may know about the task: never the data of the test split."""

    name: str
    kind: TaskKind
    labels: tuple[str, ...] | None
    input_fields: tuple[str, ...]
    metrics: tuple[str, ...]

    @property
    def primary_metric(self) -> str:
        return self.metrics[0]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "labels": list(self.labels) if self.labels else None,
            "input_fields": list(self.input_fields),
            "metrics": list(self.metrics),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TaskInfo:
        return cls(
            name=d["name"],
            kind=d["kind"],
            labels=tuple(d["labels"]) if d.get("labels") else None,
            input_fields=tuple(d["input_fields"]),
            metrics=tuple(d["metrics"]),
        )


@dataclass
class Context:
    """What the runner gives a method besides its options and data.

    Attributes:
        task: The task's description (kind, labels, fields, metrics).
        model: The base model to adapt.
        seed: The seed to use (the method's own, or the task's).
        workdir: A folder of this trial's own, for checkpoints and scratch files.
        progress: Where to show progress bars.
        models: The run's loaded models, shared by every method that names the same one.
    """

    task: TaskInfo
    model: ModelSpec
    seed: int = 0
    workdir: Path = Path(".")
    progress: Progress = NULL_PROGRESS
    models: ModelPool = field(default_factory=ModelPool)

    def backend(self) -> Any:
        """The shared, frozen backend of this method's model (loaded once per run)."""
        return self.models.get(self.model)

    def capabilities(self) -> Capabilities:
        """What this method's model can do, known without loading it."""
        return self.models.capabilities(self.model)


@dataclass(frozen=True)
class SavedAs:
    """An adapted model saved as another method's would be: a prompt search's winner is the ordinary prompt it is,
    and ``tailor predict`` loads it as that method (its ``adapted.json`` names this method, options and seed)."""

    method: str
    options: MethodOptions
    seed: int


@dataclass(frozen=True)
class AdaptReport:
    """What an adapted model says about its adapting: read once by the runner, after ``adapt``.

    Attributes:
        usage: What adapting asked of the model being adapted: training's tokens and FLOPs, a prompt's calibration
            queries, an encoder embedding label descriptions or demonstrations.
        helper_usage: What adapting asked of other models: the sentence encoder that embeds a generative prompt's
            demonstration pool. The trial's cost counts both; a prompt search's budget only ``usage``, what the
            searched model is asked.
        examples_used: How many training examples the adapted model depends on (0 for zero-shot, its demonstrations
            for a prompt); None: all it was given.
        details: What the method tells about itself, JSON-able, stored with the trial as it is: fine-tuning's
            ``data``, ``audits`` and ``training``; a prompt-route method's ``prompt`` (the prompt as used, see
            :class:`tailor.prompting.UsedPrompt`) and ``demonstrations`` (when it has any); a search's ``search``;
            a served model's ``endpoint``.
        dev_predictions: Predictions on dev examples (by id) already made with the final weights while adapting
            (fine-tuning's best evaluation): the runner takes them instead of predicting those examples again.
        saved_as: Save the adapted model as this method's (a prompt search's winner); None: as the trial's own.
    """

    usage: Usage = NO_USAGE
    helper_usage: Usage = NO_USAGE
    examples_used: int | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    dev_predictions: Mapping[str, Prediction] = field(default_factory=dict)
    saved_as: SavedAs | None = None

    @property
    def total_usage(self) -> Usage:
        """Everything adapting asked of any model."""
        return self.usage + self.helper_usage


@runtime_checkable
class Adapted(Protocol):
    """A model adapted to a task by some method."""

    trainable_params: int
    """Parameters the method trained (0 for prompts)."""
    truncated: int | None
    """Inputs cut to fit the model while predicting, a running count (an encoder's may count for every trial that
    shares it: the runner stores its change over dev and test as ``details["truncated"]``); None for a method that
    doesn't count them."""

    def predict(self, examples: Sequence[Example]) -> list[Prediction]:
        """One prediction per example, in order, each with the :class:`~tailor.costs.usage.Usage` of its query."""
        ...

    def save(self, path: Path) -> None:
        """Write everything needed to predict again into the (existing, empty) folder ``path``: the files its
        method's ``files`` names (the runner adds ``adapted.json``: method, options, seed, task and model)."""
        ...

    def adapt_report(self) -> AdaptReport:
        """What adapting cost and used, and what to store with the trial."""
        ...


class Method(Protocol):
    """An adaptation method. See the module docstring."""

    name: ClassVar[str]
    route: ClassVar[Route]
    summary: ClassVar[str]
    Options: ClassVar[type[MethodOptions]]
    task_kinds: ClassVar[frozenset[str]]
    model_kinds: ClassVar[frozenset[str]]
    shares_model: ClassVar[bool]
    """Whether the method uses the run's shared, frozen model (``ctx.backend()``), which the runner then loads before
    any trial is timed; methods that train load their own copy (that is part of their cost)."""
    files: ClassVar[tuple[str, ...]]
    """The files and folders ``save`` writes and ``load`` reads (beside ``adapted.json``): ``tailor predict`` names
    any that is missing before loading."""

    def uses_examples(self, options: Any) -> bool:
        """Whether the method learns from, or draws demonstrations from, training examples: a learning curve runs
        those that don't (zero-shot) at size 0 only."""
        ...

    def check(self, options: Any, train: Split, ctx: Context) -> None: ...

    def variants(self, options: Any) -> dict[str, Any]: ...

    def adapt(self, options: Any, train: Split, dev: Split | None, ctx: Context) -> Adapted: ...

    def load(self, options: Any, path: Path, ctx: Context) -> Adapted: ...


def count_trainable(module: Any) -> int:
    """Trainable parameters of a torch module."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
