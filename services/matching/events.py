"""Event types the matching service publishes (none yet) and the handlers it runs."""
