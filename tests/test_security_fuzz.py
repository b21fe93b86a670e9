"""Schemathesis over every route of /api/openapi.json, as each role and as nobody, against the app on
a real HTTP server: no 5xx, answers that match the document (status codes, media types, JSON
schemas), and no route answering a role below its least role with anything but 401/403.

``AXLINE_FUZZ_EXAMPLES`` sets the examples per operation and role (default 4, which keeps CI quick)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import requests

from _app_thread import AppInThread
from _auth import make_security, token_headers
from _fake_service import FakeService, open_test_historian
from axline.app.roles import RANK, ROLES
from axline.app.routes import PUBLIC
from axline.app.server import create_app, start_site

EXAMPLES = int(os.environ.get("AXLINE_FUZZ_EXAMPLES", "4"))


class Server(AppInThread):
    """The app with every feature's routes on a FakeService, served on 127.0.0.1 from a thread."""

    cleanup_timeout_s = 30.0

    def __init__(self, tmp: Path) -> None:
        super().__init__()
        self.tmp = tmp

    def _close(self) -> None:
        self.service.knowhow.close()
        self.historian.close()

    async def _start(self) -> None:
        from axline.knowhow.base import KnowHow
        from axline.knowhow.live import KnowHowLive

        self.historian = open_test_historian(self.tmp / "h")
        self.service = FakeService(self.historian, tick_s=10, history_s=120)
        self.service.knowhow = KnowHowLive(lambda: KnowHow(str(self.tmp / "kh")),
                                           historian=lambda: self.service.historian)
        self.service.knowhow.open_now()
        self.security = make_security(anonymous_view=False)  # a plant with accounts: nobody is nobody
        self.service.security = self.security
        self.app = create_app(self.service, security=self.security)
        self.runner, self.port = await start_site(self.app, "127.0.0.1", 0)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with Server(tmp_path_factory.mktemp("fuzz")) as s:
        yield s


def test_schemathesis_every_route_every_role(server):
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from schemathesis.checks import (
        content_type_conformance,
        not_a_server_error,
        response_schema_conformance,
        status_code_conformance,
    )

    url = f"http://127.0.0.1:{server.port}"
    admin = token_headers(server.security, "fuzz-admin", "admin")
    doc = requests.get(url + "/api/openapi.json", headers=admin, timeout=30).json()
    schema = schemathesis.openapi.from_dict(doc)
    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
    headers_of = {None: {}} | {r: token_headers(server.security, f"fuzz-{r}", r) for r in ROLES}
    session = requests.Session()
    ran: dict[str, int] = {}
    failures: list[str] = []
    def runner(op, role, headers, allowed):
        @settings(max_examples=EXAMPLES if allowed else 2, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        @given(case=op.as_strategy())
        def run(case):
            resp = case.call(base_url=url, headers=headers, session=session, allow_redirects=False, timeout=30)
            ran[op.label] = ran.get(op.label, 0) + 1
            if not allowed:
                page = role is None and resp.status_code == 302 and "/login" in str({k.lower(): v for k, v in resp.headers.items()}.get("location"))
                assert resp.status_code in (401, 403) or page, (op.label, role, resp.status_code, resp.text[:200])
                return
            case.validate_response(resp, checks=checks)

        return run

    for result in schema.get_all_operations():
        op = result.ok()
        if op.definition.raw.get("x-axline-stream"):
            continue  # a never-ending stream: its roles are checked in test_security_app
        least = op.definition.raw["x-axline-role"]
        for role, headers in headers_of.items():
            allowed = least == PUBLIC or (role is not None and RANK[role] >= RANK[least])
            try:
                runner(op, role, headers, allowed)()
            except (Exception, BaseExceptionGroup) as e:  # collect them all, report them together
                failures.append(f"{op.label} as {role}: {str(e)[:600]}")
    print(f"schemathesis: {len(ran)} operations x {len(headers_of)} callers, {sum(ran.values())} requests, "
          f"{len(failures)} failing")
    assert failures == [], "\n\n".join(failures)
    documented = {f"{m.upper()} {p}" for p, ops in doc["paths"].items() for m in ops}
    assert len(ran) == len(documented) - 1  # every operation but the stream
