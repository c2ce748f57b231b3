"""The task file's `curve:` section, and a method entry's own `curve:`: which training sizes and seeds a learning
curve runs, for every method or for one expensive method.

A method's own curve only ever picks from the task's: its sizes are some of the task's sizes and its seeds some of
the task's seeds, so its points line up with the other methods' and see the same nested draws (the size-16 draw of
seed s is the same examples whichever method trains on it).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, field_validator

from .strict import STRICT

__all__ = ["DEFAULT_CURVE_SIZES", "CurveSize", "CurveSpec", "MethodCurveSpec"]

CurveSize = int | Literal["all"]

DEFAULT_CURVE_SIZES: list[CurveSize] = [0, 4, 8, 16, 32, 64, 128, "all"]


def _increasing(sizes: list[CurveSize]) -> list[CurveSize]:
    if "all" in sizes[:-1]:
        raise ValueError("`all` can only be the last size")
    numbers = [s for s in sizes if s != "all"]
    if any(n < 0 for n in numbers):
        raise ValueError(f"sizes are never negative: {sizes}")
    bad = [f"{a} then {b}" for a, b in zip(numbers, numbers[1:]) if b <= a]
    if bad:
        raise ValueError(f"sizes must increase; they don't at {', '.join(bad)}")
    return sizes


def _several(seeds: int | list[int]) -> int | list[int]:
    n = seeds if isinstance(seeds, int) else len(set(seeds))
    if n < 2:
        raise ValueError(f"a curve needs at least 2 seeds (intervals over seeds need several), got {seeds}")
    if isinstance(seeds, list) and len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds repeat: {seeds}")
    return seeds


class CurveSpec(BaseModel):
    """A learning curve: every method at several training sizes and seeds, one trial each, in one run store."""

    model_config = STRICT

    sizes: list[CurveSize] = Field(default_factory=lambda: list(DEFAULT_CURVE_SIZES), min_length=1)
    """Training sizes, increasing: examples per class for classification, examples in all otherwise; `all` (last)
    is the whole training split. 0 is where methods that use no examples (zero-shot) run; the others run at every
    size above 0."""
    seeds: int | list[int] = 5
    """Seeds per size: a count (the task's `seed` and the next ones) or the seeds themselves; at least 2, since
    intervals over seeds need several. The same seed draws the same examples for every method, nested across
    sizes (the size-8 draw is inside the size-16 draw)."""

    @field_validator("sizes")
    @classmethod
    def _check_sizes(cls, sizes: list[CurveSize]) -> list[CurveSize]:
        return _increasing(sizes)

    @field_validator("seeds")
    @classmethod
    def _check_seeds(cls, seeds: int | list[int]) -> int | list[int]:
        return _several(seeds)

    def seed_list(self, base: int) -> list[int]:
        """The seeds themselves: ``base`` and the next ones for a count."""
        return list(range(base, base + self.seeds)) if isinstance(self.seeds, int) else list(self.seeds)


class MethodCurveSpec(BaseModel):
    """One method entry's share of the task's learning curve: fewer sizes or seeds for a method too costly to run
    at all of them."""

    model_config = STRICT

    sizes: list[CurveSize] | None = Field(None, min_length=1)
    """This method's sizes, increasing, each one of the task's `curve.sizes`; default: the task's."""
    seeds: int | list[int] | None = None
    """This method's seeds, at least 2: a count N means the first N of the task curve's seeds, a list names some
    of them; default: the task curve's seeds."""

    @field_validator("sizes")
    @classmethod
    def _check_sizes(cls, sizes: list[CurveSize] | None) -> list[CurveSize] | None:
        return None if sizes is None else _increasing(sizes)

    @field_validator("seeds")
    @classmethod
    def _check_seeds(cls, seeds: int | list[int] | None) -> int | list[int] | None:
        return None if seeds is None else _several(seeds)

    def mismatch(self, curve: CurveSpec, base: int) -> tuple[str, str] | None:
        """The first of this method's sizes or seeds that the task's ``curve`` (seeds from ``base``) lacks, as
        (key under `curve`, what is wrong); None when all are the task's."""
        listed = ", ".join(map(str, curve.sizes))
        missing = [str(s) for s in self.sizes or [] if s not in curve.sizes]
        if missing:
            verb = "is not one of" if len(missing) == 1 else "are not among"
            return "sizes", f"{', '.join(missing)} {verb} curve.sizes ({listed})"
        seeds = curve.seed_list(base)
        if isinstance(self.seeds, int) and self.seeds > len(seeds):
            return "seeds", f"{self.seeds} seeds, but the task's curve has {len(seeds)} ({', '.join(map(str, seeds))})"
        other = [str(s) for s in self.seeds if s not in seeds] if isinstance(self.seeds, list) else []
        if other:
            verb = "is not one of" if len(other) == 1 else "are not among"
            return "seeds", f"{', '.join(other)} {verb} the task curve's seeds ({', '.join(map(str, seeds))})"
        return None

    def size_list(self, curve: CurveSpec) -> list[CurveSize]:
        """This method's sizes: its own, else the task curve's."""
        return list(curve.sizes if self.sizes is None else self.sizes)

    def seed_list(self, curve: CurveSpec, base: int) -> list[int]:
        """This method's seeds: the first N of the task curve's for a count, the ones named, else all of them."""
        seeds = curve.seed_list(base)
        if self.seeds is None:
            return seeds
        return seeds[: self.seeds] if isinstance(self.seeds, int) else [s for s in seeds if s in self.seeds]
