"""The local generative backend on tiny random models built offline by tailor.testing.

Scores are checked against a direct computation from the model's logits (tokenized the way
lm-evaluation-harness does it), and the prefix-cached path against the plain one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from tailor.backends.local.lm import KIND, LanguageModel  # noqa: E402
from tailor.backends.pool import ModelPool  # noqa: E402
from tailor.backends.protocol import GenerationSettings, GenerativeBackend  # noqa: E402
from tailor.config.task import ModelSpec  # noqa: E402
from tailor.contract import Context, TaskInfo  # noqa: E402
from tailor.costs.usage import params_per_token  # noqa: E402
from tailor.methods.prompt import Prompt  # noqa: E402
from tailor.prompting import PromptOptions  # noqa: E402
from tailor.testing import build_tiny_lm, tiny_lm_path  # noqa: E402
from tailor.types import Example, Split  # noqa: E402

PREFIX = (
    "Classify the review.\n\nReview: The movie was great. Sentiment: positive\n\n"
    "Review: The food was awful. Sentiment: negative\n\n"
)
PROMPTS = [
    "Review: The film was dull. Sentiment:",
    "Review: A lovely song. Sentiment: ",  # trailing space moves to the options
    "Review: x",
    "Review: The weather in Kalomir was superb, the team terrible. Sentiment:",
    "",  # the example adds nothing: options follow the prefix directly
]
OPTIONS = [" positive", " negative", " not sure at all", "great"]


@pytest.fixture(scope="session", params=["llama", "qwen2"])
def lm(request, tmp_path_factory: pytest.TempPathFactory) -> LanguageModel:
    """A ~0.2M-parameter model; llama adds BOS when encoding, qwen2 does not."""
    path = tiny_lm_path(tmp_path_factory.getbasetemp() / "tiny-lms", arch=request.param)
    return LanguageModel.from_spec(ModelSpec(name=str(path)), "causal")


def direct_score(lm: LanguageModel, context: str, option: str) -> tuple[float, int]:
    """log p(option | context) from one full forward pass, tokenized as lm-eval's ``_encode_pair``."""
    n = len(context) - len(context.rstrip())
    context, option = context[: len(context) - n], context[len(context) - n :] + option
    ctx = lm.tokenizer(context).input_ids
    cont = lm.tokenizer(context + option).input_ids[len(ctx) :]
    with torch.no_grad():
        logp = lm.model(torch.tensor([ctx + cont])).logits[0].float().log_softmax(-1)
    return sum(logp[len(ctx) - 1 + t, tok].item() for t, tok in enumerate(cont)), len(cont)


def test_scores_equal_a_direct_computation_from_the_logits(lm: LanguageModel):
    plain, counts = lm.score_options(PREFIX, PROMPTS, OPTIONS, use_prefix_cache=False)
    cached, cached_counts = lm.score_options(PREFIX, PROMPTS, OPTIONS)
    assert plain.shape == counts.shape == (len(PROMPTS), len(OPTIONS))
    assert (counts == cached_counts).all() and counts[:, 2].min() > 1  # a multi-token option
    for i, prompt in enumerate(PROMPTS):
        for j, option in enumerate(OPTIONS):
            expected, n_tokens = direct_score(lm, PREFIX + prompt, option)
            assert counts[i, j] == n_tokens
            assert plain[i, j] == pytest.approx(expected, abs=1e-5)
            assert cached[i, j] == pytest.approx(expected, abs=1e-4)


def test_options_scored_right_after_the_cached_prefix(lm: LanguageModel):
    # Nothing but single-token options follow the prefix: no example tokens to run at all.
    prefix = PREFIX + "Review: A great film. Sentiment:"
    options = [" positive", " negative"]
    cached, counts = lm.score_options(prefix, ["", ""], options)
    assert (counts == 1).all()
    for j, option in enumerate(options):
        assert cached[0, j] == cached[1, j] == pytest.approx(direct_score(lm, prefix, option)[0], abs=1e-4)


@pytest.mark.parametrize("batch_size", [1, 3, None])
def test_prefix_cache_gives_the_uncached_scores(lm: LanguageModel, batch_size: int | None):
    prompts = [f"Review: The {w} was {a}. Sentiment:" for w in ("movie", "pizza", "trip") for a in ("good", "bad")]
    options = [" positive", " negative", " it is hard to say", " so so"]
    before = (lm.prefix_cached, lm.prefix_fallbacks)
    cached, counts = lm.score_options(PREFIX, prompts, options, batch_size=batch_size)
    plain, _ = lm.score_options(PREFIX, prompts, options, batch_size=batch_size, use_prefix_cache=False)
    assert len(set(counts[0])) >= 3  # options of different token lengths
    np.testing.assert_allclose(cached, plain, atol=1e-4)
    assert (lm.prefix_cached - before[0], lm.prefix_fallbacks - before[1]) == (len(prompts), 0)


def test_a_bpe_merge_across_the_prefix_boundary_still_scores_right(lm: LanguageModel, monkeypatch):
    # The prefix ends mid-word: tokenizing prefix + prompt merges "terr" + "ible" into other tokens.
    prefix = PREFIX + "Review: The film was terr"
    prompts = ["ible. Sentiment:", "ibly dull. Sentiment:", "\n\nReview: fine. Sentiment:", " ok. Sentiment:"]
    options = [" positive", " negative", " so so"]
    p = lm.tokenizer(prefix).input_ids
    merged = [lm.tokenizer(prefix + x).input_ids[: len(p)] != p for x in prompts]
    assert merged[0], "the test needs a prompt that re-tokenizes the prefix's end"
    plain, _ = lm.score_options(prefix, prompts, options, use_prefix_cache=False)

    # Default: the last few prefix tokens are re-run per example, nothing falls back.
    fallbacks = lm.prefix_fallbacks
    np.testing.assert_allclose(lm.score_options(prefix, prompts, options)[0], plain, atol=1e-4)
    assert lm.prefix_fallbacks == fallbacks

    # Strict: every example whose tokens diverge from the prefix's is scored without the cache, and counted.
    monkeypatch.setattr(lm, "boundary_slack", 0)
    np.testing.assert_allclose(lm.score_options(prefix, prompts, options)[0], plain, atol=1e-4)
    assert lm.prefix_fallbacks - fallbacks == sum(merged) > 0


def test_greedy_batched_left_padded_equals_one_at_a_time(lm: LanguageModel):
    prompts = ["Review: The movie was", "Hello", "User: Is the pizza good?\nAssistant:", "Why did Anna see the river"]
    batched = lm.generate_texts(prompts, max_new_tokens=8, batch_size=4)
    assert batched == [lm.generate_texts([p], max_new_tokens=8)[0] for p in prompts]
    assert lm.tokenizer.padding_side == "right"  # generation pads on its own, the tokenizer is left alone


@pytest.mark.parametrize("max_new_tokens", [1, 6])
def test_generation_returns_at_most_max_new_tokens_of_new_text(lm: LanguageModel, max_new_tokens: int):
    prompt = "Review: The film was"
    ids = torch.tensor([lm.tokenizer(prompt).input_ids])
    with torch.no_grad():
        new = lm.model.generate(ids, max_new_tokens=max_new_tokens, do_sample=False)[0, ids.shape[1] :]
    assert len(new) == max_new_tokens or new[-1] == lm.tokenizer.eos_token_id
    assert lm.generate_texts([prompt], max_new_tokens=max_new_tokens)[0] == lm.tokenizer.decode(
        new, skip_special_tokens=True
    )
    (answer,) = lm.generate([prompt], GenerationSettings(max_new_tokens=max_new_tokens))
    assert answer.usage.output_tokens == len(new), "the tokens generated, counted before decoding"


def test_stop_strings_cut_the_output(lm: LanguageModel):
    prompt = "Review: The movie was"
    full = lm.generate_texts([prompt], max_new_tokens=16)[0]
    words = [w for w in full.split() if w.isascii() and w.isalpha() and len(w) > 1 and full.find(w) > 0]
    assert words, f"the greedy output has no plain word to stop at: {full!r}"
    stop = words[0]
    cut = lm.generate_texts([prompt], max_new_tokens=16, stop=["@@never@@", stop])[0]
    assert cut == full[: full.find(stop)]


def test_sampling_is_reproducible_with_a_seed(lm: LanguageModel):
    prompts = ["Review: The movie was", "Hello", "The trip"]
    rng_state = torch.get_rng_state()
    first = lm.generate_texts(prompts, max_new_tokens=10, do_sample=True, temperature=1.5, seed=3)
    assert torch.equal(rng_state, torch.get_rng_state())  # the caller's RNG is untouched
    assert first == lm.generate_texts(prompts, max_new_tokens=10, do_sample=True, temperature=1.5, seed=3)
    assert first != lm.generate_texts(prompts, max_new_tokens=10, do_sample=True, temperature=1.5, seed=4)
    assert first != lm.generate_texts(prompts, max_new_tokens=10)


def test_render_applies_the_chat_template_to_messages_only(lm: LanguageModel, monkeypatch):
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Is it good?"}]
    assert lm.has_chat_template and lm.capabilities.chat
    assert lm.render(messages) == "<|system|>\nBe brief.</s>\n<|user|>\nIs it good?</s>\n<|assistant|>\n"
    assert lm.render("Be brief.\n\nIs it good?") == "Be brief.\n\nIs it good?"
    monkeypatch.setattr(lm.tokenizer, "chat_template", None)
    assert not lm.has_chat_template and not lm.capabilities.chat
    assert lm.render(messages) == "Be brief.\n\nIs it good?"


def test_counts_and_limits(lm: LanguageModel):
    assert lm.context_length == 1024
    bos = 1 if lm.tokenizer.bos_token_id in lm.tokenizer("hi").input_ids else 0
    assert (
        lm.count_tokens("Review: great") == len(lm.tokenizer("Review: great", add_special_tokens=False).input_ids) + bos
    )
    assert lm.score_options(PREFIX, [], OPTIONS)[0].shape == (0, len(OPTIONS))


def test_same_seed_same_model_and_reload_through_auto_classes(tmp_path: Path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    a = build_tiny_lm(tmp_path / "a", arch="qwen2", hidden_size=32, num_heads=2, vocab_size=400, seed=1)
    b = build_tiny_lm(tmp_path / "b", arch="qwen2", hidden_size=32, num_heads=2, vocab_size=400, seed=1)
    c = build_tiny_lm(tmp_path / "c", arch="qwen2", hidden_size=32, num_heads=2, vocab_size=400, seed=2)
    assert (a / "tokenizer.json").read_text() == (b / "tokenizer.json").read_text()
    models = [AutoModelForCausalLM.from_pretrained(p) for p in (a, b, c)]
    assert models[0].config.model_type == "qwen2"
    sa, sb, sc = (m.state_dict() for m in models)
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)
    tok = AutoTokenizer.from_pretrained(a)
    assert len(tok) == models[0].config.vocab_size <= 400
    assert tok.pad_token and tok.eos_token and tok.bos_token and tok.unk_token and tok.chat_template
    text = "Review: The movie was great."
    assert tok.decode(tok(text).input_ids, skip_special_tokens=True) == text


def test_tiny_lm_path_builds_once(tmp_path: Path, monkeypatch):
    first = tiny_lm_path(tmp_path, hidden_size=32, num_heads=2, vocab_size=300)
    monkeypatch.setattr("tailor.testing.tiny_lm.build_tiny_lm", lambda *a, **k: pytest.fail("rebuilt a cached model"))
    assert tiny_lm_path(tmp_path, hidden_size=32, num_heads=2, vocab_size=300) == first
    assert (first / "config.json").is_file() and (first / "tokenizer.json").is_file()
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.fixture(scope="module")
def seq2seq(tmp_path_factory: pytest.TempPathFactory) -> LanguageModel:
    from transformers import AutoTokenizer, T5Config, T5ForConditionalGeneration

    tok = AutoTokenizer.from_pretrained(tiny_lm_path(tmp_path_factory.getbasetemp() / "tiny-lms", arch="llama"))
    config = T5Config(
        vocab_size=len(tok),
        d_model=32,
        d_kv=8,
        d_ff=64,
        num_layers=2,
        num_heads=4,
        decoder_start_token_id=tok.pad_token_id,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
    )
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("tiny-t5")
    T5ForConditionalGeneration(config).save_pretrained(path)
    tok.save_pretrained(path)
    return LanguageModel.from_spec(ModelSpec(name=str(path)), "seq2seq")


def test_seq2seq_scores_and_generates(seq2seq: LanguageModel):
    prompts = ["good film.", "bad", "The food was awful."]
    scores, counts = seq2seq.score_options("Review: ", prompts, OPTIONS, batch_size=2)
    assert scores.shape == counts.shape == (3, len(OPTIONS))
    assert np.isfinite(scores).all() and (scores < 0).all() and (counts > 0).all()
    again, _ = seq2seq.score_options("Review: ", prompts, OPTIONS, batch_size=1, use_prefix_cache=False)
    np.testing.assert_allclose(scores, again, atol=1e-5)
    # Decoder log-likelihood of the option, the encoder reading the whole context.
    ids = seq2seq.tokenizer("Review: good film.", return_tensors="pt").input_ids
    label = seq2seq.tokenizer(" positive", add_special_tokens=False, return_tensors="pt").input_ids
    with torch.no_grad():
        logp = seq2seq.model(input_ids=ids, labels=label).logits[0].log_softmax(-1)
    assert scores[0, 0] == pytest.approx(logp.gather(-1, label[0][:, None]).sum().item(), abs=1e-5)
    out = seq2seq.generate_texts(["Review: good film.", "hi"], max_new_tokens=4)
    assert len(out) == 2 and all(isinstance(x, str) for x in out)


def test_scores_match_lm_evaluation_harness(lm: LanguageModel):
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    prefix = PREFIX + "Review: The film was terr"  # includes a BPE merge across the prefix boundary
    prompts = ["ible. Sentiment:", "ibly dull. Sentiment: ", " ok.", ""]
    harness = HFLM(pretrained=lm.model, tokenizer=lm.tokenizer, device="cpu", batch_size=4, dtype="float32")
    requests = [
        Instance("loglikelihood", {}, (prefix + p, o), k)
        for k, (p, o) in enumerate((p, o) for p in prompts for o in OPTIONS)
    ]
    theirs = np.array([ll for ll, _ in harness.loglikelihood(requests, disable_tqdm=True)])
    ours, _ = lm.score_options(prefix, prompts, OPTIONS)
    np.testing.assert_allclose(ours, theirs.reshape(ours.shape), atol=1e-4)


def test_dtype_from_the_model_spec(tmp_path_factory) -> None:
    import torch

    path = tiny_lm_path(tmp_path_factory.getbasetemp() / "tiny-lms", arch="llama")
    assert LanguageModel.from_spec(ModelSpec(name=str(path)), "causal").model.dtype == torch.float32
    lm16 = LanguageModel.from_spec(ModelSpec(name=str(path), dtype="bfloat16"), "causal")
    assert lm16.model.dtype == torch.bfloat16


# ---------------------------------------------------------------------------------------------- the backend protocol


def test_language_model_is_a_generative_backend_and_knows_its_capabilities_before_loading(lm: LanguageModel):
    assert isinstance(lm, GenerativeBackend)
    caps = lm.capabilities
    assert caps.score_continuations and caps.prefix_reuse and caps.local_tokenizer and caps.chat
    assert (caps.top_logprobs, caps.constrained_choice, caps.context_length) == (0, False, 1024)
    assert KIND.role == "generative" and KIND.capabilities(ModelSpec(name=lm.name)) == caps
    assert KIND.capabilities(ModelSpec(name=lm.name, max_length=64)).context_length == 64
    assert lm.parameters == sum(p.numel() for p in lm.model.parameters())


def test_score_finds_the_shared_prefix_and_counts_each_query(lm: LanguageModel):
    prompts = [PREFIX + p for p in PROMPTS[:4]]
    cached = lm.prefix_cached
    scored = lm.score(prompts, OPTIONS)
    assert lm.prefix_cached - cached == len(prompts), "the common prefix was computed once, its cache reused"
    plain, counts = lm.score_options("", prompts, OPTIONS, use_prefix_cache=False)
    np.testing.assert_allclose(scored.logprobs, plain, atol=1e-4)
    assert (scored.token_counts == counts).all()
    per_token = params_per_token(lm.model)
    # the prompt's tokens as the scorer reads them (lm-eval's split: trailing whitespace goes with the option)
    contexts, _ = lm.encode_continuations(prompts, [OPTIONS] * len(prompts))
    for context, row, usage in zip(contexts, counts, scored.usage):
        tokens = len(context) + int(row.sum())
        assert (usage.calls, usage.input_tokens, usage.output_tokens) == (1, tokens, 0)
        assert usage.flops == 2 * per_token * tokens


@pytest.mark.parametrize("mode", ["score", "generate"])
def test_a_predictions_usage_counts_its_prompt_exactly(lm: LanguageModel, mode: str):
    """Each prediction carries its own query's usage: the prompt's tokens (and, scoring, every label's), and
    ``2·N`` FLOPs per token, N the parameters a token meets."""
    spec = ModelSpec(name=lm.name, kind="causal")
    pool = ModelPool()
    pool.put(spec, lm)
    task = TaskInfo("mini", "classification", ("negative", "positive"), ("text",), ("accuracy",))
    ctx = Context(task=task, model=spec, models=pool)
    options = PromptOptions(instruction="Sentiment?", mode=mode, max_new_tokens=3)
    adapted = Prompt().adapt(options, Split("train", ()), None, ctx)
    (pred,) = adapted.predict([Example("e1", {"text": "The movie was great"}, "positive")])
    prompt_tokens = lm.count_tokens(pred.prompt)
    assert pred.prompt.startswith("<|system|>\nSentiment?"), "rendered with the chat template"
    if mode == "score":
        # the prompt and each label's tokens as the scorer reads them (lm-eval's split of context and continuation)
        (context,), conts = lm.encode_continuations([pred.prompt], [adapted.continuations()[0]])
        labels = sum(len(c) for c in conts[0])
        assert (pred.usage.input_tokens, pred.usage.output_tokens) == (len(context) + labels, 0)
    else:
        assert pred.usage.input_tokens == prompt_tokens and 1 <= pred.usage.output_tokens <= 3
    tokens = pred.usage.input_tokens + pred.usage.output_tokens
    assert pred.usage.calls == 1 and pred.usage.flops == 2 * params_per_token(lm.model) * tokens
