"""Queries of the webhooks service."""
