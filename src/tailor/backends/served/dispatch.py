"""Many requests to one OpenAI-compatible server at once: retries, adaptive concurrency, rate limits and the cache.

The rest of tailor is synchronous, but throughput against a server with 100 ms of latency needs hundreds of requests
in flight. So a :class:`Dispatcher` owns ONE thread running ONE asyncio loop (uvloop's where installed) and ONE
transport (``transport.py``: aiohttp directly, or the ``openai`` SDK's client) for its whole life (the connection
pool is bound to that loop); :meth:`Dispatcher.send` hands a batch to the loop and waits. Where lm-eval and DSPy
fall short, it promises: bodies go out exactly as given (non-standard keys such as vLLM's ``structured_outputs``
included), and answers are parsed here, so a malformed 2xx is retried; timeouts, connection errors (cuts
mid-body too), 408, 409, 429, 5xx and malformed JSON are retried with full-jitter backoff, never before the
server's ``Retry-After``; a request that still fails is a :class:`Reply` with its reason (only run-stopping
problems raise :class:`EndpointError`); the limit on requests in flight is AIMD (halved on 429, +1 after ``limit``
successes); only successful answers are cached; no error text holds the API key (:func:`redact`).
"""

from __future__ import annotations

import asyncio
import atexit
import json
import queue
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any, Literal

from ...errors import TailorError
from .cache import ResponseCache, cache_key
from .limits import Bucket, Gate, estimate_tokens, redact, retry_after, server_message
from .transport import TRANSPORTS, RawAnswer, TransportFailure, new_event_loop

__all__ = [
    "Dispatcher",
    "DispatchSettings",
    "DispatchStats",
    "EndpointError",
    "Reply",
    "Request",
    "estimate_tokens",
    "redact",
    "retry_after",
    "server_message",
]

ROUTES: tuple[str, ...] = ("chat/completions", "completions")
RETRIED_STATUSES = frozenset({408, 409, 429})  # and every 5xx
_Outcome = tuple[str, object, int | None, float | None]  # (verdict, body or reason, status, Retry-After)


@dataclass(frozen=True)
class Request:
    """One request: the route and its full JSON body ("model" included), and the sample index when it samples."""

    route: Literal["chat/completions", "completions"]
    body: dict[str, Any]
    sample: int = 0


@dataclass
class Reply:
    """The answer to one request. ``body`` is None when it failed after every retry; ``error`` says why."""

    body: dict[str, Any] | None
    error: str | None = None
    status: int | None = None  # last HTTP status seen (None: no answer, e.g. a timeout or a connection error)
    cached: bool = False  # served from the response cache: no request was sent
    attempts: int = 0  # requests actually sent for it


@dataclass(frozen=True)
class DispatchSettings:
    """How hard to push one server. Timeouts are per attempt; backoff is full jitter, capped by ``backoff_max``."""

    max_concurrency: int = 16
    connect_timeout: float = 10.0
    read_timeout: float = 120.0
    max_retries: int = 8
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    requests_per_minute: float | None = None
    tokens_per_minute: float | None = None  # estimated per request by estimate_tokens()
    transport: str = "aiohttp"  # a key of transport.TRANSPORTS: "aiohttp" (fast) or "openai" (the official SDK)

    def __post_init__(self) -> None:
        fine = {"max_concurrency": self.max_concurrency >= 1, "connect_timeout": self.connect_timeout > 0}
        fine.update(read_timeout=self.read_timeout > 0, max_retries=self.max_retries >= 0)
        for name in (n for n, ok in fine.items() if not ok):
            raise TailorError(f"{name}: {getattr(self, name)!r} is out of range (concurrency >= 1, timeouts > 0)")
        if self.transport not in TRANSPORTS:
            raise TailorError(f"transport: {self.transport!r}, expected one of {', '.join(TRANSPORTS)}")


@dataclass
class DispatchStats:
    """Counts over the dispatcher's life: attempts sent, outcomes, and the adaptive concurrency limit now."""

    sent: int = 0
    succeeded: int = 0
    retried: int = 0
    rate_limited: int = 0
    failed: int = 0
    cache_hits: int = 0
    concurrency: int = 0


class EndpointError(TailorError):
    """A run-stopping endpoint problem: unreachable, key refused (401/403), model not served, quota exhausted."""


@dataclass
class _Batch:
    """One send() in flight: its requests and keys, where to report, and the run-stopping error if one came."""

    requests: Sequence[Request]
    keys: list[str]
    use_cache: bool
    done: queue.SimpleQueue[int | None]
    notify: bool = True  # put each finished index on `done` (the caller reports progress)
    tasks: list[asyncio.Task[Reply]] = field(default_factory=list)
    abort: EndpointError | None = None
    finished: threading.Event = field(default_factory=threading.Event)


class Dispatcher:
    """Sends requests to one OpenAI-compatible server (``base_url`` ends where the routes begin, e.g. ``.../v1``).

    ``api_key`` is the key's value (None for servers without one); ``api_key_env`` the variable it came from, named
    in errors instead of the key. ``seed`` seeds the backoff jitter. Use as a context manager or call :meth:`close`.
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None,
        api_key_env: str | None,
        settings: DispatchSettings = DispatchSettings(),
        cache: ResponseCache | None = None,
        seed: int = 0,
    ):
        self.base_url, self.api_key_env, self.settings, self.cache = base_url.rstrip("/"), api_key_env, settings, cache
        self.stats = DispatchStats(concurrency=settings.max_concurrency)
        self._secret, self._random = api_key or None, random.Random(seed)
        self._use_cache, self._ever_succeeded, self._closed = True, False, False
        self._gate = Gate(settings.max_concurrency)
        self._rpm = Bucket(settings.requests_per_minute) if settings.requests_per_minute else None
        self._tpm = Bucket(settings.tokens_per_minute) if settings.tokens_per_minute else None
        self._transport = TRANSPORTS[settings.transport](
            self.base_url,
            api_key=api_key,
            pool=settings.max_concurrency,  # the pool holds exactly as many connections as may be in flight
            connect_timeout=settings.connect_timeout,
            read_timeout=settings.read_timeout,
        )
        self._loop = new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="tailor-dispatch", daemon=True)
        self._thread.start()
        atexit.register(self.close)  # a dispatcher kept for the process's life still closes its connections

    def send(self, requests: Sequence[Request], on_done: Callable[[int], None] | None = None) -> list[Reply]:
        """Replies in the order of requests; on_done(k) as k more finish (cache hits included)."""
        self._check_open()
        for r in requests:
            if r.route not in ROUTES:
                raise TailorError(f"route {r.route!r}: expected one of {', '.join(ROUTES)}")
            if not isinstance(r.body.get("model"), str) or r.body.get("stream"):
                raise TailorError(f"a request to {r.route} needs a 'model' (the served model id) and no `stream`")
        use_cache = self.cache is not None and self._use_cache
        # keys only when there is a cache to ask: hashing 1,000 bodies is ~5 ms a run otherwise wasted
        keys = [cache_key(self.base_url, r.route, r.body, r.sample) for r in requests] if use_cache else []
        replies: list[Reply | None] = [None] * len(requests)
        hits = self.cache.get_many(keys) if self.cache is not None and keys else {}
        for i, key in enumerate(keys):
            if key in hits:
                replies[i] = Reply(body=hits[key], cached=True)
                self.stats.cache_hits += 1
                if on_done:
                    on_done(1)
        todo = [i for i, reply in enumerate(replies) if reply is None]
        if todo:
            # without on_done this thread just waits for the batch: no wake-up (and GIL hand-over) per answer
            batch = _Batch(requests, keys, use_cache, queue.SimpleQueue(), notify=on_done is not None)
            future = asyncio.run_coroutine_threadsafe(self._send_all(batch, todo), self._loop)
            future.add_done_callback(lambda _: batch.done.put(None))
            try:
                finished = False
                while not finished:  # the indices as they finish, drained in bunches; Ctrl-C interrupts the wait
                    got = [batch.done.get()]
                    while not batch.done.empty():
                        got.append(batch.done.get_nowait())
                    finished = None in got
                    if on_done and len(got) > finished:
                        on_done(len(got) - finished)
                for i, reply in zip(todo, future.result(), strict=True):
                    replies[i] = reply
            except BaseException:  # Ctrl-C, or an error in on_done: stop the batch, leave the loop clean
                future.cancel()
                batch.finished.wait(30.0)  # the loop cancels the batch's tasks and frees their slots
                raise
        return [r for r in replies if r is not None]

    def models(self) -> list[str]:
        """ids from GET /models (EndpointError when unreachable, naming the URL)"""
        return [m["id"] for m in self.model_entries()]

    def model_entries(self) -> list[dict[str, Any]]:
        """GET /models' entries (vLLM adds ``max_model_len``), retried like any request on 429, 5xx, timeouts."""
        self._check_open()
        return asyncio.run_coroutine_threadsafe(self._list_models(), self._loop).result()

    @contextmanager
    def cache_disabled(self) -> Iterator[None]:
        """inside the block nothing is read from or written to the cache"""
        before, self._use_cache = self._use_cache, False
        try:
            yield
        finally:
            self._use_cache = before

    def close(self) -> None:
        """Close the client and stop the loop's thread (idempotent)."""
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self.close)
        with suppress(Exception):  # closing the client is best effort: the thread is stopped either way
            asyncio.run_coroutine_threadsafe(self._transport.close(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        if not self._thread.is_alive():
            self._loop.close()

    def _check_open(self) -> None:
        if self._closed:
            raise TailorError(f"the dispatcher for {self.base_url} is closed")

    def __enter__(self) -> Dispatcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def _send_all(self, batch: _Batch, todo: list[int]) -> list[Reply]:  # this and below: on the loop
        # max_concurrency workers pull from one queue of indices: a worker whose answer came sends the next request
        # in the same step, where a task per request would park on the gate and go out a loop iteration later
        replies: dict[int, Reply] = {}
        queued = iter(todo)

        async def work() -> None:
            for i in queued:
                replies[i] = await self._guarded(batch, i)

        try:
            batch.tasks = [asyncio.ensure_future(work()) for _ in range(min(len(todo), self.settings.max_concurrency))]
            outcomes = await asyncio.gather(*batch.tasks, return_exceptions=True)
            for outcome in [batch.abort, *outcomes]:
                if isinstance(outcome, BaseException):
                    raise outcome
            return [replies[i] for i in todo]
        except asyncio.CancelledError:
            for task in batch.tasks:
                task.cancel()
            await asyncio.gather(*batch.tasks, return_exceptions=True)
            raise
        finally:
            batch.finished.set()

    async def _guarded(self, batch: _Batch, i: int) -> Reply:
        try:
            reply = await self._one(batch, i)
        except EndpointError as e:
            if batch.abort is None:  # stop at once: no further request goes out
                batch.abort = e
                for task in batch.tasks:
                    if task is not asyncio.current_task():
                        task.cancel()
            raise
        if batch.notify:
            batch.done.put(i)
        return reply

    async def _one(self, batch: _Batch, i: int) -> Reply:
        request, s = batch.requests[i], self.settings
        attempts, status, reason, not_before = 0, None, "", 0.0
        for attempt in range(s.max_retries + 1):
            if attempt:
                self.stats.retried += 1
                backoff = self._random.uniform(0, min(s.backoff_max, s.backoff_base * 2 ** (attempt - 1)))
                # time.monotonic, not loop.time(): uvloop's is cached per iteration, to the millisecond, so a
                # deadline taken from it can fall before the Retry-After the server counts from its own clock
                deadline = max(not_before, time.monotonic() + backoff)
                while (left := deadline - time.monotonic()) > 0:  # never early, whatever the timer's resolution
                    await asyncio.sleep(left)
            await self._gate.acquire()
            outcome: Literal["ok", "throttled", "other"] = "other"
            try:
                if self._rpm:
                    await self._rpm.take(1)
                if self._tpm:
                    await self._tpm.take(estimate_tokens(request.body))
                attempts, self.stats.sent = attempts + 1, self.stats.sent + 1
                verdict, payload, status, wait = await self._attempt(request)
                outcome = "ok" if verdict == "ok" else "throttled" if status == 429 else "other"
                self.stats.rate_limited += status == 429
            finally:
                self._gate.release(outcome)
                self.stats.concurrency = self._gate.limit
            if isinstance(payload, dict):
                self._ever_succeeded = True
                if batch.use_cache and self.cache is not None:
                    self.cache.put(batch.keys[i], payload)
                self.stats.succeeded += 1
                return Reply(body=payload, status=status, attempts=attempts)
            reason, not_before = str(payload), time.monotonic() + (wait or 0.0)
            if verdict == "fail":
                break
        self.stats.failed += 1
        suffix = f" after {attempts} attempts" if attempts > 1 else ""
        return Reply(body=None, error=redact(reason + suffix, self._secret), status=status, attempts=attempts)

    async def _attempt(self, request: Request) -> _Outcome:
        """Send once: ("ok", body, status, None), ("retry", reason, status, retry_after) or ("fail", reason, status,
        None); run-stopping problems raise EndpointError."""
        try:
            raw = await self._transport.request("POST", request.route, request.body)
        except TransportFailure as e:
            if e.kind == "timeout":
                return "retry", f"timed out (read_timeout {self.settings.read_timeout:g} s)", None, None
            if e.kind == "refused" and not self._ever_succeeded:
                raise self._error(f"cannot reach {self.base_url}: {e.root}") from None
            return "retry", f"connection error ({type(e.root).__name__}: {e.root})", None, None
        if raw.status >= 400:
            return await self._status_error(request, raw.status, _error_body(raw), raw.headers)
        try:
            parsed = raw.json()
        except ValueError as e:
            return "retry", f"malformed JSON in a {raw.status} answer ({e})", raw.status, None
        if not isinstance(parsed, dict):
            return "retry", f"a {raw.status} answer that is not a JSON object", raw.status, None
        return "ok", parsed, raw.status, None

    async def _status_error(self, request: Request, status: int, body: object, headers: Mapping[str, str]) -> _Outcome:
        message = server_message(body)
        if status in (401, 403):
            raise self._refused(status, message)
        if status == 404:
            model, served = request.body["model"], None
            with suppress(EndpointError):
                served = [m["id"] for m in await self._list_models()]
            if served is not None and model not in served:
                serves = ", ".join(served) or "nothing"
                raise self._error(f"model {model!r} is not served by {self.base_url}; it serves: {serves}")
            raise self._error(f"{self.base_url}/{request.route} answered 404 for model {model!r}: {message}")
        if status == 429 and "insufficient_quota" in json.dumps(body, default=str):
            raise self._error(f"{self.base_url} answered 429, quota exhausted: {message}")
        if status in RETRIED_STATUSES or status >= 500:
            return "retry", f"HTTP {status}: {message}", status, retry_after(headers)
        return "fail", f"HTTP {status}: {message}", status, None

    async def _list_models(self) -> list[dict[str, Any]]:
        s = self.settings
        for attempt in range(s.max_retries + 1):
            wait = self._random.uniform(0, min(s.backoff_max, s.backoff_base * 2**attempt))
            try:
                raw = await self._transport.request("GET", "models", None)
            except TransportFailure as e:  # refused at once: a wrong URL; a timeout or a cut: retried
                if e.kind == "refused" or attempt == s.max_retries:
                    raise self._error(f"cannot reach {self.base_url}: {e.root}") from None
            else:
                if raw.status in (401, 403):
                    raise self._refused(raw.status, server_message(_error_body(raw)))
                if raw.status >= 400:
                    if not (raw.status in RETRIED_STATUSES or raw.status >= 500) or attempt == s.max_retries:
                        message = server_message(_error_body(raw))
                        raise self._error(f"{self.base_url}/models answered {raw.status}: {message}")
                    wait = max(wait, retry_after(raw.headers) or 0.0)
                else:
                    try:
                        return [m for m in raw.json()["data"] if isinstance(m.get("id"), str)]
                    except (ValueError, KeyError, AttributeError, TypeError) as e:
                        if attempt == s.max_retries:
                            raise self._error(
                                f"{self.base_url}/models answered something that is not a model list ({e})"
                            ) from None
            deadline = time.monotonic() + wait
            while (left := deadline - time.monotonic()) > 0:
                await asyncio.sleep(left)
        raise AssertionError("unreachable")

    def _error(self, message: str) -> EndpointError:
        return EndpointError(redact(message, self._secret))

    def _refused(self, status: int, message: str) -> EndpointError:
        env = self.api_key_env
        who = f"the key in ${env} was refused" if env else "refused; name the key's variable in `api_key_env`"
        return self._error(f"{who} ({status}) by {self.base_url}: {message}")


def _error_body(raw: RawAnswer) -> object:
    """an error answer's JSON, or its text when it is not JSON"""
    try:
        return raw.json()
    except ValueError:
        return raw.content.decode("utf-8", "replace")
