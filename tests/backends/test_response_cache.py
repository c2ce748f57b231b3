"""The response cache: what its key covers, WAL mode, surviving kill -9, and a damaged file named clearly."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tailor.backends.served.cache import CACHE_SCHEMA, ResponseCache, cache_key, default_cache_path
from tailor.errors import TailorError

URL = "http://127.0.0.1:8000/v1"
BODY = {"model": "tiny", "prompt": "hello", "temperature": 0.0, "max_tokens": 4}


def test_default_path_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TAILOR_CACHE_DIR", str(tmp_path / "t"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert default_cache_path() == tmp_path / "t" / "responses.sqlite"
    monkeypatch.delenv("TAILOR_CACHE_DIR")
    assert default_cache_path() == tmp_path / "x" / "tailor" / "responses.sqlite"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_path() == tmp_path / "home" / ".cache" / "tailor" / "responses.sqlite"


def test_the_key_covers_url_route_model_every_parameter_and_the_sample() -> None:
    key = cache_key(URL, "completions", BODY)
    assert len(key) == 64 and key == cache_key(URL + "/", "completions", dict(reversed(list(BODY.items()))))
    changed = [
        cache_key("http://127.0.0.1:8001/v1", "completions", BODY),
        cache_key(URL, "chat/completions", BODY),
        cache_key(URL, "completions", {**BODY, "model": "other"}),
        cache_key(URL, "completions", {**BODY, "temperature": 0.7}),
        cache_key(URL, "completions", {**BODY, "seed": 1}),
        cache_key(URL, "completions", {**BODY, "prompt": "hello!"}),
        cache_key(URL, "completions", {**BODY, "logprobs": 1}),
        cache_key(URL, "completions", BODY, sample=1),
    ]
    assert len(set(changed + [key])) == len(changed) + 1
    assert CACHE_SCHEMA == 1


def test_put_get_and_len(tmp_path: Path) -> None:
    with ResponseCache(tmp_path / "deep" / "er" / "responses.sqlite") as cache:
        assert cache and len(cache) == 0 and cache.get("k") is None
        cache.put("k", {"choices": [{"text": "héllo ✓"}]})
        cache.put("k2", {"a": 1})
        cache.put("k2", {"a": 2})  # replaced
        assert cache.get("k") == {"choices": [{"text": "héllo ✓"}]} and len(cache) == 2
        many = cache.get_many([f"missing{i}" for i in range(1200)] + ["k2"])
        assert many == {"k2": {"a": 2}}


def test_the_file_is_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    ResponseCache(path).close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_threads_share_one_cache(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path / "c.sqlite")

    def write(t: int) -> None:
        for i in range(50):
            cache.put(f"{t}-{i}", {"i": i})
            assert cache.get(f"{t}-{i}") == {"i": i}

    threads = [threading.Thread(target=write, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len(cache) == 200
    cache.close()


WRITER = """
import sys
from pathlib import Path
from tailor.backends.served.cache import ResponseCache
cache = ResponseCache(Path(sys.argv[1]))
i = 0
while True:
    cache.put(f"key{i}", {"i": i, "text": "x" * 500})
    print(i, flush=True)  # printed only once the put has returned, i.e. committed
    i += 1
"""


def test_kill_9_mid_write_keeps_every_committed_answer(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    committed = -1
    for line in proc.stdout:
        committed = int(line)
        if committed >= 300:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert committed >= 300, "the writer stopped early"
    with ResponseCache(path) as cache:
        assert len(cache) >= committed + 1
        for i in range(committed + 1):
            assert cache.get(f"key{i}") == {"i": i, "text": "x" * 500}
        cache.put("after", {"ok": True})  # and still writable
        assert cache.get("after") == {"ok": True}


def test_a_damaged_file_is_named_and_may_be_deleted(tmp_path: Path) -> None:
    path = tmp_path / "responses.sqlite"
    path.write_bytes(b"this is not a database, just junk bytes " * 200)
    with pytest.raises(TailorError) as caught:
        ResponseCache(path)
    assert str(path) in str(caught.value) and "may be deleted" in str(caught.value)
