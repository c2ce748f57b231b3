"""TODO package docstring: cli."""
