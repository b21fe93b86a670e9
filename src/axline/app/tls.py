"""TLS for the dashboard: a local certificate authority and a server certificate (``axline certs web``),
and the server's SSL context (TLS 1.2 or newer).

Give the CA certificate (``ca.pem``) to the browsers that open the dashboard (import it as a trusted
authority once); the server certificate names the host names and addresses it is reached by.
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import os
import socket
import ssl
import sys
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from axline import i18n


def server_context(cert: str, key: str) -> ssl.SSLContext:
    """A TLS 1.2+ server context with the certificate ``cert`` and its key ``key``."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    return ctx


def _write_key(path: Path, key) -> None:
    data = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _permitted(hosts: list[str], ips: list[str]) -> list[x509.GeneralName]:
    out: list[x509.GeneralName] = [x509.DNSName(h) for h in dict.fromkeys(hosts)]
    out += [x509.IPAddress(ipaddress.ip_network(ipaddress.ip_address(i))) for i in dict.fromkeys(ips)]
    return out


def _covers(ca_cert: x509.Certificate, hosts: list[str], ips: list[str]) -> bool:
    """Whether the CA's name constraints permit exactly-listed ``hosts`` and ``ips``."""
    try:
        nc = ca_cert.extensions.get_extension_for_class(x509.NameConstraints).value
    except x509.ExtensionNotFound:
        return False
    have = set(nc.permitted_subtrees or [])
    return all(g in have for g in _permitted(hosts, ips))


def make_ca(folder: Path, name: str = "axline local CA", days: int = 3650, hosts: list[str] | None = None,
            ips: list[str] | None = None) -> tuple[Path, Path]:
    """A CA key and self-signed certificate in ``folder`` (ca.pem, ca.key); kept if they exist.

    The CA may only sign for ``hosts`` and ``ips`` (a critical NameConstraints extension): a browser that
    trusts it trusts nothing else it might sign, should its key ever leak."""
    folder.mkdir(parents=True, exist_ok=True)
    cert_p, key_p = folder / "ca.pem", folder / "ca.key"
    hosts, ips = list(hosts or []), list(ips or [])
    if cert_p.exists() and key_p.exists():
        if not _covers(x509.load_pem_x509_certificate(cert_p.read_bytes()), hosts, ips):
            raise ValueError(i18n.pair("certs.ca_limited", ca=cert_p, names=", ".join(hosts + ips)))
        return cert_p, key_p
    if cert_p.exists():
        raise ValueError(i18n.pair("certs.ca_key_missing", key=key_p, ca=cert_p))
    if not hosts and not ips:
        raise ValueError(i18n.pair("certs.ca_names"))
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False),
                           critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.NameConstraints(permitted_subtrees=_permitted(hosts, ips), excluded_subtrees=None),
                           critical=True)
            .sign(key, hashes.SHA256()))
    _write_key(key_p, key)
    cert_p.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_p, key_p


def make_server_cert(folder: Path, hosts: list[str], ips: list[str], days: int = 397) -> tuple[Path, Path]:
    """server.pem / server.key signed by the CA in ``folder`` (made first if missing)."""
    ca_cert_p, ca_key_p = make_ca(folder, hosts=hosts, ips=ips)
    ca_cert = x509.load_pem_x509_certificate(ca_cert_p.read_bytes())
    ca_key = serialization.load_pem_private_key(ca_key_p.read_bytes(), None)
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.DNSName(h) for h in dict.fromkeys(hosts)]
    names += [x509.IPAddress(ipaddress.ip_address(i)) for i in dict.fromkeys(ips)]
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0] if hosts else ips[0])]))
            .issuer_name(ca_cert.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    cert_p, key_p = folder / "server.pem", folder / "server.key"
    _write_key(key_p, key)
    cert_p.write_bytes(cert.public_bytes(serialization.Encoding.PEM) + ca_cert_p.read_bytes())
    return cert_p, key_p


def main(argv: list[str]) -> int:
    """``axline certs web FOLDER``: make (or renew) the local CA and the dashboard's certificate."""
    ap = argparse.ArgumentParser(prog="axline certs web",
                                 description="a local CA and a dashboard certificate signed by it")
    ap.add_argument("folder", help="where to write ca.pem/ca.key and server.pem/server.key (e.g. data/tls)")
    ap.add_argument("--host", action="append", default=None, help="host name (repeatable; default this computer's)")
    ap.add_argument("--ip", action="append", default=None, help="IP address (repeatable; default 127.0.0.1)")
    ap.add_argument("--days", type=int, default=397, help="days the server certificate is valid (default 397)")
    a = ap.parse_args(argv)
    hosts = a.host or [socket.gethostname(), "localhost"]
    ips = a.ip or ["127.0.0.1"]
    folder = Path(a.folder)
    try:
        cert, key = make_server_cert(folder, hosts, ips, a.days)
    except ValueError as e:
        print(f"axline certs web: {e}", file=sys.stderr)
        return 2
    print(i18n.pair("certs.wrote", cert=cert, key=key, ca=folder / "ca.pem", names=", ".join(hosts + ips),
                    ca_key=folder / "ca.key"))
    return 0
