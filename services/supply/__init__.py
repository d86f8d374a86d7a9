"""The supply service."""
