"""Domain errors of the webhooks service."""

from __future__ import annotations

from shared.errors import Forbidden, InvalidRequest, NotFound


class EndpointNotFound(NotFound):
    slug, title = "endpoint-not-found", "Webhook endpoint not found"


class DeliveryNotFound(NotFound):
    slug, title = "delivery-not-found", "Webhook delivery not found"


class NotYourEndpoint(Forbidden):
    slug, title = "not-your-endpoint", "This endpoint belongs to another organisation"


class RefusedUrl(InvalidRequest):
    slug, title = "refused-url", "Webhooks may not call this URL"


class ScopeNotAllowed(Forbidden):
    slug, title = "scope-not-allowed", "This organisation may not register an endpoint of this scope"
