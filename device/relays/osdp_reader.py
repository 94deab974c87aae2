"""The gate as the OSDP control panel (CP) of a card reader with a keypad wired to it on an
RS-485 line of its own, through libosdp's ControlPanel, over the Secure Channel.

In OSDP a reader's card reads (``osdp_RAW``) and key presses (``osdp_KEYPAD``) flow from the
reader, a peripheral device (PD), to its CP; the gate is the PD of the site's panel on
``[osdp]``, so a reader wired to the gate needs this second role on a second line. Each card
read (raw Wiegand bits) is decoded (parity checked) and handed to ``on_card(card)``; each key
to ``on_key(key)`` (``"0"``-``"9"``, ``"*"``, ``"#"``; OSDP sends ``*`` as 0x7F and ``#`` as
0x0D, the ASCII characters are taken too); ``on_error(message)`` for what cannot be used.
With ``require_secure`` nothing is taken unless the Secure Channel is active.

The key: ``scbk_file`` holds the link's SCBK (32 hex digits, mode 0600). When it is missing the
gate makes a random one (``device.relays.osdp.save_scbk``) and libosdp installs it in a reader
that is in install mode (a new reader: it answers the default key SCBK-D) with osdp_KEYSET on
their first connection (that first start does not enforce the Secure Channel, so that libosdp
may try SCBK-D; every later start does). Nothing here knows a palm or a user.
"""
from __future__ import annotations

import logging
import secrets
import threading
from pathlib import Path

from device.relays.osdp import (OsdpError, _osdp, _serial_channel, load_scbk, release,
                                save_scbk)
from device.relays.wiegand_codec import WiegandError, decode, from_bytes

log = logging.getLogger(__name__)

OSDP_KEYS = {0x7F: "*", 0x0D: "#", ord("*"): "*", ord("#"): "#"}


def keys_of(data: bytes) -> list[str]:
    """The keys of an osdp_KEYPAD report; :class:`WiegandError` for a byte that is no key."""
    out = []
    for b in bytes(data):
        if 0x30 <= b <= 0x39:
            out.append(chr(b))
        elif b in OSDP_KEYS:
            out.append(OSDP_KEYS[b])
        else:
            raise WiegandError(f"keypad report byte 0x{b:02X} is no key")
    return out


class OsdpReader:
    """The reader at ``address`` on ``port``; ``start()`` opens the line, starts libosdp's CP
    thread and makes the key when there is none."""

    def __init__(self, port: str, *, address: int = 0, baudrate: int = 9600, scbk_file,
                 on_card=None, on_key=None, on_error=None, require_secure: bool = True,
                 log_level: str = "warning", channel=None):
        if not 0 <= address <= 126:
            raise OsdpError(f"OSDP address {address} is outside 0..126")
        self.port, self.address, self.baudrate = port, address, baudrate
        self.scbk_file = Path(scbk_file)
        self.on_card, self.on_key, self.on_error = on_card, on_key, on_error
        self.require_secure, self.log_level = require_secure, log_level
        self._channel = channel
        self.cp = None
        self.key_made = False
        self.cards = 0
        self.keys = 0
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = None

    def start(self) -> "OsdpReader":
        osdp = _osdp()
        key = load_scbk(self.scbk_file)
        if key is None:
            key = secrets.token_bytes(16)
            save_scbk(self.scbk_file, key)
            self.key_made = True
            log.warning("OSDP reader: made a new Secure Channel key %s; a reader in install "
                        "mode receives it on its first connection", self.scbk_file,
                        extra={"event": "osdp_reader_key_made"})
        # a key just made must first reach the reader under SCBK-D (install mode), which
        # libosdp's CP tries only when the Secure Channel is not enforced; from the next start
        # on it is. Either way no report is taken outside the Secure Channel (_event).
        flags = [osdp.LibFlag.EnforceSecure] if self.require_secure and not self.key_made \
            else []
        self._channel = self._channel or _serial_channel(self.port, self.baudrate)
        level = getattr(osdp.LogLevel, self.log_level.capitalize(), osdp.LogLevel.Warning)
        self.cp = osdp.ControlPanel([osdp.PDInfo(self.address, self._channel, scbk=key,
                                                 flags=flags)], log_level=level)
        self.cp.start()
        # events are taken from libosdp's queue in a thread of our own: its event callback
        # runs under the CP's lock, where asking the CP anything (is the channel secure?)
        # would deadlock
        self._stop.clear()
        self._thread = threading.Thread(target=self._events, name="osdp-reader", daemon=True)
        self._thread.start()
        log.info("OSDP reader %d on %s", self.address, self.port,
                 extra={"event": "osdp_reader_ready", "address": self.address})
        return self

    @property
    def online(self) -> bool:
        return self.cp is not None and bool(self.cp.is_online(self.address))

    @property
    def secure(self) -> bool:
        return self.cp is not None and bool(self.cp.is_sc_active(self.address))

    def wait_secure(self, timeout: float = 10.0) -> bool:
        import time
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.online and self.secure:
                return True
            time.sleep(0.05)
        return False

    def _error(self, msg: str) -> None:
        self.errors.append(msg)
        log.warning("OSDP reader: %s", msg, extra={"event": "osdp_reader_error"})
        if self.on_error is not None:
            self.on_error(msg)

    def _events(self) -> None:
        while not self._stop.is_set():
            cp = self.cp
            ev = cp.get_event(self.address, timeout=0.2) if cp is not None else None
            if ev:
                self._event(ev)

    def _event(self, ev: dict) -> int:
        """One event of the reader: a card read or keys."""
        osdp = _osdp()
        kind = ev.get("event")
        if kind not in (osdp.Event.CardRead, osdp.Event.KeyPress):
            return 0
        if self.require_secure and not self.secure:
            self._error("a report outside the Secure Channel: dropped")
            return 0
        try:
            if kind == osdp.Event.CardRead:
                if ev.get("format") != osdp.CardFormat.Wiegand:
                    raise WiegandError(f"card format {ev.get('format')}: only raw Wiegand")
                card = decode(from_bytes(bytes(ev.get("data") or b""), int(ev["length"])))
                self.cards += 1
                if self.on_card is not None:
                    self.on_card(card)
            else:
                for k in keys_of(ev.get("data") or b""):
                    self.keys += 1
                    if self.on_key is not None:
                        self.on_key(k)
        except (WiegandError, KeyError, ValueError) as e:
            self._error(str(e))
        return 0

    def describe(self) -> dict:
        return {"address": self.address, "port": self.port, "online": self.online,
                "secure_channel": self.secure, "cards": self.cards, "keys": self.keys,
                "errors": len(self.errors)}

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)
            self._thread = None
        cp, self.cp = self.cp, None
        release(cp, self._channel, "OSDP reader")
