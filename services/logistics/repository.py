"""Queries of the logistics service."""
