"""Business rules of the logistics service."""
