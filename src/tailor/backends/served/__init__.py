"""TODO package docstring: backends.served."""
