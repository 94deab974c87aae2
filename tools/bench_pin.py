"""What checking a keypad entry (ID # PIN #) costs: one scrypt (N = 2**14, r = 8, p = 1) for a
right PIN, a wrong PIN and an unknown ID alike, whatever the number of users with a PIN.

    python -m tools.bench_pin [--users 50] [--checks 21]

Enrols ``--users`` users with random templates and a PIN each in a fresh sealed store (a
temporary folder), then times ``Pins.check`` for each kind of entry; prints one JSON line.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.bench_pin")
    ap.add_argument("--users", type=int, default=50)
    ap.add_argument("--checks", type=int, default=21)
    a = ap.parse_args(argv)
    import numpy as np
    from device.protect.core import enrol
    from device.store.pins import Pins
    from device.store.store import TemplateStore
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as d:
        with TemplateStore(os.path.join(d, "t.db"), device_key=os.urandom(32)) as st:
            p = Pins(st)
            t0 = time.perf_counter()
            for i in range(a.users):
                f = rng.standard_normal((49, 16))
                st.enrol(f"u{i:04d}", [enrol(f / np.linalg.norm(f, axis=-1, keepdims=True))])
                p.set_pin(f"u{i:04d}", f"{1000 + i % 9000}", 100 + i)
            setup_s = time.perf_counter() - t0
            last = 100 + a.users - 1
            out = {"users_with_pin": a.users, "checks": a.checks,
                   "set_pin_all_s": round(setup_s, 1), "cpus": os.cpu_count(),
                   "load_1min": round(os.getloadavg()[0], 1)}
            for what, args in (("right_pin", (last, f"{1000 + (a.users - 1) % 9000}")),
                               ("wrong_pin", (last, "99999")), ("unknown_id", (10 ** 7, "1234"))):
                ts = []
                for _ in range(a.checks):
                    t = time.perf_counter()
                    p.check(*args)
                    ts.append((time.perf_counter() - t) * 1e3)
                out[what] = {"median_ms": round(statistics.median(ts), 1),
                             "min_ms": round(min(ts), 1)}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
