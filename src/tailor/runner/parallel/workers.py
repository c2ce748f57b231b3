"""Trials run side by side: in local worker processes (``--workers N``) or as Ray actors (``--ray auto|ADDRESS``).

Trials are independent, so a run (a learning curve of 200 trials, say) spreads them over workers. Each worker reads
the task's data and plans the run itself — the same plan the parent made, since planning and sampling depend on the
task file and seeds alone — keeps one :class:`~tailor.backends.pool.ModelPool` for its life (a model is loaded once
per worker and reused by every trial it runs; a frozen encoder's embedding cache with it), and hands each finished
trial's result and predictions back to the parent, the store's only writer. Adapted models are saved by the worker
into the run folder, which therefore must be the same path on every machine of a Ray cluster (shared storage).

Local workers each get an equal share of the CPU cores and, where there are GPUs, one GPU each (round robin);
Ray actors ask the cluster for one GPU each when it has any.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from ...errors import TailorError
from .job import Collected, Finished, Job


class TrialWorker:
    """One worker's state: the run's data, its prepared trials and its model pool, made once."""

    def __init__(self, job: Job, gpu: int | None = None, threads: int | None = None) -> None:
        if gpu is not None:  # before torch is imported in this process
            os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu)
        from ...backends.pool import ModelPool
        from ...data.load import load_task_data
        from ...progress import NULL_PROGRESS
        from ..plan import plan_trials, prepare_trials, task_info

        if threads:
            import torch

            torch.set_num_threads(threads)
        self.job = job
        origin = job.task_file or "task"
        self.pool = ModelPool()
        trials = plan_trials(job.spec, origin, self.pool)
        self.data = load_task_data(job.spec, job.base, origin)
        info = task_info(job.spec, self.data)
        prepared = prepare_trials(job.spec, trials, self.data, info, job.run_dir, NULL_PROGRESS, origin, self.pool)
        self.prepared = {trial.name: (trial, ctx, train) for trial, ctx, train in prepared}

    def run(self, name: str) -> Finished:
        from ...progress import NULL_PROGRESS
        from ..run import load_shared_models, run_trial

        trial, ctx, train = self.prepared[name]
        load_shared_models([(trial, ctx, train)], self.pool, [])  # once per worker; a no-op once loaded
        sink = Collected()
        result = run_trial(
            self.job.spec, trial, ctx, train, self.data, self.job.run_dir, sink, NULL_PROGRESS, base=self.job.base
        )
        return sink.result or (result, {})


# ------------------------------------------------------------------------------------------ local processes

_WORKER: TrialWorker | None = None


def _start_local(job: Job, gpus: Any, threads: int) -> None:
    global _WORKER
    gpu = gpus.get() if gpus is not None else None
    _WORKER = TrialWorker(job, gpu, threads)


def _run_local(name: str) -> Finished:
    assert _WORKER is not None, "worker not started"
    return _WORKER.run(name)


def local_workers(job: Job, names: list[str], workers: int) -> Iterator[Finished]:
    """Run ``names`` in ``workers`` local processes (spawned: no state shared with the parent), yielding each trial
    as it finishes."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    ctx = mp.get_context("spawn")
    n_gpus = _local_gpus()
    gpus = None
    if n_gpus:
        gpus = ctx.Manager().Queue()
        for i in range(workers):
            gpus.put(i % n_gpus)
    threads = max(1, usable_cores() // workers)
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_start_local, initargs=(job, gpus, threads)) as ex:
        futures = [ex.submit(_run_local, name) for name in names]
        try:
            for future in as_completed(futures):
                yield future.result()
        except BaseException:
            for f in futures:
                f.cancel()
            raise


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity, which a container or `taskset` narrows), not the machine's."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS and Windows have no affinity call
        return os.cpu_count() or 1


def check_local_workers(workers: int) -> None:
    """Refuse more local workers than cores, before anything starts.

    Why refuse rather than warn: each worker is a process that loads its own copy of every model it uses and gets
    an equal share of the cores, so past one per core workers only wait for each other, in that many times the
    memory — a typo (`--workers 99`) would otherwise fill the memory of the machine.
    """
    cores = usable_cores()
    if workers > cores:
        gpus = _local_gpus()
        on = f" and {gpus} GPU{'s' if gpus != 1 else ''}" if gpus else ""
        raise TailorError(
            f"--workers {workers}: this machine gives tailor {cores} CPU core{'s' if cores != 1 else ''}{on}, so at "
            f"most {cores} local workers: each worker is a process with its own copy of the models and an equal share "
            f"of the cores, so more workers than cores only wait for each other, in {workers} times the memory. Give "
            f"--workers {cores} or fewer, or --ray to spread the trials over a cluster"
        )


def _local_gpus() -> int:
    """CUDA devices here, without initialising CUDA in this process (the workers use them)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip()])
    try:
        import torch

        return torch.cuda.device_count()
    except Exception:  # no torch build with CUDA: no GPUs
        return 0


# ------------------------------------------------------------------------------------------ Ray


def connect_ray(address: str) -> Any:
    """Connect to the Ray cluster at ``address`` (``auto``: the one running on this machine), or say clearly why
    not — before anything of the run starts."""
    try:
        import ray
    except ImportError:
        raise TailorError(
            "--ray needs Ray, which is not installed: `pip install 'ray>=2.9'` (or tailor's `ray` extra)"
        ) from None
    if address.startswith("ray://") and not _ray_client_installed():
        raise TailorError(
            f"--ray {address}: a ray:// address is reached through Ray Client, which is not installed here: "
            f"`pip install 'ray[client]=={ray.__version__}'` (the cluster's Ray version). On a machine of the "
            "cluster, `--ray auto` or the head's HOST:6379 need no Ray Client"
        )
    if not ray.is_initialized():
        _reachable(address)  # Ray itself retries an unreachable address for minutes
        try:
            ray.init(address=address, log_to_driver=False, logging_level="ERROR")
        except (ConnectionError, RuntimeError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise TailorError(
                f"--ray {address}: no Ray cluster could be reached ({first}). Start one with `ray start --head`, or "
                "give the address of a running one (ray://HOST:10001 or HOST:6379)"
            ) from None
    return ray


def _ray_client_installed() -> bool:
    """Whether Ray Client's dependency (grpcio) is here: without it Ray refuses a ray:// address only after the
    connection, in words that read like an unreachable cluster."""
    try:
        import grpc  # noqa: F401
    except ImportError:
        return False
    return True


def _reachable(address: str) -> None:
    """Fail at once when ``address`` (HOST:PORT or ray://HOST:PORT) takes no connection; ``auto`` is left to Ray,
    which finds the cluster started on this machine or says there is none."""
    import socket

    if address == "auto":
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise TailorError(f"--ray {address}: expected `auto`, HOST:PORT or ray://HOST:PORT")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as exc:
        raise TailorError(
            f"--ray {address}: no Ray cluster could be reached ({exc.strerror or exc}). Start one with `ray start "
            "--head`, or give the address of a running one (ray://HOST:10001 or HOST:6379)"
        ) from None


def ray_workers(job: Job, names: list[str], workers: int | None, address: str) -> Iterator[Finished]:
    """Run ``names`` as tasks of ``workers`` Ray actors (default: one per GPU of the cluster, else one per CPU),
    yielding each trial as it finishes."""
    ray = connect_ray(address)
    from ray.util import ActorPool

    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    n = workers or gpus or max(1, int(resources.get("CPU", 1)))
    threads = max(1, int(resources.get("CPU", 1)) // n)
    actor = ray.remote(num_cpus=1, num_gpus=1 if gpus else 0)(TrialWorker)
    pool = ActorPool([actor.remote(job, None, threads) for _ in range(n)])
    yield from pool.map_unordered(lambda a, name: a.run.remote(name), names)
