"""The one setting every section of a task file shares: unknown keys are errors (a typo never passes silently),
values are frozen once read, and each field's docstring is its documentation (``tailor keys`` and ``--help``)."""

from __future__ import annotations

from pydantic import ConfigDict

STRICT = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)
