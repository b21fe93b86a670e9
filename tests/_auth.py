"""Logged-in test clients: make a user of a role, log in as they would, and call the API.

    sec = make_security()                      # accounts and audit in memory, generous rate limits
    client = await client_as(app, "engineer")  # a TestClient logged in as user "engineer"
    r = await client.post("/api/write", json={...})

The client sends the server's own ``Origin`` with every request, as a browser does; pass
``origin=None`` to see what a script without one gets.
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from axline.app.security import SECURITY_KEY, Security, SecuritySettings

PASSWORD = "quiet-lathe-harbour-42"


def make_security(**settings) -> Security:
    """Security in memory for a loopback test server, with rate limits no test reaches by accident."""
    base = {"rate_per_s": 10_000.0, "rate_burst": 100_000.0, "write_rate_per_s": 10_000.0,
            "write_burst": 100_000.0}
    base.update(settings)
    return Security.in_memory(SecuritySettings(**base))


def add_user(sec: Security, name: str, role: str | None = None, password: str = PASSWORD) -> str:
    """Add a person named ``name`` with ``role`` (default: the name is the role)."""
    sec.accounts.add(name, role or name, password)
    return name


async def start_client(app: web.Application, origin: bool | None = True) -> TestClient:
    client = TestClient(TestServer(app))
    await client.start_server()
    if origin:
        client.session.headers["Origin"] = str(client.make_url("")).rstrip("/")
    return client


async def login(client: TestClient, name: str, password: str = PASSWORD) -> None:
    r = await client.post("/login", json={"username": name, "password": password})
    assert r.status == 200, await r.text()


async def client_as(app: web.Application, role: str | None, name: str | None = None) -> TestClient:
    """A started client for ``app``, logged in as a new user with ``role`` (None: anonymous)."""
    client = await start_client(app)
    if role is not None:
        sec: Security = app[SECURITY_KEY]
        name = name or role
        if sec.accounts.get(name) is None:
            add_user(sec, name, role)
        await login(client, name)
    return client


def token_headers(sec: Security, name: str, role: str) -> dict[str, str]:
    """``Authorization`` for a caller ``name`` with ``role``: an API token of a service account named
    ``name`` (made on first use; one name may hold tokens of several roles, as in review tests)."""
    key = (name, role)
    cache = sec.__dict__.setdefault("_test_tokens", {})
    if key not in cache:
        if sec.accounts.get(name) is None:
            sec.accounts.add(name, "admin", kind="service")
        cache[key] = sec.accounts.token_add(name, role)[0]
    return {"Authorization": f"Bearer {cache[key]}"}
