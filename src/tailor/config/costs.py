"""The task file's `costs:` section: what local compute costs, for money in the cost and break-even views.

Served models carry their own price per million tokens (`model.price`); local trials are priced by the hour of the
hardware they ran on. tailor keeps no price table (it would go stale): without a price, money is left out and the
report says which key to add.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from .strict import STRICT

__all__ = ["CostsSpec"]


class CostsSpec(BaseModel):
    """Prices of local compute, in one currency."""

    model_config = STRICT

    currency: str = "USD"
    """Shown beside the amounts; served models' prices should be in the same currency."""
    cpu_hour: float | None = Field(None, ge=0)
    """Money per hour of the machine that local trials run on without a GPU (its whole hourly price)."""
    gpu_hour: float | None = Field(None, ge=0)
    """Money per hour of a GPU machine, for local trials that ran on a GPU (cuda or mps)."""
