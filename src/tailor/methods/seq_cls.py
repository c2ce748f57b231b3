"""`seq-cls` (fine-tune route): a classification head on a causal LM — the last token's hidden state mapped
to the labels (transformers' ``*ForSequenceClassification``) — trained with LoRA adapters (`adapter: lora`) or
every weight (`adapter: none`). The alternative to generating or scoring the label's words: one forward pass
per example, probabilities over exactly the labels, nothing to parse.

The input is the same rendered prompt the prompt route and the other fine-tuning methods use (without an
answer), so the methods differ only in how the label comes out. A prediction costs its prompt's tokens through
the model (``2·N`` each, see :mod:`tailor.costs.usage`); adapting, the training FLOPs plus the dev predictions.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel

from ..backends.local.hf import peft_quiet
from ..config.saved import ADAPTED_FILE, check_labels, read_saved
from ..config.strict import STRICT
from ..contract import AdaptReport, Context, count_trainable
from ..costs.usage import NO_USAGE, Usage, params_per_token, query_usage
from ..errors import FolderError, MethodError
from ..prompting import shorten_to_fit
from ..tuning.packing import class_batch
from ..tuning.recipe import build_predictor, check_options, check_target_modules, method_settings
from ..tuning.sft import Encoded
from ..tuning.steps import class_loss
from ..tuning.trainer import train_with_dev
from ..types import Example, Prediction, Split
from .lora import LoraOptions, lora_config

SEQ_CLS_FILE = "seq_cls.json"
MODEL_FOLDER = "model"  # the classifier (PEFT's adapter and head, or the whole model) and its tokenizer


class SeqClsFile(BaseModel):
    """``seq_cls.json``: what training produced besides the weights (the options are ``adapted.json``'s)."""

    model_config = STRICT

    labels: list[str]
    """The label of each row of the classification head, in order: the task's labels when it was trained."""
    max_length: int
    """The longest prompt it trained on, in tokens: longer inputs are shortened to it when predicting too."""
    trainable_params: int
    """Parameters trained."""
    details: dict[str, Any]
    """What training reported: data, audits, training."""


class SeqClsOptions(LoraOptions):
    adapter: Literal["lora", "none"] = "lora"
    """Train LoRA adapters and the new head (lora), or every weight and the head (none)."""


@dataclass
class SeqClsAdapted:
    model: Any  # a *ForSequenceClassification model, PEFT-wrapped for adapter: lora
    predictor: Any  # the prompt route's renderer (tailor.prompting.PromptAdapted)
    labels: list[str]
    max_length: int
    trainable_params: int
    details: dict[str, Any] = field(default_factory=dict)
    batch_size: int = 32
    adapt_usage: Usage = NO_USAGE
    """Training (tokens trained, their FLOPs) plus the dev predictions made while training."""
    truncated: int = 0
    """Inputs shortened to fit ``max_length`` so far (the runner reports its change while predicting)."""

    def adapt_report(self) -> AdaptReport:
        return AdaptReport(usage=self.adapt_usage, details=self.details)

    def encode(self, examples: Sequence[Example]) -> tuple[list[Encoded], list[str]]:
        """Each example's prompt tokens, and the prompt text they come from (shortened when it was too long)."""
        lm = self.predictor.lm
        prompts = self.predictor.render(examples)
        ids = lm.encode(prompts)
        for i, row in enumerate(ids):
            if len(row) > self.max_length:  # shorten the input, as the prompt route does; the template stays
                self.truncated += 1
                _, prompts[i] = shorten_to_fit(
                    examples[i], lambda e: self.predictor.render([e])[0], lm.count_tokens, self.max_length
                )
                ids[i] = lm.encode([prompts[i]])[0][-self.max_length :]
        return [Encoded(ex.id, tuple(row), ()) for ex, row in zip(examples, ids)], prompts

    def predict(self, examples: Sequence[Example]) -> list[Prediction]:
        import torch

        rows, prompts = self.encode(examples)
        pad = self.predictor.lm.tokenizer.pad_token_id
        per_token = params_per_token(self.model)
        out: list[Prediction] = []
        self.model.eval()
        with torch.inference_mode():
            for start in range(0, len(rows), self.batch_size):
                chunk = rows[start : start + self.batch_size]
                batch = class_batch(chunk, [0] * len(chunk), pad)
                device = self.model.device
                logits = self.model(
                    input_ids=batch.input_ids.to(device), attention_mask=batch.attention_mask.to(device)
                ).logits
                probs = logits.float().softmax(-1).cpu().numpy()
                for j, row in enumerate(probs):
                    best = self.labels[int(row.argmax())]
                    scores = {lb: float(p) for lb, p in zip(self.labels, row)}
                    usage = query_usage(per_token, len(chunk[j].prompt_ids))
                    out.append(Prediction(chunk[j].id, best, best, scores, prompts[start + j], usage))
        return out

    def save(self, path: Path) -> None:
        from ..backends.local.hf import library_bars_off

        with library_bars_off():
            self.model.save_pretrained(str(path / MODEL_FOLDER))
            self.predictor.lm.tokenizer.save_pretrained(str(path / MODEL_FOLDER))
        spec = SeqClsFile(
            labels=self.labels, max_length=self.max_length, trainable_params=self.trainable_params, details=self.details
        )
        (path / SEQ_CLS_FILE).write_text(json.dumps(spec.model_dump(mode="json"), indent=2, ensure_ascii=False))


def _load_classifier(name: str, labels: list[str], ctx: Context) -> tuple[Any, Any]:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from ..backends.local.hf import library_bars_off, transformers_quiet
    from ..backends.models import best_device, resolve_path

    path = resolve_path(name)
    trust = ctx.model.trust_remote_code
    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    with library_bars_off(), transformers_quiet():  # the new head's weights are "missing": that is the point
        model = AutoModelForSequenceClassification.from_pretrained(
            path,
            num_labels=len(labels),
            id2label=dict(enumerate(labels)),
            label2id={lb: i for i, lb in enumerate(labels)},
            pad_token_id=tokenizer.pad_token_id,
            trust_remote_code=trust,
        )
    return model.to(best_device(ctx.model.device)), tokenizer


def _renderer(model: Any, tokenizer: Any, options: SeqClsOptions, ctx: Context, max_length: int) -> Any:
    from ..backends.local.lm import LanguageModel

    lm = LanguageModel(model, tokenizer, "causal", max_length=max_length)
    return build_predictor(lm, options.prompt.model_copy(update={"verbalizers": None}), ctx.task)


class SeqCls:
    name: ClassVar[str] = "seq-cls"
    route: ClassVar[str] = "finetune"
    shares_model: ClassVar[bool] = False  # trains its own copy of the model; the run's shared one stays frozen
    files: ClassVar[tuple[str, ...]] = (SEQ_CLS_FILE, MODEL_FOLDER)
    summary: ClassVar[str] = "A classification head on a causal LM's last token, trained with LoRA or in full."
    Options: ClassVar[type[SeqClsOptions]] = SeqClsOptions
    task_kinds: ClassVar[frozenset[str]] = frozenset({"classification"})
    model_kinds: ClassVar[frozenset[str]] = frozenset({"causal"})
    lr_range: ClassVar[tuple[float, float]] = (1e-7, 5e-2)

    def uses_examples(self, options: SeqClsOptions) -> bool:
        return True

    def check(self, options: SeqClsOptions, train: Split, ctx: Context) -> None:
        if ctx.task.kind != "classification" or not ctx.task.labels:
            raise MethodError("seq-cls classifies: the task needs a label set")
        check_options(options, train, ctx, self.lr_range, self.name)
        if options.export_merged:
            raise MethodError(
                "seq-cls saves its head and adapter together; export_merged is not offered", key="export_merged"
            )
        if options.adapter == "lora":
            check_target_modules(options.target_modules, ctx)

    def variants(self, options: SeqClsOptions) -> dict[str, SeqClsOptions]:
        return {"": options}

    def adapt(self, options: SeqClsOptions, train_split: Split, dev: Split | None, ctx: Context) -> SeqClsAdapted:
        from transformers import set_seed

        self.check(options, train_split, ctx)
        labels = list(ctx.task.labels or ())
        set_seed(ctx.seed)  # the head's (and the adapter's) initial weights depend on the seed alone
        model, tokenizer = _load_classifier(ctx.model.name, labels, ctx)
        if options.adapter == "lora":
            from peft import get_peft_model

            config = lora_config(options, "SEQ_CLS")  # PEFT then trains the new head in full beside the adapters
            with peft_quiet():
                model = get_peft_model(model, config)
        context = getattr(model.config, "max_position_embeddings", None) or options.max_length
        max_length = min(options.max_length, context)
        renderer = _renderer(model, tokenizer, options, ctx, max_length)
        # the trained weights go on in place: the same model object predicts during training and after it
        training = SeqClsAdapted(model, renderer, labels, max_length, count_trainable(model))
        examples = list(train_split)
        encoded, _ = training.encode(examples)
        classes = {lb: i for i, lb in enumerate(labels)}
        rows = [(e, classes[ex.label]) for e, ex in zip(encoded, examples)]
        pad = tokenizer.pad_token_id

        def make_batch(chunk: Sequence[tuple[Encoded, int]]) -> Any:
            return class_batch([e for e, _ in chunk], [c for _, c in chunk], pad)

        done = train_with_dev(
            model,
            rows,
            make_batch,
            class_loss,
            lambda r: 1,
            training.predict,
            dev,
            options,
            ctx,
            method=[self.name, method_settings(options)],
            data=[[e.id, e.prompt_ids, c] for e, c in rows],
        )
        details = {
            "data": {"examples": len(rows), "max_length": max_length},
            "audits": {"template": {"chat_template": bool(renderer.use_chat)}},
            "training": done.result.to_dict(),
        }
        return dataclasses.replace(training, details=details, adapt_usage=done.usage)

    def load(self, options: SeqClsOptions, path: Path, ctx: Context) -> SeqClsAdapted:
        spec = read_saved(path / SEQ_CLS_FILE, SeqClsFile, "; the folder's seq_cls.json is damaged (rerun the method)")
        if spec.labels != list(ctx.task.labels or ()):  # the head's rows are labels by position: the order counts
            check_labels(spec.labels, ctx.task.labels, path / SEQ_CLS_FILE, "labels")
            raise FolderError(
                str(path / SEQ_CLS_FILE),
                "labels",
                f"the head's rows are {spec.labels}, in this order, but {ADAPTED_FILE}'s task.labels are "
                f"{list(ctx.task.labels or [])}: expected the same labels in the same order; restore task.labels",
            )
        if options.adapter == "lora":
            from peft import PeftModel

            model, tokenizer = _load_classifier(ctx.model.name, spec.labels, ctx)
            with peft_quiet():
                model = PeftModel.from_pretrained(model, str(path / MODEL_FOLDER))
        else:
            model, tokenizer = _load_classifier(str(path / MODEL_FOLDER), spec.labels, ctx)
        model.eval()
        renderer = _renderer(model, tokenizer, options, ctx, spec.max_length)
        return SeqClsAdapted(model, renderer, spec.labels, spec.max_length, spec.trainable_params, spec.details)
