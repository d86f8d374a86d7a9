"""Queries of the matching service."""
