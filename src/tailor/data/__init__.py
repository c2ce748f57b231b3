"""TODO package docstring: data."""
