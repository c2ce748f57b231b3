"""TODO package docstring: runner.parallel."""
