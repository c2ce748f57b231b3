"""What fine-tuning learns: on synthetic tasks with a clear signal, each generative fine-tuning method takes a tiny
random Llama from chance to a stated accuracy, measured on a held-out test split after save and load.

The model is built locally (``tailor.testing``) at an initialization a narrow model can learn from (``LEARNABLE``;
at transformers' default, frozen-output methods plateau — see ``build_tiny_lm``). The data is
``tailor.testing.sentiment_task``: sentences whose last word is one of 24 sentiment words, with people, nouns and
times as distractors; label-balanced train (400), dev (60) and test (100) splits, disjoint in their texts.

The prompt is a plain completion with no answer cue, so the label is predicted right after the sentiment word.
On a random model that matters for soft prompts: they can only add keys and values to attention that is nearly
uniform and frozen, which cannot single out a word further back (with the chat template's trailing tokens they stay
at chance); full fine-tuning and LoRA reach the same accuracy either way.

What each method reached on this data (seeds 0, 1, 2), and the threshold asserted:

    method                       test accuracy      asserted
    prompt (zero-shot, untrained)  0.47               within 0.5 ± 0.12
    full                         0.99 0.99 0.99     >= 0.95
    lora                         1.00 1.00 1.00     >= 0.95
    prefix-tuning                0.99 0.98 1.00     >= 0.85
    prompt-tuning                0.96 0.96 0.90     >= 0.75
    ia3                          0.81 0.80 0.83     >= 0.65

Generation (``routine_task``, LoRA): exact match 0.98 1.00 1.00 (asserted >= 0.9); untrained 0.

CPU runs are deterministic: the same seed gives bit-identical weights and scores, another seed different ones.
``benchmarks/finetune_synthetic.py`` records the same figures with their costs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tailor.config.task import ModelSpec
from tailor.contract import Context, TaskInfo
from tailor.methods import METHODS
from tailor.testing import LEARNABLE, ROUTINE_ANSWERS, routine_task, sentiment_task, tiny_lm_path
from tailor.types import Example, Prediction, Split, adapting

# Each test trains a tiny model until it learns the task: minutes on 2 cores.
pytestmark = pytest.mark.slow

SENTIMENT = TaskInfo("sentiment", "classification", ("negative", "positive"), ("text",), ("accuracy",))
ROUTINE = TaskInfo("routine", "qa", None, ("question",), ("exact_match", "f1"))

# The label right after the input's last word (see the module docstring).
COMPLETION = {"chat": "completion", "answer_prefix": ""}
# Four epochs of 50 steps; the best dev epoch is kept.
TRAINING: dict[str, Any] = {"epochs": 4, "batch_size": 8, "prompt": COMPLETION}
# Learning rates found by a sweep on this data; soft prompts and scalings want far higher ones than weights do.
SETTINGS: dict[str, dict[str, Any]] = {
    "full": {"learning_rate": 1e-3},
    "lora": {"learning_rate": 1e-2},
    "prefix-tuning": {"learning_rate": 3e-2},
    "prompt-tuning": {"learning_rate": 1e-1},
    "ia3": {"learning_rate": 1e-1},
}
THRESHOLDS = {"full": 0.95, "lora": 0.95, "prefix-tuning": 0.85, "prompt-tuning": 0.75, "ia3": 0.65}


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> ModelSpec:
    return ModelSpec(name=str(tiny_lm_path(tmp_path_factory.getbasetemp() / "tiny-lms", arch="llama", **LEARNABLE)))


@pytest.fixture(scope="module")
def sentiment() -> tuple[Split, Split, Split]:
    return sentiment_task(seed=0)


def _adapt(
    name: str,
    settings: dict[str, Any],
    task: TaskInfo,
    model: ModelSpec,
    train: Split,
    dev: Split,
    workdir: Path,
    seed: int = 0,
) -> tuple[Any, Any, Context]:
    method = METHODS[name]
    options = method.Options.model_validate(settings)
    workdir.mkdir(parents=True)
    ctx = Context(task=task, model=model, seed=seed, workdir=workdir)
    method.check(options, train, ctx)
    with adapting(name):
        return method.adapt(options, train, dev, ctx), options, ctx


def _reloaded(name: str, adapted: Any, options: Any, ctx: Context, where: Path) -> Any:
    """``adapted`` saved and loaded back in a fresh context: what is measured is what was kept."""
    where.mkdir()
    adapted.save(where)
    return METHODS[name].load(options, where, Context(task=ctx.task, model=ctx.model, seed=ctx.seed, workdir=where))


def accuracy(preds: list[Prediction], examples: list[Example]) -> float:
    return sum(p.label == ex.label for p, ex in zip(preds, examples, strict=True)) / len(examples)


def exact_match(preds: list[Prediction], examples: list[Example]) -> float:
    return sum(p.output in ex.target for p, ex in zip(preds, examples, strict=True)) / len(examples)


def test_the_data_is_balanced_and_the_splits_disjoint(sentiment) -> None:
    train, dev, test = sentiment
    assert (len(train), len(dev), len(test)) == (400, 60, 100)
    for split in sentiment:
        assert split.labels().count("positive") == len(split) // 2
    texts = [set(s.texts()) for s in sentiment]
    assert sum(map(len, texts)) == len(train) + len(dev) + len(test), "a text in two splits (or twice in one)"
    assert sentiment_task(seed=0) == sentiment and sentiment_task(seed=1) != sentiment


def test_the_untrained_model_is_at_chance(model: ModelSpec, sentiment, tmp_path: Path) -> None:
    """The baseline every fine-tuning result below is measured against: the same model and prompt, zero-shot."""
    train, dev, test = sentiment
    adapted, _, _ = _adapt("prompt", COMPLETION, SENTIMENT, model, train, dev, tmp_path / "work")
    acc = accuracy(adapted.predict(test.examples), list(test))
    assert abs(acc - 0.5) <= 0.12, f"a random model scored {acc:.2f}: the task leaks its labels somewhere"


@pytest.mark.parametrize("name", list(SETTINGS))
def test_fine_tuning_learns_the_task(name: str, model: ModelSpec, sentiment, tmp_path: Path) -> None:
    train, dev, test = sentiment
    adapted, options, ctx = _adapt(name, TRAINING | SETTINGS[name], SENTIMENT, model, train, dev, tmp_path / "work")
    training = adapted.details["training"]
    assert training["steps"] == 4 * 50 or training["stopped_early"]
    assert training["best_metric"] >= THRESHOLDS[name], f"{name}: dev accuracy by epoch {training['evals']}"

    loaded = _reloaded(name, adapted, options, ctx, tmp_path / "saved")
    acc = accuracy(loaded.predict(test.examples), list(test))
    assert acc >= THRESHOLDS[name], f"{name} reached {acc:.2f} test accuracy (dev by epoch: {training['evals']})"


# The other architectures the contract runs on: the same task and prompt, learning rates from their own sweeps
# (seeds 0, 1, 2 reached: qwen2 lora 1.00 1.00 0.99; t5 full 0.97 0.99 0.99, lora 0.98 0.99 0.99; untrained 0.49
# and 0.53). T5 keeps its own width-scaled initialization.
ARCHS = [
    pytest.param("qwen2", "lora", {"learning_rate": 1e-2}, id="qwen2-lora"),
    pytest.param("t5", "full", {"learning_rate": 3e-4}, id="t5-full"),
    pytest.param("t5", "lora", {"learning_rate": 3e-3}, id="t5-lora"),
]


@pytest.mark.parametrize(("arch", "name", "settings"), ARCHS)
def test_fine_tuning_learns_on_other_architectures(
    arch: str, name: str, settings: dict[str, Any], sentiment, tmp_path_factory, tmp_path: Path
) -> None:
    build = {} if arch == "t5" else LEARNABLE
    model = ModelSpec(name=str(tiny_lm_path(tmp_path_factory.getbasetemp() / "tiny-lms", arch=arch, **build)))
    train, dev, test = sentiment
    untrained, _, _ = _adapt("prompt", COMPLETION, SENTIMENT, model, train, dev, tmp_path / "untrained")
    assert abs(accuracy(untrained.predict(test.examples), list(test)) - 0.5) <= 0.12

    adapted, options, ctx = _adapt(name, TRAINING | settings, SENTIMENT, model, train, dev, tmp_path / "work")
    acc = accuracy(_reloaded(name, adapted, options, ctx, tmp_path / "saved").predict(test.examples), list(test))
    assert acc >= 0.9, f"{name} on {arch} reached {acc:.2f} (dev by epoch: {adapted.details['training']['evals']})"


def test_lora_learns_to_answer_and_to_stop(model: ModelSpec, tmp_path: Path) -> None:
    """Generation: answers of one to four words, a fixed one per thing named in the question. Only EOS ends an
    answer (no stop strings), so exact match means the model learned where each answer ends."""
    train, dev, test = routine_task(seed=0)
    prompt = {"input": "{{ question }}", "stop": [], "max_new_tokens": 10}

    untrained, _, _ = _adapt("prompt", prompt, ROUTINE, model, train, dev, tmp_path / "untrained")
    before = untrained.predict(test.examples)
    assert exact_match(before, list(test)) == 0.0
    assert all(p.output not in ROUTINE_ANSWERS.values() for p in before)

    settings = {"learning_rate": 1e-2, "epochs": 4, "batch_size": 8, "prompt": prompt}
    adapted, options, ctx = _adapt("lora", settings, ROUTINE, model, train, dev, tmp_path / "work")
    assert adapted.details["audits"]["answer_mask"]["all_end_with_eos"]
    after = _reloaded("lora", adapted, options, ctx, tmp_path / "saved").predict(test.examples)
    em = exact_match(after, list(test))
    assert em >= 0.9, f"exact match {em:.2f}; outputs: {[p.output for p in after[:8]]}"
    # every answer written is one of the answers, whole: none runs on into the next
    assert sum(p.output in ROUTINE_ANSWERS.values() for p in after) >= 0.9 * len(test)


def _trained_state(adapted: Any) -> dict[str, Any]:
    return {n: p.detach().clone() for n, p in adapted.model.named_parameters() if p.requires_grad}


def test_a_seed_determines_the_run(model: ModelSpec, sentiment, tmp_path: Path) -> None:
    """The adapter's initial weights and the example order come from the seed alone: the same seed gives
    bit-identical weights and scores, another seed different ones."""
    import torch

    train, dev, test = sentiment
    settings = TRAINING | SETTINGS["lora"] | {"max_steps": 6}
    runs = {}
    for label, seed in (("a", 0), ("b", 0), ("c", 1)):
        adapted, _, _ = _adapt("lora", settings, SENTIMENT, model, train, dev, tmp_path / label, seed=seed)
        runs[label] = (_trained_state(adapted), adapted.predict(test.examples[:20]), adapted.details["training"])

    (state_a, preds_a, train_a), (state_b, preds_b, train_b), (state_c, preds_c, _) = runs["a"], runs["b"], runs["c"]
    assert state_a.keys() == state_b.keys() == state_c.keys()
    assert all(torch.equal(state_a[k], state_b[k]) for k in state_a)
    assert [p.scores for p in preds_a] == [p.scores for p in preds_b]
    assert train_a["evals"] == train_b["evals"] and train_a["tokens"] == train_b["tokens"]

    assert any(not torch.equal(state_a[k], state_c[k]) for k in state_a)
    assert [p.scores for p in preds_a] != [p.scores for p in preds_c]
