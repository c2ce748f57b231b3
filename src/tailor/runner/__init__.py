"""TODO package docstring: runner."""
