"""Domain errors of the needs service."""

from __future__ import annotations

from shared.errors import Conflict, Forbidden, NotFound


class SiteNotFound(NotFound):
    slug, title = "site-not-found", "Site not found"


class NeedNotFound(NotFound):
    slug, title = "need-not-found", "Need not found"


class NotYourSite(Forbidden):
    slug, title = "not-your-site", "This site belongs to another organisation"


class NeedNotOpen(Conflict):
    slug, title = "need-not-open", "The need is not in a state that allows this"


class NeedAlreadyMatched(Conflict):
    slug, title = "need-already-matched", "Lines cannot be replaced once supply is matched to them"


class ItemExists(Conflict):
    slug, title = "item-exists", "The catalog already holds an item of this code"


class ItemNotFound(NotFound):
    slug, title = "item-not-found", "No item of this code in the catalog"


class ItemRequestNotFound(NotFound):
    slug, title = "item-request-not-found", "No item request of this id"


class ItemRequestNotPending(Conflict):
    slug, title = "item-request-decided", "The item request was already decided"


class NeedLineNotFound(NotFound):
    slug, title = "need-line-not-found", "The need has no line of this id"
