"""Prompt templates: Jinja2 in a sandbox, checked against the data's fields before any model call.

A template sees each input field by name and ``text`` (all inputs joined). Referring to a field
the data lacks is an error naming the template, the field and the fields available; a template
that tries to reach Python internals (dunder attributes, file access) fails in the sandbox.

A template is also bounded, since a task file may come from anyone: ``range`` yields at most
:data:`MAX_ITERATIONS` items per rendering in all (nested loops included), repeating a string or list
(``'A' * 10**7``) or raising to a power may not build more than :data:`MAX_OUTPUT` characters or items,
rendering stops after :data:`MAX_SECONDS`, and one rendering writes at most :data:`MAX_OUTPUT` characters
(plus a few times the example's own text: see :class:`_Budget`).
Each limit is a clear error naming the template, never a hang or a 60 MB run store.
"""

from __future__ import annotations

import contextvars
import re
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from ..errors import MethodError
from ..types import Example

MAX_OUTPUT = 200_000
"""Most characters one rendering may write (and most a repetition may build): a prompt is never near this."""
MAX_ITERATIONS = 100_000
"""Most items ``range`` may yield in one rendering, over all its calls."""
MAX_SECONDS = 2.0
"""Longest one rendering may take."""


class _Budget:
    """What one rendering may still spend; checked by the bounded ``range``, every call and the output loop.

    Sizes are bounded at :data:`MAX_OUTPUT` plus four times the example's own text, so a long input (a whole
    document to summarize) renders — it is cut to the model's context later, and counted — while a template
    cannot make more than a few copies of it.
    """

    def __init__(self, input_chars: int = 0) -> None:
        self.iterations = MAX_ITERATIONS
        self.deadline = time.monotonic() + MAX_SECONDS
        self.max_size = MAX_OUTPUT + 4 * input_chars

    def spend(self) -> None:
        from jinja2.exceptions import SecurityError

        self.iterations -= 1
        if self.iterations < 0:
            raise SecurityError(f"more than {MAX_ITERATIONS:,} loop items or calls in one rendering")
        if self.iterations % 256 == 0 and time.monotonic() > self.deadline:
            raise SecurityError(f"rendering took longer than {MAX_SECONDS:g} s")


def _bounded_range(budget: _Budget):
    def bounded(*args: int) -> Iterator[int]:
        for i in range(*args):
            budget.spend()
            yield i

    return bounded


_current: contextvars.ContextVar[_Budget | None] = contextvars.ContextVar("tailor_template_budget", default=None)


def _limit() -> int:
    budget = _current.get()
    return budget.max_size if budget is not None else MAX_OUTPUT


def _check_arguments(args: Iterable[Any]) -> None:
    """No call may be asked for a size beyond the output limit (``center(10**9)``, ``'%999999999s'``)."""
    from jinja2.exceptions import SecurityError

    for value in args:
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > _limit():
            raise SecurityError(f"a number over {_limit():,} given to a function or filter")
        if isinstance(value, str) and "%" in value and any(len(d) > 5 for d in re.findall(r"\d+", value)):
            raise SecurityError("a format with a width or precision over 99,999")


def _check_size(value: Any) -> Any:
    from jinja2.exceptions import SecurityError

    if isinstance(value, (str, list, tuple, dict)) and len(value) > _limit():
        raise SecurityError(f"a value of more than {_limit():,} characters or items")
    return value


def _bounded_filter(fn: Any) -> Any:
    def bounded(*args: Any, **kwargs: Any) -> Any:
        _check_arguments([*args[1:], *kwargs.values()])
        return _check_size(fn(*args, **kwargs))

    for flag in ("jinja_pass_arg",):  # keep what tells Jinja to pass the context or environment first
        if hasattr(fn, flag):
            setattr(bounded, flag, getattr(fn, flag))
    return bounded


@lru_cache(maxsize=1)
def _env():
    from jinja2 import StrictUndefined
    from jinja2.exceptions import SecurityError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class Bounded(ImmutableSandboxedEnvironment):
        """The immutable sandbox with sizes, loops, calls and time bounded (see the module docstring)."""

        intercepted_binops = frozenset({"*", "**", "+", "%"})

        def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
            if operator == "**" and isinstance(right, (int, float)) and abs(right) > 100:
                raise SecurityError("a power with an exponent over 100")
            sizes = [len(x) for x in (left, right) if isinstance(x, (str, list, tuple))]
            counts = [x for x in (left, right) if isinstance(x, int) and not isinstance(x, bool)]
            if operator == "*" and sizes and counts and sizes[0] * max(counts[0], 0) > _limit():
                raise SecurityError(f"a repetition would build more than {_limit():,} characters or items")
            if operator == "%" and isinstance(left, str):
                _check_arguments([left, *(right if isinstance(right, tuple) else (right,))])
            return _check_size(super().call_binop(context, operator, left, right))

        def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
            budget = _current.get()
            if budget is not None:
                budget.spend()
            _check_arguments([*args, *kwargs.values()])
            return _check_size(super().call(__context, __obj, *args, **kwargs))

        def getattr(self, obj: Any, attribute: str) -> Any:
            return _check_size(super().getattr(obj, attribute))

        def getitem(self, obj: Any, argument: Any) -> Any:
            return _check_size(super().getitem(obj, argument))

    # Immutable sandbox: no attribute access to internals, no mutation of the values passed in,
    # no filesystem loader; StrictUndefined turns a typo into an error instead of empty text.
    env = Bounded(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False)
    env.filters = {name: _bounded_filter(fn) for name, fn in env.filters.items()}
    return env


@dataclass(frozen=True)
class Template:
    """A compiled, checked template. ``source`` is exactly what is saved and exported."""

    source: str
    name: str

    def render(self, variables: Mapping[str, object]) -> str:
        from jinja2 import TemplateError
        from jinja2.exceptions import SecurityError

        budget = _Budget(sum(len(v) for v in variables.values() if isinstance(v, str)))
        token = _current.set(budget)
        try:
            # rendered piece by piece so that the output's size and the time can be checked as it grows
            pieces, size = [], 0
            for piece in _compiled(self.source).generate(**{**variables, "range": _bounded_range(budget)}):
                size += len(piece)
                if size > budget.max_size:
                    raise SecurityError(f"the rendering is longer than {budget.max_size:,} characters")
                if time.monotonic() > budget.deadline:
                    raise SecurityError(f"rendering took longer than {MAX_SECONDS:g} s")
                pieces.append(piece)
            return "".join(pieces)
        except SecurityError as exc:
            raise MethodError(f"{self.name}: template refused by the sandbox: {exc}", key=self.name) from None
        except (RecursionError, MemoryError, OverflowError) as exc:
            raise MethodError(f"{self.name}: template refused: {type(exc).__name__}", key=self.name) from None
        except TemplateError as exc:
            raise MethodError(f"{self.name}: template failed to render: {exc}", key=self.name) from None
        finally:
            _current.reset(token)

    def render_example(self, ex: Example, **extra: object) -> str:
        return self.render({**ex.inputs, "text": ex.text, **extra})


@lru_cache(maxsize=256)
def _compiled(source: str):
    return _env().from_string(source)


def compile_template(source: str, name: str, fields: Iterable[str], extra: Iterable[str] = ()) -> Template:
    """Parse ``source`` and check that every variable it uses is an available field.

    Args:
        source: The Jinja2 template text.
        name: Where it came from, for errors (e.g. ``methods[0].templates[1]``).
        fields: The data's input fields; ``text`` is always available too.
        extra: Further variables the caller will provide (e.g. ``label``).
    """
    from jinja2 import TemplateSyntaxError, meta

    try:
        ast = _env().parse(source)
    except TemplateSyntaxError as exc:
        raise MethodError(f"{name}: template syntax error at line {exc.lineno}: {exc.message}", key=name) from None
    available = {*fields, "text", *extra}
    missing = sorted(meta.find_undeclared_variables(ast) - available)
    if missing:
        raise MethodError(
            f"{name}: template uses {', '.join(repr(m) for m in missing)}, which the data lacks "
            f"(available: {', '.join(sorted(available))})",
            key=name,
        )
    return Template(source, name)
