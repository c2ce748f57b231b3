"""`encoder-full` (fine-tune route): an encoder with a fresh classification head, every weight trained with
transformers' `Trainer`.

With a dev split, the task's primary metric is measured on dev after each epoch and the best epoch's weights are
kept.
They are kept as a copy of the state dict in memory, not through `load_best_model_at_end`: that
needs a checkpoint on disk every epoch (optimizer state included, ~3× the model) only to read one
back, while a copy in memory costs one model's size and never touches the disk.

What adapting costs (``adapt_usage``, see :mod:`tailor.costs.usage`): every training token, every epoch, at ``6·N``,
plus one forward pass over the dev split per epoch when there is one. A prediction costs its tokens at ``2·N``.
``N`` counts every weight but the input embedding table, the new head included.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from ..backends.local.hf import advance_callback, library_bars_off, transformers_quiet
from ..backends.models import best_device, resolve_path
from ..config.saved import check_labels
from ..contract import AdaptReport, Context, MethodOptions, TaskInfo, count_trainable
from ..costs.usage import NO_USAGE, Usage, forward_flops, params_per_token, query_usage, training_flops
from ..errors import MethodError
from ..stats.metrics import METRICS, point
from ..types import Example, Prediction, Split


class EncoderFullOptions(MethodOptions):
    epochs: int = Field(3, ge=1)
    """Passes over the training examples; with a dev split, the best epoch's weights are kept."""
    batch_size: int = Field(16, ge=1)
    """Examples per training step."""
    learning_rate: float = Field(5e-5, gt=0)
    """Peak learning rate (AdamW, linear warm-up then linear decay)."""
    weight_decay: float = Field(0.01, ge=0)
    """AdamW weight decay."""
    warmup_ratio: float = Field(0.1, ge=0, lt=1)
    """Fraction of the steps spent warming the learning rate up from zero."""
    max_length: int = Field(512, ge=8)
    """Most tokens per input, in training and prediction (capped at the model's positions)."""


@dataclass
class EncoderFullAdapted:
    model: Any  # a transformers *ForSequenceClassification model
    tokenizer: Any
    batch_size: int = 64
    adapt_usage: Usage = NO_USAGE
    """Training (every token, every epoch) plus the per-epoch dev evaluations."""
    truncated: int = 0
    """Inputs cut to the tokenizer's ``model_max_length`` while predicting, so far (the runner reports them)."""

    @property
    def trainable_params(self) -> int:
        return count_trainable(self.model)

    def adapt_report(self) -> AdaptReport:
        return AdaptReport(usage=self.adapt_usage)

    @property
    def labels(self) -> list[str]:
        id2label = self.model.config.id2label
        return [id2label[i] for i in range(len(id2label))]

    def predict(self, examples: Sequence[Example]) -> list[Prediction]:
        import torch

        labels = self.labels
        per_token = params_per_token(self.model)
        self.model.eval()
        out: list[Prediction] = []
        with torch.inference_mode():
            for start in range(0, len(examples), self.batch_size):
                batch = examples[start : start + self.batch_size]
                texts = [ex.text for ex in batch]
                self.truncated += self._over_limit(texts)
                enc = self.tokenizer(texts, padding=True, truncation=True, return_tensors="pt").to(self.model.device)
                probs = torch.softmax(self.model(**enc).logits.float(), dim=-1).cpu().numpy()
                lengths = enc["attention_mask"].sum(dim=1).tolist()
                for ex, row, n in zip(batch, probs, lengths, strict=True):
                    best = labels[int(np.argmax(row))]
                    scores = {lb: float(p) for lb, p in zip(labels, row, strict=True)}
                    usage = query_usage(per_token, int(n))
                    out.append(Prediction(id=ex.id, output=best, label=best, scores=scores, usage=usage))
        return out

    def _over_limit(self, texts: list[str]) -> int:
        """How many of ``texts`` are longer than what ``truncation=True`` keeps (one token over tells)."""
        limit = self.tokenizer.model_max_length
        if limit is None or limit > 1_000_000:  # no real limit set: nothing is cut
            return 0
        ids = self.tokenizer(texts, truncation=True, max_length=limit + 1, verbose=False)["input_ids"]
        return sum(len(i) > limit for i in ids)

    def save(self, path: Path) -> None:
        # An ordinary HF folder: AutoModelForSequenceClassification / AutoTokenizer load it as it is.
        with library_bars_off():
            self.model.save_pretrained(str(path))
            self.tokenizer.save_pretrained(str(path))


class EncoderFull:
    name: ClassVar[str] = "encoder-full"
    route: ClassVar[str] = "finetune"
    shares_model: ClassVar[bool] = False  # trains its own copy of the model; the run's shared one stays frozen
    summary: ClassVar[str] = "Every weight of an encoder trained with a classification head; the best dev epoch kept."
    Options: ClassVar[type[EncoderFullOptions]] = EncoderFullOptions
    task_kinds: ClassVar[frozenset[str]] = frozenset({"classification"})
    model_kinds: ClassVar[frozenset[str]] = frozenset({"encoder"})
    files: ClassVar[tuple[str, ...]] = ("config.json",)  # an ordinary Hugging Face folder (its weights beside it)

    def uses_examples(self, options: EncoderFullOptions) -> bool:
        return True

    def check(self, options: EncoderFullOptions, train: Split, ctx: Context) -> None:
        if ctx.task.kind != "classification":
            raise MethodError(f"encoder-full classifies; this task is {ctx.task.kind}")
        if not ctx.task.labels:
            raise MethodError("encoder-full needs the task's label set")
        unknown = sorted(set(train.labels()) - set(ctx.task.labels))
        if unknown:
            raise MethodError(f"train has labels outside the task's label set: {', '.join(unknown)}")

    def variants(self, options: EncoderFullOptions) -> dict[str, EncoderFullOptions]:
        return {"": options}

    def adapt(self, options: EncoderFullOptions, train: Split, dev: Split | None, ctx: Context) -> EncoderFullAdapted:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer, set_seed

        self.check(options, train, ctx)
        labels = list(ctx.task.labels or ())
        label2id = {lb: i for i, lb in enumerate(labels)}
        set_seed(ctx.seed)  # before loading: the new head's initial weights are random
        path = resolve_path(ctx.model.name)
        trust = ctx.model.trust_remote_code
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust)
        # transformers reports the new head's weights as missing, as a warning: that is the point here, so
        # silence the report and speak up only when weights of the base model itself are missing.
        with library_bars_off(), transformers_quiet():
            model, info = AutoModelForSequenceClassification.from_pretrained(
                path,
                num_labels=len(labels),
                id2label=dict(enumerate(labels)),
                label2id=label2id,
                trust_remote_code=trust,
                output_loading_info=True,
            )
        prefix = model.base_model_prefix + "."
        missing = [k for k in info.get("missing_keys", ()) if k.startswith(prefix)]
        if missing:
            ctx.progress.log(f"{self.name}: {len(missing)} weights of the base model start random, e.g. {missing[0]}")
        # Truncate at the same length in training and prediction; the saved tokenizer keeps it.
        limit = getattr(model.config, "max_position_embeddings", None) or options.max_length
        tokenizer.model_max_length = min(options.max_length, limit, tokenizer.model_max_length)
        model.to(best_device(ctx.model.device))

        train_rows = _encode(tokenizer, train, label2id)
        dev_rows = _encode(tokenizer, dev, label2id) if dev is not None and len(dev) else None
        by_epoch = _train(model, tokenizer, train_rows, dev_rows, options, ctx)
        if by_epoch:
            kept = len(by_epoch) - by_epoch[::-1].index(max(by_epoch))
            shown = ", ".join(f"{a:.3f}" for a in by_epoch)
            metric = ctx.task.primary_metric
            ctx.progress.log(f"{self.name}: dev {metric} by epoch {shown}; kept epoch {kept}")
        model.eval()
        usage = _training_usage(params_per_token(model), train_rows, dev_rows, options.epochs)
        return EncoderFullAdapted(model, tokenizer, batch_size=ctx.model.batch_size, adapt_usage=usage)

    def load(self, options: EncoderFullOptions, path: Path, ctx: Context) -> EncoderFullAdapted:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        trust = ctx.model.trust_remote_code
        tokenizer = AutoTokenizer.from_pretrained(str(path), trust_remote_code=trust)
        with library_bars_off():
            model = AutoModelForSequenceClassification.from_pretrained(str(path), trust_remote_code=trust)
        adapted = EncoderFullAdapted(model, tokenizer, batch_size=ctx.model.batch_size)
        check_labels(adapted.labels, ctx.task.labels, path / "config.json", "id2label")
        model.to(best_device(ctx.model.device)).eval()
        return adapted


def _encode(tokenizer: Any, split: Split, label2id: dict[str, int]) -> list[dict[str, Any]]:
    """Tokenized rows (unpadded; the collator pads each batch) with integer labels."""
    unknown = sorted({lb for lb in split.labels() if lb not in label2id})
    if unknown:
        raise MethodError(f"{split.name} has labels outside the task's label set: {', '.join(unknown)}")
    enc = tokenizer(split.texts(), truncation=True)
    ids = [label2id[lb] for lb in split.labels()]
    return [{**{k: v[i] for k, v in enc.items()}, "labels": ids[i]} for i in range(len(split))]


def _training_usage(
    per_token: int, train_rows: list[dict[str, Any]], dev_rows: list[dict[str, Any]] | None, epochs: int
) -> Usage:
    """Every training token once per epoch (padding is not counted), and the dev split's forward passes once per
    epoch (one evaluation each)."""
    tokens = sum(len(r["input_ids"]) for r in train_rows) * epochs
    usage = Usage(input_tokens=tokens, flops=training_flops(per_token, tokens))
    if dev_rows:
        dev_tokens = sum(len(r["input_ids"]) for r in dev_rows) * epochs
        usage = usage + Usage(len(dev_rows) * epochs, dev_tokens, 0, forward_flops(per_token, dev_tokens))
    return usage


def _train(
    model: Any,
    tokenizer: Any,
    train_rows: list[dict[str, Any]],
    dev_rows: list[dict[str, Any]] | None,
    options: EncoderFullOptions,
    ctx: Context,
) -> list[float]:
    """Train ``model`` in place; with dev rows, leave it at its best epoch by the task's primary metric. Returns that
    metric on dev by epoch."""
    from transformers import DataCollatorWithPadding, PrinterCallback, Trainer, TrainingArguments

    args = TrainingArguments(
        output_dir=str(ctx.workdir / "full"),  # nothing is written there: no checkpoints, no logs
        num_train_epochs=options.epochs,
        per_device_train_batch_size=options.batch_size,
        per_device_eval_batch_size=ctx.model.batch_size,
        learning_rate=options.learning_rate,
        weight_decay=options.weight_decay,
        warmup_steps=float(options.warmup_ratio),  # transformers 5: a float below 1 is a ratio of all steps
        seed=ctx.seed,
        data_seed=ctx.seed,
        use_cpu=str(model.device) == "cpu",
        report_to="none",
        disable_tqdm=True,
        save_strategy="no",
        eval_strategy="epoch" if dev_rows else "no",
        logging_strategy="no",
        dataloader_num_workers=0,
    )
    keeper = _keep_best()
    steps = math.ceil(len(train_rows) / options.batch_size) * options.epochs
    with ctx.progress.bar("fine-tuning all weights", steps) as bar:
        callbacks = [advance_callback(bar), keeper] if dev_rows else [advance_callback(bar)]
        trainer = Trainer(
            model=model,
            args=args,
            train_dataset=train_rows,
            eval_dataset=dev_rows,
            data_collator=DataCollatorWithPadding(tokenizer),
            processing_class=tokenizer,
            compute_metrics=dev_metric(ctx.task) if dev_rows else None,
            callbacks=callbacks,
        )
        trainer.remove_callback(PrinterCallback)  # with tqdm off, transformers would print every log dict
        trainer.train()
    if keeper.state is not None:
        model.load_state_dict(keeper.state)
    return keeper.scores


def dev_metric(task: TaskInfo) -> Callable[[Any], dict[str, float]]:
    """The trainer's ``compute_metrics``: the task's primary metric (accuracy, macro-F1) of the dev predictions, as
    the run scores them."""
    labels = list(task.labels or ())
    metric = METRICS[task.primary_metric]

    def compute(pred: Any) -> dict[str, float]:
        logits = pred.predictions[0] if isinstance(pred.predictions, tuple) else pred.predictions
        gold = [labels[i] for i in pred.label_ids]
        guessed = [labels[i] for i in np.argmax(logits, axis=-1)]
        return {"primary": point(metric.prepare(gold, guessed, labels))}

    return compute


def _keep_best() -> Any:
    """A trainer callback that records the dev metric after each evaluation and keeps a copy of the best weights.

    On ties the later epoch wins: the dev split has shown no reason to stop earlier, so the result is then
    the same as training without one.
    """
    from transformers import TrainerCallback

    class KeepBest(TrainerCallback):
        def __init__(self) -> None:
            self.scores: list[float] = []
            self.state: dict[str, Any] | None = None

        def on_evaluate(self, args, state, control, metrics=None, model=None, **kwargs):
            score = float((metrics or {})["eval_primary"])
            if not self.scores or score >= max(self.scores):
                self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            self.scores.append(score)

    return KeepBest()
