"""Dependencies of the matching service."""
