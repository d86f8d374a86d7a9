"""Schemas of the matching service."""
