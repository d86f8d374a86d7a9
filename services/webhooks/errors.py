"""Domain errors of the webhooks service."""
