"""`contrastive` (fine-tune route): SetFit-style. Fine-tune the sentence encoder on same-label /
different-label pairs, then fit a logistic-regression head on its new embeddings.

The pairs are made as SetFit makes them: each of `pairs` iterations gives every training example
one positive partner (same label, another example) and one negative partner (another label), with
target cosine 1.0 and 0.0. The body is trained with sentence-transformers' own trainer and
`CosineSimilarityLoss`, so the loop is the library's, not ours. The run's shared encoder is never
touched: this method loads and trains its own copy.

What adapting costs (``adapt_usage``): training on every pair's two texts, each epoch (``6·N`` per token,
see :mod:`tailor.usage`), then embedding the training split once for the head.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field

from ..backends.encoder import Encoder
from ..backends.hf import advance_callback, library_bars_off
from ..backends.models import best_device, resolve_path
from ..contract import Context, MethodOptions, count_trainable
from ..errors import MethodError
from ..types import Example, Prediction, Split
from ..usage import NO_USAGE, Usage, total, training_flops
from ._linear import LinearHead, scores_to_predictions


class ContrastiveOptions(MethodOptions):
    pairs: int = Field(20, ge=1)
    """Pair-generation iterations (SetFit's `num_iterations`): each gives every training example one
    positive and one negative pair, so there are 2 × pairs × examples pairs in all."""
    epochs: int = Field(1, ge=1)
    """Passes over the pairs when fine-tuning the encoder."""
    batch_size: int = Field(16, ge=1)
    """Pairs per training step."""
    learning_rate: float = Field(2e-5, gt=0)
    """Peak learning rate of the encoder (AdamW, linear decay)."""
    warmup_ratio: float = Field(0.1, ge=0, lt=1)
    """Fraction of the training steps spent warming the learning rate up from zero."""
    C: float = Field(1.0, gt=0)
    """Inverse regularization strength of the logistic-regression head (smaller = stronger)."""
    max_length: int | None = Field(None, ge=8)
    """Longest input in tokens while training and predicting; default: the model's (or `model.max_length`)."""


@dataclass
class ContrastiveAdapted:
    encoder: Encoder  # this method's own fine-tuned copy, not the run's shared encoder
    head: LinearHead
    adapt_usage: Usage = NO_USAGE
    """Training on the pairs (every epoch) and embedding the training split for the head."""

    @property
    def truncated(self) -> int:
        """Inputs cut to fit the encoder so far (its running count; the runner reads the difference per split)."""
        return self.encoder.truncated

    @property
    def trainable_params(self) -> int:
        return count_trainable(self.encoder.model) + self.head.n_params

    def predict(self, examples: Sequence[Example]) -> list[Prediction]:
        texts = [ex.text for ex in examples]
        x = self.encoder.embed(texts)
        ids = [ex.id for ex in examples]
        return scores_to_predictions(ids, self.head.probabilities(x), self.head.classes, self.encoder.usage_of(texts))

    def save(self, path: Path) -> None:
        # No model card: it describes the training run, which the run record already holds.
        with library_bars_off():
            self.encoder.model.save(str(path / "encoder"), create_model_card=False)
        self.head.save(path / "head.npz")


class Contrastive:
    name: ClassVar[str] = "contrastive"
    route: ClassVar[str] = "finetune"
    shares_model: ClassVar[bool] = False  # trains its own copy of the model; the run's shared one stays frozen
    summary: ClassVar[str] = "SetFit-style: the encoder fine-tuned on same/different-label pairs, then a logistic head."
    Options: ClassVar[type[ContrastiveOptions]] = ContrastiveOptions
    task_kinds: ClassVar[frozenset[str]] = frozenset({"classification"})
    model_kinds: ClassVar[frozenset[str]] = frozenset({"encoder"})

    def check(self, options: ContrastiveOptions, train: Split, ctx: Context) -> None:
        counts: dict[str, int] = defaultdict(int)
        for label in train.labels():
            counts[label] += 1
        if len(counts) < 2:
            raise MethodError(f"contrastive pairs need at least two labels in train; it has {len(counts)}", key="pairs")
        if max(counts.values()) < 2:
            raise MethodError(
                "contrastive pairs need a label with at least two training examples (for a positive pair); "
                "every label in train has one",
                key="pairs",
            )

    def variants(self, options: ContrastiveOptions) -> dict[str, ContrastiveOptions]:
        return {"": options}

    def adapt(self, options: ContrastiveOptions, train: Split, dev: Split | None, ctx: Context) -> ContrastiveAdapted:
        from transformers import set_seed

        self.check(options, train, ctx)
        set_seed(ctx.seed)  # python, numpy and torch: dropout and any library randomness
        with library_bars_off():
            model = _load_body(ctx, resolve_path(ctx.model.name))
            if options.max_length or ctx.model.max_length:
                model.max_seq_length = options.max_length or ctx.model.max_length
            pairs = make_pairs(train.texts(), train.labels(), options.pairs, ctx.seed)
            _fit_body(model, pairs, options, ctx)

        encoder = Encoder(model, batch_size=ctx.model.batch_size, cache=False, name=ctx.model.name)
        x = encoder.embed(train.texts(), ctx.progress, "embedding train (fine-tuned)")
        head = LinearHead.fit(x, train.labels(), C=options.C, seed=ctx.seed)
        usage = _pairs_usage(encoder, pairs, options.epochs) + total(encoder.usage_of(train.texts()))
        return ContrastiveAdapted(encoder, head, usage)

    def load(self, path: Path, ctx: Context) -> ContrastiveAdapted:
        # The saved folder keeps the max_seq_length used in training; don't override it from the spec.
        with library_bars_off():
            model = _load_body(ctx, str(path / "encoder"))
        encoder = Encoder(model, batch_size=ctx.model.batch_size, cache=False, name=ctx.model.name)
        return ContrastiveAdapted(encoder, LinearHead.load(path / "head.npz"))


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


def _fit_body(model: Any, pairs: list[tuple[str, str, float]], options: ContrastiveOptions, ctx: Context) -> None:
    """Fine-tune ``model`` in place on the pairs with the library's trainer and CosineSimilarityLoss."""
    from datasets import Dataset
    from sentence_transformers import SentenceTransformerTrainingArguments
    from sentence_transformers.sentence_transformer.losses import CosineSimilarityLoss

    data = Dataset.from_dict(
        {"sentence1": [p[0] for p in pairs], "sentence2": [p[1] for p in pairs], "label": [p[2] for p in pairs]}
    )
    args = SentenceTransformerTrainingArguments(
        output_dir=str(ctx.workdir / "contrastive"),  # nothing is written there: no checkpoints, no logs
        num_train_epochs=options.epochs,
        per_device_train_batch_size=options.batch_size,
        learning_rate=options.learning_rate,
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
    )
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
