"""Business rules of the matching service."""
