"""Fine-tuning a generative model behind the method contract: what `full`, `lora`, `ia3`, `prompt-tuning` and
`prefix-tuning` share. Each of those files only says how its trainable parameters are made; this module reads top
to bottom:

    load a fresh copy of the base model → seed → add the method's trainable parameters → render and tokenize
    train with the prompt route's own prompt → audit → train (:func:`.trainer.train_with_dev`: dev metric, early
    stopping, checkpoints) → merge a LoRA/IA3 adapter into the base weights and audit the merge → an Adapted that
    predicts through the prompt route's scorer and generator (as fast as the prompted base model), keeps the dev
    predictions of its final weights, and says what adapting cost (``adapt_usage``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel

from ..backends.local.hf import peft_quiet
from ..config.saved import AdaptedFile, read_saved
from ..config.strict import STRICT
from ..contract import AdaptReport, Context, MethodOptions, TaskInfo, count_trainable
from ..costs.usage import NO_USAGE, Usage
from ..errors import MethodError
from ..prompting import CompiledPrompt, PromptAdapted, PromptOptions, check_prompt_options, label_words, parts_of
from ..types import Example, Prediction, Split
from . import audits
from .options import TuneOptions
from .packing import packed_batch, padded_batch
from .sft import Encoded, encode_examples
from .steps import packed_loss, padded_loss, seq2seq_loss, unwrap
from .trainer import Trained, train_with_dev

TUNE_FILE = "tune.json"
ADAPTER_FOLDER = "adapter"  # PEFT's own format


class TuneFile(BaseModel):
    """``tune.json``: what training produced besides the weights (the options are ``adapted.json``'s)."""

    model_config = STRICT

    max_length: int
    """The longest sequence the model trained on (``max_length`` capped at the model's context): inputs are cut to
    it when predicting too."""
    trainable_params: int
    """Parameters trained."""
    details: dict[str, Any]
    """What training reported: data, audits, training."""


@dataclass
class TunedAdapted:
    """A fine-tuned generative model that predicts through the prompt route's own code."""

    predictor: PromptAdapted
    model: Any
    """What was trained: the PEFT model, or the whole model (the predictor's model may be the base model with the
    adapter's layers injected, the same weights)."""
    method: str
    trainable_params: int
    weights: Literal["adapter", "model"]
    options: TuneOptions
    """The options it was trained with (what the folder's ``adapted.json`` holds)."""
    details: dict[str, Any] = field(default_factory=dict)
    export_merged: bool = False
    meta: dict[str, Any] = field(default_factory=dict)
    """The task, seed and base model, for the adapted.json of an exported merged model."""
    adapt_usage: Usage = NO_USAGE
    """Training (tokens trained, their FLOPs) plus the dev predictions made while training."""
    dev_predictions: dict[str, Prediction] = field(default_factory=dict)
    """Dev predictions (by example id) already made with the final weights, at the training's best evaluation: the
    runner takes them rather than scoring those examples again. A merged adapter's are the adapter's own (the
    merge audit checks that merging changes no prediction)."""

    @property
    def truncated(self) -> None:
        """Not counted while predicting (``details["data"]`` counts the training examples shortened)."""
        return None

    def adapt_report(self) -> AdaptReport:
        return AdaptReport(usage=self.adapt_usage, details=self.details, dev_predictions=self.dev_predictions)

    def predict(self, examples: Sequence[Example]) -> list[Prediction]:
        return self.predictor.predict(examples)

    def save(self, path: Path) -> None:
        from ..backends.local.hf import library_bars_off

        tokenizer = self.predictor.lm.tokenizer
        with library_bars_off():
            if self.weights == "adapter":
                self.model.save_pretrained(str(path / ADAPTER_FOLDER))
            else:
                self.model.save_pretrained(str(path))  # an ordinary Hugging Face folder
                tokenizer.save_pretrained(str(path))
        _write_tune_file(path, self)
        if self.export_merged:
            self.save_merged(path / "merged")

    def save_merged(self, path: Path) -> None:
        """The adapter merged into the base weights, as an ordinary Hugging Face folder (transformers and vLLM load
        it) that `tailor predict` also takes."""
        from ..backends.local.hf import library_bars_off

        path.mkdir(parents=True, exist_ok=True)
        merged = audits.merged_copy(self.model)
        with library_bars_off():
            merged.save_pretrained(str(path))
            self.predictor.lm.tokenizer.save_pretrained(str(path))
        _write_tune_file(path, self)
        if self.meta:  # what `tailor predict` needs to use the folder on its own: a `full` model, prompted the same
            from .. import __version__

            o = self.options
            options = {"prompt": o.prompt.model_dump(mode="json"), "too_long": o.too_long, "max_length": o.max_length}
            name = f"{self.method} (merged)"
            AdaptedFile(tailor_version=__version__, method="full", name=name, options=options, **self.meta).write(path)


def _write_tune_file(path: Path, adapted: TunedAdapted) -> None:
    spec = TuneFile(
        max_length=adapted.predictor.lm.context_length,
        trainable_params=adapted.trainable_params,
        details=adapted.details,
    )
    (path / TUNE_FILE).write_text(json.dumps(spec.model_dump(mode="json"), indent=2, ensure_ascii=False))


# -------------------------------------------------------------------------------------------------- checks


def check_options(options: TuneOptions, train: Split, ctx: Context, lr_range: tuple[float, float], name: str) -> None:
    """What every generative fine-tuning method checks before any model is loaded."""
    from ..backends.models import model_kind

    if options.prompt.k or options.prompt.variants:
        raise MethodError(
            "fine-tuning trains on one prompt without demonstrations: set prompt.k to 0, no prompt.variants",
            key="prompt.k" if options.prompt.k else "prompt.variants",
        )
    try:
        check_prompt_options(options.prompt, train, ctx.task)
    except MethodError as exc:  # the prompt's options sit under `prompt:` here
        raise MethodError(exc.message, key=f"prompt.{exc.key}" if exc.key else "prompt") from None
    low, high = lr_range
    if not low <= options.learning_rate <= high:
        raise MethodError(
            f"learning_rate {options.learning_rate:g} is outside the sane range for {name} ({low:g} to {high:g})",
            key="learning_rate",
        )
    kind = model_kind(ctx.model)
    if kind not in ("causal", "seq2seq"):
        hint = "; an encoder is fine-tuned by head, contrastive or encoder-full" if kind == "encoder" else ""
        raise MethodError(f"{name} fine-tunes a generative model (causal or seq2seq); model.kind is {kind}{hint}")
    if len(train) == 0:
        raise MethodError("no training examples")


# -------------------------------------------------------------------------------------------------- adapt


def trained_prompt(options: TuneOptions) -> PromptOptions:
    """The prompt a fine-tuned model trains on and predicts with: an over-long input is shortened when predicting as
    it was in training (or refused, as in training)."""
    return options.prompt.model_copy(update={"truncate": options.too_long == "truncate"})


def build_predictor(lm: Any, prompt: PromptOptions, task: TaskInfo) -> PromptAdapted:
    """The prompt route's predictor over ``lm``: it renders training prompts and, after training, predicts."""
    verbalizers = label_words(task.labels or (), prompt.verbalizers) if task.kind == "classification" else None
    compiled = CompiledPrompt.compile(parts_of(prompt), task.input_fields, "prompt")
    return PromptAdapted(lm, compiled, prompt, task.kind, verbalizers)


def tune(
    name: str,
    options: TuneOptions,
    train_split: Split,
    dev: Split | None,
    ctx: Context,
    add_parameters: Callable[[Any], Any],
    *,
    per_sequence: bool = False,
    mergeable: bool = False,
    export_merged: bool = False,
    describe: dict[str, Any] | None = None,
) -> TunedAdapted:
    """Fine-tune a fresh copy of ``ctx.model`` on ``train_split``.

    Args:
        name: The method's registry name.
        options: Training and prompt options.
        train_split: Labelled training examples.
        dev: Dev examples for the task metric during training (None: train all steps, keep the last weights).
        ctx: The run's context (model, task, seed, workdir, progress).
        add_parameters: Makes the trainable parameters: given the base model, returns the model to train (a PEFT
            model, or the base model itself with all its weights trainable). Called after seeding.
        per_sequence: The trainable parameters belong to each sequence (soft prompts): no packing.
        mergeable: The adapter can be merged into the base weights: it is, for prediction, and the merge audited.
        export_merged: Also save the merged model.
        describe: Method settings for the fingerprint a resumed checkpoint must match.
    """
    from transformers import set_seed

    from ..backends.local.lm import LanguageModel

    set_seed(ctx.seed)
    lm = LanguageModel.from_spec(ctx.model)
    base = lm.model
    lm.cap_context(options.max_length)
    set_seed(ctx.seed)  # the adapter's initial weights depend on the seed alone
    trained = add_parameters(base)
    # Adapters injected into the base model's layers (LoRA, IA3) run through the base model's own forward, which
    # keeps the scorer's fast paths (logits of chosen positions, a cached prefix); soft prompts need PEFT's.
    lm.model = trained if per_sequence else unwrap(trained)
    predictor = build_predictor(lm, trained_prompt(options), ctx.task)

    encoded = encode_examples(predictor, list(train_split), max_length=lm.context_length, too_long=options.too_long)
    if not encoded.rows:
        raise MethodError(f"every training example was longer than max_length={lm.context_length}", key="max_length")
    report: dict[str, Any] = {"data": encoded.summary()}
    report["audits"] = {"answer_mask": audits.audit_answer_mask(encoded.rows, lm.tokenizer.eos_token_id)}
    changed = set(encoded.shortened)
    sample = [ex for ex in list(train_split)[:32] if ex.id not in changed][:16]
    report["audits"]["template"] = audits.audit_template(predictor, sample, encoded.rows)

    seq2seq = lm.kind == "seq2seq"
    pad = lm.tokenizer.pad_token_id
    packing = options.packing and not per_sequence and not seq2seq
    if packing:
        capacity = max(options.pack_length or lm.context_length, max(r.length for r in encoded.rows))
        make_batch: Callable[[Sequence[Encoded]], Any] = partial(packed_batch, capacity=capacity, pad_id=pad)
        loss_fn = packed_loss
        report["audits"]["packing"] = audits.audit_packing(trained, encoded.rows[:8], capacity, pad)
    else:
        make_batch = partial(padded_batch, pad_id=pad, seq2seq=seq2seq)
        loss_fn = seq2seq_loss if seq2seq else padded_loss
        report["audits"]["packing"] = {"packed": False, "why": "soft prompts" if per_sequence else "not packing"}

    done = train_with_dev(
        trained,
        encoded.rows,
        make_batch,
        loss_fn,
        lambda r: len(r.answer_ids),
        predictor.predict,
        dev,
        options,
        ctx,
        method=[name, describe or {}],
        data=[[r.id, r.prompt_ids, r.answer_ids] for r in encoded.rows],
    )
    report["training"] = done.result.to_dict()
    if mergeable:
        kept = {r.id for r in encoded.rows}  # not the ones skipped as too long: the predictor refuses those too
        trained_on = [ex for ex in train_split if ex.id in kept][:32]
        report["audits"]["merge"] = _merge_for_prediction(predictor, trained, done, trained_on)
    return TunedAdapted(
        predictor,
        trained,
        name,
        count_trainable(trained),
        "model" if trained is base else "adapter",
        options,
        report,
        export_merged,
        {"task": ctx.task.to_dict(), "seed": ctx.seed, "model": ctx.model.model_dump(mode="json")},
        done.usage,
        {p.id: p for p in done.dev_predictions},
    )


def _merge_for_prediction(
    predictor: PromptAdapted, trained: Any, done: Trained, train_sample: list[Example]
) -> dict[str, Any]:
    """Merge the trained adapter into the base weights (so predicting costs what the base model's does) and audit
    the merge on up to 32 dev examples (training ones when there is no dev), against the predictions of the best
    evaluation when there are some: the same weights, not scored again."""
    sample, before = done.dev[:32], done.dev_predictions[:32]
    if not before:  # no dev, or its best evaluation ran before a resume
        sample = sample or train_sample
        before = predictor.predict(sample)
    audits.merge_in_place(trained)
    return audits.audit_merge(predictor, sample, before)


# -------------------------------------------------------------------------------------------------- load


def load_tuned(
    name: str, options: TuneOptions, path: Path, ctx: Context, weights: Literal["adapter", "model"]
) -> TunedAdapted:
    """An adapted model saved by :meth:`TunedAdapted.save`: an adapter over ``ctx.model``, or a whole model, prompted
    as ``options`` (the folder's ``adapted.json``) say."""
    from ..backends.local.lm import LanguageModel

    spec = read_saved(path / TUNE_FILE, TuneFile, "; the folder's tune.json is damaged (rerun the method)")
    if weights == "adapter":
        from peft import PeftModel

        lm = LanguageModel.from_spec(ctx.model)
        with peft_quiet():
            trained = PeftModel.from_pretrained(lm.model, str(path / ADAPTER_FOLDER))
        trained.eval()
        per_sequence = (
            not getattr(trained, "merge_and_unload", None) or trained.peft_config["default"].is_prompt_learning
        )
        lm.model = trained if per_sequence else unwrap(trained)
        if not per_sequence:  # predicts as it did after training: merged into the base weights
            audits.merge_in_place(trained)
    else:
        lm = LanguageModel.from_spec(ctx.model.model_copy(update={"name": str(path)}))
        trained = lm.model
    lm.cap_context(spec.max_length)
    predictor = build_predictor(lm, trained_prompt(options), ctx.task)
    return TunedAdapted(predictor, trained, name, spec.trainable_params, weights, options, spec.details)


def method_settings(options: MethodOptions, base: type[MethodOptions] = TuneOptions) -> dict[str, Any]:
    """The options a method adds to :class:`TuneOptions` (its adapter's settings)."""
    return {k: v for k, v in options.model_dump(mode="json").items() if k not in base.model_fields}


# -------------------------------------------------------------------------------------------------- methods


def linear_module_names(ctx: Context) -> set[str]:
    """Names (last component) of the linear layers of ``ctx.model``, from its config alone (on the meta device)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM

    from ..backends.models import model_kind, resolve_path

    config = AutoConfig.from_pretrained(resolve_path(ctx.model.name), trust_remote_code=ctx.model.trust_remote_code)
    auto = AutoModelForSeq2SeqLM if model_kind(ctx.model) == "seq2seq" else AutoModelForCausalLM
    with torch.device("meta"):
        model = auto.from_config(config, trust_remote_code=ctx.model.trust_remote_code)
    head = model.get_output_embeddings()
    return {n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, torch.nn.Linear) and m is not head}


def check_target_modules(targets: str | list[str] | None, ctx: Context, key: str = "target_modules") -> None:
    """Every named target module exists in the model; else the error lists the ones that do."""
    if targets is None or targets == "all-linear":
        return
    names = [targets] if isinstance(targets, str) else list(targets)
    available = linear_module_names(ctx)
    missing = [n for n in names if n not in available]
    if missing:
        raise MethodError(
            f"no linear module called {', '.join(missing)} in {ctx.model.name}; its linear modules are: "
            f"{', '.join(sorted(available))} (or use all-linear)",
            key=key,
        )


def peft_task_type(ctx: Context) -> str:
    from ..backends.models import model_kind

    return "SEQ_2_SEQ_LM" if model_kind(ctx.model) == "seq2seq" else "CAUSAL_LM"


class PeftMethod:
    """What the PEFT-based fine-tuning methods share; each subclass says how its PEFT config is made.

    Class attributes a subclass sets: ``name``, ``summary``, ``Options``, ``lr_range`` (sane learning rates),
    ``per_sequence`` (soft prompts: no packing), ``mergeable`` (the adapter merges into the base weights; its
    ``Options`` then declare ``export_merged``).
    """

    route: ClassVar[str] = "finetune"
    shares_model: ClassVar[bool] = False  # trains its own copy of the model; the run's shared one stays frozen
    files: ClassVar[tuple[str, ...]] = (TUNE_FILE, ADAPTER_FOLDER)
    task_kinds: ClassVar[frozenset[str]] = frozenset({"classification", "qa", "summarization", "translation"})
    model_kinds: ClassVar[frozenset[str]] = frozenset({"causal", "seq2seq"})
    name: ClassVar[str]
    lr_range: ClassVar[tuple[float, float]]
    per_sequence: ClassVar[bool] = False
    mergeable: ClassVar[bool] = False

    def peft_config(self, options: Any, ctx: Context) -> Any:
        raise NotImplementedError

    def check_more(self, options: Any, ctx: Context) -> None:
        """Checks of the method's own options (after the shared ones)."""

    def check(self, options: Any, train: Split, ctx: Context) -> None:
        check_options(options, train, ctx, self.lr_range, self.name)
        if _export_merged(options) and not self.mergeable:
            raise MethodError(f"{self.name} can't be merged into the base weights", key="export_merged")
        self.check_more(options, ctx)

    def uses_examples(self, options: Any) -> bool:
        return True

    def variants(self, options: Any) -> dict[str, Any]:
        return {"": options}

    def adapt(self, options: Any, train: Split, dev: Split | None, ctx: Context) -> TunedAdapted:
        self.check(options, train, ctx)

        def add_parameters(model: Any) -> Any:
            from peft import get_peft_model

            with peft_quiet():
                return get_peft_model(model, self.peft_config(options, ctx))

        return tune(
            self.name,
            options,
            train,
            dev,
            ctx,
            add_parameters,
            per_sequence=self.per_sequence,
            mergeable=self.mergeable,
            export_merged=_export_merged(options),
            describe=method_settings(options),
        )

    def load(self, options: Any, path: Path, ctx: Context) -> TunedAdapted:
        return load_tuned(self.name, options, path, ctx, "adapter")


def _export_merged(options: MethodOptions) -> bool:
    """The ``export_merged`` option, among the options' declared fields: mergeable methods declare it, others don't."""
    return bool(options.model_dump().get("export_merged", False))
