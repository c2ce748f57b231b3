"""TODO package docstring: report."""
