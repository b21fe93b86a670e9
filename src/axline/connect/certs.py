"""Application certificates for OPC UA security: make axline's self-signed certificate and key,
and read certificate/key files (PEM or DER) with errors that say what is wrong.

An OPC UA application instance certificate names the application by a URI (``urn:...``) in its
subjectAltName; the client must present the same URI when it opens a session, so the OPC UA
connector reads it back from the certificate (:func:`application_uri_of`).

Make a pair from the command line::

    python -m axline.connect.certs pki/            # writes pki/axline_cert.pem, pki/axline_key.pem
    python -m axline.connect.certs pki/ --uri urn:plant1:axline --host edge-pc --days 730

then copy ``axline_cert.pem`` (or its DER twin, ``--der``) into the server's trusted-client list.
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import os
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from axline import i18n

DEFAULT_APPLICATION_URI = "urn:axline:client"
"""The application URI of axline's client certificate unless another is asked for."""

CERT_FILE, KEY_FILE = "axline_cert.pem", "axline_key.pem"
"""File names that :func:`main` writes into its folder."""

MAKE_HINT = ("make one with `python -m axline.connect.certs <folder>` (or "
             "axline.connect.certs.create_self_signed_certificate) and trust the certificate on the server")


@dataclass(frozen=True)
class CertificateInfo:
    """What :func:`create_self_signed_certificate` wrote."""

    certificate: Path
    private_key: Path
    application_uri: str
    not_valid_after: dt.datetime


def _is_der_path(path: Path) -> bool:
    return path.suffix.lower() in (".der", ".cer")


def create_self_signed_certificate(
    certificate: str | os.PathLike,
    private_key: str | os.PathLike,
    *,
    application_uri: str = DEFAULT_APPLICATION_URI,
    common_name: str = "axline",
    organization: str | None = None,
    host_names: list[str] | None = None,
    ip_addresses: list[str] | None = None,
    days: int = 730,
    key_size: int = 2048,
    server: bool = False,
    overwrite: bool = False,
) -> CertificateInfo:
    """Write a self-signed OPC UA application certificate and its RSA private key.

    The format follows the file name: ``.der``/``.cer`` is DER, anything else PEM. The key is PKCS#8
    without a password, readable only by its owner. ``host_names`` defaults to this computer's name
    (``socket.gethostname()``); ``server=True`` makes a server certificate (tests, the simulator).
    Existing files are kept unless ``overwrite`` (a FileExistsError says so).
    """
    cert_path, key_path = Path(certificate), Path(private_key)
    if not isinstance(application_uri, str) or ":" not in application_uri or any(c.isspace() for c in application_uri):
        raise ValueError(f"application_uri must be a URI without spaces such as 'urn:axline:client', "
                         f"got {application_uri!r}")
    if not common_name or not isinstance(common_name, str):
        raise ValueError(f"common_name must be a non-empty string, got {common_name!r}")
    if not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= 36500:
        raise ValueError(f"days must be a whole number from 1 to 36500, got {days!r}")
    if key_size not in (2048, 3072, 4096):
        raise ValueError(f"key_size must be 2048, 3072 or 4096 bits (Basic256Sha256 allows these), got {key_size!r}")
    if cert_path == key_path:
        raise ValueError(f"certificate and private_key must be different files, both are {cert_path}")
    if not overwrite:
        for p in (cert_path, key_path):
            if p.exists():
                raise FileExistsError(f"{p} already exists; pass overwrite=True (--overwrite) to replace it, "
                                      "then trust the new certificate on the server again")
    hosts = list(host_names) if host_names is not None else [socket.gethostname()]
    ips = []
    for a in ip_addresses or []:
        try:
            ips.append(ipaddress.ip_address(a))
        except ValueError:
            raise ValueError(f"ip_addresses: {a!r} is not an IP address such as 192.168.0.10") from None

    key = rsa.generate_private_key(public_exponent=65537, key_size=key_size)
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    name = x509.Name(attrs)
    now = dt.datetime.now(dt.UTC)
    alt: list[x509.GeneralName] = [x509.UniformResourceIdentifier(application_uri)]
    alt += [x509.DNSName(h) for h in hosts if h]
    alt += [x509.IPAddress(ip) for ip in ips]
    usage = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH] if server else [
        ExtendedKeyUsageOID.CLIENT_AUTH]
    # OPC 10000-6 6.2.2: a self-signed application instance certificate signs itself (keyCertSign)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))  # tolerate a little clock skew with the server
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=False)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=True, key_encipherment=True,
                                     data_encipherment=True, key_agreement=False, key_cert_sign=True,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=False)
        .add_extension(x509.ExtendedKeyUsage(usage), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    enc = serialization.Encoding.DER if _is_der_path(cert_path) else serialization.Encoding.PEM
    key_enc = serialization.Encoding.DER if _is_der_path(key_path) else serialization.Encoding.PEM
    for p in (cert_path, key_path):
        p.parent.mkdir(parents=True, exist_ok=True)
    key_bytes = key.private_bytes(key_enc, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key_bytes)
    os.chmod(key_path, 0o600)
    cert_path.write_bytes(cert.public_bytes(enc))
    return CertificateInfo(cert_path, key_path, application_uri, cert.not_valid_after_utc)


def _read(path: str | os.PathLike, what: str) -> bytes:
    p = Path(path)
    try:
        return p.read_bytes()
    except FileNotFoundError:
        raise ValueError(f"{what} file {str(p.resolve())!r} does not exist; {MAKE_HINT}") from None
    except IsADirectoryError:
        raise ValueError(f"{what} {str(p.resolve())!r} is a folder; give the path of the file") from None
    except PermissionError:
        raise ValueError(f"{what} file {str(p.resolve())!r} cannot be read by this user; check its permissions") \
            from None


def is_pem(data: bytes) -> bool:
    """True when ``data`` is PEM text (``-----BEGIN ...``), False for binary DER."""
    return data.lstrip()[:11] == b"-----BEGIN "


def load_certificate(path: str | os.PathLike, what: str = "certificate") -> tuple[x509.Certificate, bytes]:
    """Read a certificate file, PEM or DER whatever its name; return it and its DER bytes."""
    data = _read(path, what)
    try:
        cert = x509.load_pem_x509_certificate(data) if is_pem(data) else x509.load_der_x509_certificate(data)
    except ValueError as e:
        raise ValueError(f"{what} file {str(Path(path))!r} is not an X.509 certificate in PEM or DER ({e}); "
                         f"{MAKE_HINT}") from None
    return cert, cert.public_bytes(serialization.Encoding.DER)


def load_private_key(path: str | os.PathLike, password: str | None = None,
                     what: str = "private_key") -> tuple[rsa.RSAPrivateKey, bytes]:
    """Read an RSA private key file (PEM or DER, PKCS#1 or PKCS#8, optionally with a password);
    return it and its unencrypted PKCS#8 DER bytes."""
    data = _read(path, what)
    pw = password.encode("utf-8") if password else None
    load = serialization.load_pem_private_key if is_pem(data) else serialization.load_der_private_key
    try:
        key = load(data, password=pw)
    except TypeError as e:  # password given to an unencrypted key, or missing for an encrypted one
        raise ValueError(f"{what} file {str(Path(path))!r}: {e}; set or remove private_key_password") from None
    except ValueError as e:
        raise ValueError(f"{what} file {str(Path(path))!r} is not a private key in PEM or DER, or its password "
                         f"is wrong ({e}); {MAKE_HINT}") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError(f"{what} file {str(Path(path))!r} holds a {type(key).__name__}; OPC UA Basic256Sha256 "
                         "needs an RSA key")
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    return key, der


def application_uri_of(cert: x509.Certificate) -> str | None:
    """The application URI in a certificate's subjectAltName, or None when it has none."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    uris = san.get_values_for_type(x509.UniformResourceIdentifier)
    return uris[0] if uris else None


def key_matches_certificate(key: rsa.RSAPrivateKey, cert: x509.Certificate) -> bool:
    """True when ``key`` is the private half of ``cert``'s public key."""
    pub = cert.public_key()
    return isinstance(pub, rsa.RSAPublicKey) and pub.public_numbers() == key.public_key().public_numbers()


def main(argv: list[str] | None = None) -> int:
    """``python -m axline.connect.certs FOLDER``: write axline's client certificate and key there."""
    ap = argparse.ArgumentParser(prog="python -m axline.connect.certs",
                                 description="Make a self-signed OPC UA client certificate and key for axline.")
    ap.add_argument("folder", help="folder to write axline_cert.pem and axline_key.pem into")
    ap.add_argument("--uri", default=DEFAULT_APPLICATION_URI, help=f"application URI (default {DEFAULT_APPLICATION_URI})")
    ap.add_argument("--name", default="axline", help="certificate common name (default axline)")
    ap.add_argument("--org", default=None, help="organisation name in the certificate")
    ap.add_argument("--host", action="append", default=None, help="host name (repeatable; default this computer's)")
    ap.add_argument("--ip", action="append", default=None, help="IP address of this computer (repeatable)")
    ap.add_argument("--days", type=int, default=730, help="days the certificate is valid (default 730)")
    ap.add_argument("--der", action="store_true", help="write DER files (.der) instead of PEM")
    ap.add_argument("--overwrite", action="store_true", help="replace existing files")
    a = ap.parse_args(argv)
    folder = Path(a.folder)
    cert, key = (CERT_FILE, KEY_FILE) if not a.der else ("axline_cert.der", "axline_key.der")
    try:
        info = create_self_signed_certificate(folder / cert, folder / key, application_uri=a.uri,
                                              common_name=a.name, organization=a.org, host_names=a.host,
                                              ip_addresses=a.ip, days=a.days, overwrite=a.overwrite)
    except (ValueError, FileExistsError) as e:
        print(i18n.say("cli.error", error=e), file=sys.stderr)
        return 2
    print(i18n.say("cli.opcua_cert_made", cert=info.certificate.resolve(), key=info.private_key.resolve(),
                   uri=info.application_uri, until=f"{info.not_valid_after:%Y-%m-%d}"))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
