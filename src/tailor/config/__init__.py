"""TODO package docstring: config."""
