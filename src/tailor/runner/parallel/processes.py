"""Several processes of one run (``torchrun``): which one this is, and values rank 0 decides for all.

Every process runs the same run; rank 0 alone evaluates and writes the run folder.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

from ...errors import TailorError

T = TypeVar("T")


def process_rank() -> tuple[int, int]:
    """(rank, processes) of this process. Launched by torchrun (``WORLD_SIZE`` > 1), the process group is started
    here; otherwise (0, 1) without touching torch."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return 0, 1
    from ...tuning.loop import distributed

    return distributed()


def on_rank0(fn: Callable[[], T], world: int) -> T:
    """``fn()`` computed by rank 0 alone and handed to every process; a :class:`TailorError` it raises is raised on
    every process (so all of them stop together)."""
    if world == 1:
        return fn()
    import torch.distributed as dist

    box: list[Any] = [None]
    error: TailorError | None = None
    if dist.get_rank() == 0:
        try:
            box = [("value", fn())]
        except TailorError as exc:
            error, box = exc, [("error", str(exc))]
    dist.broadcast_object_list(box, src=0)
    what, value = box[0]
    if what == "error":
        raise error or TailorError(value)
    return value


def end_processes(world: int) -> None:
    """Leave torch.distributed's process group cleanly (under torchrun)."""
    if world > 1:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
