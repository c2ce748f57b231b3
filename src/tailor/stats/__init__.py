"""TODO package docstring: stats."""
