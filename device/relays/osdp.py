"""The gate as an OSDP peripheral (PD) of the site's access panel, through libosdp.

The panel (the control panel, CP) polls the gate over RS-485 (a USB or on-board RS-485
adapter: a serial port). libosdp (PyPI ``libosdp``, import name ``osdp``; never install the
unrelated ``osdp`` package beside it: both use that folder) runs the protocol and the Secure
Channel; this module gives it a serial line, keeps the Secure Channel Base Key (SCBK) and
turns the panel's commands into callbacks:

- ``report_card(bits)``: a card read (raw Wiegand bits with their count) to the panel;
  refused (returns False) unless the line is online and, with ``require_secure``, the Secure
  Channel is active: a card number never crosses the wire in the clear.
- ``report_status(tamper=, power_ok=)``: the local status report (tamper switch, power).
- commands: ``on_output(output_no, action, ms)`` (action ``"on"``, ``"off"`` or ``"pulse"``
  with ``ms`` for a timed one), ``on_led(led)`` and ``on_buzzer(buzzer)`` (dicts in the
  gate's words), each called in libosdp's thread; an exception in one NAKs the command.

The key: ``scbk_file`` holds the 16-byte SCBK as hex (mode 0600). When it exists the PD runs
with it and enforces the Secure Channel. When it does not, and ``install_mode`` is true, the
PD starts in OSDP's install mode: the panel opens the Secure Channel with the default key
SCBK-D and sends its own key (osdp_KEYSET); the PD writes it to ``scbk_file`` before it
acknowledges, and uses it from then on. Without a key and without ``install_mode`` the PD
does not start (:class:`OsdpError`). Nothing here knows a palm or a user.
"""
from __future__ import annotations

import logging
import os
import secrets
import threading
from pathlib import Path

log = logging.getLogger(__name__)

INSTALL_HINT = ("install libosdp 3.2.9 (pip install 'libosdp==3.2.9', or the gate's `door` "
                "extra); never the PyPI package `osdp`, which takes the same import name")

# OSDP output control codes (osdp_OUT): 1/3 off, 2/4 on, 5 on for timer_count x 100 ms,
# 6 off for timer_count x 100 ms
_OUT_OFF, _OUT_ON, _OUT_TEMP_ON, _OUT_TEMP_OFF = (1, 3), (2, 4), 5, 6
LED_COLORS = {0: "off", 1: "red", 2: "green", 3: "amber", 4: "blue", 5: "magenta", 6: "cyan",
              7: "white"}


class OsdpError(RuntimeError):
    """libosdp missing, no key and no install mode, or a bad line."""


def _osdp():
    try:
        import osdp
        osdp.PeripheralDevice                       # the libosdp wheel's module, not another
    except (ImportError, AttributeError) as e:
        raise OsdpError(f"libosdp is not importable ({e}); {INSTALL_HINT}") from e
    return osdp


def load_scbk(path) -> bytes | None:
    """The SCBK in ``path`` (32 hex digits), None when the file is missing."""
    p = Path(path)
    try:
        text = p.read_text().strip()
    except FileNotFoundError:
        return None
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) != 16:
        raise OsdpError(f"{p}: not an OSDP SCBK (32 hex digits); remove it and let the panel "
                        f"install a key (osdp.install_mode = true)")
    return key


def save_scbk(path, key: bytes) -> None:
    """Write the SCBK (hex, mode 0600) atomically."""
    if len(key) != 16:
        raise OsdpError("an OSDP SCBK is 16 bytes")
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = p.with_name(f".{p.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, key.hex().encode() + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, p)


def _serial_channel(port: str, baudrate: int):
    """An ``osdp.Channel`` on a serial port (pyserial; a path or a pyserial URL)."""
    import serial
    osdp = _osdp()

    class SerialChannel(osdp.Channel):
        def __init__(self):
            super().__init__()
            try:
                self.port = serial.serial_for_url(port, baudrate=baudrate, timeout=0,
                                                  write_timeout=1.0)
            except (serial.SerialException, OSError, ValueError) as e:
                raise OsdpError(f"OSDP line {port}: {e}") from e

        def read(self, max_bytes: int) -> bytes:
            try:
                return self.port.read(max_bytes)
            except (serial.SerialException, OSError):
                return b""

        def write(self, buf: bytes) -> int:
            try:
                return self.port.write(buf) or 0
            except (serial.SerialException, OSError):
                return 0

        def flush(self) -> None:
            try:
                self.port.reset_input_buffer()
            except (serial.SerialException, OSError):
                pass

        def close(self) -> None:
            self.port.close()

    return SerialChannel()



def release(device, channel, what: str) -> None:
    """Tear down a libosdp device (PD or CP; None: nothing) and close its serial channel; a
    failure is logged, never raised (this runs on the way out)."""
    if device is not None:
        try:
            device.teardown()
        except Exception as e:      # noqa: BLE001
            log.error("%s stop: %s", what, e)
    if channel is not None and hasattr(channel, "close"):
        try:
            channel.close()
        except Exception:           # noqa: BLE001
            pass

class OsdpPeripheral:
    """One PD on ``port``. ``start()`` opens the line and starts libosdp's thread."""

    def __init__(self, port: str, *, address: int = 101, baudrate: int = 9600,
                 scbk_file, install_mode: bool = False, require_secure: bool = True,
                 on_output=None, on_led=None, on_buzzer=None, log_level: str = "warning",
                 serial_number: int = 1, channel=None):
        if not 0 <= address <= 126:
            raise OsdpError(f"OSDP address {address} is outside 0..126")
        self.port, self.address, self.baudrate = port, address, baudrate
        self.scbk_file, self.install_mode = Path(scbk_file), install_mode
        self.require_secure = require_secure
        self.on_output, self.on_led, self.on_buzzer = on_output, on_led, on_buzzer
        self.log_level, self.serial_number = log_level, serial_number
        self._channel = channel
        self.pd = None
        self.key_installed = False
        self._install = False                   # started without a key (install mode)
        self.settle_s = 1.0                     # longest wait for a renewed Secure Channel
        self.cards_reported = 0
        self.errors: list[str] = []
        self.commands: list[dict] = []
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ life cycle
    def start(self) -> "OsdpPeripheral":
        osdp = _osdp()
        key = load_scbk(self.scbk_file)
        if key is None and not self.install_mode:
            raise OsdpError(f"no OSDP key at {self.scbk_file}: set osdp.install_mode = true "
                            f"for the first connection, and let the panel install its key "
                            f"(osdp_KEYSET)")
        flags = [osdp.LibFlag.EnforceSecure] if key is not None and self.require_secure else []
        self._install = key is None
        if key is None:
            log.warning("OSDP PD %d in install mode: waiting for the panel's key (SCBK-D)",
                        self.address, extra={"event": "osdp_install_mode"})
        C = osdp.Capability
        caps = osdp.PDCapabilities([(C.OutputControl, 1, 1), (C.LEDControl, 1, 1),
                                    (C.AudibleControl, 1, 1), (C.CardDataFormat, 1, 1),
                                    (C.CommunicationSecurity, 1, 1)])
        chan = self._channel or _serial_channel(self.port, self.baudrate)
        self._channel = chan
        info = osdp.PDInfo(self.address, chan, scbk=key, flags=flags, name="palmgate",
                           id=osdp.PdId(1, 1, 0x00ABCDEF, self.serial_number, 0x00010000))
        level = getattr(osdp.LogLevel, self.log_level.capitalize(), osdp.LogLevel.Warning)
        self.pd = osdp.PeripheralDevice(info, caps, log_level=level,
                                        command_handler=self._command)
        self.pd.start()
        log.info("OSDP PD %d on %s", self.address, self.port,
                 extra={"event": "osdp_ready", "address": self.address, "port": self.port,
                        "install_mode": key is None})
        return self

    def close(self) -> None:
        pd, self.pd = self.pd, None
        release(pd, self._channel, "OSDP PD")

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()

    # ------------------------------------------------------------------ state
    @property
    def online(self) -> bool:
        return self.pd is not None and bool(self.pd.is_online())

    @property
    def secure(self) -> bool:
        return self.pd is not None and bool(self.pd.is_sc_active())

    def wait_secure(self, timeout: float = 10.0) -> bool:
        """Until online with an active Secure Channel -- under the panel's own key when the PD
        started in install mode (SCBK-D only carries the key installation)."""
        import time
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.secure and self.online and (self.key_installed or not self._install):
                return True
            time.sleep(0.05)
        return False

    def describe(self) -> dict:
        return {"address": self.address, "port": self.port, "online": self.online,
                "secure_channel": self.secure, "key_file": str(self.scbk_file),
                "key_present": self.scbk_file.exists(),
                "cards_reported": self.cards_reported, "errors": len(self.errors)}

    # ------------------------------------------------------------------ reports
    def _submit(self, event: dict, what: str) -> bool:
        if self.pd is None:
            self._error(f"{what}: the OSDP PD is not running")
            return False
        if not (self.online and (self.secure or not self.require_secure)):
            # the panel renews the Secure Channel now and then (and right after it installs
            # its key): wait a moment for it rather than drop the credential
            self.wait_secure(self.settle_s) if self.require_secure else None
        if not self.online:
            self._error(f"{what}: the panel is not polling (offline)")
            return False
        if self.require_secure and not self.secure:
            self._error(f"{what}: no Secure Channel with the panel")
            return False
        try:
            ok = bool(self.pd.submit_event(event))
        except Exception as e:          # noqa: BLE001
            ok = False
            self._error(f"{what}: {type(e).__name__}: {e}")
            return False
        if not ok:
            self._error(f"{what}: libosdp refused the event (queue full?)")
        return ok

    def report_card(self, bits) -> bool:
        """One card read as raw Wiegand bits (first bit first)."""
        from device.relays.wiegand_codec import to_bytes
        osdp = _osdp()
        bits = list(bits)
        ev = {"event": osdp.Event.CardRead, "reader_no": 0, "direction": 0,
              "format": osdp.CardFormat.Wiegand, "length": len(bits), "data": to_bytes(bits)}
        with self._lock:
            ok = self._submit(ev, "card report")
            if ok:
                self.cards_reported += 1
        return ok

    def report_status(self, *, tamper: bool = False, power_ok: bool = True) -> bool:
        """The local status report: tamper (1 = tampered) and power (1 = failure)."""
        osdp = _osdp()
        ev = {"event": osdp.Event.Status, "type": osdp.StatusReportType.Local,
              "report": bytes([1 if tamper else 0, 0 if power_ok else 1])}
        return self._submit(ev, "status report")

    def _error(self, msg: str) -> None:
        self.errors.append(msg)
        log.error("OSDP: %s", msg, extra={"event": "osdp_error"})

    # ------------------------------------------------------------------ commands
    def _command(self, cmd: dict):
        osdp = _osdp()
        C = osdp.Command
        kind = cmd.get("command")
        self.commands.append({k: v for k, v in cmd.items() if k != "data"})
        try:
            if kind == C.Keyset:
                key = bytes(cmd.get("data") or b"")
                save_scbk(self.scbk_file, key)          # on disk before the ACK
                self.key_installed = True
                log.warning("OSDP: the panel installed a new Secure Channel key (%s)",
                            self.scbk_file, extra={"event": "osdp_keyset"})
            elif kind == C.Output:
                code, t = cmd.get("control_code", 0), int(cmd.get("timer_count", 0))
                if code in _OUT_ON:
                    action, ms = "on", None
                elif code in _OUT_OFF:
                    action, ms = "off", None
                elif code == _OUT_TEMP_ON:
                    action, ms = "pulse", t * 100
                elif code == _OUT_TEMP_OFF:
                    action, ms = "off", t * 100
                else:
                    return 0, None                       # no-op
                if self.on_output is not None:
                    self.on_output(int(cmd.get("output_no", 0)), action, ms)
            elif kind == C.LED:
                if self.on_led is not None:
                    self.on_led({"led": cmd.get("led_number", 0),
                                 "color": LED_COLORS.get(cmd.get("on_color"), "?"),
                                 "off_color": LED_COLORS.get(cmd.get("off_color"), "?"),
                                 "temporary": bool(cmd.get("temporary")),
                                 "on_ms": 100 * int(cmd.get("on_count", 0)),
                                 "off_ms": 100 * int(cmd.get("off_count", 0)),
                                 "timer_ms": 100 * int(cmd.get("timer_count", 0))})
            elif kind == C.Buzzer:
                if self.on_buzzer is not None:
                    self.on_buzzer({"tone": cmd.get("control_code", 0),
                                    "on_ms": 100 * int(cmd.get("on_count", 0)),
                                    "off_ms": 100 * int(cmd.get("off_count", 0)),
                                    "repeat": int(cmd.get("rep_count", 0))})
        except Exception as e:          # noqa: BLE001 - NAK the command, keep the line
            self._error(f"command {kind}: {type(e).__name__}: {e}")
            return -1, None
        return 0, None
