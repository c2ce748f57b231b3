"""TODO package docstring: search."""
