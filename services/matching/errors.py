"""Domain errors of the matching service."""
