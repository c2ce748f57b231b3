"""The options every generative fine-tuning method takes (`full`, `lora`, `ia3`, `prompt-tuning`, `prefix-tuning`):
the prompt trained on, the optimizer's schedule, lengths and packing, and when to look at dev. Their own module so
that the recipe (:mod:`.recipe`) and the training tail (:mod:`.trainer`) both read them without importing each
other."""

from __future__ import annotations

from pydantic import Field

from ..contract import MethodOptions
from ..prompting import PromptOptions
from .sft import TooLong


class TuneOptions(MethodOptions):
    """Options every generative fine-tuning method takes."""

    prompt: PromptOptions = Field(default_factory=PromptOptions)
    """The prompt trained on and predicted with (instruction, input, chat, verbalizers, mode…), as for `prompt`;
    no demonstrations."""
    learning_rate: float = Field(1e-4, gt=0)
    """Peak learning rate (AdamW, linear warm-up then linear decay)."""
    epochs: int = Field(3, ge=1)
    """Passes over the training examples (unless max_steps is set)."""
    max_steps: int | None = Field(None, ge=1)
    """Train for exactly this many optimizer steps instead of whole epochs."""
    batch_size: int = Field(16, ge=1)
    """Examples per micro-batch (per process)."""
    gradient_accumulation: int = Field(1, ge=1)
    """Micro-batches per optimizer step: a step covers batch_size × gradient_accumulation × processes examples."""
    max_length: int = Field(512, ge=8)
    """Most tokens per example, prompt and answer (capped at the model's context)."""
    too_long: TooLong = "truncate"
    """An example over max_length: shorten its longest input field (the answer is never cut), skip it (counted),
    or fail."""
    warmup_ratio: float = Field(0.1, ge=0, lt=1)
    """Fraction of the steps spent warming the learning rate up from zero."""
    weight_decay: float = Field(0.0, ge=0)
    """AdamW weight decay (matrices only; not biases or norms)."""
    max_grad_norm: float | None = Field(1.0, gt=0)
    """Clip the gradient's norm to this (null: no clipping)."""
    packing: bool = True
    """Causal models: lay several examples in one row, each attending only to itself (no padding computed)."""
    pack_length: int | None = Field(None, ge=8)
    """Tokens per packed row; default max_length. Longer rows mean fewer, bigger matmuls but a bigger attention
    mask."""
    eval_every: int | None = Field(None, ge=1)
    """Evaluate the task metric on dev every this many steps; default once per epoch."""
    eval_examples: int = Field(200, ge=1)
    """Dev examples (a seeded sample) the metric is measured on during training."""
    patience: int | None = Field(3, ge=1)
    """Stop after this many evaluations without a better dev metric (null: never stop early); the best evaluation's
    weights are kept either way."""
    checkpoint_every: int | None = Field(None, ge=1)
    """Write a resumable checkpoint every this many steps; default at each evaluation."""
