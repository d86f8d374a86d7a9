"""Event types the logistics service publishes (none yet) and the handlers it runs."""
