"""HTTPS for the dashboard: `axline certs web` makes a local CA and a server certificate; the app
serves TLS 1.2+ with HSTS and __Host- cookies; plain HTTP beyond loopback is refused unless forced."""

from __future__ import annotations

import ssl

import aiohttp
import pytest

from _auth import PASSWORD, add_user, make_security
from _fake_service import FakeService, open_test_historian
from axline.app.server import create_app, start_site
from axline.app.tls import server_context


def test_certs_web_cli(tmp_path, capsys):
    from axline.cli import main

    assert main(["certs", "web", str(tmp_path / "tls"), "--host", "line1-pc.plant.local", "--ip", "10.0.0.7"]) == 0
    out = capsys.readouterr().out
    assert "ca.pem" in out and "--tls" in out
    from cryptography import x509

    cert = x509.load_pem_x509_certificate((tmp_path / "tls" / "server.pem").read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "line1-pc.plant.local" in san.get_values_for_type(x509.DNSName)
    assert (tmp_path / "tls" / "server.key").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "tls" / "ca.key").stat().st_mode & 0o777 == 0o600


def test_the_local_ca_may_sign_only_for_the_given_names(tmp_path):
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    from axline.app.tls import make_server_cert

    folder = tmp_path / "tls"
    make_server_cert(folder, ["line1-pc.plant.local"], ["10.0.0.7"])
    ca = x509.load_pem_x509_certificate((folder / "ca.pem").read_bytes())
    ext = ca.extensions.get_extension_for_class(x509.NameConstraints)
    assert ext.critical
    assert ext.value.permitted_subtrees == [x509.DNSName("line1-pc.plant.local"),
                                            x509.IPAddress(ipaddress.ip_network("10.0.0.7/32"))]
    # a leaf the CA's key signs for another name does not validate
    ca_key = serialization.load_pem_private_key((folder / "ca.key").read_bytes(), None)

    def leaf(host: str) -> x509.Certificate:
        k = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        return (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
                .issuer_name(ca.subject).public_key(k.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=30))
                .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                               critical=False)
                .sign(ca_key, hashes.SHA256()))

    from cryptography.x509 import verification

    store = verification.Store([ca])

    def verify(host: str) -> None:
        verification.PolicyBuilder().store(store).build_server_verifier(x509.DNSName(host)).verify(leaf(host), [])

    verify("line1-pc.plant.local")
    with pytest.raises(verification.VerificationError):
        verify("bank.example.com")
    # asking the same CA for a name outside its limits says what to do instead of signing
    with pytest.raises(ValueError, match="move ca.pem and ca.key away"):
        make_server_cert(folder, ["other-pc.plant.local"], ["10.0.0.7"])


async def test_https_with_a_local_ca(tmp_path):
    from axline.app.tls import make_server_cert

    cert, key = make_server_cert(tmp_path / "tls", ["localhost"], ["127.0.0.1"])
    historian = open_test_historian(tmp_path)
    svc = FakeService(historian, tick_s=10, history_s=10)
    sec = make_security(tls=True)
    add_user(sec, "kim", "viewer")
    runner, port = await start_site(create_app(svc, security=sec), "127.0.0.1", 0, ssl_context=server_context(
        str(cert), str(key)))
    trust = ssl.create_default_context(cafile=str(tmp_path / "tls" / "ca.pem"))
    try:
        url = f"https://127.0.0.1:{port}"
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            async with http.post(url + "/login", json={"username": "kim", "password": PASSWORD},
                                 headers={"Origin": url}, ssl=trust) as r:
                assert r.status == 200
                assert r.headers["Strict-Transport-Security"].startswith("max-age=")
                assert r.headers["Set-Cookie"].startswith("__Host-axline_session=") and "Secure" in r.headers[
                    "Set-Cookie"]
            async with http.get(url + "/api/me", ssl=trust) as r:
                assert r.status == 200 and (await r.json())["name"] == "kim"
            # an old protocol is not spoken
            old = ssl.create_default_context(cafile=str(tmp_path / "tls" / "ca.pem"))
            old.maximum_version = ssl.TLSVersion.TLSv1_1
            old.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
            with pytest.raises(aiohttp.ClientError):
                async with http.get(url + "/login", ssl=old):
                    pass
            # plain HTTP to the TLS port gets no page
            with pytest.raises(aiohttp.ClientError):
                async with http.get(f"http://127.0.0.1:{port}/login") as r:
                    assert r.status != 200
    finally:
        await runner.cleanup()
        historian.close()


def test_plain_http_beyond_loopback_needs_force():
    from axline.app.security import Security, SecuritySettings

    sec = Security.in_memory(SecuritySettings(bind_host="0.0.0.0"))
    with pytest.raises(ValueError, match="refusing plain HTTP"):
        sec.check_bind()
    sec.accounts.add("root", "admin", PASSWORD)
    sec.settings.insecure_http = True
    sec.check_bind()  # forced
    sec.settings.insecure_http, sec.settings.tls = False, True
    sec.check_bind()
