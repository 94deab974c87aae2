"""The site's TLS identities: a site CA, the broker's server certificate and one client
certificate per gate (and one for the service), made with ``cryptography`` (EC P-256).

    SITE/ca/ca.key, ca.crt          the site CA; ca.key signs new gates (``add-gate``): keep it
                                    on the provisioning machine, never on a gate or the broker
    SITE/broker/server.key, .crt    Mosquitto's certificate (SAN: the broker address,
                                    localhost, 127.0.0.1)
    SITE/<who>/ca.crt, client.crt, client.key
                                    a client's identity (<who>: ``service`` or ``gates/<G>``);
                                    its certificate's CN is its broker user name (the ACL's
                                    ``user`` lines: Mosquitto ``use_identity_as_username``)

Mosquitto requires a certificate from every client (``require_certificate true``, TLS 1.2 or
later), so a client without one, or with one from another CA, is refused at the handshake.
"""
from __future__ import annotations

import datetime as dt
import ipaddress
import os
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_DAYS, LEAF_DAYS = 3650, 1825


def _write(path: Path, data: bytes, secret: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if secret else 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _key_pem(k) -> bytes:
    return k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                           serialization.NoEncryption())


def _name(cn: str, site: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, f"PalmGate site {site}"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_ca(site_dir, site: str) -> None:
    d = Path(site_dir) / "ca"
    k = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc)
    name = _name(f"{site} site CA", site)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(k.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                         False), critical=True)
            .sign(k, hashes.SHA256()))
    _write(d / "ca.key", _key_pem(k), secret=True)
    _write(d / "ca.crt", cert.public_bytes(serialization.Encoding.PEM))


def _issue(site_dir, site: str, cn: str, server_names=()):
    d = Path(site_dir) / "ca"
    try:
        ca_key = serialization.load_pem_private_key((d / "ca.key").read_bytes(), None)
    except FileNotFoundError:
        raise FileNotFoundError(f"{d / 'ca.key'} not found: the site CA's key is needed to "
                                f"provision a gate (bring it back from where it is kept)"
                                ) from None
    ca = x509.load_pem_x509_certificate((d / "ca.crt").read_bytes())
    k = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc)
    b = (x509.CertificateBuilder().subject_name(_name(cn, site)).issuer_name(ca.subject)
         .public_key(k.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now - dt.timedelta(minutes=5))
         .not_valid_after(now + dt.timedelta(days=LEAF_DAYS))
         .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
         .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH if server_names
                                               else ExtendedKeyUsageOID.CLIENT_AUTH]),
                        critical=False))
    if server_names:
        alt = []
        for n in dict.fromkeys(server_names):
            try:
                alt.append(x509.IPAddress(ipaddress.ip_address(n)))
            except ValueError:
                alt.append(x509.DNSName(n))
        b = b.add_extension(x509.SubjectAlternativeName(alt), critical=False)
    return _key_pem(k), b.sign(ca_key, hashes.SHA256()).public_bytes(
        serialization.Encoding.PEM)


def issue_server(site_dir, site: str, host: str) -> None:
    key, crt = _issue(site_dir, site, host, (host, "localhost", "127.0.0.1"))
    b = Path(site_dir) / "broker"
    _write(b / "server.key", key, secret=True)
    _write(b / "server.crt", crt)


def issue_client(site_dir, site: str, cn: str, folder) -> None:
    """A client identity (CN ``cn``) into ``SITE/folder``: ca.crt, client.crt, client.key."""
    key, crt = _issue(site_dir, site, cn)
    f = Path(site_dir) / folder
    _write(f / "client.key", key, secret=True)
    _write(f / "client.crt", crt)
    _write(f / "ca.crt", (Path(site_dir) / "ca" / "ca.crt").read_bytes())


def client_files(folder) -> tuple[str, str, str]:
    """(ca.crt, client.crt, client.key) of a client folder."""
    f = Path(folder)
    return str(f / "ca.crt"), str(f / "client.crt"), str(f / "client.key")


def client_context(ca_file: str, cert_file: str, key_file: str) -> ssl.SSLContext:
    """TLS 1.2+ client context: the broker's certificate must come from the site CA and name
    the broker address; this client presents its own certificate."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca_file)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert_file, key_file)
    return ctx


def use_tls(client, files) -> None:
    """Configure a paho client with the identity ``files`` = (ca, cert, key)."""
    client.tls_set_context(client_context(*files))


def stop_link(worker) -> None:
    """Stop a site link worker (the gate's sync, the site service): signal its thread, end
    the MQTT session and paho's network loop, then wait up to 10 s for the thread."""
    worker._stop.set()
    if worker.client is not None:
        worker.client.disconnect()
        worker.client.loop_stop()
    if worker.thread is not None:
        worker.thread.join(10)
