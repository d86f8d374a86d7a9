"""The project's own development checks."""
