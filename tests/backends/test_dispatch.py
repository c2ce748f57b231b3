"""The request engine for served models, against a scripted OpenAI-compatible server on 127.0.0.1.

The server (aiohttp, in a background thread) records every arrival (monotonic time, body, headers) and how many
requests it holds at once, and answers as each test scripts it: 429 with Retry-After, 5xx, a sleep longer than the
client's read timeout, malformed JSON, a connection cut mid-body, 4xx. Every timing assertion is a lower bound on
the server's own clock (a request must not come back too early), never a speed requirement.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from tailor.backends.served.cache import ResponseCache
from tailor.backends.served.dispatch import (
    Dispatcher,
    DispatchSettings,
    EndpointError,
    Request,
    estimate_tokens,
    redact,
    retry_after,
    server_message,
)

Action = Callable[[web.Request, dict[str, Any]], Awaitable[web.StreamResponse]]
KEY = "sk-test-SECRET-123"


def answer(body: dict[str, Any]) -> dict[str, Any]:
    """A deterministic answer that names its request, so order and routing can be checked."""
    if "messages" in body:
        text = "re:" + body["messages"][-1]["content"]
        choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
    else:
        text = "re:" + json.dumps(body["prompt"])
        choice = {"index": 0, "text": text, "finish_reason": "stop"}
    usage = {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}
    return {"id": "x", "object": "chat.completion", "model": body["model"], "choices": [choice], "usage": usage}


def ok(delay: float = 0.0) -> Action:
    async def act(request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        await asyncio.sleep(delay)
        return web.json_response(answer(body))

    return act


def error(status: int, message: str = "boom", headers: dict[str, str] | None = None, **extra: Any) -> Action:
    async def act(request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        await asyncio.sleep(extra.get("delay", 0.0))
        doc = {"error": {"message": message, "type": "x", "code": extra.get("code")}}
        return web.json_response(doc, status=status, headers=headers)

    return act


async def malformed(request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
    return web.Response(text='{"id": "x", "choices": [', content_type="application/json")


async def cut(request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
    """Headers and half a body, then the connection closes: the client sees a cut mid-body."""
    response = web.StreamResponse(headers={"Content-Type": "application/json", "Content-Length": "400"})
    await response.prepare(request)
    await response.write(json.dumps(answer(body)).encode()[:20])
    assert request.transport is not None
    request.transport.close()
    return response


class Server:
    """A scripted OpenAI-compatible server: ``script(n, body)`` picks the action for the n-th arrival."""

    def __init__(self) -> None:
        self.script: Callable[[int, dict[str, Any]], Action] = lambda n, body: ok()
        self.served = ["tiny"]
        self.arrivals: list[tuple[float, dict[str, Any]]] = []
        self.auth: list[str | None] = []
        self.in_flight = self.max_in_flight = 0
        self.in_flight_seen: list[int] = []  # how many were in flight when each arrived (itself included)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.port = asyncio.run_coroutine_threadsafe(self._start(), self.loop).result()
        self.url = f"http://127.0.0.1:{self.port}/v1"

    async def _start(self) -> int:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._handle)
        app.router.add_post("/v1/completions", self._handle)
        app.router.add_get("/v1/models", self._models)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        return site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def _models(self, request: web.Request) -> web.StreamResponse:
        return web.json_response({"object": "list", "data": [{"id": m, "object": "model"} for m in self.served]})

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        n = len(self.arrivals)
        self.arrivals.append((time.monotonic(), body))
        self.auth.append(request.headers.get("Authorization"))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        self.in_flight_seen.append(self.in_flight)
        try:
            return await self.script(n, body)(request, body)
        finally:
            self.in_flight -= 1

    @property
    def count(self) -> int:
        return len(self.arrivals)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()


@pytest.fixture
def server() -> Iterator[Server]:
    srv = Server()
    yield srv
    srv.stop()


@pytest.fixture(params=["aiohttp", "openai"])
def transport(request: pytest.FixtureRequest) -> str:
    """every behaviour holds over both transports: aiohttp directly (the default) and the official SDK"""
    return request.param


@pytest.fixture
def make(tmp_path: Path, transport: str) -> Iterator[Callable[..., Dispatcher]]:
    """Dispatchers with quick backoff (closed after the test); ``cache=True`` gives one a cache in tmp_path."""
    made: list[Dispatcher] = []

    def build(url: str, cache: ResponseCache | bool | None = None, api_key: str | None = None, **settings: Any):
        settings = {"backoff_base": 0.01, "backoff_max": 0.05, "read_timeout": 10.0, "transport": transport, **settings}
        if cache is True:
            cache = ResponseCache(tmp_path / "cache" / "responses.sqlite")
        chosen = DispatchSettings(**settings)
        own = cache if isinstance(cache, ResponseCache) else None
        d = Dispatcher(url, api_key=api_key, api_key_env="OPENAI_API_KEY", settings=chosen, cache=own)
        made.append(d)
        return d

    yield build
    for d in made:
        d.close()


def chat(text: str, **params: Any) -> Request:
    return Request("chat/completions", {"model": "tiny", "messages": [{"role": "user", "content": text}], **params})


def completion(prompt: Any, **params: Any) -> Request:
    return Request("completions", {"model": "tiny", "prompt": prompt, **params})


def gaps(server: Server) -> list[float]:
    times = [t for t, _ in server.arrivals]
    return [b - a for a, b in zip(times, times[1:])]


def test_replies_come_in_order_and_bodies_go_out_exactly_as_given(server: Server, make, transport: str) -> None:
    extra = {"structured_outputs": {"choice": ["a", "b"]}, "seed": 7, "logprobs": True, "top_logprobs": 5}
    requests = [chat(f"q{i}", **extra) if i % 2 else completion([1, 2, i], echo=True, logprobs=1) for i in range(24)]
    done: list[int] = []
    replies = make(server.url, max_concurrency=6).send(requests, on_done=done.append)
    assert sum(done) == 24 and min(done) >= 1  # progress as answers finish, in bunches or one by one
    for i, (req, reply) in enumerate(zip(requests, replies)):
        assert reply.body == answer(req.body) and reply.error is None and reply.status == 200
        assert reply.attempts == 1 and not reply.cached, i
    # neither transport dropped nor rewrote a key (vLLM's extras included)
    received = sorted(json.dumps(b, sort_keys=True) for _, b in server.arrivals)
    assert received == sorted(json.dumps(r.body, sort_keys=True) for r in requests)
    # no key: aiohttp sends no Authorization header; the SDK insists on one, so it gets a placeholder
    assert set(server.auth) == ({None} if transport == "aiohttp" else {"Bearer EMPTY"})


@pytest.mark.slow
def test_429_waits_for_retry_after_then_succeeds(server: Server, make) -> None:
    server.script = lambda n, body: error(429, "slow down", {"Retry-After": "1"}) if n < 2 else ok()
    d = make(server.url)
    [reply] = d.send([chat("hi")])
    assert reply.body == answer(chat("hi").body) and reply.attempts == 3
    assert (d.stats.sent, d.stats.retried, d.stats.rate_limited, d.stats.succeeded) == (3, 2, 2, 1)
    assert all(g >= 1.0 for g in gaps(server)), gaps(server)


def test_retry_after_ms_is_honoured(server: Server, make) -> None:
    server.script = lambda n, body: error(429, headers={"retry-after-ms": "400"}) if n == 0 else ok()
    [reply] = make(server.url).send([chat("hi")])
    assert reply.attempts == 2 and gaps(server)[0] >= 0.4


def test_500_and_503_are_retried(server: Server, make) -> None:
    server.script = lambda n, body: [error(500), error(503)][n] if n < 2 else ok()
    [reply] = make(server.url).send([completion("x")])
    assert reply.body is not None and reply.attempts == 3 and server.count == 3


@pytest.mark.slow
def test_a_read_timeout_is_retried(server: Server, make) -> None:
    server.script = lambda n, body: ok(delay=2.0) if n == 0 else ok()
    d = make(server.url, read_timeout=0.3)
    [reply] = d.send([completion("x")])
    assert reply.body == answer(completion("x").body) and reply.attempts == 2 and d.stats.retried == 1


def test_malformed_json_is_retried(server: Server, make) -> None:
    server.script = lambda n, body: malformed if n == 0 else ok()
    [reply] = make(server.url).send([completion("x")])
    assert reply.body == answer(completion("x").body) and reply.attempts == 2


def test_a_connection_cut_mid_body_is_retried(server: Server, make) -> None:
    server.script = lambda n, body: cut if n < 2 else ok()
    [reply] = make(server.url).send([chat("hi")])
    assert reply.body == answer(chat("hi").body) and reply.attempts == 3


def test_400_is_not_retried_and_its_message_comes_back(server: Server, make) -> None:
    server.script = lambda n, body: error(400, "'temperatur' is not a valid parameter")
    d = make(server.url)
    [reply] = d.send([chat("hi", temperatur=0.5)])
    assert reply.body is None and reply.status == 400 and reply.attempts == 1 and server.count == 1
    assert reply.error == "HTTP 400: 'temperatur' is not a valid parameter"
    assert d.stats.failed == 1 and d.stats.retried == 0


def test_retries_exhausted_give_a_failed_reply_not_an_exception(server: Server, make) -> None:
    server.script = lambda n, body: error(503, "overloaded") if body["prompt"] == "bad" else ok()
    d = make(server.url, max_retries=2)
    replies = d.send([completion("good"), completion("bad"), completion("good too")])
    assert [r.body is not None for r in replies] == [True, False, True]
    assert replies[1].error == "HTTP 503: overloaded after 3 attempts"
    assert replies[1].status == 503 and replies[1].attempts == 3 and d.stats.failed == 1


def test_401_stops_the_run_names_the_variable_and_never_shows_the_key(server: Server, make, tmp_path: Path) -> None:
    d = make(server.url, cache=True, api_key=KEY, max_concurrency=1)
    d.send([chat("fine")])  # one success first, so the cache file holds something
    server.script = lambda n, body: error(401, f"Incorrect API key provided: {KEY}.")
    with pytest.raises(EndpointError) as caught:
        d.send([chat(f"q{i}") for i in range(5)])
    message = str(caught.value)
    assert "$OPENAI_API_KEY" in message and "refused (401)" in message and "***" in message
    assert KEY not in message
    assert server.count == 2  # the success, then the one refused: nothing after it
    assert server.auth[0] == f"Bearer {KEY}"  # the key was really sent
    d.close()
    files = list((tmp_path / "cache").iterdir())
    assert files and all(KEY.encode() not in f.read_bytes() for f in files)


def test_404_on_the_model_lists_what_the_server_serves(server: Server, make) -> None:
    server.served = ["tiny", "other"]
    server.script = lambda n, body: error(404, "The model `nope` does not exist.")
    with pytest.raises(EndpointError, match=r"model 'nope' is not served by .*; it serves: tiny, other"):
        make(server.url).send([Request("completions", {"model": "nope", "prompt": "x"})])
    assert make(server.url).models() == ["tiny", "other"]


def test_an_unreachable_server_is_named(transport: str) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # free once closed: nothing listens there
    url = f"http://127.0.0.1:{port}/v1"
    with Dispatcher(url, api_key=None, api_key_env=None, settings=DispatchSettings(transport=transport)) as d:
        with pytest.raises(EndpointError, match=f"cannot reach {url}"):
            d.send([chat("hi")])
        with pytest.raises(EndpointError, match=f"cannot reach {url}"):
            d.models()


def test_a_second_send_of_the_same_requests_is_served_from_the_cache(server: Server, make) -> None:
    requests = [chat(f"q{i}", temperature=0.0) for i in range(10)]
    d = make(server.url, cache=True)
    first = d.send(requests)
    assert server.count == 10 and not any(r.cached for r in first)
    done: list[int] = []
    second = d.send(requests, on_done=done.append)
    assert server.count == 10, "a cached re-run sent requests"
    assert all(r.cached and r.attempts == 0 for r in second) and done == [1] * 10
    assert [r.body for r in second] == [r.body for r in first]
    assert d.stats.cache_hits == 10


def test_a_changed_parameter_sample_or_url_misses_the_cache(server: Server, make, tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path / "c.sqlite")
    d = make(server.url, cache=cache)
    base = chat("q", temperature=0.0)
    d.send([base])
    d.send([chat("q", temperature=0.7), Request(base.route, base.body, sample=1), chat("q", temperature=0.0, seed=1)])
    assert server.count == 4
    other = Server()
    try:
        make(other.url, cache=cache).send([base])
        assert other.count == 1
    finally:
        other.stop()
    d.send([base])
    assert server.count == 4  # the original is still a hit


def test_errors_are_never_cached(server: Server, make) -> None:
    server.script = lambda n, body: error(400, "bad") if n == 0 else ok()
    d = make(server.url, cache=True)
    assert d.send([chat("q")])[0].body is None
    assert d.send([chat("q")])[0].body is not None and server.count == 2
    assert d.send([chat("q")])[0].cached and server.count == 2


def test_cache_disabled_neither_reads_nor_writes(server: Server, make) -> None:
    d = make(server.url, cache=True)
    d.send([chat("a")])
    with d.cache_disabled():
        assert not d.send([chat("a"), chat("b")])[0].cached
    assert server.count == 3
    assert not d.send([chat("b")])[0].cached and d.send([chat("a")])[0].cached


@pytest.mark.slow
def test_the_server_never_sees_more_than_max_concurrency(server: Server, make) -> None:
    server.script = lambda n, body: ok(delay=0.2)
    replies = make(server.url, max_concurrency=8).send([completion(str(i)) for i in range(40)])
    assert all(r.body is not None for r in replies)
    assert 1 < server.max_in_flight <= 8


@pytest.mark.slow
def test_429s_cut_the_concurrency_which_then_grows_back(server: Server, make) -> None:
    server.script = lambda n, body: error(429, headers={"Retry-After": "0"}, delay=0.2) if n < 8 else ok(delay=0.1)
    d = make(server.url, max_concurrency=8)
    replies = d.send([completion(str(i)) for i in range(8)])
    assert all(r.body is not None for r in replies) and d.stats.rate_limited == 8
    assert server.in_flight_seen[:8] == list(range(1, 9))  # all eight were in flight at once
    assert max(server.in_flight_seen[8:]) <= 5  # halved once (not eight times), then +1 after `limit` successes
    assert d.stats.concurrency < 8
    d.send([completion(f"more {i}") for i in range(20)])
    assert d.stats.concurrency == 8


@pytest.mark.slow
def test_requests_per_minute_spaces_the_requests(server: Server, make) -> None:
    make(server.url, requests_per_minute=600).send([completion(str(i)) for i in range(25)])
    times = [t for t, _ in server.arrivals]
    # a bucket of 10 (one second's worth), then 10 a second: the last 15 need at least 1.5 s
    assert times[-1] - times[0] >= 1.4


def test_ctrl_c_in_the_caller_leaves_the_dispatcher_usable(server: Server, make) -> None:
    now, most = [0], [0]  # "after" requests in flight at the server (answers nobody awaits may still linger there)

    async def after(request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        now[0] += 1
        most[0] = max(most[0], now[0])
        await asyncio.sleep(0.3)
        now[0] -= 1
        return web.json_response(answer(body))

    server.script = lambda n, body: after if body["prompt"].startswith("after") else ok(delay=0.05)
    d = make(server.url, max_concurrency=4)

    def interrupt(_: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        d.send([completion(str(i)) for i in range(20)], on_done=interrupt)
    assert server.count < 20  # the batch was stopped
    replies = d.send([completion(f"after {i}") for i in range(4)])
    assert all(r.body is not None for r in replies)
    assert most[0] == 4  # no concurrency slot leaked by the cancelled batch


def test_close_stops_the_loop_thread(server: Server) -> None:
    def loops() -> int:
        return sum(t.name == "tailor-dispatch" for t in threading.enumerate())

    before = loops()
    d = Dispatcher(server.url, api_key=None, api_key_env=None)
    assert d.send([chat("hi")])[0].body is not None and loops() == before + 1
    d.close()
    d.close()
    assert loops() == before
    with pytest.raises(Exception, match="closed"):
        d.send([chat("hi")])


def test_bad_requests_are_refused_before_sending(server: Server, make) -> None:
    d = make(server.url)
    with pytest.raises(Exception, match="route 'embeddings'"):
        d.send([Request("embeddings", {"model": "tiny"})])  # type: ignore[arg-type]
    with pytest.raises(Exception, match="stream"):
        d.send([chat("hi", stream=True)])
    assert server.count == 0


def test_helpers() -> None:
    assert redact(f"bad key {KEY} (again {KEY})", KEY) == "bad key *** (again ***)"
    assert redact("text", None) == "text"
    assert retry_after({"retry-after": "2"}) == 2.0
    assert retry_after({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    later = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=30), usegmt=True)
    assert 25 <= (retry_after({"retry-after": later}) or 0) <= 31
    assert retry_after({"retry-after": "soon"}) is None and retry_after({}) is None
    body = {"model": "m", "prompt": "x" * 400, "max_tokens": 5}
    assert estimate_tokens(body) == 5 + len(json.dumps(body)) // 4 and len(json.dumps(body)) > 400
    assert estimate_tokens({"model": "m", "prompt": ""}) == 16 + len('{"model": "m", "prompt": ""}') // 4
    assert server_message({"error": {"message": "nope", "code": 1}}) == "nope"
    assert server_message({"detail": "why"}) == "why" and server_message("plain text ") == "plain text"
    with pytest.raises(Exception, match="max_concurrency"):
        DispatchSettings(max_concurrency=0)
    with pytest.raises(Exception, match="transport: 'curl', expected one of aiohttp, openai"):
        DispatchSettings(transport="curl")
