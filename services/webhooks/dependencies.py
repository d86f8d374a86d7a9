"""Dependencies of the webhooks service."""
