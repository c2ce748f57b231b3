"""Serving an aiohttp application for tests: in a background thread of this process (:class:`ServerThread`,
:class:`InThread`) or as its own process (:func:`start_server_process`), on 127.0.0.1 only. The fake server and the
fault proxy of :mod:`tailor.testing` use both."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Sequence
from typing import Any, TypeVar

from aiohttp import web

from ..backends.served.transport import new_event_loop
from ..errors import TailorError


class FakeServerError(TailorError):
    """A test server could not start, or was configured with options it cannot honour."""


_Served = TypeVar("_Served", bound="InThread")


class InThread:
    """Start, stop and ``with`` for an aiohttp app served in a background thread of this process (the fake server,
    the fault proxy); the class gives ``app()`` and ``port``."""

    _thread: ServerThread | None = None
    port: int = 0

    def app(self) -> web.Application:
        raise NotImplementedError

    def start(self) -> str:
        """Serve in a background thread of this process; returns the base URL (``http://127.0.0.1:PORT``)."""
        self._thread = ServerThread(self.app(), self.port)
        return self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._thread.stop()
            self._thread = None

    @property
    def url(self) -> str:
        if self._thread is None:
            name = type(self).__name__
            raise FakeServerError(f"{name}.url: it is not running; use `with {name}(...)` or start()")
        return self._thread.url

    def __enter__(self: _Served) -> _Served:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class ServerThread:
    """Runs an aiohttp application on 127.0.0.1 in a daemon thread with its own event loop (``port=0``: any free)."""

    def __init__(self, app: web.Application, port: int = 0):
        self.app, self.port = app, port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> str:
        self._thread = threading.Thread(target=self._run, name=f"tailor-server-{self.port}", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout) or self._error is not None:
            why = self._error or f"not listening after {timeout:g} s"
            raise FakeServerError(f"a test server could not listen on 127.0.0.1:{self.port}: {why}")
        return self.url

    def _run(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        runner = web.AppRunner(self.app, access_log=None, handler_cancellation=True, shutdown_timeout=0.5)
        try:
            loop.run_until_complete(runner.setup())
            loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", self.port, backlog=1024).start())
            self.port = runner.addresses[0][1]
        except BaseException as e:  # reported to start(), in the caller's thread
            self._error = e
        self._ready.set()
        if self._error is None:
            loop.run_forever()
            loop.run_until_complete(runner.cleanup())
        loop.close()

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)


def serve(app: web.Application, port: int) -> None:
    """Serve ``app`` on 127.0.0.1:``port`` in this process until SIGTERM/SIGINT (the ``python -m`` entry)."""
    web.run_app(
        app,
        host="127.0.0.1",
        port=port,
        access_log=None,
        print=None,
        handler_cancellation=True,
        shutdown_timeout=0.5,
        backlog=1024,
        loop=new_event_loop(),
    )


_LOGS: dict[int, Any] = {}  # pid -> the temporary file holding that server process's stderr


def start_server_process(module: str, args: Sequence[str], *, timeout: float = 30.0) -> tuple[subprocess.Popen, str]:
    """Start ``python -m module --port P *args`` on a free port; return it and its URL once ``GET /health`` answers
    (:class:`FakeServerError` with the process's stderr if it exits or does not answer within ``timeout``)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(
        [sys.executable, "-m", module, "--port", str(port), *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    _LOGS[proc.pid] = log
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url + "/health", timeout=1):
                return proc, url
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            why = f"exited with code {proc.returncode}" if proc.poll() is not None else f"no answer in {timeout:g} s"
            stderr = stop_process(proc).strip()
            raise FakeServerError(f"`python -m {module}` on {url} did not start ({why}); its stderr:\n{stderr}")
        time.sleep(0.05)


def stop_process(proc: subprocess.Popen) -> str:
    """Stop a server started by :func:`start_server_process` (SIGTERM, then SIGKILL); returns its stderr."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    with _LOGS.pop(proc.pid, None) or tempfile.TemporaryFile() as log:  # an empty file for a process not ours
        log.seek(0)
        return log.read().decode(errors="replace")
