"""An embedded SQLite cache of successful answers from OpenAI-compatible servers.

Why a cache at all: prompting a served model costs money and time, and a re-run of a finished run (to add a report,
after a crash, with ``--resume``) should send nothing. Why this key: the field's tools key their caches without the
endpoint URL or the model, so one server's answers come back for another. Here the key is the SHA-256 of canonical
JSON of everything that shapes an answer: the schema version, the endpoint URL, the route, the full request body
(model id, every sampling parameter, seed, log-prob settings, structured-output spec) and the sample index.

Only successful answers (2xx, valid JSON) are ever stored: the dispatcher (:mod:`tailor.backends.served.dispatch`) is
the
one caller of :meth:`ResponseCache.put` and puts nothing else. An error or a non-2xx answer is never cached, so a
re-run retries it. Each put is committed at once in WAL mode: a ``kill -9`` loses at most the answer in flight and
never leaves a damaged file. Nothing secret is stored: the key is built from the URL and the body, never the
headers, and a body never holds the API key.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ...errors import TailorError
from ..files import cache_home, unwritable, writable_cache

CACHE_SCHEMA = 1
"""Part of every key: bump it when what a key means changes, and every old entry misses."""

# SQLite binds at most 999 parameters per statement on old builds; stay below that when reading many keys.
_CHUNK = 500


def default_cache_path() -> Path:
    """``responses.sqlite`` in the user's tailor cache (:func:`~tailor.backends.files.cache_home`), shared by every
    run of every task."""
    return cache_home() / "responses.sqlite"


def canonical_json(value: Any) -> str:
    """The one JSON spelling of ``value``: sorted keys, no spaces, UTF-8 kept (two equal bodies, one string)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def cache_key(base_url: str, route: str, body: Mapping[str, Any], sample: int = 0) -> str:
    """SHA-256 hex of the schema version, the endpoint URL (trailing ``/`` dropped), the route, the full body and
    the sample index. The body holds the model id and every sampling parameter, so changing any of them changes
    the key; ``sample`` tells apart the answers of repeated sampling of one body."""
    doc = {"schema": CACHE_SCHEMA, "url": base_url.rstrip("/"), "route": route, "body": body, "sample": sample}
    return hashlib.sha256(canonical_json(doc).encode("utf-8")).hexdigest()


class ResponseCache:
    """Successful answers by :func:`cache_key`, in one SQLite file (WAL, each put committed at once).

    One connection shared by threads (the dispatcher reads from its caller's thread and writes from its event
    loop's thread), so every use holds a lock. Several processes may share the file: SQLite's own locking and a
    busy timeout serialize their writes.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._writable()
        try:
            # isolation_level=None: autocommit, so each INSERT is its own transaction, durable when put() returns.
            self._conn = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None, timeout=30.0)
        except sqlite3.Error as e:
            raise self._damaged(e) from e
        try:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute("CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, body TEXT, created REAL)")
            self._conn.execute("SELECT key FROM responses LIMIT 1").fetchall()
        except sqlite3.Error as e:
            self._conn.close()
            raise self._damaged(e) from e

    def _writable(self) -> None:
        """Refuse a cache that can't be written as such: SQLite's own words ("unable to open database file", "attempt
        to write a readonly database") would read as a damaged file, which it is not."""
        if self.path != default_cache_path():  # a file the task file's `cache:` names
            why = unwritable(self.path.parent)
            if why is not None:
                raise TailorError(
                    f"model.endpoint.cache: the response cache {self.path} can't be written: its folder is not "
                    f"writable ({why}); give `cache:` a file in a folder you can write, or `false` for no cache"
                )
        else:
            writable_cache(
                self.path.parent,
                "the response cache",
                "turn it off for this model (`cache: false` under its `endpoint:`)",
            )
        if self.path.exists() and not os.access(self.path, os.W_OK):
            raise TailorError(
                f"the response cache {self.path} is read-only; make it writable, or set the endpoint's `cache:` to "
                "another file (or `false`)"
            )

    def _damaged(self, error: Exception) -> TailorError:
        return TailorError(
            f"the response cache {self.path} is damaged or unreadable ({error}); it only holds cached answers "
            "from servers, so it may be deleted (the next run sends those requests again)"
        )

    def get(self, key: str) -> dict[str, Any] | None:
        """The stored answer for ``key``, or None."""
        with self._lock:
            try:
                row = self._conn.execute("SELECT body FROM responses WHERE key = ?", (key,)).fetchone()
            except sqlite3.Error as e:
                raise self._damaged(e) from e
        return None if row is None else json.loads(row[0])

    def get_many(self, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The stored answers among ``keys`` (absent keys left out): one query per few hundred keys, so that a
        cached re-run of thousands of requests costs milliseconds."""
        wanted = list(dict.fromkeys(keys))
        found: dict[str, dict[str, Any]] = {}
        with self._lock:
            try:
                for start in range(0, len(wanted), _CHUNK):
                    chunk = wanted[start : start + _CHUNK]
                    marks = ",".join("?" * len(chunk))
                    rows = self._conn.execute(f"SELECT key, body FROM responses WHERE key IN ({marks})", chunk)
                    found.update((k, body) for k, body in rows.fetchall())
            except sqlite3.Error as e:
                raise self._damaged(e) from e
        return {k: json.loads(body) for k, body in found.items()}

    def put(self, key: str, body: Mapping[str, Any]) -> None:
        """Store a successful answer (2xx, valid JSON: the caller's promise), committed before returning."""
        text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
        with self._lock:
            try:
                self._conn.execute(
                    "INSERT OR REPLACE INTO responses (key, body, created) VALUES (?, ?, ?)", (key, text, time.time())
                )
            except sqlite3.Error as e:
                raise self._damaged(e) from e

    def __len__(self) -> int:
        with self._lock:
            try:
                return int(self._conn.execute("SELECT count(*) FROM responses").fetchone()[0])
            except sqlite3.Error as e:
                raise self._damaged(e) from e

    def __bool__(self) -> bool:
        """An empty cache is still a cache: ``if cache:`` must not read as "no cache" (``__len__`` would say 0)."""
        return True

    def close(self) -> None:
        """Close the connection (idempotent); SQLite folds the WAL back into the file when the last one closes."""
        with self._lock:
            self._conn.close()

    def __enter__(self) -> ResponseCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
