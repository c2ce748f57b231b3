"""Prompt templates: Jinja2 in a sandbox, checked against the data's fields before any model call.

A template sees each input field by name and ``text`` (all inputs joined). Referring to a field
the data lacks is an error naming the template, the field and the fields available; a template
that tries to reach Python internals (dunder attributes, file access) fails in the sandbox.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache

from ..errors import MethodError
from ..types import Example


@lru_cache(maxsize=1)
def _env():
    from jinja2 import StrictUndefined
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    # Immutable sandbox: no attribute access to internals, no mutation of the values passed in,
    # no filesystem loader; StrictUndefined turns a typo into an error instead of empty text.
    return ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False)


@dataclass(frozen=True)
class Template:
    """A compiled, checked template. ``source`` is exactly what is saved and exported."""

    source: str
    name: str

    def render(self, variables: Mapping[str, object]) -> str:
        from jinja2 import TemplateError
        from jinja2.exceptions import SecurityError

        try:
            return _compiled(self.source).render(**variables)
        except SecurityError as exc:
            raise MethodError(f"{self.name}: template refused by the sandbox: {exc}", key=self.name) from None
        except TemplateError as exc:
            raise MethodError(f"{self.name}: template failed to render: {exc}", key=self.name) from None

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
