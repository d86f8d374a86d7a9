"""Domain errors of the partners service."""

from __future__ import annotations

from shared.errors import Conflict, Forbidden, InvalidRequest, NotFound


class OrganizationNotFound(NotFound):
    slug, title = "organization-not-found", "Organisation not found"


class OrganizationExists(Conflict):
    slug, title = "organization-exists", "This organisation is already registered"


class NotYourOrganization(Forbidden):
    slug, title = "not-your-organization", "You may register and change your own organisation only"


class NotAHubCoordinator(Forbidden):
    slug, title = "not-a-hub-coordinator", "Only a coordinator of an approved hub decides on organisations"


class OutsideYourHub(Forbidden):
    slug, title = "outside-your-hub", "The organisation serves regions your hub does not cover"


class InvalidParent(InvalidRequest):
    slug, title = "invalid-parent", "The parent must be a registered hub, and not the organisation itself"


class AlreadyDecided(Conflict):
    slug, title = "already-decided", "The organisation already has this status"


class TaskNotFound(NotFound):
    slug, title = "task-not-found", "Task not found"


class NotYourGroup(Forbidden):
    slug, title = "not-your-group", "This task belongs to another working group"


class TaskTaken(Conflict):
    slug, title = "task-taken", "Someone else claimed this task"


class TaskClosed(Conflict):
    slug, title = "task-closed", "The task is done or cancelled"


class InvalidOutcome(InvalidRequest):
    slug, title = "invalid-outcome", "The outcome or its data does not fit this kind of task"


class SubjectRefused(Conflict):
    slug, title = "subject-refused", "The service that owns the task's subject refused the outcome"


class CapacityNotFound(NotFound):
    slug, title = "capacity-not-found", "Capacity not found"


class NotAService(InvalidRequest):
    slug, title = "not-a-service", "A capacity declares a `service.*` item of the catalog"


class BeyondYourArea(InvalidRequest):
    slug, title = "beyond-your-area", "The capacity covers regions the organisation does not serve"


class CapacityWithdrawn(Conflict):
    slug, title = "capacity-withdrawn", "The capacity was withdrawn"


class AssignmentNotFound(NotFound):
    slug, title = "assignment-not-found", "Assignment not found"


class AssignmentNotReady(Conflict):
    slug, title = "assignment-not-ready", "The assignment is not in a status that allows this"
