"""The event bus: CloudEvents envelopes, a transactional outbox, a relay to Redis Streams, consumers."""

from shared.events.envelope import CloudEvent, EventType, event_catalog, register_event_type
from shared.events.outbox import publish

__all__ = ["CloudEvent", "EventType", "event_catalog", "publish", "register_event_type"]
