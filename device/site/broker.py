"""Eclipse Mosquitto (Debian's ``mosquitto``) as a child process, configured from a site folder.

- one listener, no anonymous clients; a password per gate and for the service (hashed by
  ``mosquitto_passwd -U``); an ACL: gate G reads ``site/S/gate/G/#`` and writes
  ``site/S/up/G/#``, nothing else; the service reads and writes ``site/S/#``;
- persistence on (``broker/data/mosquitto.db``): persistent sessions (clean session off) and
  their queued QoS 1 messages survive a restart. Mosquitto writes its database at a clean
  shutdown (SIGTERM) and every ``autosave_interval`` seconds; a broker killed hard loses
  what came since the last save, which the service resends when the gates report their gaps
  (:mod:`device.site.service`);
- ``max_queued_messages`` per offline client raised from 1,000 to 100,000, in-flight window
  1,000 (a gate acknowledges after its store transaction commits).

Production sites run the same file under systemd (docs/site.md); TLS is not configured here.
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

from device.site.provision import SERVICE, SiteError, load_site, password


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
    lines = [f"{SERVICE}:{password(d, SERVICE)}"]
    acl = [f"user {SERVICE}", f"topic readwrite site/{site}/#", ""]
    for g in sorted(info["gates"]):
        lines.append(f"{g}:{password(d, g)}")
        acl += [f"user {g}", f"topic read site/{site}/gate/{g}/#",
                f"topic write site/{site}/up/{g}/#", ""]
    pw = b / "passwd"
    fd = os.open(pw, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("\n".join(lines) + "\n")
    passwd_tool = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
    subprocess.run([passwd_tool, "-U", str(pw)], check=True, capture_output=True)
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
        f"password_file {pw}",
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
        """Re-read passwords and ACL (a gate was added)."""
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
