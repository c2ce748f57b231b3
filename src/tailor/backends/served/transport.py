"""How one HTTP request reaches an OpenAI-compatible server: over aiohttp directly (the default) or the ``openai`` SDK.

The dispatcher (``dispatch.py``) owns retries, the concurrency limit, the cache and error wording; a transport only
sends one request and says what came back: a :class:`RawAnswer` (any HTTP status), or a :class:`TransportFailure`
saying whether it timed out, was refused, or was cut. Adding a transport is a class here and a row in
:data:`TRANSPORTS`.

Why tailor goes below the SDK by default: at 128 requests in flight against a server answering in 100 ms, one event
loop thread has 0.78 ms per request for everything, and the SDK's request building (options copied, headers and URL
parsed through httpx types, a response object wrapped around aiohttp's) costs about 0.5 ms of it; a bare aiohttp
request costs about 0.15 ms. ``benchmarks/endpoint_throughput.py`` measures both (``tailor`` vs ``tailor_openai_sdk``).
The SDK stays one setting away (``transport: openai``), for servers or proxies only its client gets along with.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any, Literal, Protocol

__all__ = [
    "TRANSPORTS",
    "AiohttpTransport",
    "OpenAITransport",
    "RawAnswer",
    "Transport",
    "TransportFailure",
    "new_event_loop",
]


@dataclass(frozen=True)
class RawAnswer:
    """What the server sent back: status, headers and the body's bytes (whatever the status)."""

    status: int
    headers: Any  # a case-insensitive mapping
    content: bytes

    def json(self) -> Any:
        return json.loads(self.content)


class TransportFailure(Exception):
    """No answer: ``kind`` is "timeout", "refused" (nothing listens, or the name does not resolve) or "other" (a
    connection cut mid-body, a reset); ``root`` is the underlying error."""

    def __init__(self, kind: Literal["timeout", "refused", "other"], root: BaseException):
        super().__init__(f"{kind}: {type(root).__name__}: {root}")
        self.kind, self.root = kind, root


class Transport(Protocol):
    """Sends one request on the dispatcher's event loop; ``route`` is relative to the base URL (``completions``)."""

    async def request(self, method: Literal["GET", "POST"], route: str, body: dict[str, Any] | None) -> RawAnswer: ...

    async def close(self) -> None: ...


def _user_agent() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"tailor/{version('tailor')}"
    except PackageNotFoundError:
        return "tailor"


class AiohttpTransport:
    """One ``aiohttp.ClientSession`` (created on the loop at the first request) with ``pool`` connections."""

    def __init__(self, base_url: str, *, api_key: str | None, pool: int, connect_timeout: float, read_timeout: float):
        import aiohttp  # here, not at the top: importing tailor must not load the HTTP stack

        self._aiohttp, self.base_url, self.pool = aiohttp, base_url.rstrip("/"), pool
        # sock_read: the longest wait for the next bytes of an answer (a server that stalls), not a total
        self._timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout, sock_read=read_timeout)
        self._headers = {"Content-Type": "application/json", "Accept": "application/json", "User-Agent": _user_agent()}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._session: Any = None

    async def request(self, method: Literal["GET", "POST"], route: str, body: dict[str, Any] | None) -> RawAnswer:
        aiohttp = self._aiohttp
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self.pool, limit_per_host=self.pool)
            self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout, headers=self._headers)
        data = None if body is None else json.dumps(body, ensure_ascii=False).encode()
        try:
            async with self._session.request(method, f"{self.base_url}/{route}", data=data) as response:
                return RawAnswer(response.status, response.headers, await response.read())
        except (TimeoutError, asyncio.TimeoutError) as e:  # aiohttp's connect and read timeouts are TimeoutErrors
            raise TransportFailure("timeout", e) from None
        except aiohttp.ClientConnectorError as e:
            raise TransportFailure("refused", e) from None
        except aiohttp.ClientError as e:  # a server disconnect, a body cut short, a reset
            raise TransportFailure("other", e) from None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


class OpenAITransport:
    """The official SDK's ``AsyncOpenAI`` over its aiohttp transport (its default httpx pool costs ~2.5x the CPU),
    its own retries off: Retry-After, the adaptive limit and the cache all need to see every attempt."""

    def __init__(self, base_url: str, *, api_key: str | None, pool: int, connect_timeout: float, read_timeout: float):
        import aiohttp
        import httpx2
        import openai

        self._openai, self._httpx, self._aiohttp = openai, httpx2, aiohttp
        self._client = openai.AsyncOpenAI(
            base_url=base_url.rstrip("/"),
            api_key=api_key or "EMPTY",
            max_retries=0,
            timeout=httpx2.Timeout(read_timeout, connect=connect_timeout),
            http_client=openai.DefaultAioHttpClient(
                limits=httpx2.Limits(max_connections=pool, max_keepalive_connections=pool)
            ),
        )

    async def request(self, method: Literal["GET", "POST"], route: str, body: dict[str, Any] | None) -> RawAnswer:
        openai, cast = self._openai, self._httpx.Response
        try:
            if method == "GET":
                raw = await self._client.get("/" + route, cast_to=cast)
            else:
                raw = await self._client.post("/" + route, body=body, cast_to=cast)
        except openai.APIStatusError as e:
            raw = e.response
        except openai.APIConnectionError as e:  # timeouts too
            raise self._failure(e) from None
        return RawAnswer(raw.status_code, raw.headers, raw.content)

    def _failure(self, e: Exception) -> TransportFailure:
        """The SDK's aiohttp transport reports a refused connection and a server disconnect as connect timeouts;
        aiohttp's own error, beneath, says which it was."""
        cause = e.__cause__ or e
        root = cause.__cause__ or cause
        if isinstance(root, TimeoutError) or (isinstance(e, self._openai.APITimeoutError) and root is e):
            return TransportFailure("timeout", root)
        refused = (self._aiohttp.ClientConnectorError, self._httpx.ConnectError, ConnectionRefusedError)
        return TransportFailure("refused" if isinstance(root, refused) else "other", root)

    async def close(self) -> None:
        await self._client.close()


TRANSPORTS: dict[str, type[AiohttpTransport] | type[OpenAITransport]] = {
    "aiohttp": AiohttpTransport,
    "openai": OpenAITransport,
}


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's loop where it is installed, else asyncio's. For the dispatcher it made no measurable difference
    (4,000 requests at 128 in flight: 0.12–0.15 ms of CPU per request either way), so it is not a dependency;
    the test extra installs it for the fake server, whose CPU the throughput benchmark wants as small as can be."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()
