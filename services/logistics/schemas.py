"""Schemas of the logistics service."""
