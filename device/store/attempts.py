"""Attempt limiting per user and per terminal, and the near-threshold burst alarm.

Two kinds of counter (FIDO-style: a few free failures, then a delay of at least
``base_delay`` that doubles with every further failure, up to ``max_delay``):

- **per user** -- the claimed id (verify mode) or, in identify mode, the enrolled user the
  presentation came closest to (the best candidate below the threshold), so attempts aimed at
  one person add up on that person. ``max_failures`` free (5; 10 with liveness, since a spoof
  then fails at liveness first), then ``base_delay * 2**k``. Only that user's own success
  resets it: someone else's success between tries does nothing to it.
- **per terminal** -- every failed presentation, whoever it was. It is never reset by a
  success; it leaks instead, one failure every ``terminal_decay_s`` seconds, so the false
  rejections of a busy gate never add up to a lockout while an impostor who tries again and
  again (with or without their own palm in between) is slowed down to about one try per
  ``terminal_decay_s``. ``terminal_max_failures`` free (20), then the same doubling.

A user's lock stops only that user (verify: before the match, with "please wait"; identify:
a match with a locked user is denied exactly like a no-match, so the lock is no oracle); the
terminal's lock stops every presentation. Failures are the outcomes of an attempt
(``no_match``, ``not_live``, ``no_hand_in_sensor``, ``sensor_mismatch``, ``unknown_user``,
``wrong_pin``: a PIN nobody has, typed on the keypad, and ``unknown_card``: a card nobody
holds -- counted on the terminal only, so a card number guessed at the reader is slowed down
like a palm); faults (camera, relay, timeouts) and quality
prompts are not attempts. Lockouts and resets are audited. The counters live in the store
(``device.store.attempt_state``); every check reads them, so ``palmgate attempts reset`` in
another process takes effect at the next presentation. A record that fails its MAC is not
honoured: the terminal starts locked for ``max_delay`` (fail secure).
"""
from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

from device.store import attempt_state as state_io

FAILURE_REASONS = ("no_match", "not_live", "no_hand_in_sensor", "sensor_mismatch",
                   "sensor_identity", "unknown_user", "wrong_pin", "unknown_card")
MAX_USERS = 10_000            # user counters kept; the oldest unlocked ones go first


@dataclass
class AttemptDecision:
    allowed: bool
    wait_s: float
    failures: int
    scope: str | None = None          # "terminal" or "user" when not allowed


# ------------------------------------------------------------------ pure policy
def lock_delay(failures: int, free: int, base: float, cap: float) -> float:
    """Seconds to wait after ``failures`` failures: 0 below ``free``, then base * 2**k."""
    k = int(failures) - int(free)
    if k < 0:
        return 0.0
    return float(min(cap, base * 2.0 ** min(k, 40)))


def leak(failures: int, since: float, now: float, decay_s: float) -> tuple[int, float]:
    """The terminal's count after leaking one whole failure every ``decay_s`` since ``since``
    (the time of the last leak, or of the first failure): (failures, new ``since``)."""
    if decay_s <= 0 or now <= since or failures <= 0:
        return max(0, int(failures)), since
    n = int((now - since) // decay_s)
    if n == 0:
        return int(failures), since
    f = max(0, int(failures) - n)
    return f, (since + n * decay_s if f > 0 else now)


def counts_as_attempt(reason: str, opened: bool) -> bool:
    return opened or reason in FAILURE_REASONS


class AttemptLimiter:
    def __init__(self, liveness: bool = False, max_failures: int | None = None,
                 base_delay: float = 30.0, max_delay: float = 3600.0,
                 near_margin: float = 0.002, burst_count: int = 3, burst_window: float = 120.0,
                 store=None, audit=None, terminal_max_failures: int | None = None,
                 terminal_decay_s: float = 300.0, terminal: str = "", clock=time.time):
        self.max_failures = int(max_failures or (10 if liveness else 5))
        self.terminal_max_failures = int(terminal_max_failures or 20)
        self.terminal_decay_s = float(terminal_decay_s)
        self.base_delay, self.max_delay = float(base_delay), float(max_delay)
        self.near_margin = float(near_margin)
        self.burst_count, self.burst_window = int(burst_count), float(burst_window)
        self.terminal = terminal
        self.clock = clock
        self._near: deque = deque()
        self._store = store
        self.audit = audit if audit is not None else getattr(store, "audit", None)
        self._mem = state_io.empty_state()
        self.tampered = False
        self._read()                            # a forged record locks at once

    # ------------------------------------------------------------------ state
    def _read(self) -> dict:
        if self._store is None:
            return self._mem
        try:
            return state_io.load_state(self._store)
        except state_io.AttemptStateError:
            if not self.tampered:
                self.tampered = True
                self._audit("attempts_tampered", reason="attempt record fails its MAC: "
                                                        "terminal locked")
            st = state_io.empty_state()
            st["terminal"].update(failures=self.terminal_max_failures + 32,
                                  locked_until=self.clock() + self.max_delay,
                                  at=self.clock())
            return st

    def _write(self, st: dict) -> None:
        if self._store is None:
            self._mem = st
            return
        users = st["users"]
        if len(users) > MAX_USERS:
            now = self.clock()
            old = sorted((u for u, c in users.items() if c.get("locked_until", 0) <= now),
                         key=lambda u: users[u].get("at", 0))
            for u in old[:len(users) - MAX_USERS]:
                del users[u]
        state_io.save_state(self._store, st)
        self.tampered = False

    def _audit(self, kind: str, **payload) -> None:
        if self.audit is None:
            return
        if self.terminal:
            payload.setdefault("terminal", self.terminal)
        self.audit.append(kind, **payload)

    def _tx(self):
        if self._store is None:
            from contextlib import nullcontext
            return nullcontext()
        return state_io.transaction(self._store)

    # ------------------------------------------------------------------ views
    @property
    def failures(self) -> int:
        """The terminal's failure count now (after the leak)."""
        t = self._read()["terminal"]
        return leak(t["failures"], t["at"], self.clock(), self.terminal_decay_s)[0]

    def user_failures(self, user: str) -> int:
        return int(self._read()["users"].get(user, {}).get("failures", 0))

    def snapshot(self, now: float | None = None) -> dict:
        """Counters and remaining waits, for ``palmgate attempts show``."""
        now = self.clock() if now is None else now
        st = self._read()
        t = st["terminal"]
        out = {"terminal": {"failures": leak(t["failures"], t["at"], now,
                                             self.terminal_decay_s)[0],
                            "wait_s": round(max(0.0, t["locked_until"] - now), 1),
                            "free": self.terminal_max_failures,
                            "decay_s": self.terminal_decay_s},
               "users": {u: {"failures": int(c["failures"]),
                             "wait_s": round(max(0.0, c["locked_until"] - now), 1)}
                         for u, c in sorted(st["users"].items())},
               "user_free": self.max_failures, "tampered": self.tampered}
        return out

    # ------------------------------------------------------------------ decisions
    def check(self, now: float | None = None, user: str | None = None) -> AttemptDecision:
        """May a presentation (claiming ``user``, if known) be matched now?"""
        now = self.clock() if now is None else now
        st = self._read()
        t = st["terminal"]
        tw = max(0.0, t["locked_until"] - now)
        nf = leak(t["failures"], t["at"], now, self.terminal_decay_s)[0]
        if tw > 0:
            return AttemptDecision(False, tw, nf, "terminal")
        if user is not None:
            c = st["users"].get(user)
            if c is not None and c["locked_until"] > now:
                return AttemptDecision(False, c["locked_until"] - now, int(c["failures"]),
                                       "user")
        return AttemptDecision(True, 0.0, nf)

    def record(self, success: bool, now: float | None = None, score: float | None = None,
               threshold: float | None = None, user: str | None = None) -> AttemptDecision:
        """Account one finished attempt by (or aimed at) ``user``; returns whether the next
        may run now."""
        now = self.clock() if now is None else now
        with self._tx():
            st = self._read()
            t = st["terminal"]
            if success:
                if user is not None:
                    st["users"].pop(user, None)        # only this user's own counter
                self._near.clear()
            else:
                f, at = leak(t["failures"], t["at"], now, self.terminal_decay_s)
                t["failures"], t["at"] = f + 1, (at if f > 0 else now)
                d = lock_delay(t["failures"], self.terminal_max_failures, self.base_delay,
                               self.max_delay)
                if d:
                    t["locked_until"] = max(t["locked_until"], now + d)
                    self._audit("lockout", when=now, reason="terminal",
                                failures=t["failures"], delay_s=d)
                if user is not None:
                    c = st["users"].setdefault(user, {"failures": 0, "locked_until": 0.0,
                                                      "at": now})
                    c["failures"] = int(c["failures"]) + 1
                    c["at"] = now
                    du = lock_delay(c["failures"], self.max_failures, self.base_delay,
                                    self.max_delay)
                    if du:
                        c["locked_until"] = max(c["locked_until"], now + du)
                        self._audit("lockout", when=now, reason="user", user_id=user,
                                    failures=c["failures"], delay_s=du)
                self._near_threshold(now, score, threshold)
            self._write(st)
        return self.check(now, user)

    def _near_threshold(self, now, score, threshold) -> None:
        if score is None or threshold is None or \
                not threshold - self.near_margin <= score < threshold:
            return
        self._near.append(now)
        while self._near and now - self._near[0] > self.burst_window:
            self._near.popleft()
        if len(self._near) >= self.burst_count:
            self._audit("near_threshold_burst", when=now, count=len(self._near),
                        window_s=self.burst_window)
            self._near.clear()

    def reset(self, user: str | None = None, terminal: bool = False,
              now: float | None = None, audit: dict | None = None) -> dict:
        """Admin reset: ``user``'s counter, the terminal's, or both; audited in the same
        transaction (``audit``: extra fields of the record, e.g. the operator). Returns what
        was cleared."""
        extra = {k: v for k, v in (audit or {}).items() if v is not None}
        if user is None and not terminal:
            raise ValueError("reset what? give a user id, or the terminal")
        now = self.clock() if now is None else now
        out = {}
        with self._tx():
            try:
                st = state_io.load_state(self._store) if self._store is not None \
                    else self._mem
            except state_io.AttemptStateError:
                st = state_io.empty_state()         # an admin reset replaces a bad record
                out["replaced_bad_record"] = True
            if user is not None:
                c = st["users"].pop(user, None)
                out["user"] = {"user_id": user,
                               "failures": int(c["failures"]) if c else 0}
                self._audit("attempts_reset", when=now, user_id=user,
                            failures=out["user"]["failures"], **extra)
            if terminal:
                t = st["terminal"]
                out["terminal"] = {"failures": leak(t["failures"], t["at"], now,
                                                    self.terminal_decay_s)[0]}
                st["terminal"] = state_io.empty_state()["terminal"]
                self._audit("attempts_reset", when=now, reason="terminal",
                            failures=out["terminal"]["failures"], **extra)
            self._write(st)
        return out
