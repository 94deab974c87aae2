"""Attempt limiting at the terminal, and the near-threshold burst alarm.

After ``max_failures`` consecutive failed presentations (5; 10 when liveness detection is on,
since a spoof then fails at liveness before it reaches the matcher) every further attempt
waits ``base_delay * 2**k`` seconds (30 s, 60 s, 120 s, ... up to ``max_delay``), k counting
the failures past the limit. A success resets the count. Several failed scores just below the
threshold within a short window -- a hill-climbing attack looks like that -- are logged as a
``near_threshold_burst``. The state survives restarts when a store is given (a MAC'd record in
its meta table, written in a store transaction with the lockout's audit record), so pulling
the power does not reset the delay, and putting back an older record is caught by the store's
state MAC and generation (device.store.integrity) like any other rollback.
"""
from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import time
from collections import deque
from dataclasses import dataclass


@dataclass
class AttemptDecision:
    allowed: bool
    wait_s: float
    failures: int


class AttemptLimiter:
    def __init__(self, liveness: bool = False, max_failures: int | None = None,
                 base_delay: float = 30.0, max_delay: float = 3600.0,
                 near_margin: float = 0.002, burst_count: int = 3, burst_window: float = 120.0,
                 store=None, audit=None):
        self.max_failures = max_failures or (10 if liveness else 5)
        self.base_delay, self.max_delay = float(base_delay), float(max_delay)
        self.near_margin = float(near_margin)
        self.burst_count, self.burst_window = int(burst_count), float(burst_window)
        self.failures = 0
        self.locked_until = 0.0
        self._near: deque = deque()
        self._store = store
        self.audit = audit if audit is not None else getattr(store, "audit", None)
        if store is not None:
            self._load()

    # ------------------------------------------------------------------ persistence
    def _mac(self, data: bytes) -> bytes:
        return hmac.new(self._store.audit_key, b"attempts" + data, hashlib.sha256).digest()

    def _load(self) -> None:
        r = self._store.conn.execute("SELECT value FROM meta WHERE name='attempts'").fetchone()
        if r is None:
            return
        v = bytes(r[0])
        data, mac = v[:-32], v[-32:]
        if not hmac.compare_digest(mac, self._mac(data)):
            # a forged reset is not honoured: start locked at the maximum delay
            self.failures = self.max_failures + 32
            self.locked_until = time.time() + self.max_delay
            return
        d = json.loads(data)
        self.failures, self.locked_until = int(d["failures"]), float(d["locked_until"])

    def _save(self) -> None:
        if self._store is None:
            return
        data = json.dumps({"failures": self.failures, "locked_until": self.locked_until}
                          ).encode()
        self._store.write_meta("attempts", data + self._mac(data))

    # ------------------------------------------------------------------ decisions
    def check(self, now: float | None = None) -> AttemptDecision:
        """May a presentation be matched now?"""
        now = time.time() if now is None else now
        wait = max(0.0, self.locked_until - now)
        return AttemptDecision(wait == 0.0, wait, self.failures)

    def delay_for(self, failures: int) -> float:
        if failures < self.max_failures:
            return 0.0
        k = failures - self.max_failures
        return float(min(self.max_delay, self.base_delay * 2.0 ** min(k, 40)))

    def record(self, success: bool, now: float | None = None, score: float | None = None,
               threshold: float | None = None) -> AttemptDecision:
        """Account one finished presentation; returns whether the next may run now."""
        now = time.time() if now is None else now
        tx = self._store.transaction() if self._store is not None else contextlib.nullcontext()
        with tx:                    # the state and its audit records: one transaction
            self._account(success, now, score, threshold)
        return self.check(now)

    def _account(self, success: bool, now: float, score, threshold) -> None:
        if success:
            self.failures = 0
            self.locked_until = 0.0
            self._near.clear()
        else:
            self.failures += 1
            d = self.delay_for(self.failures)
            if d:
                self.locked_until = now + d
                if self.audit is not None:
                    self.audit.append("lockout", when=now, failures=self.failures, delay_s=d)
            if score is not None and threshold is not None and \
                    threshold - self.near_margin <= score < threshold:
                self._near.append(now)
                while self._near and now - self._near[0] > self.burst_window:
                    self._near.popleft()
                if len(self._near) >= self.burst_count and self.audit is not None:
                    self.audit.append("near_threshold_burst", when=now, count=len(self._near),
                                      window_s=self.burst_window)
                    self._near.clear()
        self._save()
