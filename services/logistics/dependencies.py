"""Dependencies of the logistics service."""
