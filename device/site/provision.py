"""A site folder: every key, credential and config one site needs.

    SITE/site.json              site name, broker address, gates and their public keys,
                                the service's and the recovery public keys (nothing secret)
    SITE/service/service.key    the service's X25519 private key (0600)
    SITE/service/client.*       the service's broker identity (TLS client certificate, CN
                                ``service``) and ca.crt; admin.token for its web page
    SITE/recovery/recovery.key  the site recovery private key: move it OFF LINE after
                                provisioning (a USB stick in a safe); only ``recover`` needs it
    SITE/ca/ca.key, ca.crt      the site CA (:mod:`device.site.tls`); ca.key signs new gates
    SITE/gates/<G>/site.key     gate G's X25519 private key; client.key, client.crt (CN G),
                                ca.crt its broker identity
    SITE/broker/                mosquitto.conf, server.key/.crt, acl, data/

A gate's part (``gates/<G>``) is what goes onto that unit at provisioning; its ``[site]``
config section names it (:func:`gate_section`).
"""
from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

from device.site import tls
from device.site.messages import check_id
from device.site.sealing import new_private, public_of

SERVICE = "service"


class SiteError(RuntimeError):
    """The site folder is missing, incomplete or inconsistent."""


def _write_secret(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def _read_key(path: Path) -> bytes:
    try:
        k = Path(path).read_bytes()
    except FileNotFoundError:
        raise SiteError(f"key file {path} not found") from None
    if len(k) != 32:
        raise SiteError(f"key file {path} is not a 32-byte X25519 key")
    return k


def load_site(site_dir) -> dict:
    p = Path(site_dir) / "site.json"
    try:
        return json.loads(p.read_text())
    except FileNotFoundError:
        raise SiteError(f"no site folder at {site_dir} (site.json missing): run "
                        f"palmgate site init") from None


def save_site(site_dir, info: dict) -> None:
    p = Path(site_dir) / "site.json"
    tmp = p.with_suffix(".tmp")
    tmp.write_text(json.dumps(info, indent=2, sort_keys=True))
    os.replace(tmp, p)


def init_site(site_dir, site: str, gates, port: int = 1883, host: str = "127.0.0.1",
              admin_port: int = 8780) -> dict:
    """Make a new site folder with ``gates`` provisioned."""
    d = Path(site_dir)
    check_id(site, "site name")
    if (d / "site.json").exists():
        raise SiteError(f"{d} already holds a site (site.json)")
    d.mkdir(parents=True, exist_ok=True)
    svc, rec = new_private(), new_private()
    _write_secret(d / "service" / "service.key", svc)
    tls.make_ca(d, site)
    tls.issue_server(d, site, host)
    tls.issue_client(d, site, SERVICE, "service")
    _write_secret(d / "service" / "admin.token", secrets.token_urlsafe(18).encode())
    _write_secret(d / "recovery" / "recovery.key", rec)
    info = {"site": site, "broker": {"host": host, "port": int(port)},
            "admin_port": int(admin_port), "service_pub": public_of(svc).hex(),
            "recovery_pub": public_of(rec).hex(), "gates": {}}
    save_site(d, info)
    for g in gates:
        add_gate(d, g, info)
    return info


def add_gate(site_dir, gate: str, info: dict | None = None) -> dict:
    """Provision one more gate (its key pair and TLS client certificate); returns site.json's
    content. The broker reads the new credentials on ``Broker.reload()`` (SIGHUP) and the
    service learns the gate from site.json (``palmgate site add-gate``)."""
    d = Path(site_dir)
    info = info or load_site(d)
    check_id(gate, "gate id")
    if gate == SERVICE or gate in info["gates"]:
        raise SiteError(f"gate id {gate!r} is taken")
    k = new_private()
    _write_secret(d / "gates" / gate / "site.key", k)
    tls.issue_client(d, info["site"], gate, f"gates/{gate}")
    info["gates"][gate] = {"pub": public_of(k).hex()}
    save_site(d, info)
    return info


def service_key(site_dir) -> bytes:
    return _read_key(Path(site_dir) / "service" / "service.key")


def gate_key(site_dir, gate: str) -> bytes:
    return _read_key(Path(site_dir) / "gates" / gate / "site.key")


def recovery_key(path) -> bytes:
    return _read_key(Path(path))


def tls_files(site_dir, who: str) -> tuple[str, str, str]:
    """(ca.crt, client.crt, client.key) of the service or of gate ``who``."""
    return tls.client_files(Path(site_dir).resolve() / ("service" if who == SERVICE
                                                        else f"gates/{who}"))


def admin_token(site_dir) -> str:
    return (Path(site_dir) / "service" / "admin.token").read_text().strip()


def gate_section(site_dir, gate: str) -> dict:
    """The ``[site]`` config section of gate ``gate``."""
    d = Path(site_dir).resolve()
    info = load_site(d)
    if gate not in info["gates"]:
        raise SiteError(f"gate {gate!r} is not provisioned in {d}")
    return {"enabled": True, "site": info["site"], "gate_id": gate,
            "broker_host": info["broker"]["host"], "broker_port": info["broker"]["port"],
            "key_file": str(d / "gates" / gate / "site.key"),
            "ca_file": str(d / "gates" / gate / "ca.crt"),
            "cert_file": str(d / "gates" / gate / "client.crt"),
            "cert_key_file": str(d / "gates" / gate / "client.key"),
            "service_pub": info["service_pub"],
            "state": str(d / "gates" / gate / "sync.db")}
