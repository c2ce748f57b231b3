"""`contrastive`: the in-batch loss (the default) and SetFit's sampled pairs, their options and their budget.

The contract test runs the default path (``conftest.FAST_OPTIONS``); this file checks what is particular to the
method: which loss a task file gets, the loss's value against a hand computation, the step budget, the training
length, and the `pairs` path end to end on the real encoder.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from pydantic import ValidationError

from tailor.contract import Context, TaskInfo
from tailor.errors import MethodError
from tailor.methods import METHODS
from tailor.methods.contrastive import (
    MAX_STEPS,
    MIN_STEPS,
    batch_pairs_loss,
    default_steps,
    make_pairs,
    training_length,
)
from tailor.runner.plan import sample_per_class
from tailor.types import Example, Split, adapting

Options = METHODS["contrastive"].Options


def test_loss_defaults_to_batch_and_old_task_files_keep_pairs() -> None:
    assert Options().loss == "batch"
    # a task file written before `loss` existed sets pairs or epochs: it keeps SetFit's sampled pairs
    assert Options(pairs=3).loss == "pairs"
    assert Options(epochs=2).loss == "pairs"
    assert Options(loss="pairs").pairs == 20


@pytest.mark.parametrize(
    ("given", "key"),
    [
        ({"loss": "batch", "pairs": 3}, "pairs"),
        ({"loss": "batch", "epochs": 2}, "epochs"),
        ({"pairs": 3, "steps": 4}, "steps"),
    ],
)
def test_options_of_the_other_loss_are_refused_by_name(given: dict, key: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Options(**given)
    error = caught.value.errors()[0]
    assert error["loc"] == (key,)
    assert "loss:" in error["msg"]


def test_budget_grows_with_the_data_then_stops() -> None:
    assert default_steps(8, 16) == MIN_STEPS  # tiny sets: the floor
    assert default_steps(256, 16) == 64  # four passes over the training set
    assert default_steps(10_000, 16) == MAX_STEPS  # large sets: the cap
    steps = [default_steps(n, 16) for n in range(2, 5000, 37)]
    assert steps == sorted(steps)


def test_batch_loss_is_the_cosine_objective_over_every_pair() -> None:
    class Fixed(torch.nn.Module):  # stands in for the encoder: the "features" are the embeddings themselves
        def forward(self, features: dict) -> dict:
            return {"sentence_embedding": features["x"]}

    x = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 2.0], [-1.0, 0.0]])
    labels = torch.tensor([0, 0, 1, 1])
    got = batch_pairs_loss(Fixed())([{"x": x}], labels)
    unit = x / x.norm(dim=1, keepdim=True)
    gaps = []
    for i in range(4):
        for j in range(i + 1, 4):
            target = 1.0 if labels[i] == labels[j] else 0.0
            gaps.append((float(unit[i] @ unit[j]) - target) ** 2)
    assert got.item() == pytest.approx(sum(gaps) / len(gaps), abs=1e-6)


def test_training_length_is_the_quantile_of_the_texts(shared_models, task_data) -> None:
    spec, data = task_data
    encoder = shared_models.get(spec.model)
    model = encoder.model
    counts = sorted(len(ids) for ids in model.tokenizer(data.train.texts())["input_ids"])
    length = training_length(model, data.train.texts())
    assert length % 8 == 0 and length <= model.max_seq_length
    covered = sum(n <= length for n in counts) / len(counts)
    assert covered >= 0.9
    assert training_length(model, ["word " * 1000]) == model.max_seq_length  # never above the model's


def test_pairs_are_setfits(task_data) -> None:
    _, data = task_data
    texts, labels = data.train.texts(), data.train.labels()
    pairs = make_pairs(texts, labels, 2, seed=0)
    assert len(pairs) == 2 * 2 * len(texts)
    label_of = dict(zip(texts, labels))
    for a, b, same in pairs:
        assert (label_of[a] == label_of[b]) == (same == 1.0)
        assert a != b or same == 0.0


def test_batch_loss_needs_two_labels_with_two_examples(tmp_path: Path, shared_models, task_data) -> None:
    spec, data = task_data
    method = METHODS["contrastive"]
    ex = data.train.examples
    one_each = {}
    for e in ex:
        one_each.setdefault(e.label, e)
    lonely = Split(
        "train", (*one_each.values(), next(e for e in ex if e.label == ex[0].label and e is not one_each[e.label]))
    )
    task = TaskInfo(spec.name, "classification", tuple(sorted(set(data.train.labels()))), ("text",), ("accuracy",))
    ctx = Context(task=task, model=spec.model, seed=0, workdir=tmp_path, models=shared_models)
    with pytest.raises(MethodError, match="loss: pairs") as caught:
        method.check(Options(), lonely, ctx)
    assert caught.value.key == "loss"
    with pytest.raises(MethodError, match="even"):
        method.check(Options(batch_size=7), data.train, ctx)
    method.check(Options(loss="pairs"), lonely, ctx)  # sampled pairs make do with one label of two


@pytest.mark.parametrize("given", [{"loss": "pairs", "pairs": 1}, {"steps": 12, "batch_size": 12}])
@pytest.mark.slow
def test_both_losses_learn_the_task(given: dict, tmp_path: Path, shared_models, task_data) -> None:
    spec, data = task_data
    method = METHODS["contrastive"]
    task = TaskInfo(spec.name, "classification", tuple(sorted(set(data.train.labels()))), ("text",), ("accuracy",))
    ctx = Context(task=task, model=spec.model, seed=0, workdir=tmp_path, models=shared_models)
    train = sample_per_class(data.train, 8, 0)
    with adapting("contrastive"):
        adapted = method.adapt(Options(**given), train, None, ctx)
    predictions = adapted.predict(list(data.dev.examples))  # the test split is sealed: dev is what tests see
    accuracy = sum(p.label == e.label for p, e in zip(predictions, data.dev.examples)) / len(data.dev)
    assert accuracy >= 0.8, accuracy
    assert adapted.adapt_usage.input_tokens > 0
    assert adapted.details["contrastive"]["loss"] == Options(**given).loss
    # the fitted training length is for training only: prediction keeps the model's
    assert adapted.encoder.model.max_seq_length == shared_models.get(spec.model).model.max_seq_length
    assert isinstance(adapted.predict([Example("x", {"text": "a sentence"})])[0].label, str)


@pytest.mark.slow
def test_a_label_with_one_example_is_said_to_stay_out_of_the_pairs(tmp_path: Path, shared_models, task_data) -> None:
    from contextlib import contextmanager

    class Said:
        def __init__(self) -> None:
            self.lines: list[str] = []

        @contextmanager
        def bar(self, description: str, total: int | None):
            yield type("B", (), {"advance": lambda self, n=1: None})()

        def log(self, message: str) -> None:
            self.lines.append(message)

    spec, data = task_data
    labels = sorted(set(data.train.labels()))
    lone = labels[-1]
    kept = [e for e in sample_per_class(data.train, 4, 0).examples if e.label != lone]
    train = Split("train", (*kept, next(e for e in data.train.examples if e.label == lone)))
    said = Said()
    task = TaskInfo(spec.name, "classification", tuple(labels), ("text",), ("accuracy",))
    ctx = Context(task=task, model=spec.model, seed=0, workdir=tmp_path, models=shared_models, progress=said)
    with adapting("contrastive"):
        adapted = METHODS["contrastive"].adapt(Options(steps=2, batch_size=4), train, None, ctx)
    assert adapted.details["contrastive"]["unpaired"] == [lone]
    assert any(lone in line and "one training example" in line for line in said.lines), said.lines
    assert lone in adapted.head.classes  # the head still learns it
