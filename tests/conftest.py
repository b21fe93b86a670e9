"""Shared fixtures: free ports, headless Chromium for the browser tests."""

from __future__ import annotations

import socket

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium, launched once per test module (see _browser.py)."""
    from _browser import chromium

    yield from chromium()


# Password hashing at full strength (argon2id, 64 MiB) costs ~0.1 s a login; tests log in often, so
# in this process they hash with the smallest argon2id parameters. `axline serve` started by a test
# as a subprocess still uses the real ones.
def _fast_password_hashing() -> None:
    from argon2 import PasswordHasher

    from axline.app import accounts

    accounts.HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


_fast_password_hashing()
