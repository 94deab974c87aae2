"""Real peers for the relay drivers (tests and ``python -m tools.relay_faults``; never the gate):

- :class:`ModbusPeer` -- a pymodbus 3.x RTU server (unit 1, coils 0..15) on a serial port,
  optionally with a Waveshare-style timed coil: a function-05 write at ``flash_base + coil``
  whose value is a time in 100 ms units switches the coil on, and the *peer* switches it off
  when the time is up (``loop.call_later`` inside the server), whatever the host does then.
- :class:`SerialLine` -- a serial line that can be cut and restored under a board that stays
  powered: the board's pty pair (socat) stays up, and a second socat links a fresh host-side
  pty to it. ``cut()`` ends that link (the host's device node disappears and its open handle
  dies with EIO, as with an unplugged USB-RS485 adapter); ``restore()`` makes a new one at the
  same path. The board keeps its coil states throughout.
"""
from __future__ import annotations

import asyncio
import struct
import subprocess
import threading
import time
from pathlib import Path


class ModbusPeer:
    """A pymodbus RTU server on ``port`` running on its own event loop thread. ``coils``: the
    board's coil states; ``rx``: raw frames received; ``log``: (monotonic, coil, state) for
    every coil write, the peer's own timed offs included."""

    def __init__(self, port, flash_base: int | None = None):
        from pymodbus.framer import FramerType
        from pymodbus.server import ModbusSerialServer
        from pymodbus.simulator import DataType, SimData, SimDevice

        self.coils: dict[int, bool] = {}
        self.rx: list[bytes] = []
        self.log: list[tuple[float, int, bool]] = []
        self.flash_base = flash_base
        self._flash_timers: dict[int, asyncio.TimerHandle] = {}

        async def action(fc, start, address, count, registers, set_values):
            if fc == 5 and set_values is not None:
                self.coils[address] = bool(set_values[0])
                self.log.append((time.monotonic(), address, bool(set_values[0])))
            return None

        def bits():
            return [SimData(0, count=1, values=False, datatype=DataType.BITS)]   # coils 0..15

        def regs():
            return [SimData(0, count=1, values=0, datatype=DataType.REGISTERS)]

        device = SimDevice(1, simdata=(bits(), bits(), regs(), regs()), action=action)

        def trace(sending, data):
            if not sending:
                self.rx.append(bytes(data))
            return data

        self.loop = asyncio.new_event_loop()
        self.server = None
        ready = threading.Event()
        custom = [self._flash_pdu()] if flash_base is not None else None

        async def serve():
            self.server = ModbusSerialServer(device, framer=FramerType.RTU, port=str(port),
                                             baudrate=9600, trace_packet=trace,
                                             custom_pdu=custom)
            ready.set()
            await self.server.serve_forever()

        self.thread = threading.Thread(target=lambda: self.loop.run_until_complete(serve()),
                                       daemon=True)
        self.thread.start()
        assert ready.wait(5)
        time.sleep(0.3)                                  # let it open the port

    def _flash_pdu(self):
        """Function 05 as a Waveshare board reads it: the plain coil write (value FF00/0000)
        and, at ``flash_base + coil``, the timed "flash on" (value = time / 100 ms)."""
        from pymodbus.constants import ExcCodes
        from pymodbus.pdu import ExceptionResponse
        from pymodbus.pdu.bit_message import WriteSingleCoilRequest

        peer, base = self, self.flash_base

        class FlashCoilRequest(WriteSingleCoilRequest):
            raw = 0

            def decode(self, data: bytes) -> None:
                self.address, self.raw = struct.unpack(">HH", data[:4])
                self.bits = [bool(self.raw)]

            def encode(self) -> bytes:
                return struct.pack(">HH", self.address, self.raw)

            async def datastore_update(self, context, device_id):
                if base <= self.address < base + 16:
                    coil = self.address - base
                    if not self.raw:
                        return ExceptionResponse(5, ExcCodes.ILLEGAL_VALUE, device_id)
                    if rc := await context.async_setValues(device_id, 5, coil, [True]):
                        return ExceptionResponse(5, rc, device_id)
                    peer._arm(context, device_id, coil, self.raw * 0.1)
                    echo = FlashCoilRequest(dev_id=self.dev_id, address=self.address,
                                            transaction_id=self.transaction_id)
                    echo.raw = self.raw
                    return echo
                if self.raw not in (0xFF00, 0x0000):
                    return ExceptionResponse(5, ExcCodes.ILLEGAL_VALUE, device_id)
                peer._disarm(self.address)        # a plain write overrides a running flash
                return await super().datastore_update(context, device_id)

        return FlashCoilRequest

    def _arm(self, context, device_id, coil, delay_s):
        self._disarm(coil)

        def off():
            self._flash_timers.pop(coil, None)
            asyncio.ensure_future(context.async_setValues(device_id, 5, coil, [False]))

        self._flash_timers[coil] = asyncio.get_running_loop().call_later(delay_s, off)

    def _disarm(self, coil):
        t = self._flash_timers.pop(coil, None)
        if t is not None:
            t.cancel()

    def off_after(self, coil: int, since: float) -> float | None:
        """Seconds from ``since`` to the first "off" of ``coil`` after it, or None."""
        for t, c, state in list(self.log):
            if c == coil and not state and t >= since:
                return t - since
        return None

    def stop(self):
        if self.server is not None:
            asyncio.run_coroutine_threadsafe(self.server.shutdown(), self.loop).result(5)
            self.server = None
            self.thread.join(5)
            if not self.thread.is_alive():
                self.loop.close()


class SerialLine:
    """``host`` (the path the gate opens) and ``board`` (the path a peer serves) of a line that
    ``cut()`` and ``restore()`` break and mend while the board stays powered."""

    def __init__(self, folder):
        d = Path(folder)
        d.mkdir(parents=True, exist_ok=True)
        self.host, self.board, self._mid = str(d / "host"), str(d / "board"), str(d / "mid")
        self._pair = self._socat(f"pty,raw,echo=0,link={self._mid}",
                                 f"pty,raw,echo=0,link={self.board}",
                                 wait=(self._mid, self.board))
        self._link = None
        self.restore()

    @staticmethod
    def _socat(a: str, b: str, wait) -> subprocess.Popen:
        p = subprocess.Popen(["socat", a, b], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        for _ in range(250):
            if all(Path(w).exists() for w in wait):
                return p
            time.sleep(0.02)
        p.kill()
        raise RuntimeError("socat did not create its pseudo-terminals")

    def restore(self) -> None:
        if self._link is None:
            self._link = self._socat(f"pty,raw,echo=0,link={self.host}",
                                     f"OPEN:{self._mid},raw,echo=0", wait=(self.host,))

    def cut(self) -> None:
        p, self._link = self._link, None
        if p is not None:
            p.terminate()
            p.wait(5)
            for _ in range(100):                  # socat removes its link on the way out
                if not Path(self.host).exists():
                    break
                time.sleep(0.01)

    def close(self) -> None:
        self.cut()
        self._pair.terminate()
        self._pair.wait(5)
