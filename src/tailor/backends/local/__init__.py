"""TODO package docstring: backends.local."""
