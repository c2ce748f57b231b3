"""The fine-tuning audits, each shown to catch the bug it guards against (planted here on purpose) and to pass
on the real code: an answer truncated away or without EOS, a prompt trained without the chat template that
inference uses, packed examples that see each other, a merge that changes what the model predicts.

All on tiny random-weight models from :mod:`tailor.testing`. Their attention is nearly uniform, so mixing
packed examples changes their loss very little; the packing tests sharpen the attention first (see
:func:`sharpen`) so a leak shows by a wide margin rather than by luck.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from conftest import LABELS, dataset_rows

from tailor.backends.local.lm import LanguageModel
from tailor.config.task import ModelSpec
from tailor.contract import Context, TaskInfo
from tailor.errors import MethodError
from tailor.methods import METHODS
from tailor.prompting import PromptOptions
from tailor.testing import tiny_lm_path
from tailor.tuning import audits
from tailor.tuning.audits import AuditError, audit_answer_mask, audit_merge, audit_packing, audit_template, merged_copy
from tailor.tuning.packing import packed_batch
from tailor.tuning.recipe import build_predictor
from tailor.tuning.sft import Encoded, encode_examples
from tailor.tuning.steps import packed_loss, unwrap
from tailor.types import Example, Split, adapting

CLASSIFY = TaskInfo("mini", "classification", tuple(LABELS), ("text",), ("accuracy",))
QA = TaskInfo("qa", "qa", None, ("text",), ("exact_match",))
LONG_ID = "long"


def examples(n: int = 12) -> list[Example]:
    return [Example(r["id"], {"text": r["text"]}, r["label"]) for r in dataset_rows()[:n]]


def long_example() -> Example:
    text = " ".join(["The striker scored twice in the second half of the match."] * 10)
    return Example(LONG_ID, {"text": text}, "sports")


def sharpen(model: Any, factor: float = 8.0) -> Any:
    """Scale the attention projections so attention is peaked and carries real signal between positions."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if any(part in name for part in ("q_proj", "k_proj", "v_proj", "o_proj")):
                p.mul_(factor)
    return model


def predictor(lm: LanguageModel, task: TaskInfo = CLASSIFY, **prompt: Any):
    return build_predictor(lm, PromptOptions(**prompt), task)


@pytest.fixture(scope="module")
def llama_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_lm_path(tmp_path_factory.getbasetemp() / "tiny-lms", arch="llama")


@pytest.fixture(scope="module")
def qwen2_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_lm_path(tmp_path_factory.getbasetemp() / "tiny-lms", arch="qwen2")


@pytest.fixture(scope="module")
def lm(llama_path: Path) -> LanguageModel:
    """A tiny Llama with a chat template; tests here must not change its weights."""
    loaded = LanguageModel.from_spec(ModelSpec(name=str(llama_path)))
    assert loaded.has_chat_template
    return loaded


# ---------------------------------------------------------------------------------------------- the answer mask


def naive_rows(lm: LanguageModel, pred: Any, exs: list[Example], max_length: int, eos_after_cut: bool) -> list[Encoded]:
    """What a naive SFT encoder does with an over-long example: tokenize prompt and answer as one sequence and
    cut it on the right at ``max_length`` (optionally putting EOS back after the cut)."""
    eos = lm.tokenizer.eos_token_id
    whole = encode_examples(pred, exs, max_length=100_000).rows
    out = []
    for r in whole:
        ids = r.ids[:max_length]
        prompt, answer = ids[: len(r.prompt_ids)], ids[len(r.prompt_ids) :]
        if eos_after_cut and answer[-1:] != [eos]:
            answer = [*answer[: max_length - len(prompt) - 1], eos] if len(prompt) < max_length else [eos]
        out.append(Encoded(r.id, tuple(prompt), tuple(answer)))
    return out


@pytest.mark.parametrize("eos_after_cut", [False, True], ids=["nothing-left", "only-eos-left"])
def test_answer_mask_audit_catches_an_answer_truncated_away(lm: LanguageModel, eos_after_cut: bool) -> None:
    pred = predictor(lm)
    exs = [*examples(6), long_example()]
    max_length = 64
    rows = naive_rows(lm, pred, exs, max_length, eos_after_cut)
    cut = next(r for r in rows if r.id == LONG_ID)
    assert len(cut.answer_ids) <= 1, "the planted bug must really leave the long example without an answer"
    assert all(len(r.answer_ids) > 1 for r in rows if r.id != LONG_ID), "short examples keep their answers"

    with pytest.raises(AuditError) as info:
        audit_answer_mask(rows, lm.tokenizer.eos_token_id)
    assert "answer-mask audit" in str(info.value)
    assert LONG_ID in str(info.value) and "1 examples have no answer tokens" in str(info.value)


def test_answer_mask_audit_catches_an_answer_cut_in_the_middle(lm: LanguageModel) -> None:
    pred = predictor(lm)
    exs = [*examples(6), long_example()]
    whole = {r.id: r for r in encode_examples(pred, exs, max_length=100_000).rows}
    long_row = whole[LONG_ID]
    max_length = len(long_row.prompt_ids) + 2  # two answer tokens survive the cut, EOS does not
    assert len(long_row.answer_ids) > 3
    rows = naive_rows(lm, pred, exs, max_length, eos_after_cut=False)

    with pytest.raises(AuditError) as info:
        audit_answer_mask(rows, lm.tokenizer.eos_token_id)
    assert "do not end with EOS" in str(info.value) and LONG_ID in str(info.value)


def test_real_encoder_keeps_the_answer_of_an_over_long_example(lm: LanguageModel) -> None:
    pred = predictor(lm)
    exs = [*examples(6), long_example()]
    max_length = 64
    whole = {r.id: r for r in encode_examples(pred, exs, max_length=100_000).rows}
    assert whole[LONG_ID].length > max_length, "the long example must really be over max_length"

    encoded = encode_examples(pred, exs, max_length=max_length)
    assert encoded.shortened == [LONG_ID]
    assert encoded.skipped == []
    rows = {r.id: r for r in encoded.rows}
    assert set(rows) == {ex.id for ex in exs}
    assert rows[LONG_ID].answer_ids == whole[LONG_ID].answer_ids, "the answer is never cut"
    assert rows[LONG_ID].length <= max_length
    assert len(rows[LONG_ID].prompt_ids) < len(whole[LONG_ID].prompt_ids), "the input was shortened instead"
    for ex in exs[:-1]:
        assert rows[ex.id] == whole[ex.id], "examples that fit are left alone"

    report = audit_answer_mask(encoded.rows, lm.tokenizer.eos_token_id)
    assert report["examples"] == len(exs) and report["all_end_with_eos"] is True
    assert report["answer_tokens"] == sum(len(r.answer_ids) for r in encoded.rows)
    assert 0 < report["fraction_trained"] < 1


def test_answer_mask_audit_catches_a_missing_eos(lm: LanguageModel) -> None:
    eos = lm.tokenizer.eos_token_id
    rows = encode_examples(predictor(lm), examples(6), max_length=128).rows
    assert audit_answer_mask(rows, eos)["all_end_with_eos"] is True

    victim = rows[3]
    assert victim.answer_ids[-1] == eos
    broken = [*rows[:3], Encoded(victim.id, victim.prompt_ids, victim.answer_ids[:-1]), *rows[4:]]
    with pytest.raises(AuditError) as info:
        audit_answer_mask(broken, eos)
    assert "1 answers do not end with EOS" in str(info.value)
    assert victim.id in str(info.value)
    assert all(r.id not in str(info.value) for r in rows if r.id != victim.id)


# ---------------------------------------------------------------------------------------------- the template


@pytest.mark.parametrize("task", [CLASSIFY, QA], ids=["scored-classification", "generation"])
def test_template_audit_catches_training_without_the_chat_template(lm: LanguageModel, task: TaskInfo) -> None:
    exs = examples(8)
    if task is QA:
        exs = [Example(ex.id, ex.inputs, ex.label.title()) for ex in exs]
    at_inference = predictor(lm, task)  # chat: auto, and the tokenizer has a template
    assert at_inference.use_chat
    good = encode_examples(at_inference, exs, max_length=128).rows
    report = audit_template(at_inference, exs, good)
    assert report == {"checked": len(exs), "chat_template": True, "identical": True, "eos_token": "</s>"}

    without = predictor(lm, task, chat="completion")
    assert not without.use_chat
    bad = encode_examples(without, exs, max_length=128).rows
    with pytest.raises(AuditError) as info:
        audit_template(at_inference, exs, bad)
    msg = str(info.value)
    assert "template audit" in msg and f"for {len(exs)} of {len(exs)} examples" in msg
    assert exs[0].id in msg and "chat template at inference: yes" in msg


def test_template_audit_catches_answers_tokenized_apart_from_their_prompt(lm: LanguageModel) -> None:
    # Scored classification is evaluated on lm-eval's (context, continuation) split, which moves the chat
    # template's final line break into the continuation; tokenizing prompt and answer apart trains other tokens.
    exs = examples(6)
    pred = predictor(lm)
    apart = encode_examples(pred, exs, max_length=128, separate=True).rows
    with pytest.raises(AuditError, match="template audit"):
        audit_template(pred, exs, apart)


def test_template_audit_matches_rows_by_id_and_checks_only_those_given(lm: LanguageModel) -> None:
    exs = examples(6)
    pred = predictor(lm)
    rows = encode_examples(pred, exs, max_length=128).rows
    # rows in another order, and examples without a row (e.g. shortened ones) left out of the comparison
    report = audit_template(pred, [*exs, long_example()], list(reversed(rows)))
    assert report["checked"] == len(exs)
    shuffled = [Encoded(r.id, o.prompt_ids, o.answer_ids) for r, o in zip(rows, reversed(rows))]
    with pytest.raises(AuditError):
        audit_template(pred, exs, shuffled)


# ---------------------------------------------------------------------------------------------- packing


def _alone_loss(model: Any, rows: list[Encoded]) -> float:
    """The test's own oracle: each example through the plain forward, answer tokens' summed cross-entropy."""
    total = 0.0
    for r in rows:
        logits = model(input_ids=torch.tensor([r.ids]), use_cache=False).logits[0].float()
        start = len(r.prompt_ids) - 1
        total += float(
            F.cross_entropy(logits[start : start + len(r.answer_ids)], torch.tensor(r.answer_ids), reduction="sum")
        )
    return total


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_packed_loss_equals_the_sum_of_per_example_losses(arch: str, llama_path: Path, qwen2_path: Path) -> None:
    path = llama_path if arch == "llama" else qwen2_path
    lm = LanguageModel.from_spec(ModelSpec(name=str(path)))
    sharpen(lm.model)
    exs = examples(10)
    rows = encode_examples(predictor(lm), exs, max_length=128).rows
    pad = lm.tokenizer.pad_token_id
    capacity = 2 * max(r.length for r in rows)  # several rows, most of them ending in padding
    with torch.no_grad():
        alone = _alone_loss(lm.model, rows)
        batch = packed_batch(rows, capacity=capacity, pad_id=pad)
        assert 1 < batch.input_ids.shape[0] < len(rows), "the test needs rows holding several examples"
        assert int((batch.input_ids == pad).sum()) > 0, "and rows ending in padding"
        packed, n = packed_loss(lm.model, batch)
        assert n == sum(len(r.answer_ids) for r in rows)
        assert float(packed) == pytest.approx(alone, rel=1e-4)

        # the same rows without per-example positions: the oracle must see the difference
        leaky = packed_batch(rows, capacity=capacity, pad_id=pad, position_ids=False)
        leaked, _ = packed_loss(lm.model, leaky)
    assert abs(float(leaked) - alone) / alone > 1e-3


def test_packing_audit_catches_examples_that_see_each_other(llama_path: Path) -> None:
    lm = LanguageModel.from_spec(ModelSpec(name=str(llama_path)))
    sharpen(lm.model)
    rows = encode_examples(predictor(lm), examples(8), max_length=128).rows
    pad = lm.tokenizer.pad_token_id
    lm.model.train()  # the audit must switch dropout off itself, and restore the mode after

    report = audit_packing(lm.model, rows, 128, pad)
    assert report["max_relative_difference"] <= 1e-4
    assert report["examples"] == len(rows) and report["rows"] == 1
    assert lm.model.training

    leak = functools.partial(packed_batch, position_ids=False)
    with pytest.raises(AuditError) as info:
        audit_packing(lm.model, rows, 128, pad, make_packed=leak)
    assert "packing audit" in str(info.value) and "see each other" in str(info.value)
    assert lm.model.training


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_packing_audit_catches_a_leak_on_an_unsharpened_random_model(
    arch: str, llama_path: Path, qwen2_path: Path
) -> None:
    """Per example, the leak stands well clear of the tolerance even when attention is nearly uniform."""
    lm = LanguageModel.from_spec(ModelSpec(name=str(llama_path if arch == "llama" else qwen2_path)))
    rows = encode_examples(predictor(lm), examples(8), max_length=128).rows
    pad = lm.tokenizer.pad_token_id
    assert audit_packing(lm.model, rows, 128, pad)["max_relative_difference"] < 1e-5
    with pytest.raises(AuditError, match=r"relative difference (\d\.\d+e-0[1-3])"):
        audit_packing(lm.model, rows, 128, pad, make_packed=functools.partial(packed_batch, position_ids=False))


# ---------------------------------------------------------------------------------------------- the merge


def _lora_predictor(llama_path: Path) -> tuple[Any, Any, list[Example], list[Any]]:
    """A predictor over a tiny Llama with a LoRA adapter that really changes its scores (unmerged), the PEFT model,
    some examples, and the adapter's predictions on them."""
    from peft import LoraConfig, get_peft_model

    lm = LanguageModel.from_spec(ModelSpec(name=str(llama_path)))
    exs = examples(9)
    before = predictor(lm).predict(exs)  # the base model alone

    torch.manual_seed(0)
    peft = get_peft_model(lm.model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", task_type="CAUSAL_LM"))
    with torch.no_grad():  # LoRA starts as a no-op (B = 0); make it a real change
        for name, p in peft.named_parameters():
            if "lora_B" in name:
                p.normal_(0.0, 0.5)
    peft.eval()
    lm.model = unwrap(peft)  # as tune() does: the adapter layers run inside the base model's forward
    pred = predictor(lm)
    adapted = pred.predict(exs)
    gap = max(abs(a.scores[k] - b.scores[k]) for a, b in zip(adapted, before) for k in a.scores)
    assert gap > 0.1, "the adapter must change the scores, or no merge bug could show"
    return pred, peft, exs, adapted


def test_merge_audit_passes_a_real_merge_and_keeps_the_adapter(llama_path: Path) -> None:
    pred, peft, exs, adapted = _lora_predictor(llama_path)
    lora_weights = {n: p.detach().clone() for n, p in peft.named_parameters() if "lora_" in n}
    audits.merge_in_place(peft)
    assert audits.is_merged(peft)
    report = audit_merge(pred, exs, adapted)
    assert report["identical_outputs"] is True and report["max_score_gap"] <= 1e-3
    # the adapter's own weights are untouched (it still saves as itself), and a merged copy is a plain model
    assert all(torch.equal(p, lora_weights[n]) for n, p in peft.named_parameters() if "lora_" in n)
    merged = merged_copy(peft)
    assert not any("lora_" in n for n, _ in merged.named_parameters())
    twin = copy.copy(pred)
    twin.lm = copy.copy(pred.lm)
    twin.lm.model = merged
    for a, b in zip(twin.predict(exs), adapted):
        assert a.scores == pytest.approx(b.scores, abs=1e-3)


def test_merge_audit_catches_a_merge_that_changes_the_model(llama_path: Path) -> None:
    pred, peft, exs, adapted = _lora_predictor(llama_path)
    audits.merge_in_place(peft)
    weight = unwrap(peft).model.layers[1].mlp.down_proj.base_layer.weight
    with torch.no_grad():  # a merge that also disturbs a weight
        weight.add_(0.01 * torch.randn(weight.shape, generator=torch.Generator().manual_seed(0)))
    with pytest.raises(AuditError) as info:
        audit_merge(pred, exs, adapted)
    assert "merge audit" in str(info.value)


def test_merge_audit_catches_a_merge_that_drops_the_adapter(llama_path: Path) -> None:
    pred, peft, exs, adapted = _lora_predictor(llama_path)
    pred.lm.model = peft.unload()  # the base model comes back, without the adapter
    with pytest.raises(AuditError, match="merge audit"):
        audit_merge(pred, exs, adapted)


# ---------------------------------------------------------------------------------------------- inside adapt


def _context(llama_path: Path, workdir: Path) -> Context:
    workdir.mkdir(parents=True, exist_ok=True)
    return Context(task=CLASSIFY, model=ModelSpec(name=str(llama_path)), seed=0, workdir=workdir)


def _lora_options(**more: Any):
    return METHODS["lora"].Options(rank=4, max_steps=2, batch_size=6, eval_examples=6, max_length=64, **more)


def test_lora_adapt_records_every_audit(llama_path: Path, tmp_path: Path) -> None:
    ctx = _context(llama_path, tmp_path / "work")
    train = Split("train", tuple(examples(12)))
    dev = Split("dev", tuple(Example(r["id"], {"text": r["text"]}, r["label"]) for r in dataset_rows()[60:66]))
    method, options = METHODS["lora"], _lora_options()
    method.check(options, train, ctx)
    with adapting("lora"):
        adapted = method.adapt(options, train, dev, ctx)

    found = adapted.details["audits"]
    assert set(found) == {"answer_mask", "template", "packing", "merge"}
    assert found["answer_mask"]["examples"] == 12 and found["answer_mask"]["all_end_with_eos"] is True
    assert found["template"]["identical"] is True and found["template"]["chat_template"] is True
    assert found["template"]["checked"] == 12
    assert found["packing"]["examples"] == 8 and found["packing"]["max_relative_difference"] <= 1e-4
    assert found["merge"]["examples"] == 6 and found["merge"]["max_score_gap"] <= 1e-3
    assert adapted.details["data"]["examples"] == 12
    assert adapted.details["training"]["steps"] == 2


@pytest.fixture
def leaky_packing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Plant the packing leak inside tune(), on a model whose attention is sharp enough for it to show."""
    real_audit = audits.audit_packing
    monkeypatch.setattr(
        audits,
        "audit_packing",
        functools.partial(real_audit, make_packed=functools.partial(packed_batch, position_ids=False)),
    )
    real_from_spec = LanguageModel.from_spec.__func__

    def from_spec(cls, spec, *args, **kwargs):
        lm = real_from_spec(cls, spec, *args, **kwargs)
        sharpen(lm.model)
        return lm

    monkeypatch.setattr(LanguageModel, "from_spec", classmethod(from_spec))


@pytest.mark.usefixtures("leaky_packing")
def test_an_audit_failing_inside_adapt_surfaces_with_its_message(llama_path: Path, tmp_path: Path) -> None:
    ctx = _context(llama_path, tmp_path / "work")
    train = Split("train", tuple(examples(12)))
    with adapting("lora"), pytest.raises(AuditError) as info:
        METHODS["lora"].adapt(_lora_options(), train, None, ctx)
    assert isinstance(info.value, MethodError), "the runner records MethodErrors with their message"
    assert str(info.value).startswith("packing audit: example ")
    assert "see each other" in str(info.value)
    assert not (ctx.workdir / "checkpoint").exists(), "the audit runs before any training step"


@pytest.mark.usefixtures("leaky_packing")
def test_an_audit_failure_is_recorded_in_the_run(llama_path: Path, make_task) -> None:
    from tailor.config.task import load_task
    from tailor.runner.run import run_task
    from tailor.runner.store import RunStore

    methods = [{"name": "lora", "rank": 4, "max_steps": 2, "batch_size": 6, "train_per_class": 4, "max_length": 64}]
    task = make_task(model={"name": str(llama_path)}, methods=methods)
    spec, base = load_task(task)
    run_dir = run_task(spec, base, task.parent / "run", task_file=str(task))
    store = RunStore.open_existing(run_dir)
    try:
        (result,) = store.results()
    finally:
        store.close()
    assert result["status"] == "failed"
    assert result["error"].startswith("AuditError: packing audit:")
