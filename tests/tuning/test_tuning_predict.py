"""A fine-tuned generative model predicts as the prompted one does, and its weights are scored on dev once.

- Speed: a LoRA/IA3 adapter is merged into the base weights for prediction, and the scorer's fast paths apply
  to it as to the base model: the shared prompt prefix computed once and its KV cache reused (no example falls
  back to full sequences). A model behind PEFT's wrapper (soft prompts) makes the logits of the needed positions
  only, as the model inside does.
- Dev once: the best evaluation's dev predictions are the final weights' — the merge audit and the runner's dev
  figure take them rather than scoring the same weights again.

On tiny random models from :mod:`tailor.testing`.
"""

from __future__ import annotations

import collections
import copy
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from conftest import dataset_rows, task_doc, write_jsonl
from typer.testing import CliRunner

from tailor.backends.local.lm import LanguageModel
from tailor.backends.pool import ModelPool
from tailor.cli.main import app
from tailor.config.task import ModelSpec
from tailor.contract import Context, TaskInfo
from tailor.methods import METHODS
from tailor.prompting import PromptAdapted, PromptOptions
from tailor.runner.store import RunStore
from tailor.testing import sentiment_task, tiny_lm_path
from tailor.tuning.audits import is_merged
from tailor.tuning.recipe import build_predictor
from tailor.types import adapting

SENTIMENT = TaskInfo("sentiment", "classification", ("negative", "positive"), ("text",), ("accuracy",))
FAST = {"max_steps": 2, "batch_size": 4, "warmup_ratio": 0.0, "max_length": 64, "eval_every": 2, "eval_examples": 8}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> ModelSpec:
    return ModelSpec(name=str(tiny_lm_path(tmp_path_factory.getbasetemp() / "tiny-lms", arch="llama")))


def _adapt(name: str, options: dict[str, Any], model: ModelSpec, workdir: Path) -> tuple[Any, Any, Any]:
    """``name`` adapted on a few sentiment examples with a dev split; returns (adapted, dev split, test split)."""
    train, dev, test = sentiment_task(seed=0, train=12, dev=6, test=10)
    method = METHODS[name]
    workdir.mkdir()
    ctx = Context(task=SENTIMENT, model=model, seed=0, workdir=workdir, models=ModelPool())
    opts = method.Options.model_validate({**FAST, **options})
    with adapting(name):
        return method.adapt(opts, train, dev, ctx), dev, test


@pytest.mark.parametrize("name", ["lora", "ia3"])
def test_a_mergeable_adapter_predicts_merged_through_the_prefix_cache(name: str, tiny: ModelSpec, tmp_path: Path):
    adapted, _, test = _adapt(name, {}, tiny, tmp_path / "work")
    lm = adapted.predictor.lm
    cached, fallbacks = lm.prefix_cached, lm.prefix_fallbacks
    adapted.predict(list(test))
    # every test example scored on top of the cached prefix, none as full sequences
    assert (lm.prefix_cached - cached, lm.prefix_fallbacks - fallbacks) == (len(test), 0)
    assert is_merged(adapted.model), "the adapter should be merged into the base weights for prediction"
    assert adapted.details["audits"]["merge"]["identical_outputs"] is True

    # loaded back, it predicts the same way: merged, through the cache, the same scores
    out = tmp_path / "saved"
    out.mkdir()
    adapted.save(out)
    assert (out / "adapter" / "adapter_model.safetensors").is_file()
    ctx = Context(task=SENTIMENT, model=tiny, seed=0, workdir=tmp_path, models=ModelPool())
    loaded = METHODS[name].load(adapted.options, out, ctx)  # the options it was trained with
    assert is_merged(loaded.model)
    before, after = adapted.predict(list(test)), loaded.predict(list(test))
    assert loaded.predictor.lm.prefix_fallbacks == 0 and loaded.predictor.lm.prefix_cached == len(test)
    for a, b in zip(before, after):
        assert a.scores == pytest.approx(b.scores, abs=1e-5)


def test_a_language_model_around_a_peft_wrapper_keeps_only_the_logits_it_needs(tiny: ModelSpec) -> None:
    from peft import PromptTuningConfig, get_peft_model

    base = LanguageModel.from_spec(tiny)
    _, _, test = sentiment_task(seed=0, train=2, dev=2, test=6)
    peft = get_peft_model(base.model, PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=4)).eval()
    # the wrapper's own forward takes **kwargs and hands them on to the model inside, whose signature counts
    lm = LanguageModel(peft, base.tokenizer, "causal")
    assert (lm.keeps_logits, lm.cache_argument) == (base.keeps_logits, base.cache_argument)
    assert lm.keeps_logits
    full = copy.copy(lm)
    full.keeps_logits = False  # every position's logits, sliced afterwards
    options = PromptOptions(instruction="Is this positive or negative?")
    kept, sliced = (build_predictor(m, options, SENTIMENT).predict(list(test)) for m in (lm, full))
    for a, b in zip(kept, sliced):
        assert a.scores == pytest.approx(b.scores, abs=1e-5)


@pytest.mark.parametrize("kind", ["prompt-tuning", "prefix-tuning"])
def test_a_soft_prompt_is_part_of_the_cached_prefix(kind: str, tiny: ModelSpec) -> None:
    from peft import PrefixTuningConfig, PromptTuningConfig, get_peft_model

    base = LanguageModel.from_spec(tiny)
    config = PromptTuningConfig if kind == "prompt-tuning" else PrefixTuningConfig
    torch.manual_seed(0)  # a random soft prompt: it changes every score
    lm = LanguageModel(
        get_peft_model(base.model, config(task_type="CAUSAL_LM", num_virtual_tokens=5)).eval(), base.tokenizer, "causal"
    )
    _, _, test = sentiment_task(seed=0, train=2, dev=2, test=8)
    prefix, prompts = "Is this review positive or negative?\n", [f"Review: {ex.text}\nAnswer:" for ex in test]
    options = [" positive", " negative", " not sure at all"]
    cached, _ = lm.score_options(prefix, prompts, options)
    assert (lm.prefix_cached, lm.prefix_fallbacks) == (len(test), 0)
    # each example alone, as one full sequence behind the virtual tokens: what training computes
    full, _ = lm.score_options(prefix, prompts, options, use_prefix_cache=False)
    assert cached == pytest.approx(full, abs=1e-4)
    plain, _ = base.score_options(prefix, prompts, options, use_prefix_cache=False)
    assert abs(full - plain).max() > 1e-2, "the soft prompt must change the scores, or an ignored one could pass"


def test_fine_tuning_hands_over_the_best_evaluations_dev_predictions(tiny: ModelSpec, tmp_path: Path) -> None:
    adapted, dev, _ = _adapt("lora", {"max_steps": 4, "eval_every": 1, "patience": None}, tiny, tmp_path / "work")
    training = adapted.details["training"]
    assert len(training["evals"]) == 4
    assert set(adapted.dev_predictions) == set(dev.ids())
    best = [p.label for p in (adapted.dev_predictions[i] for i in dev.ids())]
    metric = sum(label == ex.label for label, ex in zip(best, dev)) / len(dev)
    assert metric == pytest.approx(training["best_metric"])


@pytest.fixture
def scored(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, bool, str]]:
    """Every example the prompt route's predictor scores, as (model, adapter merged?, example id)."""
    calls: list[tuple[int, bool, str]] = []
    models: list[Any] = []  # held, so that no model's number is another's
    real = PromptAdapted.predict

    def predict(self: PromptAdapted, examples: Any) -> Any:
        if not any(m is self.lm.model for m in models):
            models.append(self.lm.model)
        which = next(i for i, m in enumerate(models) if m is self.lm.model)
        calls.extend((which, is_merged(self.lm.model), ex.id) for ex in examples)
        return real(self, examples)

    monkeypatch.setattr(PromptAdapted, "predict", predict)
    return calls


@pytest.mark.slow
def test_the_same_weights_are_never_scored_on_dev_twice(
    tmp_path: Path, tiny: ModelSpec, scored: list[tuple[int, bool, str]]
) -> None:
    # one evaluation, at the last step: the weights it scores are the final ones (merged afterwards, for lora)
    train = {"max_steps": 2, "batch_size": 8, "eval_every": 2, "eval_examples": 50, "learning_rate": 1e-3}
    write_jsonl(tmp_path / "data.jsonl", dataset_rows())
    doc = task_doc(methods=[{"name": "lora", **train}, {"name": "full", **train}], model={"name": tiny.name})
    (tmp_path / "task.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    result = CliRunner().invoke(app, ["run", str(tmp_path / "task.yaml"), "--out", str(tmp_path / "run"), "--quiet"])
    assert result.exit_code == 0, result.output

    store = RunStore.open_existing(tmp_path / "run")
    assert {r["trial"]: r["status"] for r in store.results()} == {"lora": "ok", "full": "ok"}
    dev = {p["example_id"] for p in store.predictions("lora", "dev")}
    assert dev and dev == {p["example_id"] for p in store.predictions("full", "dev")}
    store.close()
    per_weights = collections.Counter(call for call in scored if call[2] in dev)
    twice = [call for call, n in per_weights.items() if n > 1]
    assert not twice, f"dev examples scored more than once with the same weights: {twice[:5]}"
    # lora: the adapter at its evaluation, then the merged model in the merge audit (up to 32 examples); full: once
    assert len(per_weights) == len(dev) + min(32, len(dev)) + len(dev)
