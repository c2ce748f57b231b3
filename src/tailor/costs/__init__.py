"""TODO package docstring: costs."""
