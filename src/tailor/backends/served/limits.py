"""The pieces of the dispatcher that know nothing of HTTP clients: the adaptive limit on requests in flight, the
token buckets of rate limits, and reading servers' answers (Retry-After, error messages) and hiding the key."""

from __future__ import annotations

import asyncio
import email.utils
import json
import time
from collections import deque
from collections.abc import Mapping
from typing import Any, Literal


def redact(text: str, secret: str | None) -> str:
    """``text`` with every occurrence of ``secret`` replaced by ``***`` (servers echo keys in error messages)."""
    return text.replace(secret, "***") if secret else text


def estimate_tokens(body: Mapping[str, Any]) -> int:
    """Tokens a request may cost, for the tokens-per-minute bucket: its JSON length / 4, plus ``max_tokens``
    (or ``max_completion_tokens``; 16 when neither is set)."""
    budget = body.get("max_completion_tokens") or body.get("max_tokens") or 16
    return len(json.dumps(body, ensure_ascii=False)) // 4 + int(budget)


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds the server asks to wait: ``retry-after-ms``, or ``Retry-After`` in seconds or as an HTTP date."""
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        try:
            return max(0.0, float(headers[name]) / scale)
        except (KeyError, ValueError):
            pass
    try:
        return max(0.0, email.utils.parsedate_to_datetime(headers["retry-after"]).timestamp() - time.time())
    except (KeyError, TypeError, ValueError):
        return None


def server_message(body: object, limit: int = 500) -> str:
    """The server's own words from an error body: ``error.message`` (OpenAI, vLLM), ``message`` or ``detail``."""
    err = body.get("error", body) if isinstance(body, Mapping) else body
    found = [err.get(n) for n in ("message", "detail", "msg")] if isinstance(err, Mapping) else [err]
    for text in found:
        if isinstance(text, str) and text.strip():
            return text.strip()[:limit]
    return json.dumps(body, default=str)[:limit]


class Gate:
    """The adaptive limit on requests in flight: a counter and a FIFO of waiters (one event loop, no locks)."""

    def __init__(self, limit: int):
        self.max = self.limit = limit
        self.in_flight = self._streak = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._last_cut = float("-inf")

    async def acquire(self) -> None:
        if self.in_flight < self.limit and not self._waiters:
            self.in_flight += 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter  # the releaser counts us in before waking us
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release("other")  # woken and cancelled at once: hand the slot on
            elif waiter in self._waiters:
                self._waiters.remove(waiter)
            raise

    def release(self, outcome: Literal["ok", "throttled", "other"]) -> None:
        self.in_flight -= 1
        self._streak = self._streak + 1 if outcome == "ok" else 0  # "other": an error breaks the streak too
        if outcome == "throttled" and (now := asyncio.get_running_loop().time()) - self._last_cut >= 0.5:
            self.limit, self._last_cut = max(1, self.limit // 2), now
        if self._streak >= self.limit:
            self.limit, self._streak = min(self.max, self.limit + 1), 0
        while self._waiters and self.in_flight < self.limit:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self.in_flight += 1
                waiter.set_result(None)


class Bucket:
    """A token bucket refilled at ``per_minute / 60`` a second that holds one second's worth (at least one cost
    unit): the rate never exceeds the limit and bursts stay small. A cost above the capacity waits for a full bucket
    and leaves it in debt, so large requests still go, at the average rate."""

    def __init__(self, per_minute: float):
        self.rate = per_minute / 60.0
        self.capacity = self.level = max(1.0, self.rate)
        self.stamp: float | None = None
        self._lock = asyncio.Lock()  # bound to the loop on first use

    async def take(self, cost: float) -> None:
        async with self._lock:  # FIFO: one waiter at a time
            while True:
                now, last = time.monotonic(), self.stamp  # not loop.time(): uvloop's is cached, to the ms
                self.level, self.stamp = min(self.capacity, self.level + (now - (last or now)) * self.rate), now
                need = min(cost, self.capacity)
                if self.level >= need:
                    self.level -= cost
                    return
                await asyncio.sleep((need - self.level) / self.rate)
