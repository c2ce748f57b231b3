"""A fault-injecting reverse proxy for testing a client's manners in front of a real (or fake) server.

A client of a served model must survive rate limits, server errors, slow answers, garbage and dropped connections,
and must wait as long as ``Retry-After`` says. :class:`FaultProxy` forwards every request to ``upstream`` (method,
path, headers, body) and returns the answer, except when it injects a fault, drawn per request from
``random.Random(seed)`` with the given rates::

    with FakeServer("m") as srv, FaultProxy(srv.url, rate_429=0.1, retry_after=1, rate_503=0.02) as proxy:
        ...  # a client talks to proxy.url + "/v1"
        assert proxy.violations == []

Faults (:data:`FAULTS`): ``429`` (with ``Retry-After: <retry_after>`` and an OpenAI-style error body), ``500``,
``503``, ``timeout`` (waits ``slow_seconds`` — set it longer than the client's read timeout — then forwards if the
client is still there), ``malformed`` (200 with a truncated JSON body), ``cut`` (headers and part of the body, then
the connection is closed). Faults other than ``timeout`` never reach the upstream, so ``counts["forwarded"]`` equals
what the upstream received. Loops are bounded: the same body (SHA-256 of its bytes) is faulted at most
``max_faults_per_body`` times, so every request finishes eventually.

Each request is recorded (:class:`Record`: arrival on the monotonic clock, body hash, path, fault, status). A 429
with Retry-After R answered at time t for body hash h makes any arrival of h before t + R a violation, listed in
:attr:`FaultProxy.violations` (identical bodies sent concurrently count as one request: a client should not send
duplicates anyway). ``GET /health`` and ``GET /stats`` (counts, violations, records) are answered by the
proxy itself. It also runs as a process: ``python -m tailor.testing.fault_proxy --upstream URL --port N
--rate-429 0.1 ...`` (:func:`start_process`).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import random
import subprocess
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import aiohttp
from aiohttp import web

from ..errors import TailorError
from .serving import FakeServerError, InThread, ServerThread, serve, start_server_process

FAULTS = ("429", "500", "503", "timeout", "malformed", "cut")

# headers that belong to one hop (RFC 9110 §7.6.1), plus those the proxy recomputes for the body it sends
_HOP_HEADERS = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
    "accept-encoding",
    "content-encoding",
}
_FAKE_BODY = json.dumps(
    {
        "id": "cmpl-fault",
        "object": "text_completion",
        "model": "fault-proxy",
        "choices": [{"index": 0, "text": "positive " * 8, "logprobs": None, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 8, "completion_tokens": 8, "total_tokens": 16},
    }
).encode()
"""The body that ``malformed`` truncates and ``cut`` breaks off: an ordinary completion, so only its end is wrong."""


@dataclass
class Record:
    """One request as the proxy saw it. ``status`` is None when no answer reached the client (it left first)."""

    arrival: float
    body_hash: str
    path: str
    fault: str | None
    status: int | None = None


def _error(status: int, message: str, kind: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(
        {"error": {"message": message, "type": kind, "param": None, "code": status}}, status=status, headers=headers
    )


class FaultProxy(InThread):
    """A reverse proxy to ``upstream`` injecting faults at the given rates; ``with FaultProxy(url) as p: p.url``."""

    def __init__(
        self,
        upstream: str,
        *,
        seed: int = 0,
        rate_429: float = 0.0,
        rate_500: float = 0.0,
        rate_503: float = 0.0,
        rate_timeout: float = 0.0,
        rate_malformed: float = 0.0,
        rate_cut: float = 0.0,
        retry_after: float = 1.0,
        slow_seconds: float = 30.0,
        max_faults_per_body: int = 3,
        port: int = 0,
    ):
        self.rates = dict(zip(FAULTS, (rate_429, rate_500, rate_503, rate_timeout, rate_malformed, rate_cut)))
        bad = [f"rate_{name}={rate}" for name, rate in self.rates.items() if not 0.0 <= rate <= 1.0]
        if bad or sum(self.rates.values()) > 1.0:
            raise FakeServerError(
                f"FaultProxy: fault rates must each lie in [0, 1] and sum to at most 1; got "
                f"{', '.join(bad) or ', '.join(f'rate_{k}={v}' for k, v in self.rates.items())}"
            )
        if retry_after < 0 or slow_seconds < 0 or max_faults_per_body < 0:
            raise FakeServerError(
                f"FaultProxy: retry_after ({retry_after}), slow_seconds ({slow_seconds}) and "
                f"max_faults_per_body ({max_faults_per_body}) must not be negative"
            )
        self.upstream, self.port = upstream.rstrip("/"), port
        self.retry_after, self.slow_seconds, self.max_faults_per_body = retry_after, slow_seconds, max_faults_per_body
        self._rng = random.Random(seed)
        self.records: list[Record] = []
        self.violations: list[dict[str, Any]] = []
        self.counts: dict[str, int] = {"forwarded": 0, **{name: 0 for name in FAULTS}}
        self._faults_by_body: dict[str, int] = {}
        self._not_before: dict[str, float] = {}  # body hash -> when its last 429's Retry-After runs out
        self._session: aiohttp.ClientSession | None = None
        self._thread: ServerThread | None = None

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024**2)
        app.cleanup_ctx.append(self._client_session)
        app.router.add_get("/health", self._own)
        app.router.add_get("/stats", self._own)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        return app

    async def _own(self, request: web.Request) -> web.Response:
        """``GET /health``; ``GET /stats``: counts, violations and records (for process mode)."""
        if request.path == "/health":
            return web.json_response({"status": "ok"})
        return web.json_response(
            {"counts": self.counts, "violations": self.violations, "records": [asdict(r) for r in self.records]}
        )

    async def _client_session(self, _: web.Application) -> AsyncIterator[None]:
        # no connection limit: the proxy must not cap the concurrency it is asked to test
        connector = aiohttp.TCPConnector(limit=0)
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=None), auto_decompress=False
        )
        yield
        await self._session.close()

    def _draw(self, body_hash: str) -> str | None:
        """The fault for this request, or None: one draw per request, then the per-body bound."""
        u, total, fault = self._rng.random(), 0.0, None
        for name, rate in self.rates.items():
            total += rate
            if u < total:
                fault = name
                break
        if fault is None or self._faults_by_body.get(body_hash, 0) >= self.max_faults_per_body:
            return None
        self._faults_by_body[body_hash] = self._faults_by_body.get(body_hash, 0) + 1
        return fault

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        body_hash, now = hashlib.sha256(body).hexdigest(), time.monotonic()
        not_before = self._not_before.get(body_hash)
        if not_before is not None and now < not_before:
            self.violations.append(
                {
                    "body_hash": body_hash,
                    "path": request.path,
                    "arrival": now,
                    "not_before": not_before,
                    "early_by": not_before - now,
                }
            )
        record = Record(arrival=now, body_hash=body_hash, path=request.path, fault=self._draw(body_hash))
        self.records.append(record)
        if record.fault is not None:
            self.counts[record.fault] += 1
        response = await self._respond(request, body, record)
        record.status = response.status
        if record.fault == "429":
            self._not_before[body_hash] = time.monotonic() + self.retry_after
        return response

    async def _respond(self, request: web.Request, body: bytes, record: Record) -> web.StreamResponse:
        fault, injected = record.fault, {"X-Fault-Injected": str(record.fault)}
        if fault == "429":
            return _error(
                429,
                "Rate limit reached (injected by FaultProxy); retry after the time in Retry-After",
                "rate_limit_exceeded",
                {**injected, "Retry-After": f"{self.retry_after:g}"},
            )
        if fault in ("500", "503"):
            return _error(int(fault), f"Injected server error {fault} (FaultProxy)", "server_error", injected)
        if fault == "malformed":
            return web.Response(
                status=200, body=_FAKE_BODY[: len(_FAKE_BODY) // 2], headers=injected, content_type="application/json"
            )
        if fault == "cut":
            response = web.StreamResponse(status=200, headers={**injected, "Content-Type": "application/json"})
            response.content_length = len(_FAKE_BODY)
            await response.prepare(request)
            await response.write(_FAKE_BODY[: len(_FAKE_BODY) // 2])
            if request.transport is not None:
                request.transport.close()  # flushes what was written, then drops the connection mid-body
            return response
        if fault == "timeout":
            await asyncio.sleep(self.slow_seconds)  # cancelled here if the client gives up and disconnects
        return await self._forward(request, body)

    async def _forward(self, request: web.Request, body: bytes) -> web.Response:
        assert self._session is not None, "the client session is made when the application starts"
        self.counts["forwarded"] += 1
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_HEADERS}
        try:
            async with self._session.request(
                request.method, self.upstream + str(request.rel_url), headers=headers, data=body
            ) as upstream:
                payload = await upstream.read()
                back = {k: v for k, v in upstream.headers.items() if k.lower() not in _HOP_HEADERS}
                return web.Response(status=upstream.status, body=payload, headers=back)
        except aiohttp.ClientError as e:
            return _error(502, f"FaultProxy could not reach the upstream {self.upstream}: {e}", "upstream_error")


def start_process(upstream: str, *, timeout: float = 30.0, **options: float) -> tuple[subprocess.Popen, str]:
    """A :class:`FaultProxy` in its own process (``options``: the constructor's, e.g. ``rate_429=0.1``); returns the
    process and its base URL. Stop it with :func:`tailor.testing.fake_server.stop_process`."""
    flags = ["--upstream", upstream]
    for key, value in options.items():
        flags += ["--" + key.replace("_", "-"), str(value)]
    return start_server_process("tailor.testing.fault_proxy", flags, timeout=timeout)


def main(argv: Sequence[str] | None = None) -> None:
    about = (__doc__ or "").split("\n")[0]
    parser = argparse.ArgumentParser(prog="python -m tailor.testing.fault_proxy", description=about)
    parser.add_argument("--upstream", required=True, help="base URL of the server to forward to")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--seed", type=int, default=0)
    for name in FAULTS:
        parser.add_argument(f"--rate-{name}", type=float, default=0.0, help=f"share of requests answered by `{name}`")
    parser.add_argument("--retry-after", type=float, default=1.0, help="seconds, sent in Retry-After with each 429")
    parser.add_argument("--slow-seconds", type=float, default=30.0, help="how long a `timeout` fault waits")
    parser.add_argument("--max-faults-per-body", type=int, default=3)
    args = parser.parse_args(argv)
    try:
        proxy = FaultProxy(
            args.upstream,
            seed=args.seed,
            retry_after=args.retry_after,
            slow_seconds=args.slow_seconds,
            max_faults_per_body=args.max_faults_per_body,
            **{f"rate_{name}": getattr(args, f"rate_{name}") for name in FAULTS},
        )
    except TailorError as e:
        parser.error(str(e))
    serve(proxy.app(), args.port)


if __name__ == "__main__":
    main()
