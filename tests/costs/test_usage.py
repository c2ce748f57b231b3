"""What adapting and predicting cost, counted independently of the code that counts it: a fine-tuning trial's FLOPs
are ``6 · N · tokens trained`` (the tokens taken from the encoded rows, times the steps that each cover all of
them), and an encoder prediction's are ``2 · N · its tokens`` (taken from the tokenizer), ``N`` the parameters a
token meets (:func:`tailor.costs.usage.params_per_token`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tailor.backends.pool import ModelPool
from tailor.config.task import ModelSpec
from tailor.contract import Context, TaskInfo
from tailor.costs.usage import Usage, params_per_token
from tailor.methods import METHODS
from tailor.testing import sentiment_task, tiny_lm_path
from tailor.tuning.sft import encode_examples
from tailor.types import Example, Split, adapting

SENTIMENT = TaskInfo("sentiment", "classification", ("negative", "positive"), ("text",), ("accuracy",))
STEPS = 3


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> ModelSpec:
    return ModelSpec(name=str(tiny_lm_path(tmp_path_factory.getbasetemp() / "tiny-lms", arch="llama")))


def _adapt(
    name: str, options: dict[str, Any], task: TaskInfo, model: ModelSpec, train: Split, workdir: Path, dev: Any = None
) -> Any:
    method = METHODS[name]
    workdir.mkdir()
    ctx = Context(task=task, model=model, seed=0, workdir=workdir, models=ModelPool())
    opts = method.Options.model_validate(options)
    method.check(opts, train, ctx)
    with adapting(name):
        return method.adapt(opts, train, dev, ctx)


@pytest.mark.parametrize(
    ("name", "options"),
    [("full", {}), ("lora", {}), ("lora", {"packing": False}), ("prompt-tuning", {"virtual_tokens": 4})],
    ids=["full", "lora", "lora-padded", "prompt-tuning"],
)
def test_fine_tuning_flops_are_six_n_per_token_trained(
    name: str, options: dict[str, Any], tiny: ModelSpec, tmp_path: Path
) -> None:
    train = Split("train", sentiment_task(seed=0, train=10, dev=2, test=2)[0].examples)
    # every step covers every row (one micro-batch of all ten), so the tokens trained are the rows' times the steps
    settings = {"max_steps": STEPS, "batch_size": len(train), "warmup_ratio": 0.0, "max_length": 64, **options}
    adapted = _adapt(name, settings, SENTIMENT, tiny, train, tmp_path / "work")

    lm = adapted.predictor.lm
    rows = encode_examples(adapted.predictor, list(train), max_length=lm.context_length).rows
    assert len(rows) == len(train)
    tokens = STEPS * sum(len(r.prompt_ids) + len(r.answer_ids) for r in rows)
    n = params_per_token(adapted.model)
    training = adapted.details["training"]
    assert training["steps"] == STEPS
    assert training["tokens"] == tokens
    assert training["flops"] == 6 * n * tokens
    # no dev split: adapting cost exactly the training
    assert adapted.adapt_usage == Usage(calls=0, input_tokens=tokens, output_tokens=0, flops=6.0 * n * tokens)


def test_seq_cls_training_and_predictions_cost(tiny: ModelSpec, tmp_path: Path) -> None:
    train, dev, _ = sentiment_task(seed=0, train=10, dev=4, test=2)
    settings = {"max_steps": STEPS, "batch_size": len(train), "warmup_ratio": 0.0, "max_length": 64}
    adapted = _adapt("seq-cls", settings, SENTIMENT, tiny, train, tmp_path / "work", dev)

    rows, _ = adapted.encode(list(train))  # a classifier reads the prompt alone
    tokens = STEPS * sum(len(r.prompt_ids) for r in rows)
    n = params_per_token(adapted.model)  # the LoRA adapters and the new head included
    training = adapted.details["training"]
    assert training["flops"] == 6 * n * tokens
    # adapting: the training, and every evaluation's forward passes over the dev split
    evals = len(training["evals"])
    assert evals == STEPS  # one step per epoch, an evaluation per epoch
    dev_tokens = sum(len(r.prompt_ids) for r in adapted.encode(list(dev))[0])
    reads = tokens + evals * dev_tokens
    assert adapted.adapt_usage == Usage(evals * len(dev), reads, 0, 6.0 * n * tokens + 2.0 * n * evals * dev_tokens)
    for pred, row in zip(adapted.predict(list(train)), rows):
        count = len(row.prompt_ids)
        assert pred.usage == Usage(calls=1, input_tokens=count, output_tokens=0, flops=2.0 * n * count)


def test_params_per_token_leaves_out_the_input_embeddings_only(tiny: ModelSpec) -> None:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny.name)
    everything = sum(p.numel() for p in model.parameters())
    table = model.get_input_embeddings().weight.numel()
    tied = model.get_output_embeddings().weight is model.get_input_embeddings().weight
    # a tied output layer is counted (a multiply), though its weights are the input table's
    assert params_per_token(model) == everything - table + (table if tied else 0)


@pytest.fixture(scope="module")
def encoder_pool() -> ModelPool:
    return ModelPool()


def _texts() -> list[Example]:
    long = " ".join(["the weather was mild and the match went on"] * 60)  # over the encoder's 256 tokens
    texts = ["Heavy rain tomorrow.", "The striker scored twice in the second half.", long]
    return [Example(f"x{i}", {"text": t}, "weather" if i != 1 else "sports") for i, t in enumerate(texts)]


@pytest.mark.parametrize("name", ["head", "few-shot", "zero-shot"])
def test_encoder_predictions_cost_two_n_per_token(name: str, encoder_pool: ModelPool, tmp_path: Path) -> None:
    task = TaskInfo("mini", "classification", ("sports", "weather"), ("text",), ("accuracy",))
    examples = _texts()
    train = Split("train", tuple(examples[:2]) * 2)
    workdir = tmp_path / "work"
    workdir.mkdir()
    ctx = Context(task=task, model=ModelSpec(), seed=0, workdir=workdir, models=encoder_pool)
    method = METHODS[name]
    options = method.Options.model_validate({"k": 1} if name == "few-shot" else {})
    with adapting(name):
        adapted = method.adapt(options, train, None, ctx)
    preds = adapted.predict(examples)

    st = ctx.backend().model
    n = params_per_token(st[0].auto_model)
    texts = [p.prompt or ex.text for p, ex in zip(preds, examples)]  # zero-shot embeds its rendered template
    counts = [min(len(st.tokenizer(t)["input_ids"]), st.max_seq_length) for t in texts]
    assert counts[2] == st.max_seq_length, "the long text is truncated as the model truncates it"
    for pred, count in zip(preds, counts):
        assert pred.usage == Usage(calls=1, input_tokens=count, output_tokens=0, flops=2.0 * n * count)
    assert adapted.adapt_usage.flops > 0 and adapted.adapt_usage.calls > 0


@pytest.mark.slow
def test_encoder_full_predictions_and_training_cost(encoder_pool: ModelPool, tmp_path: Path) -> None:
    task = TaskInfo("mini", "classification", ("sports", "weather"), ("text",), ("accuracy",))
    examples = _texts()
    train = Split("train", tuple(examples[:2]) * 2)
    adapted = _adapt("encoder-full", {"epochs": 2, "batch_size": 4}, task, ModelSpec(), train, tmp_path / "work")
    preds = adapted.predict(examples)

    n = params_per_token(adapted.model)  # the encoder and the new head, not the input embeddings
    tok = adapted.tokenizer
    counts = [len(tok(ex.text, truncation=True)["input_ids"]) for ex in examples]
    for pred, count in zip(preds, counts):
        assert pred.usage == Usage(calls=1, input_tokens=count, output_tokens=0, flops=2.0 * n * count)
    trained = 2 * sum(counts[:2]) * 2  # two epochs over the four training rows (two texts, twice each)
    assert adapted.adapt_usage == Usage(calls=0, input_tokens=trained, output_tokens=0, flops=6.0 * n * trained)
