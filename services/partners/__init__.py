"""The partners service."""
