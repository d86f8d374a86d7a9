"""Fixtures of the webhook tests: a real local HTTP receiver (tests/helpers/receiver.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.helpers.receiver import Receiver, serve_receiver


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with serve_receiver() as r:
        yield r
