"""The fake OpenAI-compatible server and the fault-injecting proxy, driven by real clients (the ``openai`` SDK and
raw ``httpx2``): the test doubles the endpoint backend's tests and benchmarks stand on must themselves be right."""

from __future__ import annotations

import json
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx2
import openai
import pytest

from tailor.errors import TailorError
from tailor.testing import fake_server, fault_proxy
from tailor.testing.fake_server import (
    DEFAULT_WORDS,
    GENERATED_LOGPROB,
    PRESETS,
    FakeServer,
    FakeServerError,
    hash_pick,
    split_tokens,
    token_logprob,
)
from tailor.testing.fault_proxy import FaultProxy

MODEL = "tiny-model"
BODY = {"model": MODEL, "prompt": "hello there"}


def client(url: str, **kwargs: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "/v1", api_key="x", **{"max_retries": 0, **kwargs})


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def http():
    """One HTTP client for the raw requests: a new one per request costs more than the request."""
    with httpx2.Client(timeout=10) as http_client:
        yield http_client


@pytest.fixture(scope="module")
def vllm():
    with FakeServer(MODEL, **PRESETS["vllm"]) as srv:
        yield srv


@pytest.fixture()
def srv(vllm: FakeServer) -> FakeServer:
    vllm.reset()
    return vllm


# -- the fake server -------------------------------------------------------------------------------------------------


def test_models_completion_and_chat_answer_deterministically_with_usage(srv: FakeServer):
    sdk = client(srv.url)
    assert [m.id for m in sdk.models.list().data] == [MODEL]
    prompt = "the movie was great fun"
    first = sdk.completions.create(model=MODEL, prompt=prompt)
    again = sdk.completions.create(model=MODEL, prompt=prompt)
    assert first.choices[0].text == again.choices[0].text == hash_pick(prompt, DEFAULT_WORDS)
    assert (first.usage.prompt_tokens, first.usage.completion_tokens, first.usage.total_tokens) == (5, 1, 6)
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "how was the match"}]
    chat = sdk.chat.completions.create(model=MODEL, messages=messages)
    assert chat.choices[0].message.content == hash_pick(messages, DEFAULT_WORDS)
    assert chat.usage.prompt_tokens == 6
    batch = sdk.completions.create(model=MODEL, prompt=["a b", "c"])
    assert [c.text for c in batch.choices] == [hash_pick("a b", DEFAULT_WORDS), hash_pick("c", DEFAULT_WORDS)]
    assert batch.usage.prompt_tokens == 3
    assert srv.counts == {"/v1/models": 1, "/v1/completions": 3, "/v1/chat/completions": 1}
    assert [b.get("prompt") for b in srv.bodies] == [prompt, prompt, None, ["a b", "c"]]


def test_answer_fn_and_max_tokens():
    with FakeServer(MODEL, answer_fn=lambda body: "one two three four") as srv:
        out = client(srv.url).completions.create(model=MODEL, prompt="x", max_tokens=2)
    assert (out.choices[0].text, out.choices[0].finish_reason, out.usage.completion_tokens) == ("one two", "length", 2)


def test_echo_logprobs_over_token_ids_are_a_function_of_the_previous_id(srv: FakeServer):
    out = client(srv.url).completions.create(model=MODEL, prompt=[5, 17, 9], max_tokens=0, echo=True, logprobs=2)
    logprobs = out.choices[0].logprobs
    assert logprobs.tokens == ["5", "17", "9"]
    assert logprobs.token_logprobs == [None, token_logprob("5", "17"), token_logprob("17", "9")]
    assert logprobs.top_logprobs[0] is None and logprobs.top_logprobs[2]["9"] == token_logprob("17", "9")
    assert logprobs.text_offset == [0, 1, 3] and out.usage.prompt_tokens == 3


def test_echo_logprobs_over_a_text_prompt_then_the_generated_tokens(srv: FakeServer):
    prompt = "Review: a fine film\nSentiment:"
    out = client(srv.url).completions.create(model=MODEL, prompt=prompt, echo=True, logprobs=1)
    choice, answer = out.choices[0], hash_pick(prompt, DEFAULT_WORDS)
    assert choice.text == prompt + answer
    assert choice.logprobs.tokens == split_tokens(prompt) + [answer]
    assert choice.logprobs.tokens[1] == " a" and choice.logprobs.token_logprobs[1] == token_logprob("Review:", " a")
    assert choice.logprobs.token_logprobs[-1] == GENERATED_LOGPROB
    assert choice.logprobs.text_offset[-1] == len(prompt)


def test_chat_top_logprobs_put_the_generated_token_first(srv: FakeServer):
    with FakeServer(MODEL, **PRESETS["openai"], answer_fn=lambda body: "positive") as openai_like:
        out = client(openai_like.url).chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "great"}], logprobs=True, top_logprobs=3
        )
    entry = out.choices[0].logprobs.content[0]
    assert (entry.token, entry.logprob, entry.bytes) == ("positive", GENERATED_LOGPROB, list(b"positive"))
    tops = [(t.token, t.logprob) for t in entry.top_logprobs]
    assert len(tops) == 3 and tops[0] == ("positive", GENERATED_LOGPROB)
    assert [lp for _, lp in tops] == sorted((lp for _, lp in tops), reverse=True)
    assert {t for t, _ in tops} < set(DEFAULT_WORDS)


def test_completion_logprobs_without_echo_cover_the_generated_tokens(srv: FakeServer):
    out = client(srv.url).completions.create(model=MODEL, prompt="hello", logprobs=2)
    logprobs = out.choices[0].logprobs
    assert logprobs.tokens == [out.choices[0].text] and logprobs.token_logprobs == [GENERATED_LOGPROB]
    assert len(logprobs.top_logprobs[0]) == 2 and logprobs.top_logprobs[0][out.choices[0].text] == GENERATED_LOGPROB


def test_choice_constrains_the_answer_only_where_supported(srv: FakeServer):
    extra = {"structured_outputs": {"choice": ["yes", "no"]}}
    out = client(srv.url).completions.create(model=MODEL, prompt="is it?", extra_body=extra)
    assert out.choices[0].text == hash_pick("is it?", ["yes", "no"])
    with FakeServer(MODEL, choice=True, answer_fn=lambda body: "no") as steered:
        assert client(steered.url).completions.create(model=MODEL, prompt="p", extra_body=extra).choices[0].text == "no"
    with FakeServer(MODEL, **PRESETS["generate-only"]) as plain:
        assert client(plain.url).completions.create(model=MODEL, prompt="p", extra_body=extra).choices[0].text in (
            DEFAULT_WORDS
        )


def test_wrong_model_is_404_with_an_openai_style_error(srv: FakeServer, http: httpx2.Client):
    with pytest.raises(openai.NotFoundError, match="gpt-9"):
        client(srv.url).chat.completions.create(model="gpt-9", messages=[{"role": "user", "content": "hi"}])
    response = http.post(srv.url + "/v1/completions", json={"model": "gpt-9", "prompt": "x"})
    error = response.json()["error"]
    assert response.status_code == 404 and error["code"] == 404 and "gpt-9" in error["message"] and error["type"]


def test_strict_server_rejects_unsupported_fields_and_lenient_ones_ignore_them(http: httpx2.Client):
    with FakeServer(MODEL, **PRESETS["openai"]) as strict:
        with pytest.raises(openai.BadRequestError, match="echo"):
            client(strict.url).completions.create(model=MODEL, prompt="x", echo=True, logprobs=1)
        response = http.post(
            strict.url + "/v1/chat/completions",
            json={
                "model": MODEL,
                "messages": [{"role": "user", "content": "x"}],
                "structured_outputs": {"choice": ["a"]},
            },
        )
        assert response.status_code == 400 and response.json()["error"]["param"] == "structured_outputs"
    with FakeServer(MODEL, **PRESETS["generate-only"]) as lenient:
        out = client(lenient.url).completions.create(model=MODEL, prompt="x", echo=True, logprobs=1)
        chat = client(lenient.url).chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "x"}], logprobs=True, top_logprobs=2
        )
    assert out.choices[0].text == hash_pick("x", DEFAULT_WORDS) and out.choices[0].logprobs is None
    assert chat.choices[0].logprobs is None


def test_reject_fields_refuses_a_parameter_even_on_a_lenient_server():
    with FakeServer(MODEL, **PRESETS["vllm"], reject_fields={"top_p"}) as srv:
        with pytest.raises(openai.BadRequestError, match="top_p"):
            client(srv.url).completions.create(model=MODEL, prompt="x", top_p=0.5)
        assert client(srv.url).completions.create(model=MODEL, prompt="x", extra_body={"odd": 1}).choices[0].text


def test_no_usage_drops_the_usage_field(http: httpx2.Client):
    with FakeServer(MODEL, no_usage=True) as srv:
        raw = http.post(srv.url + "/v1/completions", json={"model": MODEL, "prompt": "x"}).json()
        chat = client(srv.url).chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}])
    assert "usage" not in raw and raw["choices"][0]["text"] and chat.usage is None


def test_requests_overlap_during_the_latency_and_reset_clears_the_counters():
    with FakeServer(MODEL, latency=0.5) as srv:
        sdk = client(srv.url)
        with ThreadPoolExecutor(8) as pool:
            texts = list(
                pool.map(lambda i: sdk.completions.create(model=MODEL, prompt=f"p{i}").choices[0].text, range(8))
            )
        assert texts == [hash_pick(f"p{i}", DEFAULT_WORDS) for i in range(8)]
        assert srv.max_in_flight == 8 and srv.counts == {"/v1/completions": 8} and len(srv.bodies) == 8
        srv.reset()
        assert (srv.counts, srv.bodies, srv.max_in_flight) == ({}, [], 0)


def test_fail_after_makes_the_server_go_down_until_cleared(http: httpx2.Client):
    with FakeServer(MODEL) as srv:
        srv.fail_after = 2
        statuses = [http.post(srv.url + "/v1/completions", json=BODY).status_code for _ in range(4)]
        srv.fail_after = None
        assert http.post(srv.url + "/v1/completions", json=BODY).status_code == 200
    assert statuses == [200, 200, 503, 503] and srv.counts == {"/v1/completions": 5}


def test_url_before_start_is_a_clear_error():
    with pytest.raises(FakeServerError, match="not running"):
        _ = FakeServer(MODEL).url
    assert issubclass(FakeServerError, TailorError)


# -- the fault proxy -------------------------------------------------------------------------------------------------


def test_proxy_forwards_requests_unchanged(srv: FakeServer, http: httpx2.Client):
    with FaultProxy(srv.url) as proxy:
        via_proxy = client(proxy.url).completions.create(model=MODEL, prompt="hello", echo=True, logprobs=1)
        missing = http.post(proxy.url + "/v1/completions", json={"model": "nope", "prompt": "x"})
    direct = client(srv.url).completions.create(model=MODEL, prompt="hello", echo=True, logprobs=1)
    assert via_proxy.choices[0].logprobs == direct.choices[0].logprobs and via_proxy.usage == direct.usage
    assert missing.status_code == 404 and missing.json()["error"]["code"] == 404
    assert proxy.counts["forwarded"] == 2 and srv.counts["/v1/completions"] == 3
    assert [(r.path, r.fault, r.status) for r in proxy.records] == [
        ("/v1/completions", None, 200),
        ("/v1/completions", None, 404),
    ]


def test_429_carries_retry_after_and_an_openai_error(srv: FakeServer, http: httpx2.Client):
    with FaultProxy(srv.url, rate_429=1.0, retry_after=7) as proxy:
        response = http.post(proxy.url + "/v1/completions", json=BODY)
        with pytest.raises(openai.RateLimitError):
            client(proxy.url).completions.create(model=MODEL, prompt="other")
    assert response.status_code == 429 and response.headers["retry-after"] == "7"
    assert response.json()["error"]["code"] == 429
    assert proxy.counts["429"] == 2 and proxy.counts["forwarded"] == 0 and srv.counts == {}


@pytest.mark.parametrize("kind", ["500", "503"])
def test_server_errors(srv: FakeServer, kind: str, http: httpx2.Client):
    with FaultProxy(srv.url, **{f"rate_{kind}": 1.0}) as proxy:
        response = http.post(proxy.url + "/v1/completions", json=BODY)
        with pytest.raises(openai.InternalServerError):
            client(proxy.url).completions.create(model=MODEL, prompt="x")
    assert response.status_code == int(kind) and response.json()["error"]["code"] == int(kind)


def test_timeout_is_slower_than_the_client_read_timeout(srv: FakeServer, http: httpx2.Client):
    with FaultProxy(srv.url, rate_timeout=1.0, slow_seconds=5) as proxy:
        with pytest.raises(httpx2.ReadTimeout):
            http.post(proxy.url + "/v1/completions", json=BODY, timeout=httpx2.Timeout(5, read=0.2))
        with pytest.raises(openai.APITimeoutError):
            client(proxy.url, timeout=0.2).completions.create(model=MODEL, prompt="x")
    assert proxy.counts["timeout"] == 2 and srv.counts == {}


def test_slow_answer_is_forwarded_to_a_patient_client(srv: FakeServer):
    with FaultProxy(srv.url, rate_timeout=1.0, slow_seconds=0.2) as proxy:
        out = client(proxy.url, timeout=10).completions.create(model=MODEL, prompt="x")
    assert out.choices[0].text == hash_pick("x", DEFAULT_WORDS) and proxy.records[0].status == 200


def test_malformed_json_fails_to_parse(srv: FakeServer, http: httpx2.Client):
    with FaultProxy(srv.url, rate_malformed=1.0) as proxy:
        response = http.post(proxy.url + "/v1/completions", json=BODY)
    assert response.status_code == 200 and response.headers["content-type"].startswith("application/json")
    with pytest.raises(json.JSONDecodeError):
        response.json()


def test_cut_connection_raises_mid_body(srv: FakeServer, http: httpx2.Client):
    with FaultProxy(srv.url, rate_cut=1.0) as proxy:
        with pytest.raises(httpx2.RemoteProtocolError):
            http.post(proxy.url + "/v1/completions", json=BODY)
        with pytest.raises(openai.APIConnectionError):
            client(proxy.url).completions.create(model=MODEL, prompt="x")
    assert proxy.counts["cut"] == 2 and srv.counts == {}


def test_each_body_is_faulted_at_most_max_faults_per_body_times(srv: FakeServer, http: httpx2.Client):
    with FaultProxy(srv.url, rate_503=1.0, max_faults_per_body=3) as proxy:
        statuses = [http.post(proxy.url + "/v1/completions", json=BODY).status_code for _ in range(5)]
        other = http.post(proxy.url + "/v1/completions", json={**BODY, "prompt": "else"}).status_code
    assert statuses == [503, 503, 503, 200, 200] and other == 503
    assert proxy.counts == {"forwarded": 2, "429": 0, "500": 0, "503": 4, "timeout": 0, "malformed": 0, "cut": 0}


def test_faults_are_drawn_from_the_seed(srv: FakeServer, http: httpx2.Client):
    def faults(seed: int) -> list[str | None]:
        with FaultProxy(srv.url, seed=seed, rate_500=0.3, rate_503=0.3) as proxy:
            for i in range(20):
                http.post(proxy.url + "/v1/completions", json={**BODY, "prompt": f"p{i}"})
        return [r.fault for r in proxy.records]

    first = faults(1)
    assert faults(1) == first and faults(2) != first and {"500", "503", None} == set(first)


def test_resending_before_retry_after_is_a_violation(srv: FakeServer, http: httpx2.Client):
    with FaultProxy(srv.url, rate_429=1.0, retry_after=30, max_faults_per_body=1) as proxy:
        assert http.post(proxy.url + "/v1/completions", json=BODY).status_code == 429
        assert http.post(proxy.url + "/v1/completions", json=BODY).status_code == 200
        stats = get_json(proxy.url + "/stats")
    assert len(proxy.violations) == 1 and proxy.violations[0]["early_by"] > 0
    assert stats["violations"] == proxy.violations and stats["counts"]["429"] == 1


def test_a_client_honouring_retry_after_commits_no_violation(srv: FakeServer):
    with FaultProxy(srv.url, rate_429=1.0, retry_after=0.2, max_faults_per_body=2) as proxy:
        out = client(proxy.url, max_retries=3).completions.create(model=MODEL, prompt="patient")
    assert out.choices[0].text == hash_pick("patient", DEFAULT_WORDS)
    assert [r.status for r in proxy.records] == [429, 429, 200] and proxy.violations == []
    assert len({r.body_hash for r in proxy.records}) == 1


def test_bad_rates_are_refused():
    with pytest.raises(FakeServerError, match="sum to at most 1"):
        FaultProxy("http://127.0.0.1:1", rate_429=0.6, rate_503=0.6)
    with pytest.raises(FakeServerError, match="rate_cut=1.5"):
        FaultProxy("http://127.0.0.1:1", rate_cut=1.5)


# -- process mode ----------------------------------------------------------------------------------------------------


@pytest.mark.integration
def test_process_mode_serves_and_reports_stats(http: httpx2.Client):
    server, url = fake_server.start_process(MODEL, preset="vllm", strict=True, reject_fields=["top_p"])
    try:
        proxy, proxy_url = fault_proxy.start_process(url, rate_503=1.0, max_faults_per_body=1, seed=3)
        try:
            statuses = [http.post(proxy_url + "/v1/completions", json=BODY).status_code for _ in range(2)]
            out = client(url).completions.create(model=MODEL, prompt=[1, 2], max_tokens=0, echo=True, logprobs=1)
            assert out.choices[0].logprobs.token_logprobs == [None, token_logprob("1", "2")]
            with pytest.raises(openai.BadRequestError, match="surprise"):
                client(url).completions.create(model=MODEL, prompt="x", extra_body={"surprise": 1})
            with pytest.raises(openai.BadRequestError, match="top_p"):
                client(url).completions.create(model=MODEL, prompt="x", top_p=0.5)
            proxy_stats, server_stats = get_json(proxy_url + "/stats"), get_json(url + "/stats")
        finally:
            fake_server.stop_process(proxy)
    finally:
        fake_server.stop_process(server)
    assert statuses == [503, 200] and [r["status"] for r in proxy_stats["records"]] == [503, 200]
    assert proxy_stats["counts"]["503"] == 1 and proxy_stats["counts"]["forwarded"] == 1
    assert server_stats["counts"] == {"/v1/completions": 4}
    assert [b["prompt"] for b in server_stats["bodies"]] == [BODY["prompt"], [1, 2], "x", "x"]
    assert server.poll() is not None and proxy.poll() is not None


@pytest.mark.integration
def test_a_process_that_fails_to_start_reports_its_stderr():
    with pytest.raises(FakeServerError, match="sum to at most 1"):
        fault_proxy.start_process("http://127.0.0.1:1", rate_429=0.9, rate_500=0.9)
    with pytest.raises(FakeServerError, match="invalid choice"):
        fake_server.start_process(MODEL, preset="no-such-server")
