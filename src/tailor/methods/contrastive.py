"""`contrastive` (fine-tune route): SetFit's recipe. Fine-tune the sentence encoder so that texts of one label
embed close together (cosine 1) and texts of different labels apart (cosine 0), then fit a logistic-regression
head on its new embeddings.

Two ways to feed it the pairs (`loss`), both with sentence-transformers' own trainer, so the loop is the library's:

* `batch` (the default): label-balanced batches (the library's group-by-label sampler) and the cosine objective
  over every pair within each batch (:func:`batch_pairs_loss`). A batch of B texts gives B·(B−1)/2 pairs for B
  embeddings, where a sampled pair costs two; and the budget is a number of steps that stops growing with the
  training set (:func:`default_steps`). That is where the time went: SetFit's pair count grows with N.
* `pairs`: SetFit's own sampling — `pairs` iterations, each giving every example one same-label and one
  other-label partner — with `CosineSimilarityLoss`.

The run's shared encoder is never touched: this method loads and trains its own copy.

What adapting costs (``adapt_usage``): the texts embedded in training (``6·N`` per token, see
:mod:`tailor.costs.usage`),
then embedding the training split once for the head.
"""

from __future__ import annotations

import math
import random
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from ..backends.local.encoder import Encoder
from ..backends.local.hf import advance_callback, library_bars_off
from ..backends.models import best_device, resolve_path
from ..config.saved import check_labels
from ..contract import AdaptReport, Context, MethodOptions, count_trainable
from ..costs.usage import NO_USAGE, Usage, total, training_flops
from ..errors import MethodError
from ..types import Example, Prediction, Split
from ._linear import HEAD_FILE, LinearHead, scores_to_predictions

# `batch`'s default budget (default_steps): chosen on dev data, see the README
EPOCHS, MIN_STEPS, MAX_STEPS = 4, 16, 256
LEARNING_RATE = {"batch": 6e-5, "pairs": 2e-5}  # the default of each loss
TRAINING_QUANTILE = 0.75  # of the training texts' token counts: `batch`'s input length in training
ENCODER_FOLDER = "encoder"  # the fine-tuned sentence encoder, as sentence-transformers saves it


class ContrastiveOptions(MethodOptions):
    loss: Literal["batch", "pairs"] = "batch"
    """How the encoder learns SetFit's objective (the cosine of two texts' embeddings pulled to 1 when they share
    a label, to 0 when not). `batch`: for every pair of texts within label-balanced batches — each text is embedded
    once per step and takes part in batch_size − 1 pairs; `steps` steps. `pairs`: SetFit's original sampling —
    `pairs` iterations, each giving every example one same-label and one other-label partner, `epochs` passes.
    Default: `pairs` when `pairs` or `epochs` is set (task files written for it keep their meaning), else `batch`."""
    steps: int | None = Field(None, ge=1)
    """`batch`: training steps; default: 4 passes over the training set, at least 16 steps and at most 256
    (chosen on dev data; see the README)."""
    pairs: int = Field(20, ge=1)
    """`pairs`: pair-generation iterations (SetFit's `num_iterations`): each gives every training example one
    positive and one negative pair, so there are 2 × pairs × examples pairs in all."""
    epochs: int = Field(1, ge=1)
    """`pairs`: passes over the pairs when fine-tuning the encoder."""
    batch_size: int = Field(16, ge=4)
    """Texts per training step (`batch`: an even number, two or more per label) or pairs per step (`pairs`)."""
    learning_rate: float | None = Field(None, gt=0)
    """Peak learning rate of the encoder (AdamW, linear decay); default: 6e-5 for `batch` (fewer steps, each
    larger: chosen on dev data, see the README), 2e-5 for `pairs` (SetFit's)."""
    warmup_ratio: float = Field(0.1, ge=0, lt=1)
    """Fraction of the training steps spent warming the learning rate up from zero."""
    C: float = Field(1.0, gt=0)
    """Inverse regularization strength of the logistic-regression head (smaller = stronger)."""
    max_length: int | None = Field(None, ge=8)
    """Longest input in tokens while training and predicting; default: the model's (or `model.max_length`), and
    with `loss: batch` training inputs are then cut at the 75th percentile of the training texts' token counts."""

    @model_validator(mode="before")
    @classmethod
    def _pairs_when_asked(cls, data: Any) -> Any:
        if isinstance(data, dict) and "loss" not in data and ("pairs" in data or "epochs" in data):
            return {**data, "loss": "pairs"}
        return data

    @field_validator("steps")
    @classmethod
    def _steps_for_batch(cls, value: int | None, info: ValidationInfo) -> int | None:
        if value is not None and info.data.get("loss") == "pairs":
            raise ValueError("steps is the budget of loss: batch; loss: pairs trains `pairs` iterations × `epochs`")
        return value

    @field_validator("pairs", "epochs")
    @classmethod
    def _pairs_for_pairs(cls, value: int, info: ValidationInfo) -> int:
        # the default itself is no choice: a saved folder's adapted.json spells every option out
        if info.data.get("loss") == "batch" and value != cls.model_fields[str(info.field_name)].default:
            raise ValueError(f"{info.field_name} is an option of loss: pairs; loss: batch trains `steps` steps")
        return value


@dataclass
class ContrastiveAdapted:
    encoder: Encoder  # this method's own fine-tuned copy, not the run's shared encoder
    head: LinearHead
    adapt_usage: Usage = NO_USAGE
    """Training on the pairs (every epoch) and embedding the training split for the head."""
    details: dict[str, Any] = field(default_factory=dict)
    """How the encoder was trained (stored with the trial): loss, steps, lengths, labels the pairs never saw."""

    @property
    def truncated(self) -> int:
        """Inputs cut to fit the encoder so far (its running count; the runner reads the difference per split)."""
        return self.encoder.truncated

    @property
    def trainable_params(self) -> int:
        return count_trainable(self.encoder.model) + self.head.n_params

    def adapt_report(self) -> AdaptReport:
        return AdaptReport(usage=self.adapt_usage, details=self.details)

    def predict(self, examples: Sequence[Example]) -> list[Prediction]:
        texts = [ex.text for ex in examples]
        x = self.encoder.embed(texts)
        ids = [ex.id for ex in examples]
        return scores_to_predictions(ids, self.head.probabilities(x), self.head.classes, self.encoder.usage_of(texts))

    def save(self, path: Path) -> None:
        # No model card: it describes the training run, which the run record already holds.
        with library_bars_off():
            self.encoder.model.save(str(path / ENCODER_FOLDER), create_model_card=False)
        self.head.save(path / HEAD_FILE)


class Contrastive:
    name: ClassVar[str] = "contrastive"
    route: ClassVar[str] = "finetune"
    shares_model: ClassVar[bool] = False  # trains its own copy of the model; the run's shared one stays frozen
    summary: ClassVar[str] = "SetFit-style: the encoder fine-tuned on same/different-label pairs, then a logistic head."
    Options: ClassVar[type[ContrastiveOptions]] = ContrastiveOptions
    task_kinds: ClassVar[frozenset[str]] = frozenset({"classification"})
    model_kinds: ClassVar[frozenset[str]] = frozenset({"encoder"})
    files: ClassVar[tuple[str, ...]] = (ENCODER_FOLDER, HEAD_FILE)

    def uses_examples(self, options: ContrastiveOptions) -> bool:
        return True

    def check(self, options: ContrastiveOptions, train: Split, ctx: Context) -> None:
        counts = Counter(train.labels())
        if len(counts) < 2:
            raise MethodError(f"contrastive pairs need at least two labels in train; it has {len(counts)}", key="pairs")
        if max(counts.values()) < 2:
            raise MethodError(
                "contrastive pairs need a label with at least two training examples (for a positive pair); "
                "every label in train has one",
                key="pairs",
            )
        if options.loss == "batch":
            paired = sorted(label for label, n in counts.items() if n >= 2)
            if len(paired) < 2:
                raise MethodError(
                    "loss: batch needs two labels with at least two training examples each (label-balanced "
                    f"batches); train has {len(paired)} ({', '.join(paired)}); use loss: pairs",
                    key="loss",
                )
            if options.batch_size % 2:
                raise MethodError(
                    f"loss: batch takes two texts of a label at a time: batch_size must be even, got "
                    f"{options.batch_size}",
                    key="batch_size",
                )

    def variants(self, options: ContrastiveOptions) -> dict[str, ContrastiveOptions]:
        return {"": options}

    def adapt(self, options: ContrastiveOptions, train: Split, dev: Split | None, ctx: Context) -> ContrastiveAdapted:
        from transformers import set_seed

        self.check(options, train, ctx)
        set_seed(ctx.seed)  # python, numpy and torch: dropout and any library randomness
        with library_bars_off():
            model = _load_body(ctx, resolve_path(ctx.model.name))
            length = options.max_length or ctx.model.max_length
            if length:
                model.max_seq_length = length
            if options.loss == "pairs":
                pairs = make_pairs(train.texts(), train.labels(), options.pairs, ctx.seed)
                _fit_pairs(model, pairs, options, ctx)
                details = {"loss": "pairs", "pairs": len(pairs), "epochs": options.epochs}
            else:
                details = _fit_batches(model, train, options, ctx, fit_length=not length)

        encoder = Encoder(model, batch_size=ctx.model.batch_size, cache=False, name=ctx.model.name)
        x = encoder.embed(train.texts(), ctx.progress, "embedding train (fine-tuned)")
        head = LinearHead.fit(x, train.labels(), C=options.C, seed=ctx.seed)
        if options.loss == "pairs":
            trained = _pairs_usage(encoder, pairs, options.epochs)
        else:
            embedded = details["steps"] * options.batch_size
            trained = _batches_usage(encoder, train.texts(), embedded, details["training_max_length"])
        usage = trained + total(encoder.usage_of(train.texts()))
        return ContrastiveAdapted(encoder, head, usage, {"contrastive": details})

    def load(self, options: ContrastiveOptions, path: Path, ctx: Context) -> ContrastiveAdapted:
        head = LinearHead.load(path / HEAD_FILE)
        check_labels(head.classes, ctx.task.labels, path / HEAD_FILE, "classes")
        # The saved folder keeps the max_seq_length used in training; don't override it from the spec.
        with library_bars_off():
            model = _load_body(ctx, str(path / ENCODER_FOLDER))
        encoder = Encoder(model, batch_size=ctx.model.batch_size, cache=False, name=ctx.model.name)
        return ContrastiveAdapted(encoder, head)


def default_steps(n_train: int, batch_size: int) -> int:
    """`batch`'s training budget: EPOCHS passes over the training set, at least MIN_STEPS and at most MAX_STEPS
    steps — it stops growing with the data where more steps stopped paying on dev (see the README)."""
    return max(MIN_STEPS, min(MAX_STEPS, math.ceil(EPOCHS * n_train / batch_size)))


def training_length(model: Any, texts: Sequence[str]) -> int:
    """`batch`'s input length in training when none is set: the TRAINING_QUANTILE of the training texts' token
    counts (rounded up to a multiple of 8), never above the model's. A batch is padded to its longest text, and
    label-balanced batches can't be grouped by length, so a few long texts would set every step's cost. Cutting
    the longest quarter in training (never in prediction) made AG News steps about a third cheaper at no cost on
    dev (0.822 with the 0.75 quantile, 0.821 with 0.9, 0.819 with 0.5; 8 per class, 32 steps, 3 draws)."""
    encoded = model.tokenizer(list(texts), add_special_tokens=True, verbose=False)  # no "longer than" warning
    counts = sorted(len(ids) for ids in encoded["input_ids"])
    at = counts[min(len(counts) - 1, math.ceil(TRAINING_QUANTILE * len(counts)) - 1)]
    return min(model.max_seq_length, 8 * math.ceil(at / 8))


def _batches_usage(encoder: Encoder, texts: Sequence[str], embedded: int, max_length: int) -> Usage:
    """Training on ``embedded`` texts drawn from ``texts`` (the sampler's draw is not recorded: their mean length,
    cut at the training ``max_length``)."""
    counts = [min(n, max_length) for n in encoder.token_counts(list(texts))]
    tokens = round(embedded * sum(counts) / max(1, len(counts)))
    return Usage(input_tokens=tokens, flops=training_flops(encoder.params_per_token, tokens))


def _pairs_usage(encoder: Encoder, pairs: Sequence[tuple[str, str, float]], epochs: int) -> Usage:
    """Training on both texts of every pair, every epoch (tokens truncated as in training)."""
    tokens = sum(encoder.token_counts([a for a, _, _ in pairs])) + sum(encoder.token_counts([b for _, b, _ in pairs]))
    tokens *= epochs
    return Usage(input_tokens=tokens, flops=training_flops(encoder.params_per_token, tokens))


def make_pairs(texts: Sequence[str], labels: Sequence[str], iterations: int, seed: int) -> list[tuple[str, str, float]]:
    """SetFit's pairs: per iteration, each example gets one positive (same label, not itself) and one negative.

    An example whose label has no other example gets no positive pair (it still gets negatives).
    """
    rng = random.Random(seed)
    by_label: dict[str, list[int]] = defaultdict(list)
    for i, label in enumerate(labels):
        by_label[label].append(i)
    others = {label: [i for i, lb in enumerate(labels) if lb != label] for label in by_label}
    out: list[tuple[str, str, float]] = []
    for _ in range(iterations):
        for i, label in enumerate(labels):
            same = by_label[label]
            if len(same) > 1:
                j = rng.choice(same[:-1])  # a uniform choice among the others: skip i by swapping it out
                if j == i:
                    j = same[-1]
                out.append((texts[i], texts[j], 1.0))
            out.append((texts[i], texts[rng.choice(others[label])], 0.0))
    return out


def _load_body(ctx: Context, path: str) -> Any:
    from sentence_transformers import SentenceTransformer

    device = best_device(ctx.model.device)
    return SentenceTransformer(path, device=device, trust_remote_code=ctx.model.trust_remote_code)


def _arguments(model: Any, options: ContrastiveOptions, ctx: Context, **extra: Any) -> Any:
    from sentence_transformers import SentenceTransformerTrainingArguments

    return SentenceTransformerTrainingArguments(
        output_dir=str(ctx.workdir / "contrastive"),  # nothing is written there: no checkpoints, no logs
        per_device_train_batch_size=options.batch_size,
        learning_rate=options.learning_rate or LEARNING_RATE[options.loss],
        # transformers 5 takes the warmup ratio as a float `warmup_steps`; `warmup_ratio` is deprecated there.
        warmup_steps=float(options.warmup_ratio),
        seed=ctx.seed,
        data_seed=ctx.seed,
        use_cpu=str(model.device) == "cpu",
        report_to="none",
        disable_tqdm=True,
        save_strategy="no",
        eval_strategy="no",
        logging_strategy="no",
        dataloader_num_workers=0,
        **extra,
    )


def _fit_pairs(model: Any, pairs: list[tuple[str, str, float]], options: ContrastiveOptions, ctx: Context) -> None:
    """Fine-tune ``model`` in place on SetFit's sampled pairs with the library's trainer and CosineSimilarityLoss."""
    from datasets import Dataset
    from sentence_transformers.sentence_transformer.losses import CosineSimilarityLoss

    data = Dataset.from_dict(
        {"sentence1": [p[0] for p in pairs], "sentence2": [p[1] for p in pairs], "label": [p[2] for p in pairs]}
    )
    args = _arguments(model, options, ctx, num_train_epochs=options.epochs)
    steps = math.ceil(len(data) / options.batch_size) * options.epochs
    with ctx.progress.bar("fine-tuning encoder on pairs", steps) as bar:
        trainer = _trainer(
            model=model,
            args=args,
            train_dataset=data,
            loss=CosineSimilarityLoss(model),
            callbacks=[advance_callback(bar)],
        )
        trainer.train()
    model.eval()


def _fit_batches(model: Any, train: Split, options: ContrastiveOptions, ctx: Context, fit_length: bool) -> dict:
    """Fine-tune ``model`` in place on label-balanced batches (the library's group-by-label sampler: two texts of a
    label at a time, labels interleaved), every pair of each batch in the loss; with ``fit_length``, inputs cut at
    :func:`training_length` for the training steps only. Returns what was done, for the trial's details."""
    from datasets import Dataset
    from sentence_transformers.base import BatchSamplers

    texts, labels = train.texts(), train.labels()
    steps = options.steps or default_steps(len(train), options.batch_size)
    unpaired = sorted(label for label, n in Counter(labels).items() if n < 2)
    if unpaired:  # the sampler needs two texts of a label; the head still sees them
        ctx.progress.log(
            f"contrastive: {len(unpaired)} label(s) with one training example stay out of the in-batch "
            f"pairs (the head still learns them): {', '.join(unpaired)}"
        )
    predicting_length = model.max_seq_length
    if fit_length:
        model.max_seq_length = training_length(model, texts)
    details = {"loss": "batch", "steps": steps, "training_max_length": model.max_seq_length, "unpaired": unpaired}
    classes = sorted(set(labels))
    data = Dataset.from_dict({"text": list(texts), "label": [classes.index(label) for label in labels]})
    args = _arguments(model, options, ctx, max_steps=steps, batch_sampler=BatchSamplers.GROUP_BY_LABEL)
    with ctx.progress.bar("fine-tuning encoder on in-batch pairs", steps) as bar:
        trainer = _trainer(
            model=model, args=args, train_dataset=data, loss=batch_pairs_loss(model), callbacks=[advance_callback(bar)]
        )
        trainer.train()
    model.eval()
    model.max_seq_length = predicting_length  # the fitted length was for training steps only
    return details


def batch_pairs_loss(model: Any) -> Any:
    """SetFit's objective over every pair of a batch: the mean squared gap between the cosine of two texts'
    embeddings and 1 (same label) or 0 (different labels). Each text is embedded once and serves in B − 1 pairs,
    where sampled pairs embed two texts for one pair."""
    import torch

    class BatchPairsCosineLoss(torch.nn.Module):
        def __init__(self, model: Any):
            super().__init__()
            self.model = model  # the trainer swaps in its wrapped model under this name

        def forward(self, features: Sequence[dict[str, Any]], labels: Any) -> Any:
            embeddings = torch.nn.functional.normalize(self.model(features[0])["sentence_embedding"], dim=-1)
            cosine = embeddings @ embeddings.T
            same = (labels[:, None] == labels[None, :]).to(cosine.dtype)
            i, j = torch.triu_indices(len(labels), len(labels), offset=1, device=cosine.device)
            return torch.nn.functional.mse_loss(cosine[i, j], same[i, j])

    return BatchPairsCosineLoss(model)


def _trainer(**kwargs: Any) -> Any:
    """A SentenceTransformerTrainer that prints nothing of its own and skips the model card (none is saved)."""
    from sentence_transformers import SentenceTransformerTrainer
    from transformers import PrinterCallback

    class Trainer(SentenceTransformerTrainer):
        # The documented way to drop the model-card callback; it would also draw a tqdm bar of its own.
        def add_model_card_callback(self, default_args_dict: dict[str, Any]) -> None:
            pass

    trainer = Trainer(**kwargs)
    trainer.remove_callback(PrinterCallback)  # with tqdm off, transformers would print every log dict
    return trainer
