"""Domain errors of the logistics service."""
