"""Fixtures for the reliability tests: real processes, each test its own."""

from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
