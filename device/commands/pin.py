"""Reading a PIN for ``palmgate users set-pin USER``: from the terminal (typed twice, not
echoed) or, when stdin is not a terminal, its first line (``printf '2468\\n' | palmgate users
set-pin ...``). Never from the command line, where ``ps`` and the shell history would show
it."""
from __future__ import annotations

import sys


def read_pin(stream=None, prompt=None) -> str:
    """The PIN typed (or piped); a ``ValueError`` naming the problem when there is none or the
    two entries differ. The digits are checked by ``device.store.pins.check_pin``."""
    stream = sys.stdin if stream is None else stream
    if stream.isatty():
        import getpass
        first = (prompt or getpass.getpass)("new PIN (4-8 digits): ")
        again = (prompt or getpass.getpass)("the same PIN again: ")
        if first != again:
            raise ValueError("the two PINs differ: nothing changed")
        pin = first
    else:
        pin = stream.readline()
    pin = pin.strip()
    if not pin:
        raise ValueError("no PIN given: type it when asked, or pipe it on stdin (never on the "
                         "command line)")
    return pin
