"""The cost of the running gate's check of the sensor templates it reads
(device/store/sensor_row_tags.py).

    python -m tools.sensor_row_tags_bench --users 10000 [--per-user 2] [--reads 50]

A sealed template store in a temporary folder: ``users`` users, each one protected template
and ``per_user`` sensor templates of the shipped size (13,607 bytes: an 80 mm patch). Printed
(JSON): ``prime`` (every row tagged and checked: the gate's start), the median and largest
``read_user`` of one user (a decision with no store change: the state MAC, the user's rows
tagged and unsealed), the plain ``sensor_templates.read`` of the same users (the read before
the check) and a ``read_user`` right after another connection added one user's sensor
templates (the new rows tagged, the (record id, user id) pairs re-read).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=2000)
    ap.add_argument("--per-user", type=int, default=2)
    ap.add_argument("--reads", type=int, default=50)
    a = ap.parse_args(argv)
    from device.protect.core import enrol
    from device.store import sensor_templates as ST
    from device.store.sensor_row_tags import prime, read_user
    from device.store.store import TemplateStore
    key = os.urandom(32)
    v = np.random.default_rng(0).standard_normal((49, 16))
    t = enrol(v / np.linalg.norm(v, axis=-1, keepdims=True))
    blob = np.random.default_rng(1).bytes(13607)
    ms = lambda t0: (time.perf_counter() - t0) * 1e3          # noqa: E731
    with tempfile.TemporaryDirectory() as d:
        db = Path(d) / "t.db"
        with TemplateStore(db, device_key=key) as s:
            with s.transaction():
                for i in range(a.users):
                    ST.insert(s, f"u{i}", s.enrol(f"u{i}", [t]), [blob] * a.per_user)
            t0 = time.perf_counter()
            known = prime(s)
            rep = {"users": a.users, "sensor_rows": a.users * a.per_user,
                   "prime_ms": round(ms(t0), 1)}
            ids = [f"u{i * 7919 % a.users}" for i in range(a.reads)]
            reads, plain = [], []
            for uid in ids:
                t0 = time.perf_counter()
                read_user(s, uid, known)
                reads.append(ms(t0))
                t0 = time.perf_counter()
                ST.read(s, uid, 1)
                plain.append(ms(t0))
            rep.update(read_user_median_ms=round(statistics.median(reads), 3),
                       read_user_max_ms=round(max(reads), 3),
                       plain_read_median_ms=round(statistics.median(plain), 3))
            with TemplateStore(db, device_key=key) as other:
                ST.add(other, "u0", [blob])
            t0 = time.perf_counter()
            read_user(s, "u0", known)
            rep["read_user_after_a_change_ms"] = round(ms(t0), 2)
    print(json.dumps(rep))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
