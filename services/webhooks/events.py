"""Event types the webhooks service publishes (none yet) and the handlers it runs."""
