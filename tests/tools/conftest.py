"""Fixtures for the tool tests: the stateless variant of the shared emulator, and the env that reaches it."""

from __future__ import annotations

import os
from collections.abc import Hashable

import pytest


@pytest.fixture
def emulator_options() -> dict[str, Hashable]:
    """The tools (doctor, request) are tried against a stateless server: no session, a GET answers 405."""
    return {"stateless": True}


def child_env(extra: dict[str, str]) -> dict[str, str]:
    """The (isolated) test environment plus `extra`, for a subprocess."""
    return {**os.environ, **extra}
