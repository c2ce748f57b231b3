"""Client throughput against an OpenAI-compatible server: tailor vs lm-evaluation-harness vs DSPy, same requests.

Why: prompting a served model is bound by latency, not by the server's compute, so what a client can keep in
flight decides how long a run takes. A perfect client with ``c`` requests in flight against a server that answers
each after ``L`` seconds does ``c / L`` requests per second; each system is reported as the fraction of that ideal
it reaches: ``<system>: {concurrency: fraction_of_ideal}``, and ``requests_per_s``.

Setup:
  * server: ``tailor.testing.fake_server`` in its own process (so it does not share the clients' GIL) on its own
    core (the clients run on the others: ``pinning``), on uvloop's event loop, answering
    every request after a fixed ``--latency-ms`` (100) with an ``asyncio.sleep``, so requests overlap as on a
    batching server. Its answer is DSPy's chat-adapter format (``[[ ## answer ## ]]`` ... ``[[ ## completed ## ]]``)
    so DSPy parses it on the first try; the other clients ignore the text.
  * requests: ``--n-requests`` (1,000) distinct short prompts, ``max_tokens`` 16, greedy, seed 1234, ``stop``
    ``["\\n\\n"]``, at concurrency 1, 8, 32 and 128 (``--concurrency``):
      (a) tailor   — ``tailor.backends.served.dispatch.Dispatcher`` (``DispatchSettings(max_concurrency=c)``, cache
      off),
          one ``send()`` of all requests to ``/v1/completions``, over its default transport (aiohttp directly,
          on uvloop's loop); ``tailor_openai_sdk``: the same with ``transport="openai"`` (the official SDK's
          ``AsyncOpenAI`` over its aiohttp transport), which is why tailor goes below the SDK by default;
      (b) lm-eval  — ``local-completions`` built from a model-args string as on the command line
          (``base_url=.../v1/completions,num_concurrent=c,tokenized_requests=False,tokenizer_backend=None``),
          ``generate_until`` on the same prompts; its payload equals tailor's body for body (checked at the
          server: ``same_bodies_tailor_lm_eval``);
      (c) DSPy     — ``dspy.Predict("text -> answer")`` on ``dspy.LM("openai/<model>", cache=False)`` run over the
          same texts by ``dspy.Parallel(num_threads=c)``; DSPy's adapter sends chat requests (its system prompt
          plus the text) to ``/v1/chat/completions``: that is how DSPy talks to a server;
      (d) ``ceiling_raw_aiohttp`` — a bare ``aiohttp`` client (one session, ``limit=c`` connections, JSON parsed),
          no retries or bookkeeping: what this machine allows a Python client, given the server's own CPU.
  * each (system, concurrency) runs in a fresh Python process (on the clients' cores), so no client's imports
    (DSPy's and litellm's heaps are large) slow another's event loop with their garbage-collector passes, and is
    timed ``--repeats`` (3) times from the first request out to the last answer in
    (concurrency 1 once: 100 s a run) and the median reported; every timing is kept in ``runs``. Client set-up
    (building the model object, imports) is not timed; connections are opened inside the timed call for all.
  * ``client_cpu_ms_per_request``: the client process's CPU time during the timed call (all its threads; the server
    runs elsewhere) per request. Wall-clock figures suffer when other work shares the 2 cores; this one much less.
    It bounds what one event-loop thread can do: at concurrency c and latency L it has L / c per request (0.78 ms
    at 128 and 100 ms), so a client above that cannot reach the ideal whatever the machine's load.
  * ``max_fraction``: even a perfect client loses the tail of the last wave (``n / (c * ceil(n / c))``: 0.977 for
    1,000 requests at 32 and 128).
  * cached re-run: tailor at the top concurrency with a fresh SQLite response cache: the first run fills it, a
    second run (a new Dispatcher on the reopened file, as a re-run would) is timed. ``cached_rerun_time_ratio`` =
    its time / tailor's uncached median at that concurrency; ``cached_rerun_requests`` = requests the server
    counted during it (``GET /stats``), which must be 0.

A peer that cannot be run (not installed, fails) is recorded with the reason under ``<system>_error``, never with
a number. Run (from the repository root; DSPy: ``.venv/bin/pip install -c constraints.txt dspy``):

    .venv/bin/python benchmarks/endpoint_throughput.py [--n-requests 1000] [--latency-ms 100] [--repeats 3] \
        [--concurrency 1 8 32 128] [--systems tailor lm_eval dspy ceiling_raw_aiohttp]

Writes ``benchmarks/results/endpoint_throughput.json``. The machine has 2 cores shared with other work; the load
average before and after is recorded.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # DSPy's litellm: no cost-map download at import
os.environ.setdefault("TQDM_DISABLE", "1")  # lm-eval's progress bar: no terminal noise, no cost charged to it
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from tailor.runner.record import repo_python  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "results" / "endpoint_throughput.json"
MODEL = "fake-model"
MAX_TOKENS, SEED, STOP = 16, 1234, ["\n\n"]
ANSWER = "[[ ## answer ## ]]\npositive\n\n[[ ## completed ## ]]"  # 11 whitespace tokens: fits MAX_TOKENS
SYSTEMS = ("tailor", "tailor_openai_sdk", "lm_eval", "dspy", "ceiling_raw_aiohttp")
ADJECTIVES = ("bold", "dull", "warm", "cold", "sharp", "slow", "bright", "quiet", "odd", "grand")


def texts(n: int) -> list[str]:
    """n distinct short texts (no two prompts alike: no client or server can dedupe them)."""
    return [f"Review {i}: a {ADJECTIVES[i % 10]} film with a {ADJECTIVES[i // 10 % 10]} ending." for i in range(n)]


def prompt(text: str) -> str:
    return f"{text}\nSentiment:"


def completion_body(text: str) -> dict:
    """The body lm-eval's local-completions sends for generate_until (checked at the server); tailor sends it too."""
    return {
        "prompt": prompt(text),
        "model": MODEL,
        "max_tokens": MAX_TOKENS,
        "temperature": 0,
        "stop": STOP,
        "seed": SEED,
    }


def server_stats(url: str) -> dict:
    with urllib.request.urlopen(url + "/stats", timeout=30) as r:
        return json.load(r)


def served(url: str) -> int:
    return sum(server_stats(url)["counts"].values())


# ---- the clients: each returns (seconds for all requests, CPU seconds of this process meanwhile, answers right) --


def run_tailor(
    url: str, items: list[str], c: int, cache_path: Path | None = None, transport: str = "aiohttp"
) -> tuple[float, float, int]:
    from tailor.backends.served.cache import ResponseCache
    from tailor.backends.served.dispatch import Dispatcher, DispatchSettings, Request

    cache = ResponseCache(cache_path) if cache_path is not None else None
    requests = [Request("completions", completion_body(t)) for t in items]
    try:
        with Dispatcher(
            url + "/v1",
            api_key=None,
            api_key_env=None,
            settings=DispatchSettings(max_concurrency=c, transport=transport),
            cache=cache,
        ) as dispatcher:
            t, cpu = time.perf_counter(), time.process_time()
            replies = dispatcher.send(requests)
            dt, cpu = time.perf_counter() - t, time.process_time() - cpu
    finally:
        if cache is not None:
            cache.close()
    return dt, cpu, sum(r.body is not None and r.body["choices"][0]["text"] == ANSWER for r in replies)


def run_lm_eval(url: str, items: list[str], c: int) -> tuple[float, float, int]:
    from lm_eval.api.instance import Instance
    from lm_eval.api.registry import get_model

    args = (
        f"model={MODEL},base_url={url}/v1/completions,num_concurrent={c},tokenized_requests=False,"
        f"tokenizer_backend=None,max_gen_toks={MAX_TOKENS},seed={SEED}"
    )
    lm = get_model("local-completions").create_from_arg_string(args)
    gen = {"until": STOP, "max_gen_toks": MAX_TOKENS, "do_sample": False}
    instances = [Instance("generate_until", {}, (prompt(t), dict(gen)), i) for i, t in enumerate(items)]
    t, cpu = time.perf_counter(), time.process_time()
    out = lm.generate_until(instances, disable_tqdm=True)
    dt, cpu = time.perf_counter() - t, time.process_time() - cpu
    return dt, cpu, sum(o == ANSWER for o in out)


def run_dspy(url: str, items: list[str], c: int) -> tuple[float, float, int]:
    import dspy

    lm = dspy.LM(
        f"openai/{MODEL}", api_base=url + "/v1", api_key="x", cache=False, max_tokens=MAX_TOKENS, temperature=0
    )
    predict = dspy.Predict("text -> answer")
    pairs = [(predict, dspy.Example(text=t).with_inputs("text")) for t in items]
    with dspy.context(lm=lm):
        t, cpu = time.perf_counter(), time.process_time()
        out = dspy.Parallel(num_threads=c, disable_progress_bar=True)(pairs)
        dt, cpu = time.perf_counter() - t, time.process_time() - cpu
    return dt, cpu, sum(p is not None and p.answer == "positive" for p in out)


def run_raw_aiohttp(url: str, items: list[str], c: int) -> tuple[float, float, int]:
    import aiohttp

    async def go() -> tuple[float, float, list[dict]]:
        connector = aiohttp.TCPConnector(limit=c)
        async with aiohttp.ClientSession(connector=connector) as session:

            async def one(body: dict) -> dict:
                async with session.post(url + "/v1/completions", json=body) as r:
                    r.raise_for_status()
                    return await r.json()

            t, cpu = time.perf_counter(), time.process_time()
            out = await asyncio.gather(*(one(completion_body(x)) for x in items))
            return time.perf_counter() - t, time.process_time() - cpu, out

    dt, cpu, out = asyncio.run(go())
    return dt, cpu, sum(o["choices"][0]["text"] == ANSWER for o in out)


def run_tailor_openai_sdk(url: str, items: list[str], c: int) -> tuple[float, float, int]:
    return run_tailor(url, items, c, transport="openai")


RUNNERS: dict[str, Callable[[str, list[str], int], tuple[float, float, int]]] = {
    "tailor": run_tailor,
    "tailor_openai_sdk": run_tailor_openai_sdk,
    "lm_eval": run_lm_eval,
    "dspy": run_dspy,
    "ceiling_raw_aiohttp": run_raw_aiohttp,
}


def importable(system: str) -> str | None:
    """None when the system's package imports, else why not (recorded in the JSON instead of a number)."""
    module = {"lm_eval": "lm_eval.models.openai_completions", "dspy": "dspy", "ceiling_raw_aiohttp": "aiohttp"}
    try:
        __import__(module.get(system, "tailor.backends.served.dispatch"))
    except Exception as e:  # noqa: BLE001 - any import failure is a reason to record
        return f"cannot import: {type(e).__name__}: {e}"
    return None


def in_own_process(system: str, url: str, n: int, c: int, repeats: int) -> dict:
    """Time ``system`` in a fresh Python process (on this process's cores): one client's imports (DSPy's and
    litellm's are large) never slow another's loop with their garbage-collector passes. ``{"runs": [[seconds,
    cpu_seconds, requests_sent], ...]}`` or ``{"error": why}``."""
    command = [sys.executable, __file__, "--worker", system, "--url", url, "--n-requests", str(n)]
    command += ["--concurrency", str(c), "--repeats", str(repeats)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=3600)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        return {"error": f"exit {done.returncode}: {done.stderr.strip()[-500:]}"}
    return json.loads(lines[-1])


def worker(system: str, url: str, n: int, c: int, repeats: int) -> dict:
    """The child's side of :func:`in_own_process`: time ``repeats`` sends and check every answer."""
    if (why := importable(system)) is not None:
        return {"error": why}
    items, runs = texts(n), []
    try:
        for _ in range(repeats):
            before = served(url)
            dt, cpu, ok = RUNNERS[system](url, items, c)
            sent = served(url) - before
            if ok != n:
                raise RuntimeError(f"{ok} of {n} requests answered as expected ({sent} sent)")
            runs.append([dt, cpu, sent])
    except Exception as e:  # noqa: BLE001 - a peer failing is recorded, the others still run
        return {"error": f"{type(e).__name__}: {e}"}
    return {"runs": runs}


def versions() -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in ("openai", "httpx2", "aiohttp", "uvloop", "lm_eval", "dspy", "litellm"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def pin(server_pid: int) -> str:
    """The server on the last core, the clients on the others: neither takes the other's core (every system alike)"""
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        return f"none: {len(cores)} core"
    os.sched_setaffinity(server_pid, {cores[-1]})
    os.sched_setaffinity(0, set(cores[:-1]))
    return f"server on core {cores[-1]}, clients on {', '.join(map(str, cores[:-1]))}"


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n-requests", type=int, default=1000)
    ap.add_argument("--latency-ms", type=float, default=100.0)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32, 128])
    ap.add_argument("--repeats", type=int, default=3, help="timings per (system, concurrency > 1); median reported")
    ap.add_argument("--systems", nargs="+", choices=SYSTEMS, default=list(SYSTEMS))
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--worker", choices=SYSTEMS, help=argparse.SUPPRESS)  # internal: one timed client
    ap.add_argument("--url", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.url, args.n_requests, args.concurrency[0], args.repeats)))
        return

    from tailor.testing.fake_server import start_server_process, stop_process

    n, latency, top = args.n_requests, args.latency_ms / 1000, max(args.concurrency)
    items = texts(n)
    result: dict = {
        "command": " ".join([repo_python(), *sys.argv]),
        "latency_ms": args.latency_ms,
        "n_requests": n,
        "concurrency": args.concurrency,
        "repeats": args.repeats,
        "cpu_count": os.cpu_count(),
        "versions": versions(),
        "load_average_before": loadavg(),
        "request": {
            "route": "completions (DSPy: chat/completions, its adapter's messages)",
            "max_tokens": MAX_TOKENS,
            "temperature": 0,
            "seed": SEED,
            "stop": STOP,
            "example_prompt": prompt(items[0]),
        },
        "max_fraction": {str(c): round(n / (c * math.ceil(n / c)), 4) for c in args.concurrency},
        "server": "python -m tailor.testing.fake_server --preset vllm (own process), fixed latency, asyncio.sleep",
    }
    runs: dict[str, dict[str, list[float]]] = {}

    def write(note: str | None = None) -> None:
        result["runs_seconds"] = runs
        result.pop("note", None)
        if note:
            result["note"] = note
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")

    proc, url = start_server_process(
        "tailor.testing.fake_server",
        ["--model", MODEL, "--latency-ms", str(args.latency_ms), "--preset", "vllm", "--words", ANSWER],
    )
    result["pinning"] = pin(proc.pid)
    try:
        systems = list(args.systems)
        for system in systems:
            result[system] = {}
        for c in args.concurrency:
            for system in list(systems):
                times = runs.setdefault(system, {}).setdefault(str(c), [])
                cpus: list[float] = []
                found = in_own_process(system, url, n, c, 1 if c == 1 else args.repeats)
                if "error" in found:  # a peer failing is recorded, the others still run
                    result[f"{system}_error"] = f"at concurrency {c}: {found['error']}"
                    print(f"{system} failed: {result[f'{system}_error']}", flush=True)
                    systems.remove(system)
                    result.pop(system, None)
                    continue
                for dt, cpu, sent in found["runs"]:
                    times.append(round(dt, 4))
                    cpus.append(cpu)
                    speed = f"{dt:8.3f} s  {n / dt:8.1f} req/s  {cpu / n * 1000:6.3f} ms CPU/req"
                    print(f"{system:>20} c={c:<4} {speed}  sent {sent}", flush=True)
                rate = n / statistics.median(times)
                result[system][str(c)] = round(rate / (c / latency), 4)  # fraction_of_ideal
                result.setdefault("requests_per_s", {}).setdefault(system, {})[str(c)] = round(rate, 1)
                per_request = round(statistics.median(cpus) / n * 1000, 3)
                result.setdefault("client_cpu_ms_per_request", {}).setdefault(system, {})[str(c)] = per_request
                write("partial: not every system and concurrency measured yet")
        if "tailor" in systems and "lm_eval" in systems:  # lm-eval's payload and tailor's body: the same requests
            bodies = server_stats(url)["bodies"]
            kinds = {json.dumps(b, sort_keys=True) for b in bodies if "prompt" in b and b["prompt"] == prompt(items[0])}
            result["same_bodies_tailor_lm_eval"] = kinds == {json.dumps(completion_body(items[0]), sort_keys=True)}

        # ---- cached re-run (tailor, top concurrency, a fresh cache file) ----------------------------------------
        if "tailor" in systems:
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "responses.sqlite"
                fill, _, _ = run_tailor(url, items, top, path)
                before = served(url)
                again, _, ok_again = run_tailor(url, items, top, path)
                sent = served(url) - before
            uncached = statistics.median(runs["tailor"][str(top)])
            result.update(
                cached_fill_seconds=round(fill, 4),
                cached_rerun_seconds=round(again, 4),
                cached_rerun_time_ratio=round(again / uncached, 5),
                cached_rerun_requests=sent,
                cached_rerun_answers_ok=ok_again == n,
                cached_rerun_note=f"tailor at concurrency {top}: the first run filled a fresh cache "
                f"({fill:.3f} s), the re-run (new Dispatcher, reopened file) is timed against the "
                f"uncached median ({uncached:.3f} s); requests counted by the server",
            )
            print(
                f"cached re-run: {again:.4f} s ({again / uncached:.2%} of uncached), {sent} requests sent", flush=True
            )
        result["server_max_in_flight"] = server_stats(url)["max_in_flight"]
    finally:
        stderr = stop_process(proc).strip()
        if stderr:
            result["server_stderr_tail"] = stderr[-2000:]
    result["load_average_after"] = loadavg()
    write()
    print(json.dumps({s: result[s] for s in SYSTEMS if s in result}, indent=2))


if __name__ == "__main__":
    main()
