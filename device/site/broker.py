"""Eclipse Mosquitto (Debian's ``mosquitto``) as a child process, configured from a site folder.

- one TLS listener (TLS 1.2 or later, the site CA's server certificate); every client must
  present a certificate from the site CA (``require_certificate true``) and its CN is its
  user name (``use_identity_as_username true``): no passwords, no anonymous clients
  (:mod:`device.site.tls`); an ACL: gate G reads ``site/S/gate/G/#`` and writes
  ``site/S/up/G/#``, nothing else; the service reads and writes ``site/S/#``; a user the ACL
  does not name (a gate removed from site.json) can read and write nothing;
- persistence on (``broker/data/mosquitto.db``): persistent sessions (clean session off) and
  their queued QoS 1 messages survive a restart. Mosquitto writes its database at a clean
  shutdown (SIGTERM) and every ``autosave_interval`` seconds; a broker killed hard loses
  what came since the last save, which the service resends when the gates report their gaps
  (:mod:`device.site.service`);
- ``max_queued_messages`` per offline client raised from 1,000 to 100,000, in-flight window
  1,000 (a gate acknowledges after its store transaction commits).

Production sites run the same file under systemd (docs/site.md).
"""
from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from device.site.provision import SERVICE, SiteError, load_site


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def mosquitto_binary() -> str:
    for cand in (shutil.which("mosquitto"), "/usr/sbin/mosquitto"):
        if cand and os.path.exists(cand):
            return cand
    raise SiteError("mosquitto is not installed (Debian: apt-get install mosquitto)")


def write_config(site_dir, autosave_s: int = 60, queued: int = 100000) -> Path:
    d = Path(site_dir).resolve()
    info = load_site(d)
    b = d / "broker"
    (b / "data").mkdir(parents=True, exist_ok=True)
    site = info["site"]
    acl = [f"user {SERVICE}", f"topic readwrite site/{site}/#", ""]
    for g in sorted(info["gates"]):
        acl += [f"user {g}", f"topic read site/{site}/gate/{g}/#",
                f"topic write site/{site}/up/{g}/#", ""]
    for f in ("server.crt", "server.key"):
        if not (b / f).exists():
            raise SiteError(f"{b / f} missing: this site folder has no broker certificate")
    (b / "acl").write_text("\n".join(acl))
    conf = b / "mosquitto.conf"
    conf.write_text("\n".join([
        "# written by palmgate (device/site/broker.py) from site.json",
        "per_listener_settings false",
        # run as whoever started it (as root Mosquitto would switch to the user mosquitto,
        # who cannot read this folder)
        f"user {pwd.getpwuid(os.geteuid()).pw_name}",
        f"listener {info['broker']['port']} {info['broker']['host']}",
        "allow_anonymous false",
        f"cafile {d / 'ca' / 'ca.crt'}",
        f"certfile {b / 'server.crt'}",
        f"keyfile {b / 'server.key'}",
        "require_certificate true",
        "use_identity_as_username true",
        "tls_version tlsv1.2",
        f"acl_file {b / 'acl'}",
        "persistence true",
        f"persistence_location {b / 'data'}/",
        f"autosave_interval {int(autosave_s)}",
        f"max_queued_messages {int(queued)}",
        "max_inflight_messages 1000",
        "max_packet_size 4194304",
        "persistent_client_expiration 30d",
        f"log_dest file {b / 'mosquitto.log'}",
        "log_type error", "log_type warning", "log_type notice",
        "connection_messages false",
        ""]))
    return conf


class Broker:
    """``Broker(site_dir).start()`` ... ``stop()``; ``restart()`` keeps its database."""

    def __init__(self, site_dir):
        self.site_dir = Path(site_dir).resolve()
        self.info = load_site(self.site_dir)
        self.proc: subprocess.Popen | None = None

    @property
    def port(self) -> int:
        return int(self.info["broker"]["port"])

    def start(self, timeout: float = 10.0) -> "Broker":
        conf = write_config(self.site_dir)
        self.proc = subprocess.Popen([mosquitto_binary(), "-c", str(conf)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        end = time.time() + timeout
        while time.time() < end:
            if self.proc.poll() is not None:
                raise SiteError(f"mosquitto exited at start: "
                                f"{self.proc.stderr.read().decode(errors='replace')[-500:]}")
            try:
                with socket.create_connection((self.info["broker"]["host"], self.port), 0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise SiteError(f"mosquitto did not listen on port {self.port} within {timeout} s")

    def reload(self) -> None:
        """Re-read the ACL (a gate was added or removed)."""
        self.info = load_site(self.site_dir)
        write_config(self.site_dir)
        if self.proc is not None:
            self.proc.send_signal(signal.SIGHUP)

    def stop(self, hard: bool = False) -> None:
        """SIGTERM (Mosquitto saves its database), or SIGKILL with ``hard``."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            (self.proc.kill if hard else self.proc.terminate)()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc.stderr:
            self.proc.stderr.close()
        self.proc = None

    def restart(self, down_s: float = 0.0, hard: bool = False) -> None:
        self.stop(hard=hard)
        time.sleep(down_s)
        self.start()

    def __enter__(self):
        return self.start() if self.proc is None else self

    def __exit__(self, *exc):
        self.stop()
