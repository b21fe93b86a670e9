"""OPC UA security end to end: a real asyncua server that offers only Basic256Sha256 SignAndEncrypt
and accepts one user, and the axline connector with its own self-signed certificate."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest
import pytest_asyncio
from asyncua import Server, ua
from asyncua.common.utils import ServiceError
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256
from asyncua.server.user_managers import UserManager
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from _wait import wait_for
from axline.batch import Batch
from axline.connect import certs
from axline.connect.base import CONNECTED
from axline.connect.opcua import OpcUaConnector
from axline.plant import PlantConfigError, parse_plant
from conftest import free_port

USER, PASSWORD = "operator", "s3cret-Pw"
SERVER_URI = "urn:axline:test:secure-server"


class _OneUser(UserManager):
    """Accepts exactly one user name and password."""

    def get_user(self, iserver, username=None, password=None, certificate=None):
        if username == USER and password == PASSWORD:
            return User(role=UserRole.User, name=username)
        return None


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> dict[str, Path]:
    """Server and client certificates, made once for the module (RSA key generation is the slow part)."""
    d = tmp_path_factory.mktemp("pki")
    certs.create_self_signed_certificate(d / "server_cert.pem", d / "server_key.pem", application_uri=SERVER_URI,
                                         host_names=["localhost", socket.gethostname()], ip_addresses=["127.0.0.1"], server=True)
    certs.create_self_signed_certificate(d / "other_server.der", d / "other_server_key.der",
                                         application_uri=SERVER_URI, server=True)
    info = certs.create_self_signed_certificate(d / "axline_cert.der", d / "axline_key.pem")
    assert info.application_uri == certs.DEFAULT_APPLICATION_URI
    stranger = certs.create_self_signed_certificate(d / "stranger.pem", d / "stranger_key.pem")
    return {"server_cert": d / "server_cert.pem", "server_key": d / "server_key.pem",
            "other_server_cert": d / "other_server.der",
            "cert": info.certificate, "key": info.private_key,
            "stranger_cert": stranger.certificate, "stranger_key": stranger.private_key}


# one server for the module (starting an asyncua server takes seconds); each test resets its values
on_server = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def module_server(pki):
    server = Server(user_manager=_OneUser())
    await server.init()
    endpoint = f"opc.tcp://127.0.0.1:{free_port()}/axline/secure"
    server.set_endpoint(endpoint)
    await server.set_application_uri(SERVER_URI)
    server.set_security_policy([ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt])
    server.set_identity_tokens([ua.UserNameIdentityToken])
    await server.load_certificate(str(pki["server_cert"]))
    trusted = {certs.load_certificate(pki["cert"])[1]}  # the server trusts axline's certificate only

    async def trust_list(cert: x509.Certificate, app: ua.ApplicationDescription) -> None:
        if cert.public_bytes(serialization.Encoding.DER) not in trusted:
            raise ServiceError(ua.StatusCodes.BadCertificateUntrusted)

    server.set_certificate_validator(trust_list)
    await server.load_private_key(str(pki["server_key"]))
    idx = await server.register_namespace("urn:axline:sim")
    press = await server.nodes.objects.add_object(idx, "Press")
    temp = await press.add_variable(ua.NodeId("press.temp", idx), "temp", 21.5)
    setpoint = await press.add_variable(ua.NodeId("press.setpoint", idx), "setpoint", 1.0)
    await setpoint.set_writable()
    await server.start()
    try:
        yield {"endpoint": endpoint, "temp": temp, "setpoint": setpoint}
    finally:
        await server.stop()


@pytest_asyncio.fixture(loop_scope="module")
async def secure_server(module_server):
    await module_server["temp"].write_value(21.5)
    await module_server["setpoint"].write_value(1.0)
    return module_server


def make_connector(endpoint: str, **opts) -> OpcUaConnector:
    conn_opts = {"publishing_interval_ms": 50, "timeout_s": 15, **opts}
    lines = [
        "plant: {site: s, area: a}",
        "connectors:",
        f"  - {{name: press_plc, type: opcua, endpoint: '{endpoint}', "
        + ", ".join(f"{k}: '{v}'" if isinstance(v, str) else f"{k}: {v}" for k, v in conn_opts.items()) + "}",
        "lines:",
        "  - id: l1",
        "    assets:",
        "      - id: press1",
        "        connector: press_plc",
        "        tags:",
        '          - {signal: temp, source: {address: "press.temp"}}',
        '          - {signal: setpoint, writable: true, source: {address: "press.setpoint"}}',
    ]
    plant = parse_plant("\n".join(lines) + "\n")
    cfg = plant.connectors[0]
    return OpcUaConnector(cfg.name, cfg.options, plant.connector_tags("press_plc"))


def secure_opts(pki, **more) -> dict:
    return {"security_policy": "Basic256Sha256", "certificate": str(pki["cert"]), "private_key": str(pki["key"]),
            "username": USER, "password": PASSWORD, **more}


def values_of(batches: list[Batch], path: str) -> list[float]:
    return [r.value for b in batches for r in b if r.path == path]


# -- certificates --------------------------------------------------------------------------------
def test_certificate_files_read_back_in_pem_and_der(tmp_path):
    pem = certs.create_self_signed_certificate(tmp_path / "c.pem", tmp_path / "k.pem",
                                               application_uri="urn:plant1:axline", host_names=["edge-pc"],
                                               ip_addresses=["10.0.0.5"], days=30)
    der = certs.create_self_signed_certificate(tmp_path / "c.der", tmp_path / "k.der")
    assert (tmp_path / "c.pem").read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")
    assert not certs.is_pem((tmp_path / "c.der").read_bytes())
    assert (tmp_path / "k.pem").stat().st_mode & 0o077 == 0  # the key is for its owner only
    cert, cert_der = certs.load_certificate(pem.certificate)
    key, _ = certs.load_private_key(pem.private_key)
    assert certs.application_uri_of(cert) == "urn:plant1:axline"
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["edge-pc"]
    assert [str(a) for a in san.get_values_for_type(x509.IPAddress)] == ["10.0.0.5"]
    assert 29 <= (cert.not_valid_after_utc - cert.not_valid_before_utc).days <= 30
    assert certs.key_matches_certificate(key, cert)
    der_cert, _ = certs.load_certificate(der.certificate)
    der_key, _ = certs.load_private_key(der.private_key)
    assert certs.key_matches_certificate(der_key, der_cert)
    assert not certs.key_matches_certificate(der_key, cert)  # a different pair
    assert certs.application_uri_of(der_cert) == certs.DEFAULT_APPLICATION_URI
    assert cert_der != certs.load_certificate(der.certificate)[1]


def test_certificate_helper_refuses_bad_input(tmp_path):
    certs.create_self_signed_certificate(tmp_path / "c.pem", tmp_path / "k.pem")
    with pytest.raises(FileExistsError, match="overwrite"):
        certs.create_self_signed_certificate(tmp_path / "c.pem", tmp_path / "k.pem")
    with pytest.raises(ValueError, match="days must be a whole number from 1 to 36500"):
        certs.create_self_signed_certificate(tmp_path / "x.pem", tmp_path / "y.pem", days=0)
    with pytest.raises(ValueError, match="key_size must be 2048, 3072 or 4096"):
        certs.create_self_signed_certificate(tmp_path / "x.pem", tmp_path / "y.pem", key_size=1024)
    with pytest.raises(ValueError, match="application_uri"):
        certs.create_self_signed_certificate(tmp_path / "x.pem", tmp_path / "y.pem", application_uri="axline")
    with pytest.raises(ValueError, match="is not an IP address"):
        certs.create_self_signed_certificate(tmp_path / "x.pem", tmp_path / "y.pem", ip_addresses=["plc1"])
    (tmp_path / "junk.pem").write_text("not a certificate")
    with pytest.raises(ValueError, match="not an X.509 certificate"):
        certs.load_certificate(tmp_path / "junk.pem")
    with pytest.raises(ValueError, match="does not exist; make one with"):
        certs.load_private_key(tmp_path / "missing.pem")


def test_certificate_command_line(tmp_path, capsys):
    assert certs.main([str(tmp_path / "pki"), "--uri", "urn:site:axline", "--host", "edge1"]) == 0
    out = capsys.readouterr().out
    assert "security_policy: Basic256Sha256" in out
    cert, _ = certs.load_certificate(tmp_path / "pki" / certs.CERT_FILE)
    assert certs.application_uri_of(cert) == "urn:site:axline"
    assert certs.main([str(tmp_path / "pki")]) == 2  # files exist: refused, not replaced
    assert "already exists" in capsys.readouterr().err
    assert certs.load_certificate(tmp_path / "pki" / certs.CERT_FILE)[0] == cert


# -- options checked when the connector is built -------------------------------------------------
def test_security_without_certificate_says_how_to_make_one(pki):
    with pytest.raises(ValueError, match=r"needs 'certificate' and 'private_key'.*python -m axline.connect.certs"):
        make_connector("opc.tcp://127.0.0.1:1", security_policy="Basic256Sha256")
    with pytest.raises(ValueError, match=r"needs 'private_key'"):
        make_connector("opc.tcp://127.0.0.1:1", security_policy="Basic256Sha256", certificate=str(pki["cert"]))


def test_bad_security_options_are_refused_at_start(pki, tmp_path):
    with pytest.raises(PlantConfigError, match=r"connectors\[0\]\.security_policy: 'Basic128Rsa15' is not allowed"):
        make_connector("opc.tcp://127.0.0.1:1", security_policy="Basic128Rsa15")
    with pytest.raises(PlantConfigError, match="security_mode: 'Encrypt' is not allowed"):
        make_connector("opc.tcp://127.0.0.1:1", security_mode="Encrypt")
    with pytest.raises(ValueError, match=r"certificate file .*nope\.pem' does not exist"):
        make_connector("opc.tcp://127.0.0.1:1", **secure_opts(pki, certificate=str(tmp_path / "nope.pem")))
    with pytest.raises(ValueError, match="does not belong to certificate"):
        make_connector("opc.tcp://127.0.0.1:1", **secure_opts(pki, private_key=str(pki["server_key"])))
    with pytest.raises(ValueError, match="differs from the URI in certificate"):
        make_connector("opc.tcp://127.0.0.1:1", **secure_opts(pki, application_uri="urn:other"))
    with pytest.raises(ValueError, match=r"certificate file .*axline_key\.pem' is not an X\.509 certificate"):
        make_connector("opc.tcp://127.0.0.1:1", **secure_opts(pki, certificate=str(pki["key"])))
    with pytest.raises(ValueError, match="server_certificate file"):
        make_connector("opc.tcp://127.0.0.1:1", **secure_opts(pki, server_certificate=str(tmp_path / "x.der")))


# -- against a secure server ---------------------------------------------------------------------
@on_server
async def test_secure_connector_receives_values_and_writes(secure_server, pki):
    conn = make_connector(secure_server["endpoint"],
                          **secure_opts(pki, server_certificate=str(pki["server_cert"])))
    batches: list[Batch] = []
    task = asyncio.create_task(conn.run(batches.append))
    try:
        await wait_for(lambda: conn.state == CONNECTED, 120, "the secure connection")
        policy = conn._client.security_policy
        assert policy.URI == SecurityPolicyBasic256Sha256.URI
        assert policy.Mode == ua.MessageSecurityMode.SignAndEncrypt
        temp = next(t for t in conn.tags if t.path.endswith("/temp"))
        setpoint = next(t for t in conn.tags if t.path.endswith("/setpoint"))
        await wait_for(lambda: 21.5 in values_of(batches, temp.path), 120, "the first value")
        await secure_server["temp"].write_value(88.25)
        await wait_for(lambda: 88.25 in values_of(batches, temp.path), 120, "a changed value")
        await conn.write(setpoint, 42.0)
        assert await secure_server["setpoint"].read_value() == 42.0
        await wait_for(lambda: 42.0 in values_of(batches, setpoint.path), 120, "the written value back")
        with pytest.raises(PermissionError, match="not writable"):
            await conn.write(temp, 1.0)
    finally:
        conn.stop()
        await task
    assert conn.last_error is None


@on_server
async def test_secure_poll_mode_trusting_the_announced_server_certificate(secure_server, pki):
    conn = make_connector(secure_server["endpoint"], **secure_opts(pki, mode="poll", poll_interval_ms=50))
    batches: list[Batch] = []
    task = asyncio.create_task(conn.run(batches.append))
    try:
        await wait_for(lambda: len(batches) >= 2, 120, "two polls over the secure channel")
    finally:
        conn.stop()
        await task
    assert {r.value for r in batches[-1]} == {21.5, 1.0}


async def _refused(conn: OpcUaConnector, what: str) -> tuple[list[Batch], str]:
    """Run until the connector reports an error; return what it delivered and the error it showed."""
    batches: list[Batch] = []
    task = asyncio.create_task(conn.run(batches.append))
    try:
        await wait_for(lambda: conn.last_error is not None, 120, what)
        error = conn.last_error
        assert conn.state != CONNECTED
        assert conn.connects == 0
    finally:
        conn.stop()
        await task
    return batches, error


@on_server
async def test_wrong_password_is_refused_with_a_clear_error(secure_server, pki):
    conn = make_connector(secure_server["endpoint"], **secure_opts(pki, password="wrong"))
    batches, error = await _refused(conn, "the login to be refused")
    assert batches == []
    assert "PermissionError" in error
    assert "refused the login of user 'operator'" in error
    assert "wrong user name or password" in error


@on_server
async def test_client_without_security_is_refused(secure_server, pki):
    conn = make_connector(secure_server["endpoint"], username=USER, password=PASSWORD)
    batches, error = await _refused(conn, "the unsecured client to be refused")
    assert batches == []
    assert conn._client.security_policy.Mode == ua.MessageSecurityMode.None_
    assert "offers no endpoint with security None; it offers: Basic256Sha256/SignAndEncrypt" in error


@on_server
async def test_mode_the_server_does_not_offer_names_what_it_offers(secure_server, pki):
    conn = make_connector(secure_server["endpoint"], **secure_opts(pki, security_mode="Sign"))
    batches, error = await _refused(conn, "the Sign-only client to be refused")
    assert batches == []
    assert "offers no endpoint with security Basic256Sha256/Sign;" in error
    assert "it offers: Basic256Sha256/SignAndEncrypt" in error


@on_server
async def test_pinned_server_certificate_that_does_not_match_is_refused(secure_server, pki):
    conn = make_connector(secure_server["endpoint"],
                          **secure_opts(pki, server_certificate=str(pki["other_server_cert"]), timeout_s=1))
    batches, error = await _refused(conn, "a server with another certificate to be refused")
    assert batches == []
    pinned, _ = certs.load_certificate(pki["other_server_cert"])
    actual, _ = certs.load_certificate(pki["server_cert"])
    sha1 = hashes.SHA1()
    assert "other than the pinned server_certificate" in error
    assert f"SHA-1 thumbprint {actual.fingerprint(sha1).hex().upper()}" in error
    assert f"({pinned.fingerprint(sha1).hex().upper()})" in error


@on_server
async def test_certificate_the_server_does_not_trust_is_refused(secure_server, pki):
    conn = make_connector(secure_server["endpoint"], **secure_opts(pki, certificate=str(pki["stranger_cert"]),
                                                                   private_key=str(pki["stranger_key"])))
    batches, error = await _refused(conn, "an untrusted client certificate to be refused")
    assert batches == []
    assert "refused the secure channel (BadCertificateUntrusted)" in error
    assert f"trusts axline's certificate ({pki['stranger_cert']})" in error


def test_private_key_with_a_password(pki, tmp_path):
    key, _ = certs.load_private_key(pki["key"])
    locked = tmp_path / "locked_key.pem"
    locked.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                         serialization.BestAvailableEncryption(b"key-pw")))
    ok = make_connector("opc.tcp://127.0.0.1:1", **secure_opts(pki, private_key=str(locked),
                                                                private_key_password="key-pw"))
    assert ok._security is not None and ok._security.application_uri == certs.DEFAULT_APPLICATION_URI
    with pytest.raises(ValueError, match="password is wrong"):
        make_connector("opc.tcp://127.0.0.1:1", **secure_opts(pki, private_key=str(locked),
                                                               private_key_password="nope"))
    with pytest.raises(ValueError, match="set or remove private_key_password"):
        make_connector("opc.tcp://127.0.0.1:1", **secure_opts(pki, private_key=str(locked)))
