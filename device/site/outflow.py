"""The service's publishing through a bounded window.

Every change the service numbers for a gate is first a row of its change log (``changes``,
SQLite); this reads that log in order and hands paho at most ``window`` messages that the
broker has not acknowledged yet (QoS 1 PUBACK). A backlog -- the bulk load of a whole site, a
gate offline for days -- therefore waits on disk, not in paho's memory (which held every
unsent QoS 1 message: 0.9 GB at 20,000 users x 20 gates before this).

Per gate: a cursor (the last change number handed to paho), the numbers a gate reported
missing (resent first), and the messages in flight. Gates take turns, so one gate's backlog
does not hold back another's fresh changes. It runs on the service thread only (the one that
owns the database); ``on_puback`` is fed from paho's callback through the service's queue.
"""
from __future__ import annotations

import json
import time


class Outflow:
    def __init__(self, db, publish, message, window: int = 500, stale_s: float = 120.0):
        """``publish(topic, payload) -> mid`` (QoS 1); ``message(gate, header) ->
        (topic, payload, retain)`` builds a change's message from its log row."""
        self.db, self.publish, self.message = db, publish, message
        self.window, self.stale_s = int(window), stale_s
        self.sent: dict[str, int] = {}
        self.redo: dict[str, set] = {}
        self.inflight: dict[int, tuple[str, float]] = {}
        self.peak = 0
        self.published = 0

    def start(self) -> None:
        """Cursors from what each gate has reported applied: whatever the log still holds
        beyond that goes (again) -- a re-delivery is harmless at a gate."""
        for g, contig in self.db.execute("SELECT gate_id, contig FROM gates"):
            self.sent[g] = max(self.sent.get(g, 0), int(contig))

    def on_puback(self, mid: int) -> None:
        self.inflight.pop(mid, None)

    def busy(self, gate: str) -> bool:
        return any(g == gate for g, _ in self.inflight.values())

    def resend(self, gate: str, gseqs) -> None:
        """Numbers ``gate`` reported missing: sent again before anything new."""
        self.redo.setdefault(gate, set()).update(int(g) for g in gseqs)

    def rewind(self, gate: str, to: int) -> int:
        """Send again everything after ``to`` (a gate idle with changes it never saw);
        returns how many changes that is at most."""
        cur = self.sent.get(gate, 0)
        if cur > to:
            self.sent[gate] = to
            return cur - to
        return 0

    def pump(self) -> int:
        """Publish while fewer than ``window`` messages are unacknowledged; returns how many."""
        now = time.time()
        for mid in [m for m, (_, t) in self.inflight.items() if now - t > self.stale_s]:
            del self.inflight[mid]          # paho resends after a reconnect; do not wait on it
        room = self.window - len(self.inflight)
        if room <= 0:
            return 0
        heads = dict(self.db.execute("SELECT gate_id, next_gseq FROM gates"))
        todo = [g for g in sorted(heads)
                if self.redo.get(g) or heads[g] > self.sent.setdefault(g, 0)]
        n = 0
        while todo and room > 0:
            share = max(1, room // len(todo))
            nxt = []
            for g in todo:
                k = self._gate(g, min(share, room))
                room -= k
                n += k
                if k and (self.redo.get(g) or heads[g] > self.sent[g]):
                    nxt.append(g)
                if room <= 0:
                    break
            todo = nxt
        self.peak = max(self.peak, len(self.inflight))
        return n

    def _gate(self, g: str, limit: int) -> int:
        rows = []
        redo = self.redo.get(g)
        while redo and len(rows) < limit:
            s = redo.pop()
            r = self.db.execute("SELECT gseq, header FROM changes WHERE gate_id=? AND gseq=?",
                                (g, s)).fetchone()
            if r is not None:
                rows.append(r)
        if len(rows) < limit:
            new = self.db.execute("SELECT gseq, header FROM changes WHERE gate_id=? AND gseq>? "
                                  "ORDER BY gseq LIMIT ?", (g, self.sent[g],
                                                            limit - len(rows))).fetchall()
            if new:
                self.sent[g] = new[-1][0]
            else:                           # pruned up to the head: nothing left to send
                self.sent[g] = max(self.sent[g], self.db.execute(
                    "SELECT next_gseq FROM gates WHERE gate_id=?", (g,)).fetchone()[0])
            rows += new
        now = time.time()
        for _, header in rows:
            topic, payload, _ = self.message(g, json.loads(header))
            self.inflight[self.publish(topic, payload)] = (g, now)
            self.published += 1
        return len(rows)
